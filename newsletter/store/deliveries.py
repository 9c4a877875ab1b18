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

On PostgreSQL "sent" is recorded on a connection of its own, in autocommit mode (one round trip per
outcome, no separate COMMIT) and with ``synchronous_commit = off``: the write returns once PostgreSQL has it
(every other session sees it at once, and a sender that dies loses nothing it recorded), without waiting for
the WAL flush to disk, which would otherwise cost each message a disk flush. Only a crash of the database
server itself can lose the last fraction of a second of "sent" outcomes (those messages would go out again,
with the same Message-IDs): the durability SQLite has in WAL mode with ``synchronous=NORMAL``, which the store
uses. Claims and every other outcome commit as usual.

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
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

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
from .delivery_sql import (
    _BOUNCE,
    _MARK_FAILED,
    _MARK_RETRY,
    _MARK_SENT,
    _MARK_SENT_MANY,
    _MARK_SENT_SQL,
    _MARK_SUPPRESSED,
    _RELEASED_STATE,
    _UNBOUNCE,
)
from .delivery_views import DeliveryInfo, delivery_list, make_due_now, next_attempt
from .schema import DeliveryRow, EditionRow, SubscriberRow
from .sender_lock import SQLITE_LOCK_KEY, PgLiveness, SenderBusy, SqliteLock, new_owner

D, S = DeliveryRow, SubscriberRow
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


@dataclass
class Claim:
    deliveries: list[DueDelivery] = field(default_factory=list)
    suppressed: int = 0  # reader unsubscribed (or bounced) after the digest was queued
    expired: int = 0  # not sent within the retry window: now failed


class DeliveryQueue:
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
                self._pg_liveness.take()
                # See the module docstring: "sent" waits for PostgreSQL, not for its disk.
                self._sent_conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._sent_conn.exec_driver_sql("SET synchronous_commit TO off")
                self._sent_cursor = self._sent_conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
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
                if self._sent_cursor is not None:
                    try:
                        self._sent_cursor.close()
                    except Exception:  # noqa: BLE001 - a broken connection: it is discarded below anyway
                        pass
                    self._sent_cursor = None
                if self._sent_conn is not None:
                    try:  # the connection goes back to the pool: as it came
                        self._sent_conn.exec_driver_sql("RESET synchronous_commit")
                    except SQLAlchemyError:
                        self._sent_conn.invalidate()
                    self._sent_conn.close()
                    self._sent_conn = None
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
                   S.email, S.name, S.status, S.bounce_count, S.topics, S.excluded_keywords)
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
                topics = tuple(r.topics) if r.topics is not None else None
                claim.deliveries.append(DueDelivery(r.id, r.edition_id, r.subscriber_id, r.digest_id,
                                                    r.message_id, r.email, r.name, r.attempts, created,
                                                    r.bounce_count or 0, topics, tuple(r.excluded_keywords or ())))
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

    # --- outcomes: each committed before the next message's content goes --------------------------------

    def mark_sent(self, d: DueDelivery, now: datetime) -> bool:
        """Record the server's 250. False when the row was no longer ours (our lease ran out meanwhile)."""
        self._finish()
        stamp = self._bind_time(_utc(now))
        if not d.bounce_count and self._sent_sql is not None and (
                self._sent_conn is not None or not self.conn.in_transaction()):
            params = (stamp, stamp, d.id, self.owner) if self._sent_positional else {
                "now": stamp, "did": d.id, "me": self.owner}
            return self._sent_now(params) == 1
        with self._writing() as conn:
            if self._sent_sql is None:
                done = conn.execute(_MARK_SENT, {"did": d.id, "me": self.owner, "now": _utc(now)})
            elif self._sent_positional:
                done = conn.exec_driver_sql(self._sent_sql, (stamp, stamp, d.id, self.owner))
            else:
                done = conn.exec_driver_sql(self._sent_sql, {"now": stamp, "did": d.id, "me": self.owner})
            if d.bounce_count:
                conn.execute(_UNBOUNCE, {"sids": [d.subscriber_id]})
            conn.commit()
        return done.rowcount == 1

    def _sent_now(self, params: Any) -> int:
        """The "sent" UPDATE through the driver's own cursor (a third of the CPU of the same call through
        SQLAlchemy): on PostgreSQL on the autocommit connection, on SQLite on the queue's connection, committed
        at once (only called when no SQLAlchemy transaction is open on it). Errors are SQLAlchemy's, as every
        other write's."""
        assert self._sent_sql is not None
        if self._sent_conn is not None:
            raw, commit = self._sent_cursor, False
        else:
            dbapi_conn = self.conn.connection.dbapi_connection
            assert dbapi_conn is not None
            if self._sent_cursor is None:
                self._sent_cursor = dbapi_conn.cursor()
            raw, commit = self._sent_cursor, True
        try:
            raw.execute(self._sent_sql, params)
            done = int(raw.rowcount)
            if commit:
                dbapi_conn.commit()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            if commit:
                try:
                    dbapi_conn.rollback()
                except self.engine.dialect.loaded_dbapi.Error:
                    pass
            raise DBAPIError.instance(self._sent_sql, params, exc, self.engine.dialect.loaded_dbapi.Error) from exc
        return done

    # "sent" on PostgreSQL without waiting for the reply: the send loop hands the next message's envelope to
    # the SMTP server meanwhile, and reads the reply (``settle``) before that message's content goes.
    _PG_SENT = ("UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = $1::timestamptz, "
                "updated_at = $1::timestamptz, claimed_by = NULL, lease_until = NULL, last_error = NULL "
                "WHERE id = $2::bigint AND state = 'claimed' AND claimed_by = $3::text").encode()

    @property
    def defers_sent(self) -> bool:
        """True when ``mark_sent_deferred`` can leave its reply for ``settle`` (PostgreSQL through psycopg)."""
        return self._sent_conn is not None and hasattr(self._sent_cursor.connection, "pgconn")

    def mark_sent_deferred(self, d: DueDelivery, now: datetime) -> None:
        """Send the "sent" UPDATE for ``d``; ``settle()`` reads its reply (and must before anything else is
        handed over). Falls back to ``mark_sent`` where it cannot defer; ``settle`` counts a lost row either way."""
        self._finish()
        if not self.defers_sent or d.bounce_count:
            self._lost += 0 if self.mark_sent(d, now) else 1
            return
        pgconn = self._sent_cursor.connection.pgconn
        params = [_utc(now).isoformat().encode(), str(d.id).encode(), self.owner.encode()]
        try:
            pgconn.send_query_params(self._PG_SENT, params)
        except Exception as exc:  # noqa: BLE001 - the driver's error, as SQLAlchemy's
            raise self._db_error(exc) from exc
        self._in_flight = d

    _lost = 0

    def settle(self) -> int:
        """Wait for the reply to a deferred "sent" UPDATE; how many deferred "sent" since the last ``settle``
        found their row no longer ours (another sender had taken it over). Every other call of the queue reads
        a pending reply first too (and counts it for the next ``settle``)."""
        self._finish()
        lost, self._lost = self._lost, 0
        return lost

    def _finish(self) -> None:
        if self._in_flight is None:
            return
        self._in_flight = None
        pgconn = self._sent_cursor.connection.pgconn
        import select

        from psycopg import pq

        try:
            pgconn.consume_input()
            while pgconn.is_busy():
                select.select([pgconn.socket], [], [], 30)
                pgconn.consume_input()
            rows, error = 0, None
            while (result := pgconn.get_result()) is not None:
                if result.status == pq.ExecStatus.COMMAND_OK:
                    rows = result.command_tuples or 0
                else:
                    error = (result.error_message or b"").decode("utf-8", "replace") or "the UPDATE failed"
        except Exception as exc:  # noqa: BLE001 - the driver's error, as SQLAlchemy's
            raise self._db_error(exc) from exc
        if error is not None:
            raise self._db_error(self.engine.dialect.loaded_dbapi.OperationalError(error))
        self._lost += 0 if rows == 1 else 1

    def _db_error(self, exc: BaseException) -> DBAPIError:
        dbapi = self.engine.dialect.loaded_dbapi
        if not isinstance(exc, dbapi.Error):
            exc = dbapi.OperationalError(str(exc))
        return DBAPIError.instance(self._sent_sql or "", None, exc, dbapi.Error)  # type: ignore[arg-type]

    def record_sent(self, deliveries: Sequence[DueDelivery], now: datetime) -> int:
        """Record several 250s in one statement and one commit; how many rows were still ours. The list is
        what one send loop has on the wire at once (at most a claim), never a list that grows with readers."""
        self._finish()
        if len(deliveries) == 1:
            return int(self.mark_sent(deliveries[0], now))
        if not deliveries:
            return 0
        params = {"ids": [d.id for d in deliveries], "me": self.owner, "now": _utc(now)}
        if self._sent_conn is not None and not any(d.bounce_count for d in deliveries):
            return self._sent_conn.execute(_MARK_SENT_MANY, params).rowcount or 0  # autocommitted
        with self._writing() as conn:
            done = conn.execute(_MARK_SENT_MANY, params)
            bounced = [d.subscriber_id for d in deliveries if d.bounce_count]
            if bounced:
                conn.execute(_UNBOUNCE, {"sids": bounced})
            conn.commit()
        return done.rowcount or 0

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
        """Which of these readers (one claim's) are no longer active, with their status."""
        q = select(S.id, S.status).where(S.id.in_(list(subscriber_ids)), S.status != SUBSCRIBER_ACTIVE)
        return dict(self._read(q))  # type: ignore[arg-type]

    def halted_editions(self, edition_ids: Sequence[int]) -> dict[int, str]:
        """Which of these editions are paused or cancelled (``store.control``)."""
        q = select(EditionRow.id, EditionRow.state).where(EditionRow.id.in_(list(set(edition_ids))),
                                                          EditionRow.state != EDITION_ACTIVE)
        return dict(self._read(q))  # type: ignore[arg-type]

    def _read(self, q: Any) -> list[Any]:
        """A read of the send loop on the queue's connection (outside a run: a connection of its own), its
        transaction ended at once so it holds no snapshot (SQLite: nor the WAL) while messages go out."""
        if self._conn is None:
            with self.engine.connect() as conn:
                return list(conn.execute(q))
        with self._writing() as conn:
            rows = list(conn.execute(q))
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
