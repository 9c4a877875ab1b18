"""How the diff and the sent record scale with readers and papers.

Builds a SQLite store (or PostgreSQL with --url) with N readers who have already received a series of
editions, then times ``Newsletter.plan`` (store query + pure diff) and records how many rows the sent
record takes. Run: ``python bench/bench_diff.py`` (about a minute), or ``--quick``.

Prints, for each size, seconds per plan and microseconds per (reader x candidate) pair: a flat figure
across sizes means the cost grows linearly.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from newsletter import config
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.pipeline import Newsletter


def build(url: str, readers: int, papers_per_day: int, days: int) -> Newsletter:
    settings = config.from_mapping({"database_url": url, "sources": [{"type": "hf-page", "path": "unused.txt"}]},
                                   environ={})
    nl = Newsletter(settings)
    rng = random.Random(7)
    start = date(2025, 3, 1)
    nl.store.add_subscribers([{"email": f"reader{i}@example.org", "cadence": "daily"} for i in range(readers)])
    pid = 0
    for d in range(days):
        day = start + timedelta(days=d)
        batch = []
        for rank in range(papers_per_day):
            pid += 1
            batch.append(FetchedPaper(title=f"Paper {pid} on topic {rng.randint(0, 50)}", abstract="x" * 200,
                                      arxiv_id=f"25{(pid // 100000) + 1:02d}.{pid % 100000:05d}",
                                      upvotes=rng.randint(0, 200), rank=rank + 1))
        nl.store.ingest([SourceBatch("bench", day, batch)])
        plan = nl.plan("daily", day)
        edition = nl.record_edition(plan)
        with nl.store.engine.begin() as conn:  # everyone received it
            conn.exec_driver_sql(f"UPDATE deliveries SET state='sent' WHERE edition_id={edition}")
    return nl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [(1_000, 40), (4_000, 40), (1_000, 160)] if args.quick else [(1_000, 40), (5_000, 40), (10_000, 40), (5_000, 160)]
    print(f"{'readers':>8} {'papers/day':>10} {'plan s':>8} {'us/pair':>8} {'deliveries':>10} {'digests':>8} {'rows/reader/edition':>20}")
    for readers, per_day in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            nl = build(url, readers, per_day, days=6)
            day = date(2025, 3, 7)
            nl.store.ingest([SourceBatch("bench", day, [FetchedPaper(title=f"Fresh {i}", abstract="y", rank=i + 1)
                                                       for i in range(per_day)])])
            t0 = time.perf_counter()
            plan = nl.plan("daily", day)
            elapsed = time.perf_counter() - t0
            pairs = readers * len(plan.candidates)
            counts = nl.store.table_counts()
            print(f"{readers:>8} {per_day:>10} {elapsed:>8.3f} {elapsed / pairs * 1e6:>8.3f} {counts['deliveries']:>10} "
                  f"{counts['digests']:>8} {counts['deliveries'] / (readers * 6):>20.2f}")
            assert all(len(r.papers) == per_day for r in plan.readers)  # only today's papers are new
            nl.close()


if __name__ == "__main__":
    main()
