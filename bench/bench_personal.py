"""What readers with signals (issue 15) cost, on the bundled sample page of Mar 14, 2025 (SQLite in a temporary
file): N readers of every topic, ``--personal`` of them with ``--signals`` "more like this" signals each
(papers of one topic, picked per reader).

Readers with signals stay in the shared digest; their emails are its encoded chunks in their own order with a
For you block (``render.foryou``). Phases, in CPU seconds of this process (``time.process_time``):

- retrain: every stale model trained and stored (``relevance.personal.retrain``), per model;
- plan and record: the edition planned (readers with a model noted) and recorded (the shared digest
  rendered, its size guard keeping room for the For you block);
- prepare: every message built as the send loop builds it (no SMTP), CPU per message of readers without
  signals and with them; the difference is what the per-reader ranking adds (the kit's build, once per
  digest, included). ``bench_scale.py --personal-share`` measures the same at 100,000 readers.

Run: ``python bench/bench_personal.py --readers 2000 --personal 200``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
DAY = date(2025, 3, 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--personal", type=int, default=200, help="readers with signals")
    parser.add_argument("--signals", type=int, default=5, help="signals per such reader")
    args = parser.parse_args()

    from bench_scale import prepare_all

    from newsletter import config
    from newsletter.pipeline import Newsletter
    from newsletter.relevance.personal import retrain
    from newsletter.store.signals import record_signals

    clock = time.process_time
    os.system("uptime")
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.from_mapping({"database_url": f"sqlite:///{tmp}/bench.db",
                                        "sources": [{"type": "hf-page", "path": "unused.txt"}],
                                        "sender": {"email": "papers@example.org"}}, environ={})
        nl = Newsletter(settings)
        nl.import_file(ROOT / "newsletter" / "sample" / "daily-papers-mar14.txt", DAY)
        nl.store.import_subscribers([{"email": f"r{i}@example.org"} for i in range(args.readers)])
        ids = [s.id for s in nl.store.subscribers()]
        nl.classify_new()
        by_topic: dict[str, list[int]] = {}
        for p in nl.store.papers():
            by_topic.setdefault(p.topic or "other", []).append(p.id)
        topics = [t for t, ps in by_topic.items() if len(ps) >= args.signals]
        rng = random.Random(7)
        for sid in rng.sample(ids, args.personal):
            record_signals(nl.store.engine, sid, rng.sample(by_topic[rng.choice(topics)], args.signals), "more")

        t0 = clock()
        trained = retrain(nl.store.engine)
        t1 = clock()
        plan = nl.plan("daily", DAY)
        planned = nl.planned_digests(plan)
        edition = nl.record_edition(plan, planned=planned)
        t2 = clock()
        results: list[dict[str, Any]] = []
        prepare_all(nl, edition, results, {})
        row = results[-1]
        print(f"readers: {args.readers:,}, with signals: {args.personal:,} ({args.signals} each); "
              f"distinct digests: {len(planned)}")
        per = f" = {(t1 - t0) / trained * 1e3:.2f} ms per model" if trained else ""
        print(f"retrain: {trained:,} models in {t1 - t0:.2f} s CPU{per}")
        print(f"plan and record: {t2 - t1:.2f} s CPU")
        print(f"prepare: {row.get('cpu_ms_per_msg_without_signals')} ms CPU per message without signals "
              f"({row.get('msgs_without_signals', 0):,}), {row.get('cpu_ms_per_msg_with_signals')} ms with "
              f"({row.get('msgs_with_signals', 0):,}): {row.get('cpu_ms_per_reader_with_signals_beyond')} ms "
              "per reader with signals beyond one without")
        nl.close()
    os.system("uptime")


if __name__ == "__main__":
    sys.exit(main())
