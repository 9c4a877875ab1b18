"""The delivery queue: every query the send loop makes.

A delivery row moves ``pending → claimed → sent | retry | failed | suppressed`` (``retry`` goes back to
``claimed`` when its next attempt is due). A sender *claims* a batch of due rows with a lease (one
set-based UPDATE of at most ``batch_size`` ids, whatever the number of readers), sends each, and commits
outcomes before it hands over the next message's content, so a crash loses at most the outcomes of the
messages in flight (one per connection); those rows are claimed again later and their messages go out a
second time with the same Message-IDs. Outcomes that arrive together (several connections) are recorded in
one statement and one commit (``record_sent``).

How senders stay out of each other's way is ``store.sender_lock``: any number side by side on PostgreSQL
(claims use ``FOR UPDATE SKIP LOCKED``, so two senders never claim the same row), one at a time on SQLite.

The outcomes ("sent" and the rest, and how "sent" stays durable without costing a disk flush per message)
are ``store.delivery_marks``.

Example::

    queue = DeliveryQueue(store.engine)
    with queue.running(lease_seconds=300):
        claim = queue.claim(100, lease_seconds=300, retry_window=timedelta(days=2), now=utcnow())
        queue.record_sent(claim.deliveries, utcnow())
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..models import (
    DELIVERY_CLAIMED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_RETRY,
    DELIVERY_SUPPRESSED,
    EDITION_ACTIVE,
    SUBSCRIBER_ACTIVE,
)
from .clock import as_utc, to_utc, utcnow
from .delivery_marks import OutcomeMarks
from .delivery_sql import _BATCH_CHANGES, _MARK_SENT_SQL, _RELEASED_STATE
from .delivery_views import DeliveryInfo, delivery_list, make_due_now, next_attempt
from .schema import DeliveryRow, EditionRow, ReaderModelRow, SubscriberRow
from .sender_lock import SQLITE_LOCK_KEY, PgLiveness, SenderBusy, SqliteLock, new_owner

D, S, M = DeliveryRow, SubscriberRow, ReaderModelRow
log = logging.getLogger(__name__)
_utc = to_utc


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery: what the send loop needs to build and send one reader's message (the reader's
    topics and keywords come with the claim, so building the message loads no subscriber)."""

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
    topics: tuple[str, ...] | None = None  # the reader's topics (None: every topic)
    excluded_keywords: tuple[str, ...] = ()
    model: bytes | None = None  # the reader's relevance model (issue 15), if they have signals


@dataclass
class Claim:
    deliveries: list[DueDelivery] = field(default_factory=list)
    suppressed: int = 0  # reader unsubscribed (or bounced) after the digest was queued
    expired: int = 0  # not sent within the retry window: now failed


class DeliveryQueue(OutcomeMarks):
    """The queries of one sender. ``running()`` holds its connection and lock for a run."""

    def __init__(self, engine: Engine, owner: str | None = None) -> None:
        self.engine = engine
        self.owner = owner or new_owner()
        self.postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._sent_conn: Connection | None = None  # PostgreSQL: where "sent" is recorded (module docstring)
        self._sent_cursor: Any = None
        self._in_flight: DueDelivery | None = None  # PostgreSQL: a "sent" UPDATE sent, its reply not read yet
        self._sqlite_lock = SqliteLock(self.owner)
        self._pg_liveness = PgLiveness(engine, self.owner)
        dialect = engine.dialect
        style = {"qmark": "?", "format": "%s", "named": ":{}", "pyformat": "%({})s"}.get(dialect.paramstyle)
        self._sent_sql = (_MARK_SENT_SQL.format(**{n: style.format(n) for n in ("now", "ms", "did", "me")})
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
                self._pg_liveness.take()
                self._open_sent()  # where "sent" is recorded (store.delivery_marks)
            else:
                self._sqlite_lock.take(self._conn, lease_seconds, lock_wait, now)
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
                self._pg_liveness.release()
                if self._conn is not None:
                    self._sqlite_lock.release(self._conn)
            finally:
                self._close_sent()
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
        self._finish()  # a deferred "sent" is read before the queue does anything else
        return self._conn

    def renew(self, lease_seconds: float, now: datetime | None = None) -> None:
        """Extend the SQLite lock's lease (called once per batch); PostgreSQL needs nothing."""
        if not self.postgres:
            self._sqlite_lock.renew(self.conn, lease_seconds, now)

    def take_over_orphans(self) -> int:
        """Make rows claimed by dead senders due again (their lease would free them too, only later)."""
        conn = self.conn
        claimers = conn.execute(select(D.claimed_by).where(D.state == DELIVERY_CLAIMED).distinct()).scalars()
        owners = [o for o in claimers if o and o != self.owner]
        conn.commit()
        dead = owners if not self.postgres else [o for o in owners if not self._pg_liveness.alive(o)]
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
                   S.email, S.name, S.status, S.bounce_count, S.topics, S.excluded_keywords, M.model)
            .join(S, S.id == D.subscriber_id)
            # The reader's model comes with the claim (a primary-key look-up), so their own order costs no query.
            .outerjoin(M, and_(M.subscriber_id == D.subscriber_id, M.signal_count > 0))
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
                topics = tuple(r.topics) if r.topics is not None else None
                claim.deliveries.append(DueDelivery(r.id, r.edition_id, r.subscriber_id, r.digest_id,
                                                    r.message_id, r.email, r.name, r.attempts, created,
                                                    r.bounce_count or 0, topics, tuple(r.excluded_keywords or ()),
                                                    bytes(r.model) if r.model else None))
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


    def batch_changes(self, batch: Sequence[DueDelivery]) -> tuple[dict[int, str], dict[int, str]]:
        """For one claim's deliveries: ({reader: status} of their readers no longer active, {edition: state} of
        their editions paused or cancelled, see ``store.control``), in one statement built once."""
        readers: dict[int, str] = {}
        editions: dict[int, str] = {}
        params = {"sids": list({d.subscriber_id for d in batch}), "eids": list({d.edition_id for d in batch})}
        for kind, id_, state in self._read(_BATCH_CHANGES, params):
            (readers if kind == "reader" else editions)[id_] = state
        return readers, editions

    def _read(self, q: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """A read of the send loop on the queue's connection (outside a run: a connection of its own), its
        transaction ended at once so it holds no snapshot (SQLite: nor the WAL) while messages go out."""
        if self._conn is None:
            with self.engine.connect() as conn:
                return list(conn.execute(q, params))
        with self._writing() as conn:
            rows = list(conn.execute(q, params))
            conn.commit()
        return rows

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


__all__ = ["SQLITE_LOCK_KEY", "Claim", "DeliveryInfo", "DeliveryQueue", "DueDelivery", "SenderBusy", "as_utc",
           "delivery_list", "make_due_now", "next_attempt", "utcnow"]
