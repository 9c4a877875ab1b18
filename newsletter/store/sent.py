"""The sent record, read for planning: each active reader's choices and history, streamed in batches.

Nothing here binds a list that grows with readers or papers. Readers are read in keyset-paginated batches
(``id > last seen ORDER BY id LIMIT n``); their deliveries since a day are aggregated in SQL to one short
string per reader (``"12t,15r"``: digest 12 held, digest 15 given back): on PostgreSQL fetched for the same id
range, on SQLite by a correlated subquery in the same statement. The
digests those strings name are few (one per distinct content of an edition) and read once.

Example::

    digests = sent_digests(store.engine, since)
    for batch in reader_batches(store.engine, "daily", since):
        for sid, topics_json, excluded_json, history in batch: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterator, Sequence

from sqlalchemy import Engine, String, Text, and_, case, cast, func, literal, or_, select

from ..models import DELIVERY_SENT, EDITION_CANCELLED, SUBSCRIBER_ACTIVE, TAKEN_DELIVERY_STATES
from .schema import DeliveryRow, DigestRow, EditionRow, SubscriberRow

BATCH = 5000  # readers per batch: bounded memory, few round trips
ID_CHUNK = 500  # ids bound per statement when a caller names readers or papers


@dataclass(frozen=True)
class SentDigest:
    id: int
    papers: tuple[int, ...]  # what counts as sent for it: the listed papers (all of them for older rows)


ReaderRow = tuple[int, "str | None", "str | None", "str | None"]  # id, topics JSON, excluded JSON, history


def _held() -> Any:
    """'t' when a delivery holds its papers (sent, or on its way in an edition not cancelled), else 'r'."""
    return case((and_(DeliveryRow.state.in_(TAKEN_DELIVERY_STATES),
                      or_(DeliveryRow.state == DELIVERY_SENT, EditionRow.state != EDITION_CANCELLED)),
                 literal("t")), else_=literal("r"))


def _aggregate(engine: Engine, token: Any) -> Any:
    if engine.dialect.name == "postgresql":
        return func.string_agg(token, literal(","))
    return func.group_concat(token, literal(","))


def sent_digests(engine: Engine, since: date) -> dict[int, SentDigest]:
    """Every digest of the editions made on or after ``since`` that has a delivery (a few per edition)."""
    q = (select(DigestRow.id, DigestRow.paper_ids, DigestRow.listed_ids)
         .join(EditionRow, EditionRow.id == DigestRow.edition_id).where(EditionRow.day >= since))
    with engine.connect() as conn:
        return {i: SentDigest(i, tuple(int(p) for p in (ids if listed is None else listed)))
                for i, ids, listed in conn.execute(q)}


def parse_history(history: str | None, digests: dict[int, SentDigest]) -> tuple[frozenset[int], frozenset[int]]:
    """(papers taken, papers given back and not taken since) of a reader's history string."""
    if not history:
        return frozenset(), frozenset()
    taken: set[int] = set()
    returned: set[int] = set()
    for token in history.split(","):
        digest = digests.get(int(token[:-1]))
        if digest is not None:
            (taken if token[-1] == "t" else returned).update(digest.papers)
    return frozenset(taken), frozenset(returned - taken)


def reader_batches(engine: Engine, cadence: str, since: date, subscriber_ids: Sequence[int] | None = None,
                   batch: int = BATCH) -> Iterator[list[ReaderRow]]:
    """The active readers of ``cadence`` in batches, ascending by id: (id, topics JSON, excluded keywords JSON,
    history since ``since``). With ``subscriber_ids``, only those readers (in chunks of ``ID_CHUNK``)."""
    readers = (select(SubscriberRow.id, cast(SubscriberRow.topics, Text), cast(SubscriberRow.excluded_keywords, Text))
               .where(SubscriberRow.status == SUBSCRIBER_ACTIVE, SubscriberRow.cadence == cadence)
               .order_by(SubscriberRow.id))
    token = cast(DeliveryRow.digest_id, String) + _held()
    history = (select(DeliveryRow.subscriber_id, _aggregate(engine, token))
               .join(EditionRow, EditionRow.id == DeliveryRow.edition_id)
               .where(EditionRow.day >= since).group_by(DeliveryRow.subscriber_id))
    with engine.connect() as conn:
        if subscriber_ids is not None:
            wanted = sorted(set(subscriber_ids))
            for start in range(0, len(wanted), ID_CHUNK):
                chunk = wanted[start:start + ID_CHUNK]
                rows = conn.execute(readers.where(SubscriberRow.id.in_(chunk))).all()
                if rows:
                    hist = dict(conn.execute(history.where(DeliveryRow.subscriber_id.in_([r[0] for r in rows]))).all())
                    yield [(r[0], r[1], r[2], hist.get(r[0])) for r in rows]
            return
        after = -(2**31)
        if engine.dialect.name == "sqlite":
            # In-process, a correlated subquery per reader (one index seek) costs no more than the range scan,
            # and reads no history of the readers of another cadence (the weekly plan skipped 80% of it).
            own = (history.with_only_columns(_aggregate(engine, token))
                   .where(DeliveryRow.subscriber_id == SubscriberRow.id).group_by(None)
                   .correlate(SubscriberRow).scalar_subquery())
            joined = readers.add_columns(own)
            while True:
                rows = conn.execute(joined.where(SubscriberRow.id > after).limit(batch)).all()
                if not rows:
                    return
                yield [(r[0], r[1], r[2], r[3]) for r in rows]
                if len(rows) < batch:
                    return
                after = rows[-1][0]
        while True:
            rows = conn.execute(readers.where(SubscriberRow.id > after).limit(batch)).all()
            if not rows:
                return
            last = rows[-1][0]
            hist = dict(conn.execute(history.where(DeliveryRow.subscriber_id > after,
                                                   DeliveryRow.subscriber_id <= last)).all())
            yield [(r[0], r[1], r[2], hist.get(r[0])) for r in rows]
            if len(rows) < batch:
                return
            after = last
