"""The shipped vocabulary of the paper vectors: terms and their idf, built from the DEV days of the real data.

The real days (``<real-data>/hf-api-days/*.json``, one saved Daily Papers response a day) are split as for the
topic labels (tests/data/topic_labels_real_*.csv): in sorted order, every fourth day counting from the first
one, i.e. the days at positions 2, 6, 10, ..., is a TEST day; the others are dev days. Only dev days go into
the vocabulary, so an evaluation on the test days sees words the vocabulary was not built from.

Rebuild (writes ``newsletter/relevance/vocab.json.gz``)::

    python -m newsletter.relevance.vocab ../shared/data/real/hf-api-days

The file holds terms and document frequencies only, never texts. Reading it is the model's one file access,
done once per process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import NewsletterError, ParseError
from .features import terms

VOCAB_FILE = "vocab.json.gz"
MIN_PAIR_DF = 2  # a word pair seen in one paper only says nothing about a reader's next paper


def is_test_day(position: int) -> bool:
    """Whether the day at ``position`` (0-based, days in sorted order) is a test day: every fourth from the first."""
    return position % 4 == 2


def split_days(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(dev days, test days) of the day files, by sorted name."""
    ordered = sorted(files, key=lambda p: p.name)
    dev = [f for n, f in enumerate(ordered) if not is_test_day(n)]
    test = [f for n, f in enumerate(ordered) if is_test_day(n)]
    return dev, test


class Vocabulary:
    """Terms (sorted), their document frequencies, the number of papers and the days they came from."""

    def __init__(self, terms: Sequence[str], df: Sequence[int], docs: int, days: Sequence[str] = ()) -> None:
        if len(terms) != len(df):
            raise ParseError("The relevance vocabulary has a different number of terms and frequencies.")
        self.terms, self.df, self.docs, self.days = tuple(terms), tuple(df), int(docs), tuple(days)
        self.ids: dict[str, int] = {t: n for n, t in enumerate(self.terms)}
        self.idf: tuple[float, ...] = tuple(math.log((1 + self.docs) / (1 + d)) + 1.0 for d in self.df)

    def __len__(self) -> int:
        return len(self.terms)

    def to_json(self) -> dict[str, object]:
        return {"version": 1, "docs": self.docs, "days": list(self.days), "terms": list(self.terms),
                "df": list(self.df)}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> "Vocabulary":
        try:
            t, df = tuple(doc["terms"]), tuple(int(x) for x in doc["df"])  # type: ignore[union-attr]
            docs = int(doc["docs"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(f"The relevance vocabulary is malformed ({exc}).") from None
        return cls(t, df, docs, tuple(doc.get("days", ())))  # type: ignore[arg-type]


def build(documents: Iterable[tuple[str, str, Sequence[str]]], days: Sequence[str] = ()) -> Vocabulary:
    """The vocabulary of (title, abstract, keywords) documents: every word, and word pairs in >= 2 papers."""
    df: dict[str, int] = {}
    docs = 0
    for title, abstract, keywords in documents:
        docs += 1
        for term in terms(title, abstract, keywords):
            df[term] = df.get(term, 0) + 1
    kept = sorted(t for t, d in df.items() if " " not in t or d >= MIN_PAIR_DF)
    return Vocabulary(tuple(kept), tuple(df[t] for t in kept), docs, tuple(days))


def day_papers(files: Sequence[Path]) -> list[tuple[str, list]]:
    """(day, papers) per day file, each paper counted on the first day it appears only."""
    from ..labelled import daily_papers

    seen: set[str] = set()
    out = []
    for f in sorted(files, key=lambda p: p.name):
        papers = []
        for p in daily_papers(f).by_title.values():
            key = p.arxiv_id or p.title.casefold()
            if key not in seen:
                seen.add(key)
                papers.append(p)
        out.append((f.stem, papers))
    return out


def build_from_days(folder: Path) -> Vocabulary:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise NewsletterError(f"{folder}: no Daily Papers day files (*.json) there.",
                              hint="pass the hf-api-days folder of the real data")
    dev, _ = split_days(files)
    days = day_papers(dev)
    return build(((p.title, p.abstract, p.ai_keywords) for _, ps in days for p in ps), [d for d, _ in days])


def dump(vocab: Vocabulary) -> bytes:
    return gzip.compress(json.dumps(vocab.to_json(), separators=(",", ":")).encode(), mtime=0)


@lru_cache(maxsize=1)
def shipped() -> Vocabulary:
    """The vocabulary shipped in the package (read once per process)."""
    try:
        raw = resources.files(__package__).joinpath(VOCAB_FILE).read_bytes()
        return Vocabulary.from_json(json.loads(gzip.decompress(raw)))
    except (OSError, ValueError) as exc:
        raise NewsletterError(f"The relevance vocabulary {VOCAB_FILE} cannot be read ({exc}).",
                              hint="rebuild it: python -m newsletter.relevance.vocab <hf-api-days folder>") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild the shipped vocabulary from the dev days.

    Example: python -m newsletter.relevance.vocab ../shared/data/real/hf-api-days
    """
    parser = argparse.ArgumentParser(prog="python -m newsletter.relevance.vocab", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("days", type=Path, help="the hf-api-days folder (its test days are left out)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(VOCAB_FILE),
                        help="where to write (default: the package's own vocab.json.gz)")
    args = parser.parse_args(argv)
    try:
        vocab = build_from_days(args.days)
    except NewsletterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raw = dump(vocab)
    args.out.write_bytes(raw)
    print(f"{args.out}: {len(vocab.terms)} terms from {vocab.docs} papers of {len(vocab.days)} dev days, "
          f"{len(raw)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
