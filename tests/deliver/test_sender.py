"""The send loop end to end: real SMTP server on 127.0.0.1, real SQLite file and PostgreSQL database.

Every reader gets each digest once, whatever fails: a killed sender, a server that drops connections or
answers 451/550/535, an unsubscribe after queueing, two senders at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from mailkit import PASSWORD, Handler, MailServer, build_message, free_port, queue_edition, reader, worker_env
from sqlalchemy import select

from newsletter.deliver import FatalTransportError, OutgoingMessage, TransportUnavailable
from newsletter.deliver.sender import DeliveryPolicy, DeliveryReport, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.errors import NotFound
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryQueue, DueDelivery, SenderBusy, as_utc
from newsletter.store.schema import DeliveryRow, SubscriberRow

WORKER = Path(__file__).with_name("send_worker.py")
T0 = datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Clock:
    """A clock the test moves by hand (the send loop never sleeps on it)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def send(store: Store, server: MailServer, *, clock: Callable[[], datetime] | None = None, pool: int = 1,
         username: str | None = None, password: str | None = None, **policy: Any) -> DeliveryReport:
    messenger = SmtpMessenger("127.0.0.1", server.port, pool_size=pool, timeout=10, username=username,
                              password=password)
    try:
        return Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(**policy),
                      clock=clock or Clock()).run()
    finally:
        messenger.close()


def rows(store: Store) -> dict[str, DeliveryRow]:
    with store.session() as s:
        q = (select(DeliveryRow, SubscriberRow.email)
             .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id))
        return {email: row for row, email in s.execute(q)}


def states(store: Store) -> Counter[str]:
    return Counter(r.state for r in rows(store).values())


def subscriber_rows(store: Store) -> dict[str, tuple[str, int]]:
    with store.session() as s:
        return {r.email: (r.status, r.bounce_count) for r in s.scalars(select(SubscriberRow))}


# --- the happy path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", [1, 2])
def test_every_reader_gets_one_copy_and_each_outcome_is_recorded(db_url: str, smtpd: MailServer,
                                                                   pool: int) -> None:
    store = Store.open(db_url)
    queue_edition(store, 30, now=T0)
    seen: list[tuple[int, int]] = []
    messenger = SmtpMessenger("127.0.0.1", smtpd.port, pool_size=pool)
    report = Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(batch_size=7),
                    clock=Clock(), progress=lambda done, total: seen.append((done, total))).run()
    messenger.close()
    assert (report.due, report.sent, report.retry, report.failed) == (30, 30, 0, 0)
    assert smtpd.handler.copies() == {reader(i): 1 for i in range(30)}
    by_email = rows(store)
    assert {r.state for r in by_email.values()} == {"sent"}
    assert all(r.attempts == 1 and as_utc(r.sent_at) == T0 and r.claimed_by is None
               for r in by_email.values())
    received_ids = {r.rcpt: r.message_id for r in smtpd.handler.received}
    assert received_ids == {e: r.message_id for e, r in by_email.items()}
    assert seen[0] == (0, 30) and seen[-1] == (30, 30) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert messenger.connections_opened == pool
    store.close()


# --- a sender killed mid-run -------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", [1, 2])
def test_a_sender_killed_after_37_messages_and_restarted_sends_each_reader_one_copy(
        db_url: str, smtpd: MailServer, pool: int) -> None:
    """A crash repeats at most the message in flight on each connection, with the same Message-ID.

    Each "sent" commit is made slow (``--commit-delay``): with one connection the next message's envelope
    goes out while the previous outcome is still being committed, and its content must wait for that commit
    (``ready()``), or the kill would find two messages the server has and the store does not know of. With
    two connections the messages really are on the wire side by side."""
    store = Store.open(db_url)
    queue_edition(store, 100)
    cmd = [sys.executable, str(WORKER), db_url, str(smtpd.port), "--batch", "50", "--pool", str(pool)]
    first = subprocess.Popen(cmd + ["--commit-delay", "0.05"], env=worker_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)

    def kill_at_37(count: int) -> None:
        if count == 37:  # the server has the 37th message; the sender dies before it hears 250
            os.kill(first.pid, signal.SIGKILL)

    smtpd.handler.on_message = kill_at_37
    assert first.wait(timeout=120) == -signal.SIGKILL
    smtpd.handler.on_message = None
    received = list(smtpd.handler.received)
    assert len(received) == 37
    after_crash = states(store)
    if pool == 1:
        assert after_crash["sent"] == 36  # every message before the one in flight is recorded
        assert after_crash["claimed"] == 14  # the one in flight and the rest of its batch
    else:
        assert len({r.session for r in received}) == 2  # both connections carried messages before the kill
        assert 37 - pool <= after_crash["sent"] <= 36
        assert after_crash["sent"] + after_crash["claimed"] == 50

    if store.engine.dialect.name == "postgresql":
        wait_until_sessions_end(store)
    second = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    # Its own 50 and the ones the dead sender had claimed and not recorded.
    assert json.loads(second.stdout)["sent"] == 100 - after_crash["sent"]

    copies = smtpd.handler.copies()
    assert set(copies) == {reader(i) for i in range(100)}
    repeated = sorted(rcpt for rcpt, n in copies.items() if n > 1)
    in_flight = received[36].rcpt  # the 37th message: the server had it, the sender never heard
    assert in_flight in repeated and all(copies[rcpt] == 2 for rcpt in repeated)
    assert len(repeated) == 37 - after_crash["sent"] <= pool  # at most one per connection
    assert set(repeated) <= {r.rcpt for r in received[-pool:]}  # only the last message of a connection
    for rcpt in repeated:
        ids = [r.message_id for r in smtpd.handler.received if r.rcpt == rcpt]
        assert ids[0] == ids[1]  # with the same Message-ID, so the recipient's mail system can drop it
    assert states(store) == Counter({"sent": 100})
    store.close()


def test_each_sent_is_committed_and_on_disk_before_the_next_message_goes(db_url: str, smtpd: MailServer) -> None:
    """When the server takes message k, the k-1 before it are "sent" for every other session: a crash of the
    sender, or of the database server (PostgreSQL: "sent" commits with synchronous_commit on, so a commit is
    on disk before its reply), repeats at most the message in flight."""
    from sqlalchemy import text

    store = Store.open(db_url)
    queue_edition(store, 30, now=T0)
    sent_when: list[int] = []

    def count_sent(k: int) -> None:  # on the server's side, before it answers 250 to message k
        with store.engine.connect() as conn:
            sent_when.append(conn.execute(text("SELECT count(*) FROM deliveries WHERE state = 'sent'")).scalar())

    smtpd.handler.on_message = count_sent
    queue = DeliveryQueue(store.engine)
    modes: list[str] = []
    open_sent = queue._open_sent

    def open_and_look() -> None:  # what the connection "sent" goes out on promises
        open_sent()
        modes.append(queue._sent_conn.exec_driver_sql("SHOW synchronous_commit").scalar())  # type: ignore[union-attr]

    queue._open_sent = open_and_look  # type: ignore[method-assign]
    messenger = SmtpMessenger("127.0.0.1", smtpd.port)
    try:
        report = Sender(queue, messenger, build_message, DeliveryPolicy(batch_size=10), clock=lambda: T0).run()
    finally:
        messenger.close()
    assert report.sent == 30
    assert sent_when == list(range(30))
    assert modes == (["on"] if store.engine.dialect.name == "postgresql" else [])
    store.close()


def wait_until_sessions_end(store: Store) -> None:
    """PostgreSQL ends a killed client's session when it notices the closed socket: wait for that, as a
    restart minutes later would (until then the dead sender's claims look alive and wait for their lease)."""
    from sqlalchemy import text

    for _ in range(3000):
        with store.engine.connect() as conn:
            held = conn.execute(text("SELECT count(*) FROM pg_locks "
                                     "WHERE locktype = 'advisory' AND classid = 28268")).scalar()
        if not held:
            return
        threading.Event().wait(0.01)


# --- a server that fails in every way ---------------------------------------------------------------------


@pytest.mark.parametrize("pool", [1, 2])
def test_dropped_connections_every_25_messages_are_retried_later_and_nothing_is_sent_twice(
        sqlite_store: Store, smtpd: MailServer, pool: int) -> None:
    queue_edition(sqlite_store, 100, now=T0)
    smtpd.handler.drop_every = 25
    clock = Clock()
    report = send(sqlite_store, smtpd, clock=clock, pool=pool, batch_size=30, backoff_base=300)
    assert (report.sent, report.retry, report.failed) == (96, 4, 0)
    waiting = [r for r in rows(sqlite_store).values() if r.state == "retry"]
    assert len(waiting) == 4
    for r in waiting:
        assert r.attempts == 1 and as_utc(r.next_attempt_at) == T0 + timedelta(seconds=300)
        assert "dropped during DATA" in (r.last_error or "")
    assert len(smtpd.handler.received) == 96

    again = send(sqlite_store, smtpd, clock=clock, pool=pool)  # before the backoff: nothing is due
    assert again.done == 0 and len(smtpd.handler.received) == 96
    clock.advance(seconds=300)
    later = send(sqlite_store, smtpd, clock=clock, pool=pool)
    assert (later.sent, later.retry) == (4, 0)
    assert smtpd.handler.copies() == {reader(i): 1 for i in range(100)}
    assert states(sqlite_store) == Counter({"sent": 100})


def test_451_retries_550_bounces_and_nothing_else_changes(db_url: str, smtpd: MailServer) -> None:
    store = Store.open(db_url)
    queue_edition(store, 20, emails=["busy@example.org", "gone@example.org"], now=T0)
    smtpd.handler.rcpt_replies = {"busy@example.org": "451 4.2.1 Mailbox busy, try later",
                                  "gone@example.org": "550 5.1.1 No such user here"}
    before = subscriber_rows(store)
    report = send(store, smtpd, bounce_limit=1)
    assert (report.sent, report.retry, report.failed, report.bounced) == (20, 1, 1, 1)
    by_email = rows(store)
    busy, gone = by_email["busy@example.org"], by_email["gone@example.org"]
    assert (busy.state, busy.attempts) == ("retry", 1)
    assert busy.last_error == "busy@example.org: 451 4.2.1 Mailbox busy, try later"
    assert as_utc(busy.next_attempt_at) == T0 + timedelta(seconds=300)
    assert (gone.state, gone.attempts) == ("failed", 1)
    assert gone.last_error == "gone@example.org: 550 5.1.1 No such user here"
    after = subscriber_rows(store)
    assert after.pop("gone@example.org") == ("bounced", 1)
    before.pop("gone@example.org")
    assert after == before  # every other reader untouched, the 451 one included
    assert set(smtpd.handler.copies()) == {reader(i) for i in range(20)}
    store.close()


def test_a_refused_login_stops_the_run_and_marks_nothing(sqlite_store: Store) -> None:
    queue_edition(sqlite_store, 10, now=T0)
    with MailServer(auth=True) as server:
        with pytest.raises(FatalTransportError, match="refused the login as bot: 535"):
            send(sqlite_store, server, username="bot", password="wrong")
        assert server.handler.received == []
        assert all((r.state, r.attempts, r.claimed_by, r.last_error) == ("pending", 0, None, None)
                   for r in rows(sqlite_store).values())
        report = send(sqlite_store, server, username="bot", password=PASSWORD)  # fixed: all go, once
        assert report.sent == 10 and sorted(server.handler.copies().values()) == [1] * 10


def test_a_5xx_to_mail_from_stops_the_run_after_what_was_sent(sqlite_store: Store, smtpd: MailServer) -> None:
    queue_edition(sqlite_store, 10, now=T0)
    sent_before_refusal = 4

    def refuse_after_four(count: int) -> None:
        if count == sent_before_refusal:
            smtpd.handler.mail_reply = "553 5.7.1 Sender address rejected"

    smtpd.handler.on_message = refuse_after_four
    with pytest.raises(FatalTransportError, match="refused the sender papers@example.org: 553"):
        send(sqlite_store, smtpd, batch_size=3)
    assert states(sqlite_store) == Counter({"sent": 4, "pending": 6})
    assert all(r.attempts == 0 and r.claimed_by is None
               for r in rows(sqlite_store).values() if r.state == "pending")


def test_an_unreachable_server_leaves_every_delivery_queued(sqlite_store: Store) -> None:
    queue_edition(sqlite_store, 5, now=T0)
    messenger = SmtpMessenger("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(TransportUnavailable):
        Sender(DeliveryQueue(sqlite_store.engine), messenger, build_message, clock=Clock()).run()
    assert states(sqlite_store) == Counter({"pending": 5})


def test_temporary_failures_back_off_exponentially_then_fail_with_the_last_error(sqlite_store: Store,
                                                                                  smtpd: MailServer) -> None:
    queue_edition(sqlite_store, emails=["busy@example.org"], now=T0)
    smtpd.handler.rcpt_replies["busy@example.org"] = "452 4.2.2 Mailbox full"
    clock = Clock()
    waits = []
    while True:
        report = send(sqlite_store, smtpd, clock=clock, backoff_base=300, retry_window=timedelta(hours=48))
        assert report.done == 1
        row = rows(sqlite_store)["busy@example.org"]
        if row.state != "retry":
            break
        waits.append((as_utc(row.next_attempt_at) - clock.now).total_seconds())
        clock.now = as_utc(row.next_attempt_at)
    # 5, 10, 20, ... minutes, at most 6 hours, for as long as the next attempt falls inside the 48 hours
    expected, total, delay = [], 0.0, 300.0
    while total + min(delay, 6 * 3600) <= 48 * 3600:
        expected.append(min(delay, 6 * 3600))
        total += expected[-1]
        delay *= 2
    assert waits == expected
    assert (row.state, row.attempts, row.last_error) == ("failed", len(expected) + 1,
                                                         "busy@example.org: 452 4.2.2 Mailbox full")
    assert smtpd.handler.received == []


def test_a_retry_due_exactly_at_the_end_of_the_retry_window_is_still_made(sqlite_store: Store,
                                                                          smtpd: MailServer) -> None:
    queue_edition(sqlite_store, emails=["busy@example.org"], now=T0)
    smtpd.handler.rcpt_replies["busy@example.org"] = "452 4.2.2 Mailbox full"
    clock = Clock()
    policy = dict(backoff_base=300, retry_window=timedelta(seconds=300))
    send(sqlite_store, smtpd, clock=clock, **policy)
    row = rows(sqlite_store)["busy@example.org"]
    assert (row.state, as_utc(row.next_attempt_at)) == ("retry", T0 + timedelta(seconds=300))  # the last second
    clock.now = T0 + timedelta(seconds=300)
    send(sqlite_store, smtpd, clock=clock, **policy)
    row = rows(sqlite_store)["busy@example.org"]
    assert (row.state, row.attempts) == ("failed", 2)  # the next one would fall outside: it fails instead


def test_with_a_rate_limit_a_batch_is_no_bigger_than_half_a_lease_can_send(sqlite_store: Store,
                                                                          smtpd: MailServer) -> None:
    """At 2 messages a second and a 10-second lease, a sender claims 10 at a time (half the lease), so a
    batch always goes out before its lease runs out and no other sender takes over rows still being sent."""
    queue_edition(sqlite_store, 25, now=T0)
    claimed_while_sending: list[int] = []

    def prepare(d: DueDelivery) -> OutgoingMessage:
        claimed_while_sending.append(states(sqlite_store)["claimed"])
        return build_message(d)

    now = [0.0]

    def sleep(seconds: float) -> None:  # the rate limit's waits, on a clock the test owns
        now[0] += seconds

    messenger = SmtpMessenger("127.0.0.1", smtpd.port, rate_limit=2, clock=lambda: now[0], sleep=sleep)
    try:
        report = Sender(DeliveryQueue(sqlite_store.engine), messenger, prepare,
                        DeliveryPolicy(lease_seconds=10, batch_size=200), clock=Clock()).run()
    finally:
        messenger.close()
    assert report.sent == 25
    # Each batch's first message sees the whole batch claimed: 10, then 10, then the last 5.
    assert claimed_while_sending[0::10] == [10, 10, 5]


def test_a_message_refused_after_its_data_fails_without_counting_a_bounce(sqlite_store: Store,
                                                                         smtpd: MailServer) -> None:
    """Only a refused address (5xx to RCPT TO) is a bounce; a server refusing the content (5xx after DATA)
    says nothing about the address, so the reader's bounce count stays as it was."""
    queue_edition(sqlite_store, emails=["picky@example.org"], now=T0)
    smtpd.handler.data_replies["picky@example.org"] = "554 5.6.0 Message content rejected"
    report = send(sqlite_store, smtpd, bounce_limit=1)
    assert (report.failed, report.bounced) == (1, 0)
    assert rows(sqlite_store)["picky@example.org"].state == "failed"
    assert subscriber_rows(sqlite_store)["picky@example.org"] == ("active", 0)


def test_a_digest_not_sent_within_the_retry_window_fails_instead_of_going_out_late(sqlite_store: Store,
                                                                                  smtpd: MailServer) -> None:
    queue_edition(sqlite_store, 3, now=T0 - timedelta(hours=49))
    report = send(sqlite_store, smtpd)
    assert (report.expired, report.sent) == (3, 0)
    assert {r.last_error for r in rows(sqlite_store).values()} == {"not sent within 48 hours of being queued"}
    assert smtpd.handler.received == []


def test_bounces_count_in_a_row_and_the_address_is_suppressed_at_the_limit(sqlite_store: Store,
                                                                          smtpd: MailServer) -> None:
    gone = "gone@example.org"
    outcomes = []
    for day, refuse in [(14, True), (15, False), (16, True), (17, True), (18, True)]:
        queue_edition(sqlite_store, 2, emails=[gone], period=f"2026-03-{day}", now=T0)
        smtpd.handler.rcpt_replies = {gone: "550 5.1.1 No such user"} if refuse else {}
        send(sqlite_store, smtpd, bounce_limit=2)
        with sqlite_store.session() as s:
            state = s.scalars(select(DeliveryRow.state)
                              .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
                              .where(SubscriberRow.email == gone).order_by(DeliveryRow.id.desc())).first()
        outcomes.append((state, subscriber_rows(sqlite_store)[gone]))
    assert outcomes == [
        ("failed", ("active", 1)),
        ("sent", ("active", 0)),  # delivered again: the count starts over
        ("failed", ("active", 1)),
        ("failed", ("bounced", 2)),
        ("suppressed", ("bounced", 2)),  # no longer tried
    ]
    assert smtpd.handler.copies()[reader(0)] == 5


# --- readers who leave ------------------------------------------------------------------------------------


def test_an_unsubscribe_after_the_digest_was_queued_stops_it(sqlite_store: Store, smtpd: MailServer) -> None:
    queue_edition(sqlite_store, 10, now=T0)
    sqlite_store.remove_subscriber(reader(3))
    sqlite_store.remove_subscriber(reader(7), forget=True)  # erased: its delivery went with it
    report = send(sqlite_store, smtpd)
    assert (report.sent, report.suppressed) == (8, 1)
    assert reader(3) not in smtpd.handler.copies() and reader(7) not in smtpd.handler.copies()
    row = rows(sqlite_store)[reader(3)]
    assert (row.state, row.attempts) == ("suppressed", 0)
    assert row.last_error == "not sent: the reader is unsubscribed"


@pytest.mark.parametrize("pool", [1, 2])
def test_an_unsubscribe_while_the_batch_is_being_sent_stops_that_reader(sqlite_store: Store, smtpd: MailServer,
                                                                         pool: int) -> None:
    queue_edition(sqlite_store, 10, now=T0)  # one batch: all ten claimed while every reader is active

    def prepare(d: DueDelivery) -> OutgoingMessage:
        if d.email == reader(1):  # while the batch goes out, reader 8 presses the one-click unsubscribe
            sqlite_store.remove_subscriber(reader(8))
        return build_message(d)

    messenger = SmtpMessenger("127.0.0.1", smtpd.port, pool_size=pool, timeout=10)
    sender = Sender(DeliveryQueue(sqlite_store.engine), messenger, prepare, clock=Clock())
    sender.recheck_seconds = 0  # look at the readers before every message (the default: every 0.5 s)
    try:
        report = sender.run()
    finally:
        messenger.close()
    assert (report.sent, report.suppressed, report.lost_claims) == (9, 1, 0)  # its suppression was recorded
    assert reader(8) not in smtpd.handler.copies()
    row = rows(sqlite_store)[reader(8)]
    assert (row.state, row.attempts, row.last_error) == ("suppressed", 0, "not sent: the reader is unsubscribed")


def test_a_reader_erased_after_the_claim_is_skipped(sqlite_store: Store, smtpd: MailServer) -> None:
    queue_edition(sqlite_store, 6, now=T0)

    def prepare(d: DueDelivery) -> OutgoingMessage:
        if d.email == reader(2):  # erased (GDPR) while the batch was being sent: the message stage cannot
            sqlite_store.remove_subscriber(d.email, forget=True)  # find the reader any more
            raise NotFound(f"No subscriber {d.subscriber_id}.")
        return build_message(d)

    messenger = SmtpMessenger("127.0.0.1", smtpd.port)
    report = Sender(DeliveryQueue(sqlite_store.engine), messenger, prepare, clock=Clock()).run()
    assert (report.sent, report.suppressed) == (5, 1)
    assert set(smtpd.handler.copies()) == {reader(i) for i in range(6)} - {reader(2)}
    assert states(sqlite_store) == Counter({"sent": 5})


def test_a_stop_request_finishes_the_current_message_and_gives_the_rest_back(sqlite_store: Store,
                                                                            smtpd: MailServer) -> None:
    queue_edition(sqlite_store, 20, now=T0)
    stop = threading.Event()
    messenger = SmtpMessenger("127.0.0.1", smtpd.port)

    def progress(done: int, total: int) -> None:
        if done == 5:
            stop.set()

    report = Sender(DeliveryQueue(sqlite_store.engine), messenger, build_message,
                    DeliveryPolicy(batch_size=10), clock=Clock(), progress=progress, stop=stop).run()
    assert report.sent == 5 and states(sqlite_store) == Counter({"sent": 5, "pending": 15})
    assert send(sqlite_store, smtpd).sent == 15
    assert sorted(smtpd.handler.copies().values()) == [1] * 20


# --- senders side by side --------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("senders", [2, 4])
def test_several_senders_on_postgresql_share_the_work_and_never_send_twice(db_url: str, smtpd: MailServer,
                                                                           senders: int) -> None:
    """Claims never overlap: each sender process claims with SKIP LOCKED, and every delivery goes out once."""
    store = Store.open(db_url)
    total = 150 * senders
    queue_edition(store, total)
    # The server answers nobody until every sender has a connection open, so they really run side by side.
    smtpd.handler.hold = threading.Event()

    def release_when_all_connected() -> None:
        while len(smtpd.handler.sessions) < senders and not smtpd.handler.hold.is_set():
            threading.Event().wait(0.01)
        smtpd.handler.hold.set()

    watcher = threading.Thread(target=release_when_all_connected, daemon=True)
    watcher.start()
    cmd = [sys.executable, str(WORKER), db_url, str(smtpd.port), "--batch", "10"]
    procs = [subprocess.Popen(cmd, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(senders)]
    outs = [p.communicate(timeout=180) for p in procs]
    smtpd.handler.hold.set()
    assert [p.returncode for p in procs] == [0] * senders, [err for _, err in outs]
    reports = [json.loads(out) for out, _ in outs]
    assert sum(r["sent"] for r in reports) == total and all(r["sent"] > 0 for r in reports)
    assert all(r["lost_claims"] == 0 for r in reports)  # no sender recorded over another's claim
    assert smtpd.handler.copies() == {reader(i): 1 for i in range(total)}
    assert len({r.session for r in smtpd.handler.received}) == senders
    assert states(store) == Counter({"sent": total})
    store.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_postgresql_rows_of_a_live_sender_are_taken_over_only_when_its_lease_runs_out(db_url: str) -> None:
    store = Store.open(db_url)
    queue_edition(store, 5, now=T0)
    first, second = DeliveryQueue(store.engine), DeliveryQueue(store.engine)
    window = timedelta(hours=48)
    with first.running(lease_seconds=60):
        assert len(first.claim(5, lease_seconds=60, retry_window=window, now=T0).deliveries) == 5
        with second.running(lease_seconds=60):  # the first is alive (its session holds its lock): hands off
            early = second.claim(5, lease_seconds=60, retry_window=window, now=T0 + timedelta(seconds=59))
            assert early.deliveries == []
            late = second.claim(5, lease_seconds=60, retry_window=window, now=T0 + timedelta(seconds=61))
            assert len(late.deliveries) == 5
            assert not first.mark_sent(first_row := late.deliveries[0], T0)  # the first lost it: no record
            assert second.mark_sent(first_row, T0)
            assert not first.mark_suppressed(late.deliveries[1], "unsubscribed", T0)  # nor for this one
            assert second.mark_suppressed(late.deliveries[1], "unsubscribed", T0)
    store.close()


def test_a_sender_whose_rows_were_taken_over_counts_every_outcome_it_could_not_record(db_url: str,
                                                                                     smtpd: MailServer) -> None:
    """On PostgreSQL a sender whose lease ran out (by the other sender's clock) loses its rows mid-batch: it
    records nothing for them, a suppression included, and its report counts each one as a lost claim."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one sender at a time: no other sender can take rows over mid-batch")
    store = Store.open(db_url)
    queue_edition(store, 5, now=T0)
    other = DeliveryQueue(store.engine)
    taken: list[int] = []

    def prepare(d: DueDelivery) -> OutgoingMessage:
        if not taken:  # as the first message is built: another sender takes the rows, then reader 2 leaves
            claim = other.claim(5, lease_seconds=60, retry_window=timedelta(hours=48),
                                now=T0 + timedelta(seconds=61))
            taken.extend(x.id for x in claim.deliveries)
            store.remove_subscriber(reader(2))
        return build_message(d)

    messenger = SmtpMessenger("127.0.0.1", smtpd.port, timeout=10)
    sender = Sender(DeliveryQueue(store.engine), messenger, prepare, DeliveryPolicy(lease_seconds=60),
                    clock=Clock())
    sender.recheck_seconds = 0
    try:
        with other.running(lease_seconds=60):
            report = sender.run()
            assert len(taken) == 5
            assert states(store) == Counter({"claimed": 5})  # all still the other sender's: nothing recorded
    finally:
        messenger.close()
        store.close()
    assert (report.sent, report.suppressed, report.lost_claims) == (4, 1, 5)


def test_a_second_sender_on_sqlite_refuses_with_a_clear_message_or_waits(sqlite_store: Store) -> None:
    queue_edition(sqlite_store, 20, now=T0)
    handler = Handler()
    handler.hold = threading.Event()  # the first sender is stuck on its first message, holding the lock
    events: list[str] = []
    with MailServer(handler) as server:
        def first() -> None:  # "done" as its run returns (the lock given back), before its SMTP QUIT
            messenger = SmtpMessenger("127.0.0.1", server.port, timeout=10)
            try:
                Sender(DeliveryQueue(sqlite_store.engine), messenger, build_message, DeliveryPolicy(batch_size=5),
                       clock=Clock()).run()
                events.append("first done")
            finally:
                messenger.close()

        def waiting() -> None:
            messenger = SmtpMessenger("127.0.0.1", server.port)
            report = Sender(DeliveryQueue(sqlite_store.engine), messenger, build_message,
                            DeliveryPolicy(lock_wait=120), clock=Clock(),
                            progress=lambda done, total: events.append("waiting sender running")).run()
            events.append(f"waiting sender sent {report.sent}")

        t1 = threading.Thread(target=first)
        t1.start()
        while handler.data_count < 1:
            threading.Event().wait(0.01)
        with pytest.raises(SenderBusy) as info:
            send(sqlite_store, server, lock_wait=0.2)
        assert "SQLite runs one sender at a time" in str(info.value)
        assert "use PostgreSQL to run several senders side by side" in str(info.value)
        t2 = threading.Thread(target=waiting)
        t2.start()
        handler.hold.set()
        t1.join(120)
        t2.join(120)
    assert events[0] == "first done" and events[1] == "waiting sender running"
    assert events[-1] == "waiting sender sent 0"
    assert handler.copies() == {reader(i): 1 for i in range(20)}
