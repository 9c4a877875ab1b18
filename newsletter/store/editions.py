"""Reading back what an edition held: what rendering a sent digest again (``newsletter preview --edition``) and
building each reader's message in the send loop need.

Example::

    record = edition_record(store.engine, 7)
    ids = digest_paper_ids(store.engine, delivery_digest_id(store.engine, 7, subscriber_id=42))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, select

from ..errors import NotFound
from .schema import DeliveryRow, DigestRow, EditionRow


@dataclass(frozen=True)
class EditionRecord:
    id: int
    cadence: str
    period: str
    day: date
    subject: str
    created_at: datetime


def edition_record(engine: Engine, edition_id: int) -> EditionRecord:
    """One edition; raises NotFound."""
    with engine.connect() as conn:
        row = conn.execute(select(EditionRow.id, EditionRow.cadence, EditionRow.period, EditionRow.day,
                                  EditionRow.subject, EditionRow.created_at)
                           .where(EditionRow.id == edition_id)).first()
    if row is None:
        raise NotFound(f"No edition {edition_id}.", hint="see `newsletter deliveries` for the editions made")
    return EditionRecord(row.id, row.cadence, row.period, row.day, row.subject or "", row.created_at)


def digest_paper_ids(engine: Engine, digest_id: int) -> list[int]:
    """The paper ids of one digest, in digest order; raises NotFound."""
    with engine.connect() as conn:
        ids = conn.execute(select(DigestRow.paper_ids).where(DigestRow.id == digest_id)).scalar()
    if ids is None:
        raise NotFound(f"No digest {digest_id}.")
    return [int(i) for i in ids]


def delivery_digest_id(engine: Engine, edition_id: int, subscriber_id: int) -> int | None:
    """The digest an edition's delivery to a subscriber carries, or None when the edition has no delivery for them."""
    with engine.connect() as conn:
        return conn.execute(select(DeliveryRow.digest_id).where(DeliveryRow.edition_id == edition_id,
                                                                DeliveryRow.subscriber_id == subscriber_id)).scalar()
