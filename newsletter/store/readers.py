"""Queries of reader management: change a reader's choices, show everything kept about one reader, and erase
one (the GDPR erasure).

``erase`` leaves no personal data behind: the reader's row, their consent records, their signals and model
(issue 15), their deliveries and the bounces, complaints and unsubscribe requests about them are deleted, and the address is scrubbed from every
other text column that mentions it (an error message of another delivery, a report's reason). On SQLite the
deleted bytes are overwritten (``secure_delete``) and the write-ahead log is checkpointed and truncated, so the
address is not left in the file's free pages either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import String, Text, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..models import CADENCES, Subscriber
from . import Store, _check_choice, _subscriber, utcnow
from .deliveries import as_utc
from .inbound import EventInfo, events
from .schema import Base, ConsentRow, DeliveryRow, EditionRow, InboundEventRow, ReaderModelRow, SignalRow, SubscriberRow
from .signals import SignalInfo, reader_signals
from .subscriptions import ConsentRecord, consents

ERASED = "[erased]"  # what the address becomes where another record mentions it


@dataclass(frozen=True)
class ReaderDelivery:
    edition_id: int
    cadence: str
    period: str
    state: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class ReaderRecord:
    """Everything kept about one reader, for ``newsletter subscribers show``."""

    subscriber: Subscriber
    bounce_count: int
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    updated_at: datetime | None
    consents: list[ConsentRecord]
    delivery_counts: dict[str, int]  # state -> deliveries, over every edition
    deliveries: list[ReaderDelivery]  # the newest first, at most ``limit``
    bounces: list[EventInfo]  # bounces, complaints and unsubscribe requests about them, newest first
    signals: list[SignalInfo] = field(default_factory=list)  # more/fewer/seed/click (issue 15), newest first


@dataclass(frozen=True)
class Erased:
    """What ``erase`` removed: counts only, the address itself is gone."""

    subscriber_id: int
    consents: int
    deliveries: int
    events: int
    scrubbed: int  # other fields the address was removed from
    signals: int = 0  # their signals (the reader's model goes with them)


def _row(s: Session, email: str) -> SubscriberRow:
    row = s.scalar(select(SubscriberRow).where(SubscriberRow.email == email.strip().lower()))
    if row is None:
        raise NotFound(f"No subscriber {email.strip()}.", hint="see `newsletter subscribers list`")
    return row


def update_reader(store: Store, email: str, *, cadence: str | None = None, topics: Sequence[str] | None = None,
                  all_topics: bool = False, excluded_keywords: Sequence[str] | None = None,
                  name: str | None = None, now: datetime | None = None) -> Subscriber:
    """Change what is given and keep the rest: ``topics`` (``all_topics``: every topic, also ones added later),
    ``cadence``, ``excluded_keywords`` (empty: none), ``name`` (empty: none)."""
    now = now or utcnow()
    with store.session() as s, s.begin():
        row = _row(s, email)
        if cadence is not None:
            _check_choice("cadence", cadence, CADENCES)
            row.cadence = cadence
        if all_topics:
            row.topics = None
        elif topics is not None:
            row.topics = list(topics)
        if excluded_keywords is not None:
            row.excluded_keywords = list(excluded_keywords)
        if name is not None:
            row.name = name.strip() or None
        row.updated_at = now
        s.flush()
        return _subscriber(row)


def reader_record(store: Store, email: str, limit: int = 20) -> ReaderRecord:
    """The reader's status and choices, consent records, deliveries (counted in SQL, the newest listed) and the
    inbound events about them."""
    with store.session() as s:
        row = _row(s, email)
        sub = _subscriber(row)
        counts = {state: int(n) for state, n in s.execute(
            select(DeliveryRow.state, func.count()).where(DeliveryRow.subscriber_id == row.id)
            .group_by(DeliveryRow.state))}
        q = (select(DeliveryRow.edition_id, EditionRow.cadence, EditionRow.period, DeliveryRow.state,
                    DeliveryRow.attempts, DeliveryRow.sent_at, DeliveryRow.last_error)
             .join(EditionRow, EditionRow.id == DeliveryRow.edition_id)
             .where(DeliveryRow.subscriber_id == row.id)
             .order_by(DeliveryRow.edition_id.desc()).limit(limit))
        listed = [ReaderDelivery(r.edition_id, r.cadence, r.period, r.state, r.attempts, as_utc(r.sent_at),
                                 r.last_error) for r in s.execute(q)]
        record = dict(bounce_count=row.bounce_count or 0, confirmed_at=as_utc(row.confirmed_at),
                      unsubscribed_at=as_utc(row.unsubscribed_at), updated_at=as_utc(row.updated_at))
    return ReaderRecord(sub, consents=consents(store, sub.id), delivery_counts=counts, deliveries=listed,
                        bounces=events(store, email=sub.email, limit=limit),
                        signals=reader_signals(store.engine, sub.id), **record)


def _text_columns() -> list[tuple[Any, Any, list[Any]]]:
    """(table, column, primary key columns) of every String and Text column of the schema."""
    out = []
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        for column in table.columns:
            if isinstance(column.type, (String, Text)) and keys:
                out.append((table, column, keys))
    return out


def erase(store: Store, email: str) -> Erased:
    """The GDPR erasure of one reader, in one transaction (see the module docstring)."""
    address = email.strip().lower()
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    sqlite = store.engine.dialect.name == "sqlite"
    with store.session() as s, s.begin():
        if sqlite:
            s.execute(text("PRAGMA secure_delete=ON"))
        row = _row(s, address)
        sid = row.id
        theirs = select(DeliveryRow.id).where(DeliveryRow.subscriber_id == sid)
        gone_events = s.execute(delete(InboundEventRow).where(or_(
            InboundEventRow.subscriber_id == sid, func.lower(InboundEventRow.recipient) == address,
            InboundEventRow.delivery_id.in_(theirs)))).rowcount
        gone_consents = s.execute(delete(ConsentRow).where(ConsentRow.subscriber_id == sid)).rowcount
        gone_signals = s.execute(delete(SignalRow).where(SignalRow.subscriber_id == sid)).rowcount
        s.execute(delete(ReaderModelRow).where(ReaderModelRow.subscriber_id == sid))
        gone_deliveries = s.execute(delete(DeliveryRow).where(DeliveryRow.subscriber_id == sid)).rowcount
        s.execute(delete(SubscriberRow).where(SubscriberRow.id == sid))
        scrubbed = 0
        now = utcnow()
        for table, column, keys in _text_columns():  # what else mentions the address: scrubbed, not deleted
            hits = s.execute(select(*keys, column).where(
                func.lower(column).contains(address, autoescape=True))).all()
            for hit in hits:
                where = [k == v for k, v in zip(keys, hit[:-1])]
                values: dict[str, Any] = {column.name: pattern.sub(ERASED, hit[-1])}
                if "updated_at" in table.c:  # a changed row says so (the web pages' cache keys on it)
                    values["updated_at"] = now
                s.execute(update(table).where(*where).values(values))
                scrubbed += 1
        if sqlite:
            s.execute(text("PRAGMA secure_delete=OFF"))
    if sqlite:  # the old pages stay in the write-ahead log until it is checkpointed
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Erased(sid, gone_consents, gone_deliveries, gone_events, scrubbed, gone_signals)


__all__ = ["ERASED", "Erased", "ReaderDelivery", "ReaderRecord", "erase", "reader_record", "update_reader"]


@dataclass(frozen=True)
class ReaderPage:
    """One page of a reader search, in id order; ``next_after`` continues it (None: the last page)."""

    readers: list[tuple[Subscriber, int]]  # (reader, bounce count)
    next_after: int | None


def search_readers(store: Store, *, query: str | None = None, status: str | None = None,
                   after: int | None = None, limit: int = 50) -> ReaderPage:
    """Readers whose address contains ``query`` (any part, case-insensitive), with ``status``, after the reader
    id ``after`` (keyset pagination: each page is one indexed range scan, however deep).

    Example: ``search_readers(store, query="@example.org", status="active").readers``
    """
    q = select(SubscriberRow).order_by(SubscriberRow.id).limit(limit + 1)
    if query:
        escaped = query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(SubscriberRow.email.like(f"%{escaped}%", escape="\\"))
    if status:
        q = q.where(SubscriberRow.status == status)
    if after:
        q = q.where(SubscriberRow.id > after)
    with store.session() as s:
        rows = list(s.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return ReaderPage([(_subscriber(r), r.bounce_count or 0) for r in rows], rows[-1].id if more and rows else None)
