"""The operator's whole job at scale: import readers, then five editions of fetch → diff → send to SMTP.

    python bench/bench_scale.py [--readers 10000,100000] [--db sqlite,postgresql] [--editions 5]
                                [--senders 4] [--million] [--json] [--pg URL] [--days DIR]

For each database and size: a fresh database (SQLite file, or a private PostgreSQL database that is dropped
after), ``--readers`` generated readers (``bench/_readers.py``: mixed topics, cadences and keywords) imported
with ``Store.import_subscribers``, then ``--editions`` days of real Daily Papers (``--days``, default the
real-data folder's ``hf-api-days``; the bundled sample pages when absent), each imported and sent with
``Newsletter.send("daily", day)``: plan (the diff), record the edition, deliver every message over SMTP to
an aiosmtpd server that accepts and discards, running in another process (``--sink fast``: the lean sink
of ``bench/_fast_sink.py`` instead, where aiosmtpd's 100-150 messages a second would set both loops' pace).

Each edition is sent in turns of ``--chunk`` messages: the send loop (``Newsletter.deliver``, one SMTP
connection), then a bare smtplib loop (one connection, ``sendmail`` per message, no state) sending as many of
the edition's own messages to the same server, so a change in the machine's load hits both alike. Printed:
both rates and their ratio (overall, and the median of the turns), and the CPU the send loop spends per
message beyond what smtplib itself spends on the exchange.

Printed per step: CPU seconds of this process (``time.process_time``, every thread; the SMTP server is
another process), wall seconds, RSS after the step and the peak RSS during it; then rows and bytes per table.

``--senders N`` (PostgreSQL): one more edition sent by one sender process, then the same edition again
(its deliveries made due afresh) by N sender processes side by side, each to an SMTP server process of its
own: messages per second of each (from the first sender's start of sending to the last one's end), and the
ratio. Those servers answer each message's data ``--sink-latency`` seconds late (default 0.03, like a real
relay's 20-50 ms round trip), so the senders spend their time waiting on I/O, as they do in production: on a
2-core machine without it, N senders, N servers and PostgreSQL would only share the same two cores, and the
figure would show that, not how the claim protocol scales. ``--million``: on PostgreSQL, 1,000,000 readers imported,
then one edition planned and recorded (no send).

``--personal-share F`` (issue 15): after the first day's papers are in, that share of the readers (every
reader with a seeded draw under F) marks 5-10 of them "more like this" (papers of one topic, or of two), so
they have a model. Those readers stay in the shared digests; their emails are the shared digest in their own
order with a For you block (``render.foryou``). Printed per edition: the models retrained (CPU per model), and
a ``prepare`` step: every message of the edition built as the send loop builds it (``message_preparer``, no
SMTP), CPU per message of readers without signals and of readers with them, and the difference: what the
per-reader ranking adds. Compare with ``--personal-share 0`` for the fast path of readers without signals.
``--no-smtp`` leaves out the SMTP send (the prepare step stays).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_deliver import free_port, serve  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from newsletter import config  # noqa: E402
from newsletter.pipeline import Newsletter  # noqa: E402

REAL_DAYS = Path(os.environ.get("NEWSLETTER_REAL_DATA", HERE.parent.parent / "shared" / "data" / "real")) / "hf-api-days"
SAMPLES = HERE.parent / "newsletter" / "sample"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --- measuring --------------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    """The peak RSS since the last ``reset_peak()`` (VmHWM), else since the process started."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Start a new peak RSS measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class Step:
    """``with Step(results, "send", db=..., readers=...) as s: ...; s.extra["sent"] = n``."""

    def __init__(self, out: list[dict[str, Any]], name: str, **labels: Any) -> None:
        self.out, self.name, self.labels = out, name, labels
        self.extra: dict[str, Any] = {}

    def __enter__(self) -> "Step":
        reset_peak()
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        row = {**self.labels, "step": self.name, "cpu_s": round(time.process_time() - self.cpu, 3),
               "wall_s": round(time.perf_counter() - self.wall, 3), "rss_mb": round(rss_mb(), 1),
               "peak_rss_mb": round(peak_mb(), 1), **self.extra}
        self.out.append(row)
        if not exc[0]:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in self.labels), flush=True)


# --- servers and databases ----------------------------------------------------------------------------------


class Sinks:
    """``count`` SMTP server processes on 127.0.0.1 that accept every message and keep nothing: aiosmtpd, or
    with ``kind="fast"`` the lean sink of ``bench/_fast_sink.py``."""

    def __init__(self, count: int, latency: float = 0.0, kind: str = "aiosmtpd") -> None:
        from _fast_sink import serve_fast

        ctx = multiprocessing.get_context("spawn")
        target = serve_fast if kind == "fast" else serve
        self.ports = [free_port() for _ in range(count)]
        self.procs = []
        for port in self.ports:
            ready = ctx.Event()
            proc = ctx.Process(target=target, args=(port, ready, latency), daemon=True)
            proc.start()
            if not ready.wait(60):
                raise SystemExit("an SMTP server did not start")
            self.procs.append(proc)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.join()


class Database:
    def __init__(self, kind: str, pg_admin: str) -> None:
        self.kind, self.admin = kind, None
        if kind == "sqlite":
            self.folder = tempfile.mkdtemp(prefix="bench-scale-")
            self.url = f"sqlite:///{self.folder}/newsletter.db"
        else:
            self.admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
            self.name = f"bench_scale_{uuid.uuid4().hex[:8]}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = pg_admin.rsplit("/", 1)[0] + f"/{self.name}"

    def tables(self, nl: Newsletter) -> dict[str, dict[str, int]]:
        counts = nl.store.table_counts()
        sizes: dict[str, int] = {}
        with nl.store.engine.connect() as conn:
            if self.kind == "sqlite":
                try:
                    rows = conn.exec_driver_sql("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").all()
                except Exception:  # noqa: BLE001 - SQLite built without dbstat: sizes left out
                    rows = []
                # An index's pages belong to its table.
                index_of = dict(conn.exec_driver_sql(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").all())
                for name, size in rows:
                    table = index_of.get(name, name)
                    sizes[table] = sizes.get(table, 0) + int(size)
            else:
                for name in counts:
                    sizes[name] = conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": name}).scalar() or 0
        return {name: {"rows": counts[name], "bytes": sizes.get(name, 0)} for name in counts}

    def drop(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'"))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
            self.admin.dispose()


def settings_for(url: str, port: int, day_files: list[Path], batch_size: int = 200) -> Any:
    return config.from_mapping({
        "delivery": {"batch_size": batch_size},
        "database_url": url, "messenger": "smtp", "site_url": "https://papers.example.org",
        "sender": {"email": "papers@example.org", "name": "Trending Papers"},
        "sources": [{"type": "hf-json" if day_files[0].suffix == ".json" else "hf-page", "path": str(day_files[0])}],
        "smtp": {"host": "127.0.0.1", "port": port, "pool_size": 1},
        "signing_key": "${NEWSLETTER_SIGNING_KEY}",
    }, environ={"NEWSLETTER_SIGNING_KEY": "bench-scale signing key, not a secret at all"})


def day_files(folder: Path, count: int) -> list[Path]:
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if len(files) >= count:
        return files[:count]
    return sorted(SAMPLES.glob("*.txt"))[:count]


# --- the bare loop -------------------------------------------------------------------------------------------


def bare_loop(port: int, messages: list[tuple[str, str, bytes]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to send ``messages`` over one smtplib connection, keeping no state."""
    cpu, wall = time.process_time(), time.perf_counter()
    conn = smtplib.SMTP("127.0.0.1", port, local_hostname="example.org")
    for sender, rcpt, data in messages:
        conn.sendmail(sender, [rcpt], data)
    conn.quit()
    return time.perf_counter() - wall, time.process_time() - cpu


def edition_messages(nl: Newsletter, edition_id: int, limit: int) -> list[tuple[str, str, bytes]]:
    """The first ``limit`` messages of an edition, rebuilt as the send loop built them (untimed)."""
    from sqlalchemy import and_, select

    from newsletter.store.deliveries import DueDelivery
    from newsletter.store.schema import DeliveryRow as D
    from newsletter.store.schema import ReaderModelRow as M
    from newsletter.store.schema import SubscriberRow as S

    prepare = nl.message_preparer()
    q = (select(D.id, D.edition_id, D.subscriber_id, D.digest_id, D.message_id, D.created_at, S.email, S.name,
                S.topics, S.excluded_keywords, M.model)
         .join(S, S.id == D.subscriber_id)
         .outerjoin(M, and_(M.subscriber_id == D.subscriber_id, M.signal_count > 0))
         .where(D.edition_id == edition_id).order_by(D.id).limit(limit))
    out = []
    with nl.store.engine.connect() as conn:
        rows = conn.execute(q).all()
    for r in rows:
        d = DueDelivery(r.id, r.edition_id, r.subscriber_id, r.digest_id, r.message_id, r.email, r.name, 0,
                        r.created_at, 0, tuple(r.topics) if r.topics is not None else None,
                        tuple(r.excluded_keywords or ()), bytes(r.model) if r.model else None)
        m = prepare(d)
        out.append((m.envelope_from, m.recipient, m.data))
    return out


# --- the job -------------------------------------------------------------------------------------------------


def send_edition(nl: Newsletter, edition: int, port: int, args: argparse.Namespace, results: list[dict[str, Any]],
                 labels: dict[str, Any]) -> None:
    """Send the edition; in turns of ``--chunk`` messages, the send loop, then the bare loop sending as many of
    the edition's own messages (its first 300, cycled; built untimed), so a change in the machine's load hits
    both alike. The send step's CPU and wall are the send loop's only."""
    distinct = edition_messages(nl, edition, 300)
    stop = threading.Event()
    prepare = nl.message_preparer()  # one for the whole edition, as one `send` has
    cpu = wall = bare_cpu = bare_wall = 0.0
    sent = bare_sent = 0
    ratios: list[float] = []
    reset_peak()
    while True:
        def progress(done: int, total: int) -> None:
            if done >= args.chunk:
                stop.set()

        stop.clear()
        c, w = time.process_time(), time.perf_counter()
        report = nl.deliver(edition_id=edition, stop=stop, progress=progress, prepare=prepare)
        c, w = time.process_time() - c, time.perf_counter() - w
        if not report.sent:
            break
        cpu, wall, sent = cpu + c, wall + w, sent + report.sent
        if distinct and bare_sent < args.bare:
            chunk = [distinct[(bare_sent + j) % len(distinct)] for j in range(report.sent)]
            bw, bc = bare_loop(port, chunk)
            bare_cpu, bare_wall, bare_sent = bare_cpu + bc, bare_wall + bw, bare_sent + len(chunk)
            ratios.append((len(chunk) / bw) / (report.sent / w))
    row = {**labels, "step": "send", "cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "rss_mb": round(rss_mb(), 1),
           "peak_rss_mb": round(peak_mb(), 1), "sent": sent}
    if sent and bare_sent:
        ours_rate, bare_rate = sent / wall, bare_sent / bare_wall
        ratios.sort()
        row.update({
            "msg_per_s": round(ours_rate), "bare_msg_per_s": round(bare_rate),
            "ratio_to_bare": round(ours_rate / bare_rate, 3),
            "ratio_per_chunk_median": round(1 / ratios[len(ratios) // 2], 3),
            "cpu_ms_per_msg": round(cpu / sent * 1000, 3),
            "bare_cpu_ms_per_msg": round(bare_cpu / bare_sent * 1000, 3),
            "cpu_ms_per_msg_outside_smtp": round((cpu / sent - bare_cpu / bare_sent) * 1000, 3),
            "kb_per_msg": round(sum(len(m[2]) for m in distinct) / len(distinct) / 1000, 1)})
    results.append(row)
    print("  " + "  ".join(f"{k}={v}" for k, v in row.items() if k not in labels), flush=True)


def give_signals(nl: Newsletter, share: float, results: list[dict[str, Any]], labels: dict[str, Any]) -> int:
    """That share of the readers marks 5-10 stored papers (of one topic, or two) "more like this"."""
    import random

    from sqlalchemy import select

    from newsletter.store.schema import SubscriberRow
    from newsletter.store.signals import record_signals

    rng = random.Random(15)
    by_topic: dict[str, list[int]] = {}
    for p in nl.store.papers():
        by_topic.setdefault(p.topic or "other", []).append(p.id)
    topics = sorted(t for t, ids in by_topic.items() if len(ids) >= 3)
    with nl.store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(SubscriberRow.id).order_by(SubscriberRow.id))]
    chosen = [sid for sid in ids if rng.random() < share]
    with Step(results, "signals", **labels) as s:
        for sid in chosen:
            pool = list(by_topic[rng.choice(topics)])
            if rng.random() < 0.5:
                pool += by_topic[rng.choice(topics)]
            want = rng.randint(5, 10)
            record_signals(nl.store.engine, sid, rng.sample(pool, min(want, len(pool))), "more")
        s.extra["readers_with_signals"] = len(chosen)
    return len(chosen)


def prepare_all(nl: Newsletter, edition_id: int, results: list[dict[str, Any]], labels: dict[str, Any]) -> None:
    """Every message of the edition built as the send loop builds it (no SMTP): CPU per message of readers
    without signals and with them (their model comes with the delivery, as the claim brings it)."""
    from sqlalchemy import and_, select

    from newsletter.store.deliveries import DueDelivery
    from newsletter.store.schema import DeliveryRow as D
    from newsletter.store.schema import ReaderModelRow as M
    from newsletter.store.schema import SubscriberRow as S

    prepare = nl.message_preparer()
    q = (select(D.id, D.edition_id, D.subscriber_id, D.digest_id, D.message_id, D.created_at, S.email, S.name,
                S.topics, S.excluded_keywords, M.model)
         .join(S, S.id == D.subscriber_id)
         .outerjoin(M, and_(M.subscriber_id == D.subscriber_id, M.signal_count > 0))
         .where(D.edition_id == edition_id).order_by(D.id))
    clock = time.process_time
    cpu = {False: 0.0, True: 0.0}
    count = {False: 0, True: 0}
    size = {False: 0, True: 0}
    with Step(results, "prepare", **labels) as s:
        with nl.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        for r in rows:
            d = DueDelivery(r.id, r.edition_id, r.subscriber_id, r.digest_id, r.message_id, r.email, r.name, 0,
                            r.created_at, 0, tuple(r.topics) if r.topics is not None else None,
                            tuple(r.excluded_keywords or ()), bytes(r.model) if r.model else None)
            own = d.model is not None
            t = clock()
            m = prepare(d)
            cpu[own] += clock() - t
            count[own] += 1
            size[own] += len(m.data)
        for own, name in ((False, "without"), (True, "with")):
            if count[own]:
                s.extra[f"msgs_{name}_signals"] = count[own]
                s.extra[f"cpu_ms_per_msg_{name}_signals"] = round(cpu[own] / count[own] * 1000, 3)
                s.extra[f"kb_per_msg_{name}_signals"] = round(size[own] / count[own] / 1000, 1)
        if count[True] and count[False]:
            s.extra["cpu_ms_per_reader_with_signals_beyond"] = round(
                (cpu[True] / count[True] - cpu[False] / count[False]) * 1000, 3)


def import_readers(nl: Newsletter, n: int, results: list[dict[str, Any]], labels: dict[str, Any]) -> None:
    from _readers import reader_specs

    slugs = [t.slug for t in nl.settings.topics]
    with Step(results, "import", **labels) as s:
        done = nl.store.import_subscribers(reader_specs(n, slugs))
        s.extra["readers"] = getattr(done, "added", n)
        s.extra["per_s"] = round(n / max(1e-9, time.process_time() - s.cpu))


def run_size(kind: str, n: int, args: argparse.Namespace, results: list[dict[str, Any]],
             tables: list[dict[str, Any]]) -> None:
    labels = {"db": kind, "readers": n, "sink": args.sink}
    if args.personal_share:
        labels["personal_share"] = args.personal_share
    print(f"{kind}, {n:,} readers, SMTP server {args.sink}"
          f"{f', a share of {args.personal_share:g} with signals' if args.personal_share else ''}:", flush=True)
    db = Database(kind, args.pg)
    sinks = Sinks(1, kind=args.sink)
    files = day_files(Path(args.days), args.editions)
    nl = Newsletter(settings_for(db.url, sinks.ports[0], files))
    try:
        import_readers(nl, n, results, labels)
        first = date.fromisoformat(files[0].stem) if files[0].suffix == ".json" else date(2025, 3, 14)
        for k, path in enumerate(files):
            day = date.fromisoformat(path.stem) if path.suffix == ".json" else first.replace(day=first.day + k)
            labels_k = {**labels, "edition": k + 1}
            with Step(results, "fetch", **labels_k):
                nl.import_file(path, day)
            if k == 0 and args.personal_share:
                nl.classify_new()
                give_signals(nl, args.personal_share, results, labels_k)
            with Step(results, "retrain", **labels_k) as s:  # the plan would do it first; measured apart
                from newsletter.relevance.personal import retrain

                s.extra["models"] = retrain(nl.store.engine)
                if s.extra["models"]:
                    s.extra["ms_per_model"] = round((time.process_time() - s.cpu) / s.extra["models"] * 1000, 2)
            with Step(results, "plan", **labels_k) as s:
                plan = nl.plan("daily", day)
                s.extra["readers_with_candidates"] = sum(g.count for g in plan.groups if g.papers)  # before topics filter
            with Step(results, "record", **labels_k) as s:
                edition = nl.record_edition(plan)
                s.extra["edition_id"] = edition
                s.extra["readers_with_signals"] = len(plan.personal.personal) if plan.personal else 0
            prepare_all(nl, edition, results, labels_k)
            if not args.no_smtp:
                send_edition(nl, edition, sinks.ports[0], args, results, labels_k)
        tables.append({**labels, "tables": db.tables(nl)})
        for name, t in tables[-1]["tables"].items():
            if t["rows"]:
                print(f"    {name:<22} {t['rows']:>10,} rows {t['bytes'] / 1e6:>9.1f} MB")
    finally:
        nl.close()
        sinks.close()
        db.drop()


# --- several senders ----------------------------------------------------------------------------------------


def sender_worker(url: str, port: int, edition: int, batch_size: int) -> None:
    """One sender process (``--worker``): delivers what it can claim of ``edition``, prints its report."""
    files = day_files(Path(os.environ.get("BENCH_DAYS", str(REAL_DAYS))), 1)
    nl = Newsletter(settings_for(url, port, files, batch_size))
    cpu, start = time.process_time(), time.time()
    report = nl.deliver(edition_id=edition)
    out = json.dumps({"sent": report.sent, "lost": report.lost_claims, "cpu_s": time.process_time() - cpu,
                      "start": start, "end": time.time()})
    print(out)
    print(f"sender {os.getpid()}: {out}", file=sys.stderr)
    nl.close()


def run_senders(n: int, senders: int, args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    labels = {"db": "postgresql", "readers": n, "senders": senders}
    print(f"postgresql, {n:,} readers, 1 sender and then {senders} senders side by side, each to its own SMTP "
          f"server, which answers each message {args.sink_latency * 1000:g} ms late (a relay's round trip):",
          flush=True)
    labels["sink_latency_ms"] = args.sink_latency * 1000
    labels["batch_size"] = args.senders_batch
    db = Database("postgresql", args.pg)
    sinks = Sinks(senders, args.sink_latency, args.sink)
    files = day_files(Path(args.days), 1)
    nl = Newsletter(settings_for(db.url, sinks.ports[0], files))
    day = date.fromisoformat(files[0].stem) if files[0].suffix == ".json" else date(2025, 3, 14)
    try:
        import_readers(nl, n, results, labels)
        nl.import_file(files[0], day)
        edition = nl.record_edition(nl.plan("daily", day))
        env = {**os.environ, "BENCH_DAYS": args.days}
        for count in (1, senders):
            with nl.store.engine.begin() as conn:  # the same edition, due afresh
                conn.execute(text("UPDATE deliveries SET state = 'pending', attempts = 0, sent_at = NULL, "
                                  "claimed_by = NULL, lease_until = NULL WHERE edition_id = :e"), {"e": edition})
            with Step(results, f"send x{count}", **labels) as s:
                procs = [subprocess.Popen([sys.executable, __file__, "--worker", db.url, str(port), str(edition),
                                           str(args.senders_batch)],
                                          env=env, stdout=subprocess.PIPE, text=True)
                         for port in sinks.ports[:count]]
                outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                sent = sum(o["sent"] for o in outs)
                s.extra.update({"sent": sent, "per_sender": [o["sent"] for o in outs],
                                "lost_claims": sum(o["lost"] for o in outs),
                                "senders_cpu_s": round(sum(o["cpu_s"] for o in outs), 2)})
            row = results[-1]
            # From the first sender's start to the last one's end (each process's start-up left out).
            span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
            row["send_span_s"] = round(span, 3)
            row["msg_per_s"] = round(sent / span)
            with nl.store.engine.connect() as conn:
                states = dict(conn.execute(text("SELECT state, count(*) FROM deliveries WHERE edition_id = :e "
                                                "GROUP BY state"), {"e": edition}).all())
            row["states"] = states
            print(f"    {count} sender(s): {row['msg_per_s']} msg/s, states {states}", flush=True)
        one, many = [r for r in results if r.get("senders") == senders and r["step"].startswith("send x")][-2:]
        many["ratio_to_one"] = round(many["msg_per_s"] / one["msg_per_s"], 2)
        print(f"    {senders} senders / 1 sender: {many['ratio_to_one']}x", flush=True)
    finally:
        nl.close()
        sinks.close()
        db.drop()


def run_million(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    n = 1_000_000
    labels = {"db": "postgresql", "readers": n}
    print("postgresql, 1,000,000 readers: plan and record one edition", flush=True)
    db = Database("postgresql", args.pg)
    files = day_files(Path(args.days), 1)
    nl = Newsletter(settings_for(db.url, free_port(), files))
    day = date.fromisoformat(files[0].stem) if files[0].suffix == ".json" else date(2025, 3, 14)
    try:
        import_readers(nl, n, results, labels)
        nl.import_file(files[0], day)
        with Step(results, "plan", **labels) as s:
            plan = nl.plan("daily", day)
            s.extra["readers_with_candidates"] = sum(g.count for g in plan.groups if g.papers)  # before topics filter
        with Step(results, "record", **labels) as s:
            s.extra["edition_id"] = nl.record_edition(plan)
        with nl.store.engine.connect() as conn:  # counted after the step
            results[-1]["deliveries"] = conn.execute(text("SELECT count(*) FROM deliveries")).scalar()
        print(f"  deliveries={results[-1]['deliveries']}  load={os.getloadavg()[0]:.1f}", flush=True)
    finally:
        nl.close()
        db.drop()


def summary(results: list[dict[str, Any]], tables: list[dict[str, Any]]) -> str:
    """The figures as the README's Scale table (markdown): one row per database and size."""
    lines = ["| database, readers | import readers/s (CPU) | plan CPU s | record CPU s | send CPU s per edition "
             "(ms per message; beyond smtplib's own) | send loop / bare smtplib | peak RSS MB | database MB "
             "(bytes per reader per edition, readers' own rows left out) |", "|---|---|---|---|---|---|---|---|"]
    sizes = sorted({(r["db"], r["readers"]) for r in results if "edition" in r}, key=lambda k: (k[0], k[1]))
    for kind, n in sizes:
        rows = [r for r in results if r["db"] == kind and r["readers"] == n and "senders" not in r]
        steps = {name: [r for r in rows if r["step"] == name] for name in ("import", "plan", "record", "send")}
        sends = steps["send"]
        editions = len(sends)

        def span(name: str) -> str:
            values = [r["cpu_s"] for r in steps[name]]
            return f"{min(values):.2f}–{max(values):.2f}" if values else "–"

        per_msg = [r.get("cpu_ms_per_msg") for r in sends if r.get("cpu_ms_per_msg") is not None]
        beyond = [r.get("cpu_ms_per_msg_outside_smtp") for r in sends if r.get("cpu_ms_per_msg_outside_smtp") is not None]
        ratio = [r.get("ratio_to_bare") for r in sends if r.get("ratio_to_bare") is not None]
        table = next((t["tables"] for t in tables if t["db"] == kind and t["readers"] == n), {})
        total = sum(t["bytes"] for t in table.values())
        grown = total - table.get("subscribers", {}).get("bytes", 0)  # what the editions added
        imported = steps["import"][0] if steps["import"] else {}
        lines.append(
            f"| {kind}, {n:,} | {imported.get('per_s', 0):,} | {span('plan')} | {span('record')} | {span('send')} "
            f"({min(per_msg, default=0):.2f}–{max(per_msg, default=0):.2f}; "
            f"{min(beyond, default=0):.2f}–{max(beyond, default=0):.2f}) | "
            f"{min(ratio, default=0):.2f}–{max(ratio, default=0):.2f} | {max(r['peak_rss_mb'] for r in rows):.0f} | "
            f"{total / 1e6:.1f} ({grown / max(1, n * editions):.0f}) |")
    million = {r["step"]: r for r in results if r["readers"] == 1_000_000 and "edition" not in r}
    if "plan" in million and "record" in million:
        plan, record = million["plan"], million["record"]
        lines.append(f"\n1,000,000 readers on PostgreSQL: import {million['import']['per_s']:,} readers per CPU s "
                     f"({million['import']['wall_s']:.0f} s wall); plan {plan['cpu_s']:.1f} CPU s, "
                     f"{plan['wall_s']:.1f} s wall; record {record['cpu_s']:.1f} CPU s, {record['wall_s']:.1f} s wall "
                     f"({record.get('deliveries', 0):,} deliveries); plan and record {plan['wall_s'] + record['wall_s']:.1f} s "
                     f"wall; peak RSS {max(plan['peak_rss_mb'], record['peak_rss_mb']):.0f} MB")
    for r in results:
        if r["step"].startswith("send x") and "ratio_to_one" in r:
            lines.append(f"\n{r['senders']} senders on PostgreSQL ({r['readers']:,} readers): {r['msg_per_s']} msg/s, "
                         f"{r['ratio_to_one']}x one sender, against SMTP servers answering each message "
                         f"{r.get('sink_latency_ms', 0):g} ms late; claims overlapping: {r['lost_claims']}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sender_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--editions", type=int, default=5)
    parser.add_argument("--senders", type=int, default=0, help="PostgreSQL: also compare N senders with one")
    parser.add_argument("--senders-readers", type=int, default=20_000, help="readers of the --senders run")
    parser.add_argument("--senders-batch", type=int, default=50,
                        help="--senders: delivery.batch_size of each sender (smaller claims share the tail of the "
                        "edition more evenly)")
    parser.add_argument("--sink-latency", type=float, default=0.03,
                        help="--senders: seconds each SMTP server waits before answering a message's data (a "
                        "real relay's round trip; on 2 cores this keeps the senders waiting on I/O, not on CPU)")
    parser.add_argument("--sink", choices=("aiosmtpd", "fast"), default="aiosmtpd",
                        help="the SMTP server process both loops send to: aiosmtpd, or fast (bench/_fast_sink.py, "
                        "the same replies without parsing the data; use it where aiosmtpd sets the pace)")
    parser.add_argument("--million", action="store_true", help="PostgreSQL: plan and record at 1,000,000")
    parser.add_argument("--bare", type=int, default=100_000, help="at most this many bare-loop messages per edition")
    parser.add_argument("--chunk", type=int, default=500, help="messages per turn of the send loop and the bare loop")
    parser.add_argument("--days", default=str(REAL_DAYS), help="a folder of Daily Papers API days (*.json)")
    parser.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL admin URL (a private database is made)")
    parser.add_argument("--personal-share", type=float, default=0.0,
                        help="that share of the readers get 5-10 signals and a model (issue 15)")
    parser.add_argument("--no-smtp", action="store_true", help="leave out the SMTP send (the prepare step stays)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON at the end")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    os.system("uptime")
    for kind in [k.strip() for k in args.db.split(",") if k.strip()]:
        for n in [int(x) for x in args.readers.split(",") if x.strip()]:
            run_size(kind, n, args, results, tables)
    if args.senders:
        run_senders(args.senders_readers, args.senders, args, results)
    if args.million:
        run_million(args, results)
    os.system("uptime")
    print(summary(results, tables))
    if args.json:
        print(json.dumps({"steps": results, "tables": tables}, indent=1, default=str))


if __name__ == "__main__":
    main()
