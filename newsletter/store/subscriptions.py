"""Queries of the reader actions: subscribe requests with their consent record, confirmation, preferences,
unsubscribe and resubscribe; and the editions the web archive shows.

Each function is one transaction on the ``Store``'s engine. The "one confirmation email per address per window"
rule is a conditional UPDATE, so two requests racing for the same address (two processes, or two threads)
cannot both win the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import bindparam, extract, func, or_, select, update

from ..models import (
    CADENCES,
    EDITION_CANCELLED,
    SUBSCRIBER_ACTIVE,
    SUBSCRIBER_PENDING,
    SUBSCRIBER_UNSUBSCRIBED,
    Subscriber,
)
from . import Store, _check_choice, _subscriber, utcnow
from .schema import ConsentRow, EditionPaperRow, EditionRow, PaperRow, SubscriberRow

ACTION_SUBSCRIBE = "subscribe"
ACTION_RESUBSCRIBE = "resubscribe"
ACTION_UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from, as kept in the consent record."""

    ip: str | None = None
    user_agent: str | None = None

    def clipped(self) -> "RequestMeta":
        return RequestMeta((self.ip or "")[:64] or None, (self.user_agent or "")[:500] or None)


@dataclass(frozen=True)
class Choices:
    """What a reader asks to receive."""

    cadence: str = "daily"
    topics: tuple[str, ...] | None = None  # None: every topic, including ones added later
    excluded_keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentRecord:
    id: int
    subscriber_id: int
    action: str
    requested_at: datetime
    ip: str | None
    user_agent: str | None
    form_version: str | None
    choices: Choices | None
    confirmed_at: datetime | None
    confirm_ip: str | None
    confirm_user_agent: str | None


@dataclass(frozen=True)
class SubscribeRequest:
    """The outcome of a subscribe request: ``consent_id`` is None when no confirmation email may go out now
    (one already went to this address within the window)."""

    subscriber: Subscriber
    consent_id: int | None
    requested_at: datetime
    previous_sent_at: datetime | None


@dataclass(frozen=True)
class EditionInfo:
    id: int
    cadence: str
    period: str
    day: date
    subject: str
    created_at: datetime
    paper_count: int


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _choices(cadence: str | None, topics: Sequence[str] | None, excluded: Sequence[str] | None) -> Choices:
    return Choices(cadence or "daily", tuple(topics) if topics is not None else None, tuple(excluded or ()))


def _consent(row: ConsentRow) -> ConsentRecord:
    choices = _choices(row.cadence, row.topics, row.excluded_keywords) if row.cadence else None
    return ConsentRecord(row.id, row.subscriber_id, row.action, aware(row.requested_at),  # type: ignore[arg-type]
                         row.ip, row.user_agent, row.form_version, choices, aware(row.confirmed_at),
                         row.confirm_ip, row.confirm_user_agent)


def _apply(row: SubscriberRow, choices: Choices, now: datetime) -> None:
    _check_choice("cadence", choices.cadence, CADENCES)
    row.cadence = choices.cadence
    row.topics = list(choices.topics) if choices.topics is not None else None
    row.excluded_keywords = list(choices.excluded_keywords)
    row.updated_at = now


# --- reader actions -------------------------------------------------------------------------------------


def request_subscription(store: Store, email: str, choices: Choices, meta: RequestMeta, *, form_version: str,
                         window: timedelta, now: datetime | None = None) -> SubscribeRequest:
    """Record a subscribe request: a new address becomes a pending reader with these choices; an existing
    reader is left as they are (the choices wait in the consent record until the link is clicked). When no
    confirmation went to the address within ``window``, takes the slot and adds the consent record."""
    now = now or utcnow()
    meta = meta.clipped()
    email = email.strip().lower()
    with store.session() as s, s.begin():
        row = s.scalar(select(SubscriberRow).where(SubscriberRow.email == email))
        if row is None:
            row = SubscriberRow(email=email, status=SUBSCRIBER_PENDING, created_at=now, bounce_count=0)
            _apply(row, choices, now)
            s.add(row)
            s.flush()
        elif row.status == SUBSCRIBER_PENDING:  # never confirmed: nothing of theirs to protect
            _apply(row, choices, now)
        previous = aware(row.confirmation_sent_at)
        won = s.execute(
            update(SubscriberRow)
            .where(SubscriberRow.id == row.id,
                   or_(SubscriberRow.confirmation_sent_at.is_(None), SubscriberRow.confirmation_sent_at <= now - window))
            .values(confirmation_sent_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        consent_id = None
        if won:
            consent = ConsentRow(subscriber_id=row.id, action=ACTION_SUBSCRIBE, requested_at=now, ip=meta.ip,
                                 user_agent=meta.user_agent, form_version=form_version, cadence=choices.cadence,
                                 topics=list(choices.topics) if choices.topics is not None else None,
                                 excluded_keywords=list(choices.excluded_keywords))
            s.add(consent)
            s.flush()
            consent_id = consent.id
        s.refresh(row)
        return SubscribeRequest(_subscriber(row), consent_id, now, previous)


def release_confirmation(store: Store, request: SubscribeRequest) -> None:
    """Undo ``request_subscription``'s slot and consent record when the email could not be sent, so the reader
    may try again at once."""
    with store.session() as s, s.begin():
        if request.consent_id is not None:
            consent = s.get(ConsentRow, request.consent_id)
            if consent is not None:
                s.delete(consent)
        s.execute(update(SubscriberRow).where(SubscriberRow.id == request.subscriber.id)
                  .values(confirmation_sent_at=request.previous_sent_at))


def confirm_subscription(store: Store, subscriber_id: int, requested_at: int, meta: RequestMeta,
                         now: datetime | None = None) -> Subscriber | None:
    """Confirm the request made at ``requested_at`` (Unix seconds, as carried by the confirm token): apply its
    choices and make the reader active. A request already confirmed changes nothing and returns the reader
    (the same link clicked twice). None when there is no such request."""
    now = now or utcnow()
    meta = meta.clipped()
    with store.session() as s, s.begin():
        row = s.get(SubscriberRow, subscriber_id)
        if row is None:
            return None
        q = select(ConsentRow).where(ConsentRow.subscriber_id == subscriber_id,
                                     ConsentRow.action == ACTION_SUBSCRIBE).order_by(ConsentRow.id.desc())
        consent = next((c for c in s.scalars(q) if int(aware(c.requested_at).timestamp()) == requested_at),  # type: ignore[union-attr]
                       None)
        if consent is None:
            return None
        if consent.confirmed_at is not None:
            return _subscriber(row)
        consent.confirmed_at, consent.confirm_ip, consent.confirm_user_agent = now, meta.ip, meta.user_agent
        _apply(row, _choices(consent.cadence, consent.topics, consent.excluded_keywords), now)
        row.status, row.confirmed_at, row.unsubscribed_at, row.bounce_count = SUBSCRIBER_ACTIVE, now, None, 0
        s.flush()
        return _subscriber(row)


def request_confirmed(store: Store, subscriber_id: int, requested_at: int) -> bool:
    """Whether the subscribe request made at ``requested_at`` (as its confirm token carries it) was confirmed
    already; False when it is still open or there is no such request. Changes nothing."""
    with store.session() as s:
        q = select(ConsentRow.requested_at, ConsentRow.confirmed_at).where(
            ConsentRow.subscriber_id == subscriber_id, ConsentRow.action == ACTION_SUBSCRIBE).order_by(
            ConsentRow.id.desc())  # the same request confirm_subscription picks
        for asked, confirmed in s.execute(q):
            stamp = aware(asked)
            if stamp is not None and int(stamp.timestamp()) == requested_at:
                return confirmed is not None
        return False


def update_preferences(store: Store, subscriber_id: int, choices: Choices, now: datetime | None = None) -> Subscriber | None:
    now = now or utcnow()
    with store.session() as s, s.begin():
        row = s.get(SubscriberRow, subscriber_id)
        if row is None:
            return None
        _apply(row, choices, now)
        s.flush()
        return _subscriber(row)


def unsubscribe(store: Store, subscriber_id: int, meta: RequestMeta,
                now: datetime | None = None) -> tuple[Subscriber | None, bool]:
    """Unsubscribe at once; returns (reader, whether anything changed). Repeating it changes nothing."""
    now = now or utcnow()
    meta = meta.clipped()
    with store.session() as s, s.begin():
        row = s.get(SubscriberRow, subscriber_id, with_for_update=True)
        if row is None:
            return None, False
        if row.status == SUBSCRIBER_UNSUBSCRIBED:
            return _subscriber(row), False
        row.status, row.unsubscribed_at, row.updated_at = SUBSCRIBER_UNSUBSCRIBED, now, now
        s.add(ConsentRow(subscriber_id=row.id, action=ACTION_UNSUBSCRIBE, requested_at=now, ip=meta.ip,
                         user_agent=meta.user_agent))
        s.flush()
        return _subscriber(row), True


def resubscribe(store: Store, subscriber_id: int, meta: RequestMeta, *, form_version: str,
                now: datetime | None = None) -> Subscriber | None:
    """Make a reader active again with their previous choices. Only reached through a signed link sent to
    the address, which proves the mailbox is theirs, so it is confirmed at once."""
    now = now or utcnow()
    meta = meta.clipped()
    with store.session() as s, s.begin():
        row = s.get(SubscriberRow, subscriber_id, with_for_update=True)
        if row is None:
            return None
        if row.status != SUBSCRIBER_ACTIVE:
            s.add(ConsentRow(subscriber_id=row.id, action=ACTION_RESUBSCRIBE, requested_at=now, ip=meta.ip,
                             user_agent=meta.user_agent, form_version=form_version, cadence=row.cadence,
                             topics=row.topics, excluded_keywords=row.excluded_keywords, confirmed_at=now,
                             confirm_ip=meta.ip, confirm_user_agent=meta.user_agent))
            row.status, row.confirmed_at, row.unsubscribed_at, row.updated_at = SUBSCRIBER_ACTIVE, now, None, now
            row.bounce_count = 0
        s.flush()
        return _subscriber(row)


def subscriber_by_id(store: Store, subscriber_id: int) -> Subscriber | None:
    with store.session() as s:
        row = s.get(SubscriberRow, subscriber_id)
        return _subscriber(row) if row is not None else None


def consents(store: Store, subscriber_id: int) -> list[ConsentRecord]:
    """A reader's consent history, oldest first."""
    with store.session() as s:
        q = select(ConsentRow).where(ConsentRow.subscriber_id == subscriber_id).order_by(ConsentRow.id)
        return [_consent(r) for r in s.scalars(q)]


# --- the archive ------------------------------------------------------------------------------------------


def _paper_count():  # type: ignore[no-untyped-def]
    return (select(func.count()).where(EditionPaperRow.edition_id == EditionRow.id)
            .correlate(EditionRow).scalar_subquery())


def _edition(row: EditionRow, n: int) -> EditionInfo:
    return EditionInfo(row.id, row.cadence, row.period, row.day, row.subject or "", aware(row.created_at), n or 0)  # type: ignore[arg-type]


def published_editions(store: Store, *, limit: int = 50, offset: int = 0, cadence: str | None = None) -> list[EditionInfo]:
    """Editions that hold papers, newest first; a cancelled edition (called off) is not published."""
    count = _paper_count()
    q = (select(EditionRow, count).where(count > 0, EditionRow.state != EDITION_CANCELLED)
         .order_by(EditionRow.day.desc(), EditionRow.id.desc()).limit(limit).offset(offset))
    if cadence:
        q = q.where(EditionRow.cadence == cadence)
    with store.session() as s:
        return [_edition(r, n) for r, n in s.execute(q)]


def edition_info(store: Store, edition_id: int, *, published: bool = False) -> EditionInfo | None:
    """One edition; with ``published``, None for a cancelled one too (its public page and the API's)."""
    q = select(EditionRow, _paper_count()).where(EditionRow.id == edition_id)
    if published:
        q = q.where(EditionRow.state != EDITION_CANCELLED)
    with store.session() as s:
        found = s.execute(q).first()
        return _edition(found[0], found[1]) if found else None


EditionVersion = tuple  # (id, state, subject, day, cadence, period, created_at, papers, newest update, sum of updates)


def _version_query():  # type: ignore[no-untyped-def]
    E, EP, P = EditionRow, EditionPaperRow, PaperRow
    # The newest update, and the sum of every update's second: a row set back in time (another machine's clock)
    # changes the sum though not the newest.
    return (select(E.id, E.state, E.subject, E.day, E.cadence, E.period, E.created_at, func.count(EP.paper_id),
                   func.max(P.updated_at), func.sum(extract("epoch", P.updated_at)))
            .outerjoin(EP, EP.edition_id == E.id).outerjoin(P, P.id == EP.paper_id).group_by(E.id))


_ONE_VERSION = _version_query().where(EditionRow.id == bindparam("edition_id"))  # built once: it runs per request
_RECENT_VERSIONS: dict[int, Any] = {}


def edition_version(store: Store, edition_id: int) -> EditionVersion | None:
    """What an edition's page is made of, in one small aggregate query (the web page cache's key): the
    edition's row, its paper count and its papers' newest ``updated_at`` and their sum (every change of a
    paper's text or counts sets it, an erasure's scrub included). An edition's papers are written once, with
    the edition."""
    with store.engine.connect() as conn:
        row = conn.execute(_ONE_VERSION, {"edition_id": edition_id}).first()
    return tuple(row) if row is not None else None


def published_versions(store: Store, limit: int) -> list[EditionVersion]:
    """``edition_version`` of the newest ``limit`` published editions (what the feeds show), newest first."""
    q = _RECENT_VERSIONS.get(limit)
    if q is None:
        q = _RECENT_VERSIONS[limit] = (
            _version_query().where(EditionRow.state != EDITION_CANCELLED)
            .having(func.count(EditionPaperRow.paper_id) > 0)
            .order_by(EditionRow.day.desc(), EditionRow.id.desc()).limit(limit))
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def purge_unconfirmed(store: Store, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete sign-ups never confirmed whose confirmation link has expired (their consent records go with
    them): an address nobody confirmed is not kept. Returns how many were deleted."""
    from sqlalchemy import delete

    cutoff = (now or utcnow()) - older_than
    with store.session() as s, s.begin():
        stale = select(SubscriberRow.id).where(SubscriberRow.status == SUBSCRIBER_PENDING,
                                               SubscriberRow.confirmed_at.is_(None),
                                               # the latest link sent counts, not the first sign-up
                                               func.coalesce(SubscriberRow.confirmation_sent_at,
                                                             SubscriberRow.created_at) < cutoff)
        # Set-based: the stale readers are a subquery, never a bound list of them (a large import of
        # sign-ups left unconfirmed could be more than a statement can bind).
        plain = {"synchronize_session": False}  # nothing of them is loaded in this session
        s.execute(delete(ConsentRow).where(ConsentRow.subscriber_id.in_(stale)), execution_options=plain)
        return int(s.execute(delete(SubscriberRow).where(SubscriberRow.id.in_(stale)),
                             execution_options=plain).rowcount)
