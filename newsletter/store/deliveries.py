"""The delivery queue: every query the send loop makes, and the locks that let senders share the work.

A delivery row moves ``pending → claimed → sent | retry | failed | suppressed`` (``retry`` goes back to
``claimed`` when its next attempt is due). A sender *claims* a batch of due rows with a lease, sends each,
and commits each outcome with one UPDATE before it sends the next message, so a crash loses at most the
outcome of the one message in flight; that row is claimed again later and its message goes out a second
time with the same Message-ID.

How senders stay out of each other's way:

- PostgreSQL: any number side by side. Claims use ``FOR UPDATE SKIP LOCKED``, so two senders never claim the
  same row. Each sender holds a session-level advisory lock for its run; rows claimed by a sender whose lock
  is free (its process died, so its session is gone) are taken over at once, others when their lease ends.
- SQLite ignores ``SKIP LOCKED`` and allows one writer at a time, so one sender runs at a time: a lock row in
  ``app_state``, taken with a compare-and-swap UPDATE. A second sender waits a little, then refuses with a
  clear message. A lock left by a dead process on this machine (or past its lease) is taken over, and so
  are the rows that process had claimed.

Example::

    queue = DeliveryQueue(store.engine)
    with queue.running(lease_seconds=300):
        claim = queue.claim(100, lease_seconds=300, retry_window=timedelta(days=2), now=utcnow())
        for d in claim.deliveries:
            queue.mark_sent(d, utcnow())
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Sequence

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..errors import DeliveryError
from ..models import (
    DELIVERY_CLAIMED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_RETRY,
    DELIVERY_SENT,
    DELIVERY_SUPPRESSED,
    EDITION_ACTIVE,
    SUBSCRIBER_ACTIVE,
    SUBSCRIBER_BOUNCED,
)
from .schema import DeliveryRow, EditionRow, StateRow, SubscriberRow

SQLITE_LOCK_KEY = "deliver.sender_lock"
_PG_LOCK_CLASS = 0x6E6C  # "nl": the first key of the two-key advisory lock, so other apps' locks do not clash

D, S = DeliveryRow, SubscriberRow
log = logging.getLogger(__name__)


class SenderBusy(DeliveryError):
    """Another sender holds the SQLite database."""


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery: what the send loop needs to build and send one reader's message."""

    id: int
    edition_id: int
    subscriber_id: int
    digest_id: int
    message_id: str
    email: str
    name: str | None
    attempts: int  # attempts made before this one
    created_at: datetime  # when the digest was queued; the retry window counts from here
    bounce_count: int  # the reader's permanent failures in a row so far


@dataclass
class Claim:
    deliveries: list[DueDelivery] = field(default_factory=list)
    suppressed: int = 0  # reader unsubscribed (or bounced) after the digest was queued
    expired: int = 0  # not sent within the retry window: now failed


@dataclass(frozen=True)
class DeliveryInfo:
    """One delivery as ``newsletter deliveries --edition`` shows it."""

    id: int
    edition_id: int
    email: str
    state: str
    attempts: int
    message_id: str
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# One statement per outcome, built once: the per-message cost is what limits the send rate.
_RELEASED_STATE = case((D.attempts > 0, DELIVERY_RETRY), else_=DELIVERY_PENDING)
_MARK_SENT = (
    update(D)
    .where(D.id == bindparam("did"), D.state == DELIVERY_CLAIMED, D.claimed_by == bindparam("me"))
    .values(state=DELIVERY_SENT, attempts=D.attempts + 1, sent_at=bindparam("now"),
            updated_at=bindparam("now"), claimed_by=None, lease_until=None, last_error=None)
)
_MARK_RETRY = (
    update(D)
    .where(D.id == bindparam("did"), D.state == DELIVERY_CLAIMED, D.claimed_by == bindparam("me"))
    .values(state=DELIVERY_RETRY, attempts=D.attempts + 1, next_attempt_at=bindparam("next_at"),
            last_error=bindparam("error"), updated_at=bindparam("now"), claimed_by=None, lease_until=None)
)
_MARK_FAILED = (
    update(D)
    .where(D.id == bindparam("did"), D.state == DELIVERY_CLAIMED, D.claimed_by == bindparam("me"))
    .values(state=DELIVERY_FAILED, attempts=D.attempts + 1, last_error=bindparam("error"),
            updated_at=bindparam("now"), claimed_by=None, lease_until=None)
)
_MARK_SUPPRESSED = (
    update(D)
    .where(D.id == bindparam("did"), D.state == DELIVERY_CLAIMED, D.claimed_by == bindparam("me"))
    .values(state=DELIVERY_SUPPRESSED, last_error=bindparam("error"), updated_at=bindparam("now"),
            claimed_by=None, lease_until=None)
)
_BOUNCE = (
    update(S)
    .where(S.id == bindparam("sid"))
    .values(bounce_count=S.bounce_count + 1, updated_at=bindparam("now"),
            status=case((and_(S.status == SUBSCRIBER_ACTIVE, S.bounce_count + 1 >= bindparam("limit")),
                         SUBSCRIBER_BOUNCED), else_=S.status))
)
_UNBOUNCE = update(S).where(S.id == bindparam("sid"), S.bounce_count > 0).values(bounce_count=0)
# The statement every sent message pays for, as plain driver SQL: executing it through SQLAlchemy's statement
# machinery costs about as much again as SQLite's own UPDATE and commit (see bench/bench_deliver.py).
_MARK_SENT_SQL = ("UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = {now}, "
                  "updated_at = {now}, claimed_by = NULL, lease_until = NULL, last_error = NULL "
                  "WHERE id = {did} AND state = 'claimed' AND claimed_by = {me}")


class DeliveryQueue:
    """The queries of one sender. ``running()`` holds its connection and lock for a run."""

    def __init__(self, engine: Engine, owner: str | None = None) -> None:
        self.engine = engine
        self.owner = owner or new_owner()
        self.postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._lock_conn: Connection | None = None
        self._lock_value: str | None = None
        dialect = engine.dialect
        style = {"qmark": "?", "format": "%s", "named": ":{}", "pyformat": "%({})s"}.get(dialect.paramstyle)
        self._sent_sql = (_MARK_SENT_SQL.format(**{n: style.format(n) for n in ("now", "did", "me")})
                          if style else None)  # another driver's style: the SQLAlchemy statement
        self._sent_positional = style is not None and "{}" not in style  # a tuple, in the order above
        # Datetimes as the dialect stores them (SQLite: text in SQLAlchemy's format; PostgreSQL: as they are).
        as_stored = D.__table__.c.sent_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._bind_time = as_stored or (lambda value: value)

    # --- a run ----------------------------------------------------------------------------------------

    @contextmanager
    def running(self, *, lease_seconds: float, lock_wait: float = 10.0,
                now: datetime | None = None) -> Iterator[DeliveryQueue]:
        """Take the run lock (SQLite: the only sender; PostgreSQL: this sender's liveness), take over what
        dead senders had claimed, and at the end give back whatever this sender still holds."""
        self._conn = self.engine.connect()
        try:
            if self.postgres:
                self._pg_lock()
            else:
                self._sqlite_lock(lease_seconds, lock_wait, now)
            self.take_over_orphans()
            yield self
        except BaseException:
            # Give the claims back, but let the error that stopped the run be the one raised.
            try:
                self._end()
            except Exception:  # noqa: BLE001
                log.exception("could not give back this sender's claimed deliveries; their lease frees them")
            raise
        else:
            self._end()

    def _end(self) -> None:
        try:
            self.release_all()
        finally:
            try:
                self._unlock()
            finally:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One write of the send loop: when it fails (a full disk, a lost connection) its transaction is
        rolled back at once, so the connection can still give back the claims and take the next write."""
        conn = self.conn
        try:
            yield conn
        except SQLAlchemyError:
            try:
                conn.rollback()
            except SQLAlchemyError:
                pass
            raise

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("DeliveryQueue used outside running()")
        return self._conn

    def renew(self, lease_seconds: float, now: datetime | None = None) -> None:
        """Extend the SQLite lock's lease (called once per batch); PostgreSQL needs nothing."""
        if self.postgres or self._lock_value is None:
            return
        mine = self._lock_payload(lease_seconds, now)
        done = self.conn.execute(update(StateRow).values(value=mine).where(
            StateRow.key == SQLITE_LOCK_KEY, StateRow.value == self._lock_value))
        self.conn.commit()
        if done.rowcount != 1:  # taken over: we looked dead (stopped for longer than the lease)
            self._lock_value = None
            raise SenderBusy("This sender lost the SQLite sender lock to another sender and stopped.",
                             hint="a sender must renew its lease within delivery.lease_seconds; "
                             "run `newsletter retry`")
        self._lock_value = mine

    # --- SQLite: one sender at a time -----------------------------------------------------------------

    def _lock_payload(self, lease_seconds: float, now: datetime | None) -> str:
        until = (now or utcnow()) + timedelta(seconds=lease_seconds)
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "until": until.isoformat()})

    def _sqlite_lock(self, lease_seconds: float, wait: float, now: datetime | None) -> None:
        deadline = time.monotonic() + wait
        while True:
            holder = self._try_sqlite_lock(lease_seconds, now)
            if holder is None:
                return
            if time.monotonic() >= deadline:
                raise SenderBusy(
                    f"Another sender (process {holder.get('pid')} on {holder.get('host')}) is delivering "
                    "from this SQLite database; SQLite runs one sender at a time.",
                    hint="wait for it to finish (`newsletter deliveries` shows progress), or use PostgreSQL "
                    "to run several senders side by side")
            time.sleep(0.1)

    def _try_sqlite_lock(self, lease_seconds: float, now: datetime | None) -> dict[str, Any] | None:
        """Take the lock, or return who holds it. Compare-and-swap, so two takers cannot both win."""
        conn = self.conn
        mine = self._lock_payload(lease_seconds, now)
        current = conn.execute(select(StateRow.value).where(StateRow.key == SQLITE_LOCK_KEY)).scalar()
        if current is None:
            try:
                conn.execute(insert(StateRow).values(key=SQLITE_LOCK_KEY, value=mine))
                conn.commit()
            except IntegrityError:
                conn.rollback()
                return {"pid": "?", "host": "?"}
            self._lock_value = mine
            return None
        holder = _parse_lock(current)
        if holder.get("owner") != self.owner and _holder_alive(holder, now or utcnow()):
            return holder
        done = conn.execute(update(StateRow).where(StateRow.key == SQLITE_LOCK_KEY, StateRow.value == current)
                            .values(value=mine))
        conn.commit()
        if done.rowcount != 1:
            return holder
        self._lock_value = mine
        return None

    # --- PostgreSQL: a liveness lock per sender --------------------------------------------------------

    def _pg_lock(self) -> None:
        self._lock_conn = self.engine.connect()
        self._lock_conn.execute(text("SELECT pg_advisory_lock(:a, :b)"),
                                {"a": _PG_LOCK_CLASS, "b": _owner_key(self.owner)})
        self._lock_conn.commit()

    def _owner_alive(self, owner: str) -> bool:
        """On PostgreSQL: is the sender that claimed rows as ``owner`` still connected?"""
        assert self._lock_conn is not None
        key = {"a": _PG_LOCK_CLASS, "b": _owner_key(owner)}
        got = self._lock_conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), key).scalar()
        if got:
            self._lock_conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), key)
        self._lock_conn.commit()
        return not got

    def _unlock(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(text("SELECT pg_advisory_unlock_all()"))
                self._lock_conn.commit()
            finally:
                self._lock_conn.close()
                self._lock_conn = None
        if self._lock_value is not None:
            self.conn.execute(delete(StateRow).where(StateRow.key == SQLITE_LOCK_KEY,
                                                     StateRow.value == self._lock_value))
            self.conn.commit()
            self._lock_value = None

    def take_over_orphans(self) -> int:
        """Make rows claimed by dead senders due again (their lease would free them too, only later)."""
        conn = self.conn
        claimers = conn.execute(select(D.claimed_by).where(D.state == DELIVERY_CLAIMED).distinct()).scalars()
        owners = [o for o in claimers if o and o != self.owner]
        conn.commit()
        dead = owners if not self.postgres else [o for o in owners if not self._owner_alive(o)]
        if not dead:
            return 0
        done = conn.execute(update(D).where(D.state == DELIVERY_CLAIMED, D.claimed_by.in_(dead))
                            .values(state=_RELEASED_STATE, claimed_by=None, lease_until=None))
        conn.commit()
        return done.rowcount or 0

    # --- claiming ---------------------------------------------------------------------------------------

    def _due(self, now: datetime, edition_id: int | None) -> Any:
        now = _utc(now)
        cond = or_(
            and_(D.state.in_((DELIVERY_PENDING, DELIVERY_RETRY)),
                 or_(D.next_attempt_at.is_(None), D.next_attempt_at <= now)),
            and_(D.state == DELIVERY_CLAIMED, D.lease_until < now),  # a lease that ran out
        )
        # Only an active edition's deliveries go out: a paused one waits for `edition resume`.
        cond = and_(cond, D.edition_id.not_in(select(EditionRow.id).where(EditionRow.state != EDITION_ACTIVE)))
        return and_(cond, D.edition_id == edition_id) if edition_id is not None else cond

    def due_count(self, now: datetime, edition_id: int | None = None) -> int:
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(D).where(self._due(now, edition_id))
            return conn.execute(q).scalar() or 0

    def claim(self, limit: int, *, lease_seconds: float, retry_window: timedelta, now: datetime,
              edition_id: int | None = None) -> Claim:
        """Claim up to ``limit`` due deliveries for ``lease_seconds``. In the same transaction, deliveries to
        readers no longer active become ``suppressed`` and those past the retry window ``failed``."""
        now = _utc(now)
        q = (
            select(D.id, D.edition_id, D.subscriber_id, D.digest_id, D.message_id, D.attempts, D.created_at,
                   S.email, S.name, S.status, S.bounce_count)
            .join(S, S.id == D.subscriber_id)
            .where(self._due(now, edition_id))
            # No ORDER BY: sorting every due row to find the first few made each claim cost as much as the
            # whole queue (10,000 rows for a batch of 200); the index on (state, next_attempt_at) hands out
            # new deliveries in the order they were queued anyway.
            .limit(limit)
        )
        if self.postgres:
            q = q.with_for_update(of=D, skip_locked=True)
        with self._writing() as conn:
            return self._claim(conn, q, now, lease_seconds, retry_window)

    def _claim(self, conn: Connection, q: Any, now: datetime, lease_seconds: float,
               retry_window: timedelta) -> Claim:
        claim = Claim()
        claimed, suppressed, expired = [], [], []
        by_status: dict[str, list[int]] = {}
        oldest = now - retry_window
        for r in conn.execute(q):
            created = as_utc(r.created_at)
            assert created is not None
            if r.status != SUBSCRIBER_ACTIVE:
                by_status.setdefault(r.status, []).append(r.id)
                suppressed.append(r.id)
            elif created < oldest:
                expired.append(r.id)
            else:
                claimed.append(r.id)
                claim.deliveries.append(DueDelivery(r.id, r.edition_id, r.subscriber_id, r.digest_id,
                                                    r.message_id, r.email, r.name, r.attempts, created,
                                                    r.bounce_count or 0))
        for status, ids in by_status.items():
            conn.execute(update(D).where(D.id.in_(ids)).values(
                state=DELIVERY_SUPPRESSED, claimed_by=None, lease_until=None, updated_at=now,
                last_error=f"not sent: the reader is {status}"))
        if expired:
            hours = retry_window.total_seconds() / 3600
            conn.execute(update(D).where(D.id.in_(expired)).values(
                state=DELIVERY_FAILED, claimed_by=None, lease_until=None, updated_at=now,
                last_error=func.coalesce(D.last_error, f"not sent within {hours:g} hours of being queued")))
        if claimed:
            conn.execute(update(D).where(D.id.in_(claimed)).values(
                state=DELIVERY_CLAIMED, claimed_by=self.owner, updated_at=now,
                lease_until=now + timedelta(seconds=lease_seconds)))
        conn.commit()
        claim.suppressed, claim.expired = len(suppressed), len(expired)
        return claim

    # --- outcomes: one UPDATE and one commit per message --------------------------------------------------

    def mark_sent(self, d: DueDelivery, now: datetime) -> bool:
        """Record the server's 250. False when the row was no longer ours (our lease ran out meanwhile)."""
        stamp = self._bind_time(_utc(now))
        with self._writing() as conn:
            if self._sent_sql is None:
                done = conn.execute(_MARK_SENT, {"did": d.id, "me": self.owner, "now": _utc(now)})
            elif self._sent_positional:
                done = conn.exec_driver_sql(self._sent_sql, (stamp, stamp, d.id, self.owner))
            else:
                done = conn.exec_driver_sql(self._sent_sql, {"now": stamp, "did": d.id, "me": self.owner})
            if d.bounce_count:
                conn.execute(_UNBOUNCE, {"sid": d.subscriber_id})
            conn.commit()
        return done.rowcount == 1

    def mark_retry(self, d: DueDelivery, error: str, next_attempt_at: datetime, now: datetime) -> bool:
        with self._writing() as conn:
            done = conn.execute(_MARK_RETRY, {"did": d.id, "me": self.owner, "now": _utc(now),
                                              "error": error, "next_at": _utc(next_attempt_at)})
            conn.commit()
        return done.rowcount == 1

    def mark_failed(self, d: DueDelivery, error: str, now: datetime, *,
                    bounce_limit: int | None = None) -> bool:
        """Record a permanent failure; with ``bounce_limit`` the reader's bounce count grows too, and at the
        limit the reader is marked bounced (their later deliveries are suppressed)."""
        now = _utc(now)
        with self._writing() as conn:
            done = conn.execute(_MARK_FAILED, {"did": d.id, "me": self.owner, "now": now, "error": error})
            if bounce_limit is not None and done.rowcount == 1:
                conn.execute(_BOUNCE, {"sid": d.subscriber_id, "now": now, "limit": bounce_limit})
            conn.commit()
        return done.rowcount == 1

    def mark_suppressed(self, d: DueDelivery, status: str, now: datetime) -> bool:
        """Not sent: the reader left (unsubscribed, bounced) after the delivery was claimed."""
        with self._writing() as conn:
            done = conn.execute(_MARK_SUPPRESSED, {"did": d.id, "me": self.owner, "now": _utc(now),
                                                   "error": f"not sent: the reader is {status}"})
            conn.commit()
        return done.rowcount == 1

    def inactive_readers(self, subscriber_ids: Sequence[int]) -> dict[int, str]:
        """Which of these readers are no longer active, with their status. On its own connection, so the
        send loop can ask while the recorder thread commits outcomes on the queue's."""
        with self.engine.connect() as conn:
            q = select(S.id, S.status).where(S.id.in_(list(subscriber_ids)), S.status != SUBSCRIBER_ACTIVE)
            return {sid: status for sid, status in conn.execute(q)}

    def halted_editions(self, edition_ids: Sequence[int]) -> dict[int, str]:
        """Which of these editions are paused or cancelled (``store.control``), on its own connection too."""
        with self.engine.connect() as conn:
            q = select(EditionRow.id, EditionRow.state).where(EditionRow.id.in_(list(set(edition_ids))),
                                                              EditionRow.state != EDITION_ACTIVE)
            return {eid: state for eid, state in conn.execute(q)}

    def release(self, deliveries: Sequence[DueDelivery]) -> None:
        """Give back claimed rows that were not attempted: due again at once, attempts unchanged."""
        if deliveries:
            self._release(D.id.in_([d.id for d in deliveries]))

    def release_all(self) -> None:
        if self._conn is not None:
            self._release(D.state == DELIVERY_CLAIMED)

    def _release(self, which: Any) -> None:
        self.conn.rollback()  # after a failed write the connection must be rolled back before its next use
        self.conn.execute(update(D).where(which, D.state == DELIVERY_CLAIMED, D.claimed_by == self.owner)
                          .values(state=_RELEASED_STATE, claimed_by=None, lease_until=None))
        self.conn.commit()


# --- reporting and operator actions (no lock needed) ---------------------------------------------------


def make_due_now(engine: Engine, now: datetime, edition_id: int | None = None) -> int:
    """Bring every waiting retry forward to now (``newsletter retry --now``, after fixing the transport)."""
    now = _utc(now)
    cond = and_(D.state == DELIVERY_RETRY, D.next_attempt_at > now)
    if edition_id is not None:
        cond = and_(cond, D.edition_id == edition_id)
    with engine.begin() as conn:
        return conn.execute(update(D).where(cond).values(next_attempt_at=now)).rowcount or 0


def delivery_list(engine: Engine, edition_id: int, state: str | None = None,
                  limit: int | None = None) -> list[DeliveryInfo]:
    q = (select(D.id, D.edition_id, S.email, D.state, D.attempts, D.message_id, D.next_attempt_at,
                D.last_error, D.sent_at)
         .join(S, S.id == D.subscriber_id).where(D.edition_id == edition_id).order_by(D.id))
    if state:
        q = q.where(D.state == state)
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        return [DeliveryInfo(r.id, r.edition_id, r.email, r.state, r.attempts, r.message_id,
                             as_utc(r.next_attempt_at), r.last_error, as_utc(r.sent_at))
                for r in conn.execute(q)]


def next_attempt(engine: Engine, edition_id: int | None = None) -> datetime | None:
    """When the earliest waiting retry is due."""
    q = select(func.min(D.next_attempt_at)).where(D.state == DELIVERY_RETRY)
    if edition_id is not None:
        q = q.where(D.edition_id == edition_id)
    with engine.connect() as conn:
        return as_utc(conn.execute(q).scalar())


# --- helpers -------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """SQLite stores a datetime's wall-clock digits and drops its zone, so every stored time is UTC."""
    if value.tzinfo is timezone.utc:
        return value
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _owner_key(owner: str) -> int:
    return zlib.crc32(owner.encode()) - 2**31  # a signed int4, as pg_advisory_lock(int, int) wants


def _parse_lock(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _holder_alive(holder: dict[str, Any], now: datetime) -> bool:
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
