"""The delivery queue's statements, built once: the per-message cost is what limits the send rate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, case, text, update

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
from .schema import DeliveryRow as D
from .schema import SubscriberRow as S

_RELEASED_STATE = case((D.attempts > 0, DELIVERY_RETRY), else_=DELIVERY_PENDING)
_MINE = and_(D.state == DELIVERY_CLAIMED, D.claimed_by == bindparam("me"))
_MARK_SENT = (
    update(D)
    .where(D.id == bindparam("did"), _MINE)
    .values(state=DELIVERY_SENT, attempts=D.attempts + 1, sent_at=bindparam("now"), smtp_ms=bindparam("ms"),
            updated_at=bindparam("now"), claimed_by=None, lease_until=None, last_error=None)
)
_MARK_SENT_MANY = (
    update(D)
    .where(D.id.in_(bindparam("ids", expanding=True)), _MINE)
    .values(state=DELIVERY_SENT, attempts=D.attempts + 1, sent_at=bindparam("now"),
            updated_at=bindparam("now"), claimed_by=None, lease_until=None, last_error=None)
)


def mark_sent_many(times: dict[int, int | None]) -> Any:
    """``_MARK_SENT_MANY`` with each message's SMTP time (``{delivery id: ms}``) in the same statement: one
    ``CASE id WHEN .. THEN ..`` with a branch per message that finished together (at most the connections of
    one sender), so the times cost no statement of their own."""
    known = {did: ms for did, ms in times.items() if ms is not None}
    if not known:
        return _MARK_SENT_MANY
    return _MARK_SENT_MANY.values(smtp_ms=case(known, value=D.id, else_=None))
_MARK_RETRY = (
    update(D)
    .where(D.id == bindparam("did"), _MINE)
    .values(state=DELIVERY_RETRY, attempts=D.attempts + 1, next_attempt_at=bindparam("next_at"),
            last_error=bindparam("error"), updated_at=bindparam("now"), claimed_by=None, lease_until=None)
)
_MARK_FAILED = (
    update(D)
    .where(D.id == bindparam("did"), _MINE)
    .values(state=DELIVERY_FAILED, attempts=D.attempts + 1, last_error=bindparam("error"),
            updated_at=bindparam("now"), claimed_by=None, lease_until=None)
)
_MARK_SUPPRESSED = (
    update(D)
    .where(D.id == bindparam("did"), _MINE)
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
_UNBOUNCE = update(S).where(S.id.in_(bindparam("sids", expanding=True)), S.bounce_count > 0).values(bounce_count=0)
# The statement every sent message pays for, as plain driver SQL: executing it through SQLAlchemy's statement
# machinery costs about as much again as SQLite's own UPDATE and commit (see bench/bench_deliver.py).
_MARK_SENT_SQL = ("UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = {now}, "
                  "updated_at = {now}, smtp_ms = {ms}, claimed_by = NULL, lease_until = NULL, last_error = NULL "
                  "WHERE id = {did} AND state = 'claimed' AND claimed_by = {me}")
# What changed for a batch since it was claimed: its readers no longer active, its editions paused or
# cancelled. Built once (its expanding lists hold one claim's readers, at most ``batch_size``), looked at
# every half second of sending.
_BATCH_CHANGES = text(
    f"SELECT 'reader' AS kind, id, status AS state FROM subscribers "
    f"WHERE id IN :sids AND status <> '{SUBSCRIBER_ACTIVE}' "
    f"UNION ALL "
    f"SELECT 'edition', id, state FROM editions WHERE id IN :eids AND state <> '{EDITION_ACTIVE}'"
).bindparams(bindparam("sids", expanding=True), bindparam("eids", expanding=True))
