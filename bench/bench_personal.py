"""What readers with signals cost at plan time (issue 15): retraining their models, ranking, and the digest of
their own that each then gets (built and rendered once per such reader), beside readers without signals.

N readers of every topic on the bundled sample page of Mar 14, 2025 (SQLite in a temporary file); ``--personal``
of them have ``--signals`` "more like this" signals each (papers of one topic, picked per reader). Phases, in CPU
seconds of this process (``time.process_time``: other work on the machine does not count):

- retrain: every stale model trained and stored (``relevance.personal.retrain``);
- plan: readers streamed and grouped (readers with a model get a group each);
- digests: ``planned_digests``: each distinct digest built (with the reader's own order and For you block for
  readers with a model) and rendered.

Run: ``python bench/bench_personal.py --readers 2000 --personal 200``. Prints per-reader figures.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2025, 3, 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--personal", type=int, default=200, help="readers with signals")
    parser.add_argument("--signals", type=int, default=5, help="signals per such reader")
    args = parser.parse_args()

    from newsletter import config
    from newsletter.pipeline import Newsletter
    from newsletter.relevance.personal import retrain
    from newsletter.store.signals import record_signals

    clock = time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.from_mapping({"database_url": f"sqlite:///{tmp}/bench.db",
                                        "sources": [{"type": "hf-page", "path": "unused.txt"}],
                                        "sender": {"email": "papers@example.org"}}, environ={})
        nl = Newsletter(settings)
        nl.import_file(ROOT / "newsletter" / "sample" / "daily-papers-mar14.txt", DAY)
        nl.store.import_subscribers([{"email": f"r{i}@example.org"} for i in range(args.readers)])
        ids = [s.id for s in nl.store.subscribers()]
        papers = nl.store.papers()
        by_topic: dict[str, list[int]] = {}
        for p in papers:
            by_topic.setdefault(p.topic or "other", []).append(p.id)
        topics = [t for t, ps in by_topic.items() if len(ps) >= args.signals]
        rng = random.Random(7)
        for sid in ids[:args.personal]:
            record_signals(nl.store.engine, sid, rng.sample(by_topic[rng.choice(topics)], args.signals), "more")
        nl.classify_new()

        t0 = clock()
        trained = retrain(nl.store.engine)
        t1 = clock()
        plan = nl.plan("daily", DAY)
        t2 = clock()
        planned = nl.planned_digests(plan)
        t3 = clock()
        own = sum(1 for d in planned if d.content.for_you)
        # The ranking alone (what personal.apply adds to building a reader's digest), again for each reader.
        mine = [d for d in planned if d.content.for_you]
        t4 = clock()
        for d in mine:
            plan.personal.apply(d.content, d.reader_ids[0])
        rank_s = clock() - t4
        print(f"readers: {args.readers:,}, with signals: {args.personal:,} ({args.signals} each); papers: {len(papers)}")
        per = f" = {(t1 - t0) / trained * 1e3:.2f} ms per model" if trained else ""
        print(f"retrain: {trained:,} models in {t1 - t0:.2f} s CPU{per}")
        print(f"plan:    {t2 - t1:.2f} s CPU ({len(plan.groups):,} groups)")
        print(f"digests: {len(planned):,} distinct ({own:,} with a For you block) in {t3 - t2:.2f} s CPU")
        if mine:
            print(f"ranking alone: {rank_s / len(mine) * 1e3:.2f} ms CPU per reader with signals; the rest of a "
                  f"personal digest (build, render) is {((t3 - t2) - rank_s) / len(mine) * 1e3:.1f} ms")
        nl.close()


if __name__ == "__main__":
    sys.exit(main())
