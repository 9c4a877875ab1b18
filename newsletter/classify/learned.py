"""The learned topic model: a linear (softmax) model over a paper's words, trained on hand-labelled papers. Pure.

What ships is parameters, never texts: ``topic_model.json.gz`` holds, for each feature (a word or a pair of
adjacent words, tagged by the field it came from), its weight for each shipped topic, rounded. The training
code and its data stay outside the package (``python -m newsletter.classify.train``; the labels are in
tests/data/, the texts in the real-data folder).

Features of a paper, each present or absent (no counts: a long abstract must not drown its title):

- ``t:`` words and word pairs of the title;
- ``k:`` words and pairs of the feed's ``ai_keywords``;
- ``a:`` words and pairs of the whole text: title, keywords, abstract and the feed's one-line ``ai_summary``
  (so a word learned from abstracts counts in a title too);
- ``o:`` the organisation's name, ``g:code`` when a code repository is linked.

Only the topics the model was trained for get learned scores; a topic configured with another slug is scored
by the rules and the similarity model alone (see ``newsletter.topics``).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping, Sequence

from .text import tokens

MODEL_FILE = "topic_model.json.gz"

# Words that say nothing about a paper's subject (kept out of the features).
STOPWORDS = frozenset(
    "a an and are as at be by can do for from has have in into is it its of on or our such that the their "
    "these this those to via we what when which while with without within both each more most other than "
    "then there they thus use used using based new novel propose proposed approach method methods paper "
    "work show shows result results also however existing prior recent recently further significantly "
    "while across over under between through toward towards demonstrate achieve achieves achieving "
    "improve improves improved improving performance state art sota extensive experiment experiments "
    "introduce introduces present presents enable enables framework".split()
)


def _content(words: Sequence[str]) -> list[str]:
    return [t for t in words if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


def _add(out: set[str], prefix: str, words: Sequence[str]) -> None:
    out.update([prefix + w for w in words])
    out.update([f"{prefix}{a} {b}" for a, b in zip(words, words[1:], strict=False)])


def features(title: str, abstract: str = "", keywords: Iterable[str] = (), summary: str = "",
             organization: str | None = None, has_code: bool = False) -> set[str]:
    """The feature set of one paper (the same function builds the training data)."""
    return features_from_tokens(tokens(title), tokens(abstract), [tokens(k) for k in keywords],
                                tokens(summary) if summary else [], organization, has_code)


def features_from_tokens(title: Sequence[str], abstract: Sequence[str], keywords: Sequence[Sequence[str]],
                         summary: Sequence[str] = (), organization: str | None = None,
                         has_code: bool = False) -> set[str]:
    """``features`` from already tokenised fields (``text.tokens``), so the classifier tokenises once."""
    out: set[str] = set()
    title_words = _content(title)
    _add(out, "t:", title_words)
    _add(out, "a:", title_words)
    for kw in keywords:
        kw_words = _content(kw)
        _add(out, "k:", kw_words)
        _add(out, "a:", kw_words)
    _add(out, "a:", _content(abstract))
    if summary:
        _add(out, "a:", _content(summary))
    if organization:
        out.add("o:" + organization.strip().casefold())
    if has_code:
        out.add("g:code")
    return out


@dataclass(frozen=True)
class LearnedModel:
    """``weights[feature]`` is a tuple of (topic index, weight); ``bias`` one number per topic."""

    topics: tuple[str, ...]
    bias: tuple[float, ...]
    weights: Mapping[str, tuple[tuple[int, float], ...]]
    version: str = ""

    @property
    def dense(self) -> Mapping[str, tuple[float, ...]]:
        """Per feature, its weight for every topic: summed column-wise in C by ``zip``/``map``."""
        rows = self.__dict__.get("_dense")
        if rows is None:
            shared: dict[float, float] = {}  # one float object per distinct (rounded) weight
            zero = shared.setdefault(0.0, 0.0)
            rows = {}
            for feat, row in self.weights.items():
                values = [zero] * len(self.topics)
                for i, w in row:
                    values[i] = shared.setdefault(w, w)
                rows[feat] = tuple(values)
            object.__setattr__(self, "_dense", rows)
        return rows

    def logits(self, feats: Iterable[str]) -> dict[str, float]:
        """The model's score per topic: a log-probability up to a constant shared by all topics."""
        dense = self.dense
        present = dense.keys() & (feats if isinstance(feats, (set, frozenset)) else set(feats))
        rows = map(dense.__getitem__, sorted(present))  # sorted: sums independent of the set's hash order
        return dict(zip(self.topics, map(sum, zip(self.bias, *rows)), strict=True))

    def probabilities(self, feats: Iterable[str]) -> dict[str, float]:
        return softmax(self.logits(feats))


def feature_scale(count: int) -> float:
    """The value of each present feature of a paper with ``count`` features in a normalised model: papers
    with long abstracts (many features) and short ones (title and keywords only) get comparable scores."""
    return 1.0 / math.sqrt(count) if count else 1.0


def softmax(logits: Mapping[str, float]) -> dict[str, float]:
    top = max(logits.values())
    exps = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


def encode(topics: Sequence[str], bias: Sequence[float], weights: Mapping[str, Sequence[float]],
           version: str, threshold: float = 0.02, digits: int = 2) -> bytes:
    """The committed form of a trained model: weights below ``threshold`` dropped, the rest rounded."""
    rows: dict[str, str] = {}
    for feat, row in sorted(weights.items()):
        kept = [f"{i}:{round(w, digits):g}" for i, w in enumerate(row) if abs(w) >= threshold]
        if kept:
            rows[feat] = " ".join(kept)
    doc = {"version": version, "topics": list(topics), "bias": [round(b, 3) for b in bias], "weights": rows}
    return gzip.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), mtime=0)


def decode(blob: bytes) -> LearnedModel:
    doc = json.loads(gzip.decompress(blob))
    weights = {
        feat: tuple((int(i), float(w)) for i, w in (pair.split(":") for pair in row.split()))
        for feat, row in doc["weights"].items()
    }
    return LearnedModel(tuple(doc["topics"]), tuple(doc["bias"]), weights, doc.get("version", ""))


@lru_cache(maxsize=1)
def shipped() -> LearnedModel | None:
    """The model inside the package, or None when the file is missing (the classifier then uses its rules)."""
    try:
        blob = resources.files(__package__).joinpath(MODEL_FILE).read_bytes()
    except (FileNotFoundError, OSError):
        return None
    return decode(blob)
