"""Messages per second through the real send loop, beside a bare smtplib loop, to the same SMTP server.

    python bench/bench_deliver.py [--readers 10000] [--size 30000] [--chunk 1000] [--pool 1] [--postgres URL]

An accept-all aiosmtpd server runs in a separate process on 127.0.0.1. The messages are prepared once
(RFC 5322 bytes with CRLF line endings, policy=SMTP) and both loops send exactly those bytes:

- bare: one smtplib connection, ``sendmail`` per message, no state at all;
- send loop: ``Sender`` with ``SmtpMessenger`` and the delivery queue in a SQLite file (WAL,
  synchronous=NORMAL; the Store's settings): claims in batches, one UPDATE and one commit per message.

The two loops alternate every ``--chunk`` messages (the send loop's chunk is made due, the rest of the
10,000 stays in the table as sent history), so a change in the machine's load hits both alike. Printed:
each loop's rate over all chunks and the ratio (target: at least 0.8), with the spread of per-chunk ratios.
``--postgres URL`` (an admin URL: a private database is created and dropped) runs the send loop on
PostgreSQL too, where each commit waits for a WAL flush. ``--metered``: the send loop's messenger counts each
outcome for /metrics (``newsletter.monitor.MeteredMessenger``, as ``Newsletter.deliver`` does), to see what
the counting costs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import smtplib
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text, update

from newsletter.deliver import OutgoingMessage
from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.models import DELIVERY_PENDING, DELIVERY_SENT, FetchedPaper, SourceBatch
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryQueue, DueDelivery
from newsletter.store.schema import DeliveryRow

SENDER = "papers@example.org"


# --- the server (a separate process) --------------------------------------------------------------------


class AcceptAll:
    """Accepts every message; with ``latency``, answers each one's data that many seconds late (without holding
    the server: other connections go on), like a real relay's round trip and queueing."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)
        return "250 2.0.0 OK"


def serve(port: int, ready: Any, latency: float = 0.0) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(AcceptAll(latency), hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    ready.set()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- data ---------------------------------------------------------------------------------------------------


def message_bytes(email: str, message_id: str, size: int) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"Trending Papers <{SENDER}>"
    msg["To"] = email
    msg["Subject"] = "Trending papers, 14 Mar 2026: 23 new in 7 topics"
    msg["Message-ID"] = message_id
    line = "A paper about efficient attention kernels and what they mean for serving. "
    body = (line * (size // len(line) + 1))[:size]
    msg.set_content("\n".join(body[i:i + 72] for i in range(0, len(body), 72)) + "\n")
    return msg.as_bytes(policy=policy.SMTP)


def queue_readers(store: Store, readers: int) -> None:
    day = date(2026, 3, 14)
    paper = FetchedPaper(title="A benchmark paper", arxiv_id="2603.00001")
    store.ingest([SourceBatch("bench", day, [paper])])
    pid = store.papers()[0].id
    subs = store.add_subscribers([{"email": f"reader{i:05d}@example.org"} for i in range(readers)])
    store.create_edition("daily", "2026-03-14", day, "bench", [(pid, None)], {s.id: [pid] for s in subs},
                         message_id_domain="example.org")


def prepared_messages(store: Store, size: int) -> dict[int, OutgoingMessage]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT d.id, d.message_id, s.email FROM deliveries d "
                                 "JOIN subscribers s ON s.id = d.subscriber_id ORDER BY d.id")).all()
    return {r.id: OutgoingMessage(SENDER, r.email, r.message_id, message_bytes(r.email, r.message_id, size))
            for r in rows}


def make_due(store: Store, ids: list[int]) -> None:
    """Every delivery sent (history), except ``ids``: pending again, as if just queued."""
    with store.engine.begin() as conn:
        conn.execute(update(DeliveryRow).values(state=DELIVERY_SENT, claimed_by=None, lease_until=None))
        conn.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids)).values(
            state=DELIVERY_PENDING, attempts=0, sent_at=None, next_attempt_at=None, last_error=None))


# --- the two loops -----------------------------------------------------------------------------------------


def bare_loop(port: int, messages: list[OutgoingMessage]) -> float:
    """Seconds to send ``messages`` over one smtplib connection, keeping no state."""
    start = time.perf_counter()
    conn = smtplib.SMTP("127.0.0.1", port, local_hostname="example.org")
    for m in messages:
        conn.sendmail(m.envelope_from, [m.recipient], m.data)
    conn.quit()
    return time.perf_counter() - start


def send_loop(store: Store, port: int, messages: dict[int, OutgoingMessage], pool: int, batch: int,
              metered: bool = False) -> float:
    """Seconds for the real send loop to deliver every due delivery (``messages`` holds their bytes)."""
    def prepare(d: DueDelivery) -> OutgoingMessage:
        return messages[d.id]

    messenger: Any = SmtpMessenger("127.0.0.1", port, pool_size=pool, local_hostname="example.org")
    if metered:
        from newsletter.monitor import MeteredMessenger

        messenger = MeteredMessenger(messenger, store.engine)
    start = time.perf_counter()
    report = Sender(DeliveryQueue(store.engine), messenger, prepare, DeliveryPolicy(batch_size=batch)).run()
    messenger.close()
    elapsed = time.perf_counter() - start
    assert report.sent == len(messages), report
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=30_000,
                        help="body bytes per message (a digest is 20-60 KB)")
    parser.add_argument("--chunk", type=int, default=1_000, help="messages per alternation of the two loops")
    parser.add_argument("--pool", type=int, default=1, help="SMTP connections of the send loop")
    parser.add_argument("--batch", type=int, default=200, help="deliveries claimed at a time")
    parser.add_argument("--postgres", metavar="URL", help="also run the send loop on PostgreSQL (admin URL)")
    parser.add_argument("--metered", action="store_true", help="count each outcome for /metrics, as a real send does")
    args = parser.parse_args()

    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        sys.exit("the SMTP server did not start")

    stores: list[tuple[str, Store]] = []
    folder = tempfile.mkdtemp(prefix="bench-deliver-")
    stores.append(("sqlite", Store.open(f"sqlite:///{folder}/bench.db")))
    pg_admin = pg_name = None
    if args.postgres:
        pg_admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        pg_name = f"nl_bench_{uuid.uuid4().hex[:8]}"
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        stores.append(("postgresql", Store.open(args.postgres.rsplit("/", 1)[0] + f"/{pg_name}")))
    try:
        for _, store in stores:
            queue_readers(store, args.readers)
        messages = prepared_messages(stores[0][1], args.size)  # the same ids in every fresh database
        ids = sorted(messages)
        size = sum(len(m.data) for m in messages.values()) / len(messages)
        print(f"{args.readers} readers, messages of {size / 1000:.1f} KB, "
              f"SMTP server in process {server.pid}; "
              f"send loop: {args.pool} connection(s), claims of {args.batch}, one commit per message"
              f"{', metered' if args.metered else ''}; "
              f"the loops alternate every {args.chunk} messages")
        bare_loop(port, [messages[i] for i in ids[:200]])  # warm up both sides
        elapsed = {"bare": 0.0, **{name: 0.0 for name, _ in stores}}
        ratios: dict[str, list[float]] = {name: [] for name, _ in stores}
        for n, k in enumerate(range(0, len(ids), args.chunk)):
            chunk = ids[k:k + args.chunk]
            batch = {i: messages[i] for i in chunk}
            for _, store in stores:
                make_due(store, chunk)
            # Alternate which loop goes first, so a drift in the machine's load favours neither.
            order = ["bare", *[name for name, _ in stores]]
            if n % 2:
                order.reverse()
            took: dict[str, float] = {}
            for name in order:
                if name == "bare":
                    took[name] = bare_loop(port, list(batch.values()))
                else:
                    took[name] = send_loop(dict(stores)[name], port, batch, args.pool, args.batch, args.metered)
                elapsed[name] += took[name]
            for name, _ in stores:
                ratios[name].append(took["bare"] / took[name])
        total = len(ids)
        bare = total / elapsed["bare"]
        print(f"bare smtplib loop (no state):   {bare:7.0f} msg/s")
        for name, _ in stores:
            ours = total / elapsed[name]
            print(f"send loop, {name:<10} state:  {ours:7.0f} msg/s   ratio {ours / bare:.2f} "
                  f"(per chunk: median {statistics.median(ratios[name]):.2f}, "
                  f"min {min(ratios[name]):.2f}, max {max(ratios[name]):.2f})")
    finally:
        for _, store in stores:
            store.close()
        if pg_admin is not None:
            with pg_admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  f"WHERE datname = '{pg_name}'"))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}"'))
            pg_admin.dispose()
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
