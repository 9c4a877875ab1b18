"""Deliveries as the operator sees and nudges them (``newsletter deliveries``, ``retry --now``): no lock needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, func, select, update

from ..models import DELIVERY_RETRY
from .clock import as_utc, to_utc
from .schema import DeliveryRow as D
from .schema import SubscriberRow as S


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


def make_due_now(engine: Engine, now: datetime, edition_id: int | None = None) -> int:
    """Bring every waiting retry forward to now (``newsletter retry --now``, after fixing the transport)."""
    now = to_utc(now)
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
