"""Reading back what an edition held: what rendering a sent digest again (``newsletter preview --edition``) and
building each reader's message in the send loop need.

Example::

    record = edition_record(store.engine, 7)
    ids = digest_paper_ids(store.engine, delivery_digest_id(store.engine, 7, subscriber_id=42))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping, Sequence

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound
from .record import body_id, decode_body
from .schema import DeliveryRow, DigestRow, EditionRow, RenderBodyRow, RenderRow


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


# --- what was rendered: retries and `preview --edition` show exactly what went out -------------------------


def reader_kind(topics: Sequence[str] | None, excluded_keywords: Sequence[str]) -> str:
    """What, besides its papers, shapes a digest for a reader: their topics (order matters not) and keywords."""
    key = json.dumps([sorted(topics) if topics else None, sorted(k.lower() for k in excluded_keywords)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def saved_render(engine: Engine, digest_id: int, kind: str | None = None) -> dict[str, Any] | None:
    """The render kept for a digest and reader kind (any render of the digest when ``kind`` is None)."""
    q = (select(RenderBodyRow.data).join(RenderRow, RenderRow.body_id == RenderBodyRow.id)
         .where(RenderRow.digest_id == digest_id).order_by(RenderRow.id).limit(1))
    if kind is not None:
        q = q.where(RenderRow.reader_kind == kind)
    with engine.connect() as conn:
        data = conn.execute(q).scalar()
    return None if data is None else decode_body(data)


def save_render(engine: Engine, edition_id: int, digest_id: int, kind: str, fields: Mapping[str, Any],
                now: datetime) -> dict[str, Any]:
    """Keep a digest's render; when another sender kept one first, theirs wins and is returned."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(RenderRow).values(edition_id=edition_id, digest_id=digest_id, reader_kind=kind,
                                                  body_id=body_id(conn, fields), created_at=now))
    except IntegrityError:
        pass
    kept = saved_render(engine, digest_id, kind)
    assert kept is not None
    return kept


def most_delivered_digest(engine: Engine, edition_id: int) -> int | None:
    """The digest of an edition that the most readers got (what "the edition" looked like to most)."""
    with engine.connect() as conn:
        return conn.execute(select(DeliveryRow.digest_id).where(DeliveryRow.edition_id == edition_id)
                            .group_by(DeliveryRow.digest_id).order_by(func.count().desc(), DeliveryRow.digest_id)
                            .limit(1)).scalar()


def delivery_queued_at(engine: Engine, edition_id: int, subscriber_id: int) -> datetime | None:
    """When an edition's delivery to a reader was queued: its links are signed as of then, on every attempt."""
    with engine.connect() as conn:
        return conn.execute(select(DeliveryRow.created_at).where(DeliveryRow.edition_id == edition_id,
                                                                 DeliveryRow.subscriber_id == subscriber_id)).scalar()


def digest_listed_ids(engine: Engine, digest_id: int) -> list[int]:
    """The papers a digest's email listed (what counts as sent), in order; all of them for older digests."""
    with engine.connect() as conn:
        row = conn.execute(select(DigestRow.paper_ids, DigestRow.listed_ids).where(DigestRow.id == digest_id)).first()
    if row is None:
        raise NotFound(f"No digest {digest_id}.")
    return [int(i) for i in (row.paper_ids if row.listed_ids is None else row.listed_ids)]
