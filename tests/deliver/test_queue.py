"""The delivery queue's own rules (newsletter/store/deliveries.py), each shown on a real database.

- SQLite runs one sender at a time: a lock whose holder is alive (its lease not run out, its process still
  there) is respected; a lease that ran out, a dead process or a lock nobody can read is taken over.
- ``newsletter retry --now`` brings waiting retries forward, and ``next_attempt`` tells when the next is due.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from mailkit import Handler, MailServer, build_message, queue_edition, reader

from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.store import Store
from newsletter.store.deliveries import (SQLITE_LOCK_KEY, DeliveryQueue, SenderBusy, as_utc, delivery_list,
                                         make_due_now, next_attempt)

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc)
LEASE = 300


def lock_held_by(store: Store, **holder: object) -> None:
    """The SQLite sender lock as a sender that is elsewhere would have left it."""
    store.set_state(SQLITE_LOCK_KEY, json.dumps(holder) if holder else "not json at all")


def takes_the_lock(store: Store, now: datetime) -> bool:
    try:
        with DeliveryQueue(store.engine).running(lease_seconds=LEASE, lock_wait=0, now=now):
            return True
    except SenderBusy:
        return False


def test_a_lock_is_respected_to_the_end_of_its_lease_and_taken_over_after(sqlite_store: Store) -> None:
    holder = DeliveryQueue(sqlite_store.engine)
    with holder.running(lease_seconds=LEASE, lock_wait=0, now=T0):  # alive: this very process
        assert not takes_the_lock(sqlite_store, T0 + timedelta(seconds=LEASE - 1))
        assert not takes_the_lock(sqlite_store, T0 + timedelta(seconds=LEASE))  # the last second of it
        # A sender that stopped renewing (stuck) for longer than its lease is taken over, though alive.
        assert takes_the_lock(sqlite_store, T0 + timedelta(seconds=LEASE + 1))
        with pytest.raises(SenderBusy, match="lost the SQLite sender lock"):
            holder.renew(LEASE, T0 + timedelta(seconds=LEASE + 2))


def test_a_lock_held_by_another_live_process_is_respected(sqlite_store: Store) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_held_by(sqlite_store, owner="elsewhere", host=socket.gethostname(), pid=other.pid,
                     until=(T0 + timedelta(seconds=LEASE)).isoformat())
        with pytest.raises(SenderBusy, match=f"process {other.pid} on {socket.gethostname()}"):
            with DeliveryQueue(sqlite_store.engine).running(lease_seconds=LEASE, lock_wait=0, now=T0):
                pass
    finally:
        other.kill()
        other.wait()
    # The process is gone now: its lock is taken over at once, without waiting for the lease.
    assert takes_the_lock(sqlite_store, T0)


def test_a_lock_held_on_another_machine_is_trusted_until_its_lease_ends(sqlite_store: Store) -> None:
    lock_held_by(sqlite_store, owner="elsewhere", host=socket.gethostname() + "-other", pid=os.getpid() + 10**6,
                 until=(T0 + timedelta(seconds=LEASE)).isoformat())
    assert not takes_the_lock(sqlite_store, T0)  # its process cannot be looked at from here
    assert takes_the_lock(sqlite_store, T0 + timedelta(seconds=LEASE + 1))


@pytest.mark.parametrize("holder", [
    {},  # not JSON
    {"owner": "x", "host": "h"},  # no lease
    {"owner": "x", "until": "soon"},  # a lease that is not a time
    {"owner": "x", "host": socket.gethostname(), "pid": "12", "until": "2026-03-14T09:00:00+00:00"},
])
def test_a_lock_nobody_can_read_is_taken_over(sqlite_store: Store, holder: dict[str, object]) -> None:
    lock_held_by(sqlite_store, **holder)
    assert takes_the_lock(sqlite_store, T0)


def test_a_lock_that_is_json_but_not_an_object_is_taken_over(sqlite_store: Store) -> None:
    sqlite_store.set_state(SQLITE_LOCK_KEY, "[1, 2]")
    assert takes_the_lock(sqlite_store, T0)


def test_a_lock_of_a_dead_process_on_this_machine_is_taken_over(sqlite_store: Store) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_held_by(sqlite_store, owner="crashed", host=socket.gethostname(), pid=gone.pid,
                 until=(T0 + timedelta(seconds=LEASE)).isoformat())
    assert takes_the_lock(sqlite_store, T0)


# --- retries: when, and now ---------------------------------------------------------------------------


def retrying(store: Store) -> tuple[int, int]:
    """Two editions, each with one reader whose server answered 451: their deliveries wait for a retry."""
    first = queue_edition(store, 2, emails=["late@example.org"], period="2026-03-14", now=T0)
    second = queue_edition(store, 0, emails=["late@example.org"], period="2026-03-15", now=T0)
    handler = Handler()
    handler.rcpt_replies = {"late@example.org": "451 4.3.0 try again later"}
    with MailServer(handler) as server:
        for minutes, edition in ((0, first), (10, second)):
            messenger = SmtpMessenger("127.0.0.1", server.port)
            try:
                Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(backoff_base=600),
                       clock=lambda m=minutes: T0 + timedelta(minutes=m)).run(edition)
            finally:
                messenger.close()
    return first, second


def waiting_at(store: Store, edition: int) -> list[datetime | None]:
    return [d.next_attempt_at for d in delivery_list(store.engine, edition, state="retry")]


def test_next_attempt_is_the_earliest_waiting_retry_overall_and_per_edition(sqlite_store: Store) -> None:
    first, second = retrying(sqlite_store)
    assert waiting_at(sqlite_store, first) == [T0 + timedelta(minutes=10)]
    assert waiting_at(sqlite_store, second) == [T0 + timedelta(minutes=20)]
    assert next_attempt(sqlite_store.engine) == T0 + timedelta(minutes=10)
    assert next_attempt(sqlite_store.engine, first) == T0 + timedelta(minutes=10)
    assert next_attempt(sqlite_store.engine, second) == T0 + timedelta(minutes=20)
    assert next_attempt(sqlite_store.engine, second + 1) is None  # no such edition: nothing waits
    assert {d.email: d.state for d in delivery_list(sqlite_store.engine, first)} == {
        reader(0): "sent", reader(1): "sent", "late@example.org": "retry"}


def test_retry_now_brings_only_waiting_retries_forward(sqlite_store: Store) -> None:
    first, second = retrying(sqlite_store)
    now = T0 + timedelta(minutes=12)  # the first edition's retry is already due; the second's is not
    assert make_due_now(sqlite_store.engine, now, second) == 1  # only that edition's
    assert waiting_at(sqlite_store, second) == [now]
    assert waiting_at(sqlite_store, first) == [T0 + timedelta(minutes=10)]  # untouched, and not moved later
    assert make_due_now(sqlite_store.engine, now) == 0  # nothing left waiting beyond now
    sent_at = {d.email: as_utc(d.sent_at) for d in delivery_list(sqlite_store.engine, first)}
    earlier = T0 + timedelta(minutes=5)  # both are due later than this: both come forward
    assert make_due_now(sqlite_store.engine, earlier) == 2
    assert waiting_at(sqlite_store, first) == waiting_at(sqlite_store, second) == [earlier]
    assert {d.email: as_utc(d.sent_at) for d in delivery_list(sqlite_store.engine, first)} == sent_at
    assert {d.state for d in delivery_list(sqlite_store.engine, first)} == {"sent", "retry"}


# --- set-based, bounded statements ------------------------------------------------------------------------


def test_outcomes_that_arrive_together_are_recorded_in_one_statement_for_the_rows_still_ours(db_url: str) -> None:
    store = Store.open(db_url)
    queue_edition(store, 6, now=T0)
    queue = DeliveryQueue(store.engine)
    with queue.running(lease_seconds=LEASE, now=T0):
        claim = queue.claim(6, lease_seconds=LEASE, retry_window=timedelta(hours=48), now=T0)
        assert len(claim.deliveries) == 6
        lost = claim.deliveries[5]
        with store.engine.begin() as conn:  # as if another sender had taken this one over
            conn.exec_driver_sql(f"UPDATE deliveries SET claimed_by = 'someone else' WHERE id = {lost.id}")
        statements: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            statements.append(statement)

        event.listen(store.engine, "before_cursor_execute", seen)
        try:
            assert queue.record_sent(claim.deliveries, T0) == 5
        finally:
            event.remove(store.engine, "before_cursor_execute", seen)
        assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    by_state = {d.email: d.state for d in delivery_list(store.engine, claim.deliveries[0].edition_id)}
    assert sorted(by_state.values()) == ["claimed"] + ["sent"] * 5 and by_state[lost.email] == "claimed"
    store.close()


@pytest.mark.parametrize("pool", [1, 2])
def test_no_statement_of_a_send_binds_a_list_that_grows_with_readers(db_url: str, pool: int) -> None:
    """600 deliveries claimed 40 at a time: no statement binds more values than one claim holds, so 10x the
    readers would bind no more (the claim, its UPDATE, and the outcomes of the messages on the wire)."""
    store = Store.open(db_url)
    queue_edition(store, 600, now=T0)
    most = [0]

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        rows = parameters if executemany else [parameters]
        most[0] = max(most[0], max((len(p) for p in rows if p is not None), default=0))

    event.listen(store.engine, "before_cursor_execute", count)
    with MailServer() as server:
        messenger = SmtpMessenger("127.0.0.1", server.port, pool_size=pool)
        try:
            report = Sender(DeliveryQueue(store.engine), messenger, build_message,
                            DeliveryPolicy(batch_size=40), clock=lambda: T0).run()
        finally:
            messenger.close()
            event.remove(store.engine, "before_cursor_execute", count)
        assert report.sent == 600 and len(server.handler.received) == 600
    assert 40 <= most[0] <= 40 + 10
    store.close()
