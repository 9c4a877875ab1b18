"""Queries of inbound mail: record a bounce, complaint or unsubscribe request with its effect, and list them.

``record_event`` is one transaction: find the delivery and reader the report is about, apply the effect,
store the event. Its ``event_key`` is unique, so a report read twice (a crash between the commit and the
mailbox flag, or a DSN and a webhook for the same message) has one effect.

Hard bounces count toward ``delivery.bounce_limit`` once per delivery. The relay's 250 for a later message
proves nothing about the mailbox, so these counts are not reset by the send loop's successes: the reader's
count is the larger of the stored count plus one and the number of hard-bounced deliveries since they last
confirmed or resubscribed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import CADENCES, SUBSCRIBER_ACTIVE, SUBSCRIBER_BOUNCED, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED
from . import Store, utcnow
from .schema import ConsentRow, DeliveryRow, InboundEventRow, SubscriberRow

E = InboundEventRow

# What an event did (the ``effect`` column).
COUNTED, BOUNCED, UNSUBSCRIBED, RECORDED, UNMATCHED, ALREADY = (
    "counted", "bounced", "unsubscribed", "recorded", "unmatched", "already")
DUPLICATE = "duplicate"  # the same report (or the same delivery's hard bounce) was recorded before


@dataclass(frozen=True)
class EventRecord:
    """An inbound event ready to store; the VERP delivery id and the token's reader are already verified."""

    event_key: str
    source: str
    kind: str
    reason: str
    recipient: str | None = None
    status: str | None = None
    feedback_type: str | None = None
    subject: str | None = None
    original_message_id: str | None = None
    verp_delivery_id: int | None = None
    token_subscriber_id: int | None = None


@dataclass(frozen=True)
class Recorded:
    id: int | None
    effect: str
    subscriber_id: int | None
    email: str | None
    matched_by: str | None  # verp | message-id | token | recipient


@dataclass(frozen=True)
class EventInfo:
    """One event as ``newsletter bounces`` shows it."""

    id: int
    received_at: datetime
    source: str
    kind: str
    email: str | None
    status: str | None
    feedback_type: str | None
    effect: str
    reason: str
    delivery_id: int | None
    edition_id: int | None


# <edition.reader.cadence.period@domain>; 9 digits keep the numbers inside the columns' 32-bit range (a
# real JavaMail id, <000000000.9999999999999.JavaMail…>, looks much like ours).
_OUR_MESSAGE_ID = re.compile(r"<([0-9]{1,9})\.([0-9]{1,9})\.(?:%s)\.[^<>\s@]+@[^<>\s@]+>\Z" % "|".join(CADENCES))


def _match(s: Session, rec: EventRecord) -> tuple[SubscriberRow | None, int | None, str | None]:
    """(reader, delivery id, how it was found)."""
    if rec.kind == "unsubscribe":  # only the signed token names a reader: a From address is easily forged
        row = s.get(SubscriberRow, rec.token_subscriber_id, with_for_update=True) if rec.token_subscriber_id else None
        return row, None, "token" if row else None
    if rec.verp_delivery_id is not None:
        found = s.execute(select(DeliveryRow.id, DeliveryRow.subscriber_id)
                          .where(DeliveryRow.id == rec.verp_delivery_id)).first()
        if found:
            return s.get(SubscriberRow, found.subscriber_id, with_for_update=True), found.id, "verp"
    if rec.original_message_id and (ours := _OUR_MESSAGE_ID.match(rec.original_message_id.strip())):
        # Our Message-IDs name their delivery: <edition.reader.cadence.period@domain>. The (edition, reader)
        # key finds the row by its unique index, and the whole id must still match; deliveries need no
        # index of their own on message_id (it was the largest index of the table).
        found = s.execute(select(DeliveryRow.id, DeliveryRow.subscriber_id)
                          .where(DeliveryRow.edition_id == int(ours[1]), DeliveryRow.subscriber_id == int(ours[2]),
                                 DeliveryRow.message_id == ours[0])).first()
        if found:
            return s.get(SubscriberRow, found.subscriber_id, with_for_update=True), found.id, "message-id"
    if rec.recipient:
        row = s.execute(select(SubscriberRow).where(SubscriberRow.email == rec.recipient.lower())
                        .with_for_update()).scalar_one_or_none()
        if row is not None:
            return row, None, "recipient"
    return None, None, None


def _hard_count(s: Session, reader: SubscriberRow) -> int:
    """Hard-bounced deliveries (or unattributed hard bounces) since the reader last confirmed."""
    since = reader.confirmed_at or reader.created_at
    base = and_(E.subscriber_id == reader.id, E.kind == "hard", E.effect.in_((COUNTED, BOUNCED)))
    if since is not None:
        base = and_(base, E.received_at >= since)
    per_delivery = s.execute(select(func.count(func.distinct(E.delivery_id))).where(base)).scalar_one()
    loose = s.execute(select(func.count()).where(base, E.delivery_id.is_(None))).scalar_one()
    return int(per_delivery) + int(loose)


def _unsubscribe(s: Session, reader: SubscriberRow, why: str, now: datetime) -> str:
    if reader.status in (SUBSCRIBER_UNSUBSCRIBED,):
        return ALREADY
    reader.status, reader.unsubscribed_at, reader.updated_at = SUBSCRIBER_UNSUBSCRIBED, now, now
    s.add(ConsentRow(subscriber_id=reader.id, action="unsubscribe", requested_at=now, ip=None,
                     user_agent=why[:500]))
    return UNSUBSCRIBED


def _effect(s: Session, rec: EventRecord, reader: SubscriberRow | None, delivery_id: int | None,
            bounce_limit: int, now: datetime) -> str:
    if rec.kind == "hard":
        if reader is None:
            return UNMATCHED
        if delivery_id is not None and s.execute(
                select(E.id).where(E.delivery_id == delivery_id, E.kind == "hard",
                                   E.effect.in_((COUNTED, BOUNCED))).limit(1)).first():
            return DUPLICATE
        count = max((reader.bounce_count or 0) + 1, _hard_count(s, reader) + 1)
        reader.bounce_count, reader.updated_at = count, now
        if count >= bounce_limit and reader.status in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING):
            reader.status = SUBSCRIBER_BOUNCED
            return BOUNCED
        return COUNTED
    if rec.kind in ("complaint", "unsubscribe"):
        if reader is None:
            return UNMATCHED
        why = (f"complaint ({rec.feedback_type or 'abuse'}) via {rec.source}" if rec.kind == "complaint"
               else f"mailto unsubscribe via {rec.source}")
        return _unsubscribe(s, reader, why, now)
    return RECORDED


def record_event(store: Store, rec: EventRecord, *, bounce_limit: int, now: datetime | None = None) -> Recorded:
    """Store one event and apply its effect, in one transaction. Example::

        record_event(store, EventRecord("sha256:…", "mailbox", "hard", "550 5.1.1 user unknown",
                                        recipient="ada@example.org"), bounce_limit=3)
    """
    now = now or utcnow()
    try:
        with store.session() as s, s.begin():
            if s.execute(select(E.id).where(E.event_key == rec.event_key)).first():
                return Recorded(None, DUPLICATE, None, None, None)
            reader, delivery_id, matched_by = _match(s, rec)
            effect = _effect(s, rec, reader, delivery_id, bounce_limit, now)
            row = E(event_key=rec.event_key, source=rec.source, kind=rec.kind,
                    recipient=(rec.recipient or "")[:320] or None, subscriber_id=reader.id if reader else None,
                    delivery_id=delivery_id, status=(rec.status or "")[:20] or None,
                    feedback_type=(rec.feedback_type or "")[:40] or None, reason=rec.reason,
                    subject=(rec.subject or "")[:300] or None,
                    original_message_id=(rec.original_message_id or "")[:300] or None,
                    effect=effect, received_at=now)
            s.add(row)
            s.flush()
            return Recorded(row.id, effect, reader.id if reader else None, reader.email if reader else None,
                            matched_by)
    except IntegrityError:  # another process recorded the same report at the same moment
        return Recorded(None, DUPLICATE, None, None, None)


def seen_keys(store: Store, keys: Sequence[str]) -> set[str]:
    """Which of these event keys are recorded already."""
    found: set[str] = set()
    with store.session() as s:
        for i in range(0, len(keys), 500):
            found.update(s.execute(select(E.event_key).where(E.event_key.in_(keys[i:i + 500]))).scalars())
    return found


def events(store: Store, *, kinds: Sequence[str] | None = None, email: str | None = None,
           limit: int = 100) -> list[EventInfo]:
    """The newest events first."""
    q = (select(E.id, E.received_at, E.source, E.kind, func.coalesce(SubscriberRow.email, E.recipient).label("email"),
                E.status, E.feedback_type, E.effect, E.reason, E.delivery_id, DeliveryRow.edition_id)
         .outerjoin(SubscriberRow, SubscriberRow.id == E.subscriber_id)
         .outerjoin(DeliveryRow, DeliveryRow.id == E.delivery_id)
         .order_by(E.received_at.desc(), E.id.desc()).limit(limit))
    if kinds:
        q = q.where(E.kind.in_(list(kinds)))
    if email:
        q = q.where(func.coalesce(SubscriberRow.email, E.recipient) == email.lower())
    from .deliveries import as_utc

    with store.session() as s:
        return [EventInfo(r.id, as_utc(r.received_at) or r.received_at, r.source, r.kind, r.email, r.status,
                          r.feedback_type, r.effect, r.reason, r.delivery_id, r.edition_id)
                for r in s.execute(q)]


def counts_by_kind(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {k: int(n) for k, n in s.execute(select(E.kind, func.count()).group_by(E.kind))}
