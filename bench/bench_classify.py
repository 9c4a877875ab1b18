"""Papers per second through the topic classifier: the lexical model, and the embedding model when installed.

    python bench/bench_classify.py [--papers 1000] [--no-embeddings]

1,000 papers are synthesised from the sample pages' 227 distinct papers: each copy gets a perturbed title
(a prefix from a small list) and its abstract with sentences rotated, so no two texts are identical and
the embedding cache cannot be hit by accident. Each run stores the papers in a fresh SQLite file and
times ``Newsletter.reclassify`` (store read + classify + store write):

- core: the core install, learned model + rules (``NEWSLETTER_EMBEDDINGS=off`` forces it when the extra is
  installed);
- embeddings, first run: every abstract embedded with all-MiniLM-L6-v2 (plus loading the model);
- embeddings, second run: every vector read back from the store.

Each line gives papers per second of wall time and of this process's CPU time: on a machine shared with
other work the CPU figure is the one to compare (the wall figure then measures the neighbours too).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import config as config_mod  # noqa: E402
from newsletter import embeddings  # noqa: E402
from newsletter.models import FetchedPaper, SourceBatch  # noqa: E402
from newsletter.pipeline import Newsletter, sample_pages  # noqa: E402
from newsletter.sources.hf_page import parse_page  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("", "Revisiting ", "Towards ", "Scaling ", "On ", "Efficient ", "Rethinking ", "Beyond ")


def synthetic_papers(n: int) -> list[FetchedPaper]:
    distinct: dict[str, FetchedPaper] = {}
    for page in sample_pages():
        for p in parse_page(page.read_text(encoding="utf-8")).papers:
            distinct.setdefault(p.title, p)
    base = list(distinct.values())
    out = []
    for i in range(n):
        src = base[i % len(base)]
        round_ = i // len(base)
        sentences = src.abstract.split(". ")
        shift = round_ % max(1, len(sentences))
        abstract = ". ".join(sentences[shift:] + sentences[:shift])
        out.append(FetchedPaper(title=f"{PREFIXES[round_ % len(PREFIXES)]}{src.title} ({round_})",
                                abstract=abstract, upvotes=i % 50, rank=i % 50 + 1))
    return out


def newsletter(folder: Path) -> Newsletter:
    raw = {"database_url": f"sqlite:///{folder / 'bench.db'}",
           "sources": [{"type": "hf-page", "path": str(sample_pages()[0])}]}
    import yaml

    raw["topics"] = yaml.safe_load((ROOT / "config.yaml").read_text())["topics"]
    return Newsletter(config_mod.from_mapping(raw, {}, base_dir=folder))


def timed(nl: Newsletter) -> tuple[int, float, float]:
    """(papers, wall seconds, CPU seconds of this process): on a shared machine the CPU time is the fair one."""
    start, cpu = time.perf_counter(), time.process_time()
    count = nl.reclassify()
    return count, time.perf_counter() - start, time.process_time() - cpu


def line(label: str, count: int, wall: float, cpu: float, note: str = "") -> str:
    return (f"{label:<23}{count} papers in {wall:6.2f} s = {count / wall:7.1f} papers/s wall, "
            f"{count / cpu:7.1f} papers/s CPU{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--no-embeddings", action="store_true", help="Only the lexical model.")
    args = parser.parse_args()
    papers = synthetic_papers(args.papers)
    batch = SourceBatch("bench", date(2026, 3, 14), papers)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[embeddings.ENV_SWITCH] = "off"  # the ingest classifies too: keep it lexical and untimed
        nl = newsletter(Path(tmp))
        nl.ingest([batch])
        count, wall, cpu = timed(nl)
        print(line("core (no embeddings):", count, wall, cpu))
        del os.environ[embeddings.ENV_SWITCH]
        if args.no_embeddings:
            return
        if not embeddings.available():
            print(f"embeddings: skipped, {embeddings.unavailable_reason()}")
            return
        count, wall, cpu = timed(nl)
        print(line("embeddings, first run:", count, wall, cpu, " (model load and embedding of every abstract)"))
        count, wall, cpu = timed(nl)
        print(line("embeddings, cached:", count, wall, cpu, " (vectors read from the store)"))
        nl.close()


if __name__ == "__main__":
    main()
