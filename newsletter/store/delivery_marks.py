"""The delivery queue's outcomes: "sent", retry, failed, suppressed, each durable before the next message goes.

Every outcome is committed before the next message's content is handed over, so a crash (of the sender, or
of the database server) repeats at most the messages in flight, one per connection, with their Message-IDs
unchanged. Outcomes that arrive together (several connections) go in one statement and one commit
(``record_sent``).

"sent" is the statement every message pays for, so it skips SQLAlchemy's statement machinery (the driver's
own cursor, plain SQL). On PostgreSQL it runs on a connection of its own in autocommit mode (one round trip,
no separate COMMIT) with ``synchronous_commit`` left on: PostgreSQL answers once the WAL is on disk. The send
loop does not wait for that answer at once: the UPDATE goes out after message N's 250 (``mark_sent_deferred``)
and its reply is read (``settle``) after message N+1's envelope (MAIL FROM, RCPT TO) and just before N+1's
content, so the WAL flush overlaps the SMTP exchange and no message's content goes while an earlier "sent" is
not yet on disk. Claims and every other outcome commit as usual on the queue's connection.

"sent" carries the message's SMTP exchange time (``smtp_ms``, what the messenger's ``send`` returned; None for
a transport without one) in the same statement, so the report's per-domain times cost no write of their own.
"""

from __future__ import annotations

import select as _select
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .clock import to_utc as _utc
from .delivery_sql import _BOUNCE, _MARK_FAILED, _MARK_RETRY, _MARK_SENT, _MARK_SUPPRESSED, _UNBOUNCE, mark_sent_many

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from datetime import datetime

    from .deliveries import DueDelivery


class OutcomeMarks:
    """The outcome half of ``DeliveryQueue`` (a mixin: it uses the queue's connection, owner and engine)."""

    engine: Engine
    owner: str
    postgres: bool
    _sent_conn: Connection | None
    _sent_cursor: Any
    _in_flight: DueDelivery | None
    _sent_sql: str | None
    _sent_positional: bool
    _lost = 0

    if TYPE_CHECKING:
        @property
        def conn(self) -> Connection: ...

        def _writing(self) -> AbstractContextManager[Connection]: ...

    def _open_sent(self) -> None:
        """PostgreSQL: the autocommit connection "sent" goes out on (see the module docstring)."""
        self._sent_conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._sent_cursor = self._sent_conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def _close_sent(self) -> None:
        if self._sent_cursor is not None:
            try:
                self._sent_cursor.close()
            except Exception:  # noqa: BLE001 - a broken connection: it is discarded below anyway
                pass
            self._sent_cursor = None
        if self._sent_conn is not None:
            if self._in_flight is not None:  # a reply never read: the connection is not fit to reuse
                self._in_flight = None
                self._sent_conn.invalidate()
            self._sent_conn.close()
            self._sent_conn = None

    def mark_sent(self, d: DueDelivery, now: datetime, smtp_ms: int | None = None) -> bool:
        """Record the server's 250 (and the SMTP exchange's time). False when the row was no longer ours (our
        lease ran out meanwhile)."""
        self._finish()
        stamp = self._bind_time(_utc(now))
        if not d.bounce_count and self._sent_sql is not None and (
                self._sent_conn is not None or not self.conn.in_transaction()):
            params = (stamp, stamp, smtp_ms, d.id, self.owner) if self._sent_positional else {
                "now": stamp, "ms": smtp_ms, "did": d.id, "me": self.owner}
            return self._sent_now(params) == 1
        with self._writing() as conn:
            if self._sent_sql is None:
                done = conn.execute(_MARK_SENT, {"did": d.id, "me": self.owner, "now": _utc(now), "ms": smtp_ms})
            elif self._sent_positional:
                done = conn.exec_driver_sql(self._sent_sql, (stamp, stamp, smtp_ms, d.id, self.owner))
            else:
                done = conn.exec_driver_sql(self._sent_sql, {"now": stamp, "ms": smtp_ms, "did": d.id,
                                                             "me": self.owner})
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
                "updated_at = $1::timestamptz, smtp_ms = $4::integer, claimed_by = NULL, lease_until = NULL, "
                "last_error = NULL WHERE id = $2::bigint AND state = 'claimed' AND claimed_by = $3::text").encode()

    @property
    def defers_sent(self) -> bool:
        """True when ``mark_sent_deferred`` can leave its reply for ``settle`` (PostgreSQL through psycopg)."""
        return self._sent_conn is not None and hasattr(self._sent_cursor.connection, "pgconn")

    def mark_sent_deferred(self, d: DueDelivery, now: datetime, smtp_ms: int | None = None) -> None:
        """Send the "sent" UPDATE for ``d``; ``settle()`` reads its reply (and must before anything else is
        handed over). Falls back to ``mark_sent`` where it cannot defer; ``settle`` counts a lost row either way."""
        self._finish()
        if not self.defers_sent or d.bounce_count:
            self._lost += 0 if self.mark_sent(d, now, smtp_ms) else 1
            return
        pgconn = self._sent_cursor.connection.pgconn
        params = [_utc(now).isoformat().encode(), str(d.id).encode(), self.owner.encode(),
                  None if smtp_ms is None else str(smtp_ms).encode()]
        try:
            pgconn.send_query_params(self._PG_SENT, params)
        except Exception as exc:  # noqa: BLE001 - the driver's error, as SQLAlchemy's
            raise self._db_error(exc) from exc
        self._in_flight = d

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
        from psycopg import pq

        try:
            pgconn.consume_input()
            while pgconn.is_busy():
                _select.select([pgconn.socket], [], [], 30)
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

    def record_sent(self, deliveries: Sequence[DueDelivery], now: datetime,
                    smtp_ms: Sequence[int | None] | None = None) -> int:
        """Record several 250s (with each one's SMTP time, ``smtp_ms`` in the same order) in one statement and
        one commit; how many rows were still ours. The list is what one send loop has on the wire at once (at
        most a claim), never a list that grows with readers."""
        self._finish()
        times = list(smtp_ms) if smtp_ms is not None else [None] * len(deliveries)
        if len(deliveries) == 1:
            return int(self.mark_sent(deliveries[0], now, times[0]))
        if not deliveries:
            return 0
        params = {"ids": [d.id for d in deliveries], "me": self.owner, "now": _utc(now)}
        statement = mark_sent_many({d.id: ms for d, ms in zip(deliveries, times)})
        if self._sent_conn is not None and not any(d.bounce_count for d in deliveries):
            return self._sent_conn.execute(statement, params).rowcount or 0  # autocommitted
        with self._writing() as conn:
            done = conn.execute(statement, params)
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
