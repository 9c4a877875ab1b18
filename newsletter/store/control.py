"""Queries of edition control: list the editions with their state, and pause, resume or cancel one.

Only an active edition's deliveries are claimed (``DeliveryQueue._due``), so a paused edition waits, whatever
runs (``send``, ``retry``, the scheduler), until ``resume``; a running sender looks at its batch's editions
again as it looks at its readers (at most every ``recheck_seconds``) and gives the rest of the batch back.
Cancelling marks the deliveries not yet sent (nor in a sender's hands) ``cancelled``; every delivery of a
cancelled edition that was not sent gives its papers back, so they stay eligible for the next edition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, and_, func, or_, select, update

from ..errors import NewsletterError, NotFound
from ..models import (
    DELIVERY_CANCELLED,
    DELIVERY_CLAIMED,
    DELIVERY_PENDING,
    DELIVERY_RETRY,
    EDITION_ACTIVE,
    EDITION_CANCELLED,
    EDITION_PAUSED,
)
from . import utcnow
from .schema import DeliveryRow, EditionRow

E, D = EditionRow, DeliveryRow
ACTIONS = {"pause": EDITION_PAUSED, "resume": EDITION_ACTIVE, "cancel": EDITION_CANCELLED}


@dataclass(frozen=True)
class EditionState:
    id: int
    cadence: str
    period: str
    day: date
    subject: str
    state: str
    deliveries: dict[str, int]  # delivery state -> count
    created_at: datetime | None


@dataclass(frozen=True)
class StateChange:
    edition_id: int
    before: str
    after: str
    cancelled: int = 0  # deliveries marked cancelled


def edition_states(engine: Engine, *, state: str | None = None, limit: int | None = 20) -> list[EditionState]:
    """The newest editions first, with their state and their deliveries counted by state (in SQL)."""
    q = select(E.id, E.cadence, E.period, E.day, E.subject, E.state, E.created_at).order_by(E.day.desc(),
                                                                                          E.id.desc())
    if state:
        q = q.where(E.state == state)
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        counts: dict[int, dict[str, int]] = {r.id: {} for r in rows}
        if rows:
            for eid, st, n in conn.execute(select(D.edition_id, D.state, func.count())
                                           .where(D.edition_id.in_(list(counts))).group_by(D.edition_id, D.state)):
                counts[eid][st] = int(n)
    return [EditionState(r.id, r.cadence, r.period, r.day, r.subject or "", r.state, counts[r.id], r.created_at)
            for r in rows]


def edition_state(engine: Engine, edition_id: int) -> str | None:
    """The state of one edition (``active``, ``paused``, ``cancelled``), None when there is no such edition."""
    with engine.connect() as conn:
        return conn.execute(select(E.state).where(E.id == edition_id)).scalar_one_or_none()


def change_state(engine: Engine, edition_id: int, action: str, now: datetime | None = None) -> StateChange:
    """``pause``, ``resume`` or ``cancel`` one edition, in one transaction. Pausing or resuming twice changes
    nothing; a cancelled edition stays cancelled."""
    if action not in ACTIONS:
        raise NewsletterError(f"Unknown action {action!r}.", hint="use pause, resume or cancel")
    now = now or utcnow()
    target = ACTIONS[action]
    with engine.begin() as conn:
        q = select(E.state).where(E.id == edition_id)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update()
        before = conn.execute(q).scalar()
        if before is None:
            raise NotFound(f"No edition {edition_id}.", hint="see `newsletter edition list`")
        if before == EDITION_CANCELLED and target != EDITION_CANCELLED:
            raise NewsletterError(f"Edition {edition_id} was cancelled; it cannot be {action}d.",
                                  hint="its unsent papers go in the next edition")
        cancelled = 0
        if before != target:
            conn.execute(update(E).where(E.id == edition_id).values(state=target))
        if target == EDITION_CANCELLED:
            # Not those a running sender holds: it gives them back (the edition is no longer active) and they
            # stay unsent, which for a cancelled edition gives their papers back all the same.
            waiting = or_(D.state.in_((DELIVERY_PENDING, DELIVERY_RETRY)),
                          and_(D.state == DELIVERY_CLAIMED, D.lease_until < now))
            cancelled = conn.execute(update(D).where(D.edition_id == edition_id, waiting).values(
                state=DELIVERY_CANCELLED, claimed_by=None, lease_until=None, next_attempt_at=None, updated_at=now,
                last_error="not sent: the edition was cancelled")).rowcount or 0
    return StateChange(edition_id, before, target, cancelled)


def halted_editions(engine: Engine, edition_ids: set[int] | list[int]) -> dict[int, str]:
    """Which of these editions are no longer active, with their state (the send loop's recheck)."""
    if not edition_ids:
        return {}
    with engine.connect() as conn:
        q = select(E.id, E.state).where(E.id.in_(list(edition_ids)), E.state != EDITION_ACTIVE)
        return {eid: st for eid, st in conn.execute(q)}


__all__ = ["ACTIONS", "EditionState", "StateChange", "change_state", "edition_states", "halted_editions"]
