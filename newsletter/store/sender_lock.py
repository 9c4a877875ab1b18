"""The locks that let senders share the delivery queue (used by ``DeliveryQueue.running``).

- PostgreSQL: any number of senders side by side. Each holds a session-level advisory lock of its own for
  its run (one key per sender, so they never wait on each other); claims use ``FOR UPDATE SKIP LOCKED``.
  Rows claimed by a sender whose lock is free (its process died, so its session is gone) are taken over
  at once, others when their lease ends.
- SQLite allows one writer at a time, so one sender runs at a time: a lock row in ``app_state``, taken with
  a compare-and-swap UPDATE. A second sender waits a little, then refuses with a clear message. A lock left
  by a dead process on this machine (or past its lease) is taken over, and so are the rows it had claimed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import zlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ..errors import DeliveryError
from .clock import as_utc, utcnow
from .schema import StateRow

SQLITE_LOCK_KEY = "deliver.sender_lock"
PG_LOCK_CLASS = 0x6E6C  # "nl": the first key of the two-key advisory lock, so other apps' locks do not clash


class SenderBusy(DeliveryError):
    """Another sender holds the SQLite database."""


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SqliteLock:
    """The one-sender-at-a-time lock row of a SQLite database, held by ``owner``."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.value: str | None = None  # the lock row's value while held

    def payload(self, lease_seconds: float, now: datetime | None) -> str:
        until = (now or utcnow()) + timedelta(seconds=lease_seconds)
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "until": until.isoformat()})

    def take(self, conn: Connection, lease_seconds: float, wait: float, now: datetime | None) -> None:
        deadline = time.monotonic() + wait
        while True:
            holder = self.try_take(conn, lease_seconds, now)
            if holder is None:
                return
            if time.monotonic() >= deadline:
                raise SenderBusy(
                    f"Another sender (process {holder.get('pid')} on {holder.get('host')}) is delivering "
                    "from this SQLite database; SQLite runs one sender at a time.",
                    hint="wait for it to finish (`newsletter deliveries` shows progress), or use PostgreSQL "
                    "to run several senders side by side")
            time.sleep(0.1)

    def try_take(self, conn: Connection, lease_seconds: float, now: datetime | None) -> dict[str, Any] | None:
        """Take the lock, or return who holds it. Compare-and-swap, so two takers cannot both win."""
        mine = self.payload(lease_seconds, now)
        current = conn.execute(select(StateRow.value).where(StateRow.key == SQLITE_LOCK_KEY)).scalar()
        if current is None:
            try:
                conn.execute(insert(StateRow).values(key=SQLITE_LOCK_KEY, value=mine))
                conn.commit()
            except IntegrityError:
                conn.rollback()
                return {"pid": "?", "host": "?"}
            self.value = mine
            return None
        holder = parse_lock(current)
        if holder.get("owner") != self.owner and holder_alive(holder, now or utcnow()):
            return holder
        done = conn.execute(update(StateRow).where(StateRow.key == SQLITE_LOCK_KEY, StateRow.value == current)
                            .values(value=mine))
        conn.commit()
        if done.rowcount != 1:
            return holder
        self.value = mine
        return None

    def renew(self, conn: Connection, lease_seconds: float, now: datetime | None) -> None:
        if self.value is None:
            return
        mine = self.payload(lease_seconds, now)
        done = conn.execute(update(StateRow).values(value=mine).where(
            StateRow.key == SQLITE_LOCK_KEY, StateRow.value == self.value))
        conn.commit()
        if done.rowcount != 1:  # taken over: we looked dead (stopped for longer than the lease)
            self.value = None
            raise SenderBusy("This sender lost the SQLite sender lock to another sender and stopped.",
                             hint="a sender must renew its lease within delivery.lease_seconds; "
                             "run `newsletter retry`")
        self.value = mine

    def release(self, conn: Connection) -> None:
        if self.value is not None:
            conn.execute(delete(StateRow).where(StateRow.key == SQLITE_LOCK_KEY, StateRow.value == self.value))
            conn.commit()
            self.value = None


class PgLiveness:
    """A sender's advisory lock on PostgreSQL, on a connection of its own: held while the sender lives."""

    def __init__(self, engine: Engine, owner: str) -> None:
        self.engine, self.owner = engine, owner
        self.conn: Connection | None = None

    def take(self) -> None:
        self.conn = self.engine.connect()
        self.conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": PG_LOCK_CLASS, "b": owner_key(self.owner)})
        self.conn.commit()

    def alive(self, owner: str) -> bool:
        """Is the sender that claimed rows as ``owner`` still connected?"""
        assert self.conn is not None
        key = {"a": PG_LOCK_CLASS, "b": owner_key(owner)}
        got = self.conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), key).scalar()
        if got:
            self.conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), key)
        self.conn.commit()
        return not got

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
                self.conn.commit()
            finally:
                self.conn.close()
                self.conn = None


def owner_key(owner: str) -> int:
    return zlib.crc32(owner.encode()) - 2**31  # a signed int4, as pg_advisory_lock(int, int) wants


def parse_lock(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def holder_alive(holder: dict[str, Any], now: datetime) -> bool:
    try:
        until = as_utc(datetime.fromisoformat(holder["until"]))
    except (KeyError, TypeError, ValueError):
        return False
    if until is None or until < now:
        return False  # its lease ran out: it stopped renewing, so it is gone (or stuck)
    if holder.get("host") != socket.gethostname():
        return True  # cannot look at another machine's processes; trust the lease
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
