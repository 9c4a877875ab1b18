"""How ``newsletter report`` scales with an edition's deliveries.

Builds a store (a temporary SQLite file, or PostgreSQL with --url pointing at an empty database) with one
edition of N deliveries across 50 recipient domains and 4 distinct digests: most sent over an hour, some failed,
some waiting, a bounce report for 1 in 200 and an unsubscribe for 1 in 300. Then times ``edition_report`` and
``sends_over_time`` (the /admin plot) several times and prints the best wall time, the CPU time of this process
(the Python side: constant when the queries aggregate in SQL) and the statements sent. Sent messages carry
SMTP times (one domain ten times slower than the rest), so the per-domain median and p95 are computed too;
the slowest domain found is printed with its p95.

Run: ``python bench/bench_report.py`` (about two minutes), or ``--quick``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import event, text

from newsletter.models import FetchedPaper, SourceBatch
from newsletter.store import Store
from newsletter.store.reports import edition_report, sends_over_time

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc)


def build(store: Store, n: int) -> int:
    day = date(2026, 3, 14)
    store.ingest([SourceBatch("bench", day, [FetchedPaper(title=f"Paper {i}", arxiv_id=f"2603.{i:05d}")
                                             for i in range(1, 9)])])
    pids = [store.paper(f"2603.{i:05d}").id for i in range(1, 9)]
    store.add_subscribers([{"email": f"r{i}@d{i % 50}.example.org", "cadence": "daily"} for i in range(n)], now=T0)
    sids = [s.id for s in store.subscribers()]
    digests = {sid: pids[: 2 + (k % 4) * 2] for k, sid in enumerate(sids)}
    eid = store.create_edition("daily", "2026-03-14", day, "bench", [(p, None) for p in pids], digests,
                               message_id_domain="example.org", now=T0)
    sqlite = store.engine.dialect.name == "sqlite"
    at = ("strftime('%Y-%m-%d %H:%M:%f000', '2026-03-14 08:00:00', '+' || (id % 3600) || ' seconds')" if sqlite
          else "TIMESTAMPTZ '2026-03-14 08:00:00+00' + (id % 3600) * INTERVAL '1 second'")
    with store.engine.begin() as conn:
        # SMTP times of 20-419 ms, and one domain ten times slower: the report's percentiles have work to do.
        conn.execute(text(f"UPDATE deliveries SET state='sent', attempts=CASE WHEN id % 7 = 0 THEN 2 ELSE 1 END, sent_at={at}, "
                          f"smtp_ms=(20 + (id * 37) % 400) * CASE WHEN subscriber_id % 50 = 7 THEN 10 ELSE 1 END "
                          f"WHERE edition_id={eid} AND id % 50 <> 0"))
        conn.execute(text(f"UPDATE deliveries SET state='failed', attempts=1 WHERE edition_id={eid} AND id % 100 = 0"))
        conn.execute(text(
            "INSERT INTO inbound_events (event_key, source, kind, subscriber_id, delivery_id, reason, effect, "
            f"received_at) SELECT 'k' || id, 'mailbox', 'hard', subscriber_id, id, '550', 'counted', sent_at "
            f"FROM deliveries WHERE edition_id={eid} AND id % 200 = 1"))
        conn.execute(text(
            "INSERT INTO consents (subscriber_id, action, requested_at) SELECT subscriber_id, 'unsubscribe', "
            f"sent_at FROM deliveries WHERE edition_id={eid} AND id % 300 = 1"))
    return eid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an empty database's URL (default: a temporary SQLite file)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [2_000, 10_000] if args.quick else [10_000, 50_000, 100_000]
    print(f"{'deliveries':>10} {'wall ms':>8} {'cpu ms':>7} {'statements':>10} {'sent':>7} {'domains':>7} "
          f"{'slowest (p95 ms)':>24}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(args.url or f"sqlite:///{Path(tmp) / 'bench.db'}")
            try:
                if args.url:
                    with store.engine.begin() as conn:
                        conn.execute(text("TRUNCATE papers, subscribers, editions RESTART IDENTITY CASCADE"))
                eid = build(store, n)
                count = 0

                def seen(*_: object) -> None:
                    nonlocal count
                    count += 1

                walls, cpus = [], []
                for _ in range(args.runs):
                    count = 0
                    event.listen(store.engine, "before_cursor_execute", seen)
                    w, c = time.perf_counter(), time.process_time()
                    report = edition_report(store.engine, eid)
                    sends_over_time(store.engine, eid)
                    cpus.append(time.process_time() - c)
                    walls.append(time.perf_counter() - w)
                    event.remove(store.engine, "before_cursor_execute", seen)
                top = report.slowest_domains[0]
                print(f"{report.readers:>10} {min(walls) * 1000:>8.1f} {min(cpus) * 1000:>7.1f} {count:>10} "
                      f"{report.sent:>7} {len(report.domains):>7} {f'{top.domain} ({top.smtp_p95_ms:g})':>24}")
            finally:
                store.close()


if __name__ == "__main__":
    main()
