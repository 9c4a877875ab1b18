"""Plan and record an edition at scale: import N generated readers, then diff, plan and record editions.

Each phase runs in its own process, so its peak RSS is its own: ``import`` (``Store.import_subscribers``),
then three days of the shipped sample pages: record edition 1 (everyone is then marked sent), ``diff`` of
day 2 (``newsletter diff``'s code path: plan + each distinct digest built and rendered), record edition 2,
and ``diff`` of day 3 with that history. Prints CPU seconds (user+sys of the phase), wall seconds, peak RSS,
and after the run the rows and bytes of each table, and the growth per reader per edition.

Run: ``python bench/bench_plan.py --readers 100000`` (SQLite in a temporary file), or with
``--url postgresql+psycopg://postgres@127.0.0.1:5432/bench`` (the database is emptied first).
``--only-record`` skips the diffs (the 1M-reader PostgreSQL figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

DAYS = [date(2026, 3, 10), date(2026, 3, 17), date(2026, 3, 24)]  # a week apart: a weekly edition each
PAGES = ["daily-papers-mar14.txt", "daily-papers-mar25.txt", "daily-papers-oct28.txt"]


def newsletter(url: str):  # noqa: ANN201
    from newsletter import config
    from newsletter.pipeline import Newsletter

    settings = config.from_mapping({"database_url": url, "sources": [{"type": "hf-page", "path": "unused.txt"}],
                                    "sender": {"email": "papers@example.org"}}, environ={})
    return Newsletter(settings)


def phase(name: str, url: str, readers: int, step: int) -> dict[str, object]:
    """One phase, in this process; returns its figures."""
    nl = newsletter(url)
    store = nl.store
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out: dict[str, object] = {"phase": name}
    if name == "import":
        from _readers import reader_specs

        result = store.import_subscribers(reader_specs(readers, nl.settings.topic_slugs()))
        out["rows"] = result.added
    elif name == "ingest":
        from newsletter.pipeline import sample_pages
        from newsletter.sources.hf_page import SavedPageSource

        pages = {p.name: p for p in sample_pages()}
        page = pages.get(PAGES[step]) or sample_pages()[step]
        batch = SavedPageSource("sample", SavedPageSource.options_model(path=str(page))).fetch(DAYS[step])
        nl.ingest([batch])
        out["rows"] = len(batch.papers)
    elif name == "diff":
        for cadence in ("daily", "weekly"):
            plan = nl.plan(cadence, DAYS[step])
            planned = nl.planned_digests(plan)
            out[f"{cadence}_readers"] = plan.reader_count
            out[f"{cadence}_groups"] = len(plan.groups)
            out[f"{cadence}_digests"] = len(planned)
    elif name == "record":
        ids = []
        for cadence in ("daily", "weekly"):
            plan = nl.plan(cadence, DAYS[step])
            ids.append(nl.record_edition(plan))
            out[f"{cadence}_groups"] = len(plan.groups)
        if step == 0:  # everyone received edition 1
            with store.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE deliveries SET state = 'sent'")
        out["editions"] = ids
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out["cpu_s"] = round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 2)
    out["wall_s"] = round(t1 - t0, 2)
    out["peak_rss_mb"] = round(r1.ru_maxrss / 1024, 1)
    nl.close()
    return out


def table_sizes(url: str) -> dict[str, tuple[int, int]]:
    """Rows and bytes (with indexes) of each table."""
    from sqlalchemy import text

    from newsletter.store.schema import Base

    nl = newsletter(url)
    out = {}
    with nl.store.engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(text(f"SELECT COUNT(*) FROM {table.name}")).scalar()
            if pg:
                size = conn.execute(text(f"SELECT pg_total_relation_size('{table.name}')")).scalar()
            else:
                names = [table.name] + [i.name for i in table.indexes] + [
                    r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=:t"),
                                               {"t": table.name})]
                size = sum(conn.execute(text("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = :n"),
                                        {"n": n}).scalar() or 0 for n in set(names))
            out[table.name] = (int(rows or 0), int(size or 0))
    nl.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file); emptied first")
    parser.add_argument("--only-record", action="store_true", help="import and record editions 1 and 2 only")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url, args.readers, args.step)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.url and args.url.startswith("sqlite:///"):
            for suffix in ("", "-wal", "-shm"):
                Path(args.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        elif args.url:
            from sqlalchemy import create_engine, text

            from newsletter.store import Store

            Store.open(url).close()
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE subscribers, papers, editions, render_bodies, app_state RESTART IDENTITY CASCADE"))
            engine.dispose()
        steps = [("import", 0), ("ingest", 0), ("record", 0), ("ingest", 1)]
        steps += [("record", 1)] if args.only_record else [("diff", 1), ("record", 1), ("ingest", 2), ("diff", 2)]
        sizes_after: dict[str, dict[str, tuple[int, int]]] = {}
        print(f"{args.readers:,} readers on {url.split(':')[0]}; load: {os.getloadavg()[0]:.1f}")
        print(f"{'phase':<10} {'cpu s':>7} {'wall s':>7} {'peak MB':>8}  detail")
        for name, step in steps:
            done = subprocess.run([sys.executable, __file__, "--phase", name, "--step", str(step), "--url", url,
                                   "--readers", str(args.readers)], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"phase {name} failed:\n{done.stderr[-3000:]}")
            fig = json.loads(done.stdout.strip().splitlines()[-1])
            detail = {k: v for k, v in fig.items() if k not in ("phase", "cpu_s", "wall_s", "peak_rss_mb")}
            print(f"{name + str(step + 1 if name != 'import' else ''):<10} {fig['cpu_s']:>7} {fig['wall_s']:>7} "
                  f"{fig['peak_rss_mb']:>8}  {detail}")
            if name == "import" and fig["cpu_s"]:
                print(f"{'':<10} import: {args.readers / fig['wall_s']:,.0f} readers/s wall, "
                      f"{args.readers / fig['cpu_s']:,.0f} per CPU s")
            if name == "record":
                sizes_after[f"edition {step + 1}"] = table_sizes(url)
        print(f"{'table':<18} {'rows':>10} {'bytes':>14}")
        last = sizes_after[max(sizes_after)]
        for table, (rows, size) in last.items():
            print(f"{table:<18} {rows:>10,} {size:>14,}")
        if len(sizes_after) >= 2:
            one, two = sizes_after["edition 1"], sizes_after["edition 2"]
            grow = sum(two[t][1] for t in two) - sum(one[t][1] for t in one)
            per_reader = sum(two[t][1] - one[t][1] for t in ("deliveries",))
            digests = two["digests"][0] - one["digests"][0]
            rendered = sum(two[t][1] - one[t][1] for t in ("digests", "digest_renders", "render_bodies", "edition_papers"))
            print(f"edition 2 grew the database by {grow:,} bytes: deliveries {per_reader / args.readers:.0f} B per "
                  f"reader; digests, renders and bodies {rendered / max(1, digests):,.0f} B per distinct digest "
                  f"({digests} digests)")


if __name__ == "__main__":
    main()
