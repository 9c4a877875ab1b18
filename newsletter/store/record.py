"""Writing an edition in bulk: its papers, its few distinct digests, their renders, and one delivery per reader.

One transaction. The deliveries, the only part that grows with readers, stream in from arrays of reader ids in
chunks (a digest's readers that came in several arrays are merged as they go, never into one more array). On
PostgreSQL the (reader, digest) pairs go by ``COPY … FROM STDIN`` into a temporary table (not WAL-logged, two
integers a row), then one ``INSERT … SELECT … ORDER BY subscriber_id`` writes the deliveries: the server builds
each row, and in reader order every index on ``deliveries`` (and the foreign-key look-ups of the readers) is
walked from left to right instead of once per digest. On SQLite, a prepared multi-row
``executemany``. Nothing is held per reader but its id.

Example::

    edition_id = write_edition(store.engine, "daily", "2026-03-14", day, "Subject", [(7, "llm")],
                               [EditionDigest([7], [7], array("q", [1, 2, 3]))], now=now)
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from ..errors import StoreError
from ..models import DELIVERY_PENDING
from .schema import DeliveryRow, DigestRow, EditionPaperRow, EditionRow, RenderBodyRow, RenderRow

CHUNK = 20_000  # deliveries per write
RENDER_FIELDS = ("subject", "html", "text", "preheader", "slots", "shown", "shortened")


@dataclass
class EditionDigest:
    """One distinct digest: its papers in order, those its email lists (None: all), its readers, and its renders
    as (reader kind, rendered fields)."""

    paper_ids: Sequence[int]
    listed_ids: Sequence[int] | None
    reader_ids: Sequence[int]
    renders: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


def fingerprint(paper_ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(paper_ids)).encode()).hexdigest()


def encode_body(fields: Mapping[str, Any]) -> tuple[str, bytes]:
    """(sha256, zlib-compressed JSON) of a render's fields: the same body is stored once."""
    raw = json.dumps({k: fields[k] for k in RENDER_FIELDS}, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest(), zlib.compress(raw, 6)


def decode_body(data: bytes) -> dict[str, Any]:
    body = json.loads(zlib.decompress(data))
    return {"subject": body["subject"], "html": body["html"], "text": body["text"], "preheader": body["preheader"],
            "slots": dict(body["slots"]), "shown": dict(body["shown"] or {}), "shortened": bool(body["shortened"])}


def body_id(conn: Connection, fields: Mapping[str, Any]) -> int:
    """The id of the stored body of these fields, stored now when new (``ON CONFLICT DO NOTHING``, then read)."""
    digest, data = encode_body(fields)
    found = conn.execute(select(RenderBodyRow.id).where(RenderBodyRow.sha256 == digest)).scalar()
    if found is not None:
        return int(found)
    values = {"sha256": digest, "data": data, "size": len(data)}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(RenderBodyRow).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(RenderBodyRow).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    return int(conn.execute(select(RenderBodyRow.id).where(RenderBodyRow.sha256 == digest)).scalar_one())


def _ascending(ids: Sequence[int]) -> bool:
    return all(a < b for a, b in zip(ids, itertools.islice(ids, 1, None)))


def _readers(parts: Sequence[Sequence[int]]) -> Iterator[int]:
    """The ids of every part, once each, streamed: one part as it is; ascending parts (every plan's) merged
    in order without a list, a set or a merged copy of every reader (at a million readers the merged copies
    of ``_union`` took 7 MB at the peak of ``record``); others (rare: hand-made digests) sorted."""
    if len(parts) == 1:
        return iter(parts[0])
    if all(_ascending(p) for p in parts):
        return _merged(parts)
    return iter(sorted({sid for part in parts for sid in part}))


def _merged(parts: Sequence[Sequence[int]]) -> Iterator[int]:
    last = None
    for sid in heapq.merge(*parts):
        if sid != last:
            yield sid
            last = sid


def _chunks(ids: Iterable[int], size: int = 0) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(itertools.islice(it, size or CHUNK)):
        yield chunk


@dataclass
class _Digest:
    """A digest of the edition being written: its readers as the parts they came in (never merged in memory)."""

    content: tuple[int, ...]
    shown: tuple[int, ...] | None
    parts: list[Sequence[int]]
    renders: list[tuple[str, Mapping[str, Any]]]


def write_edition(engine: Engine, cadence: str, period: str, day: date, subject: str,
                  sections: Sequence[tuple[int, str | None]], digests: Iterable[EditionDigest], *,
                  message_id_domain: str = "newsletter.invalid", now: datetime) -> int:
    """Record an edition (see ``Store.create_edition``); returns its id. A second edition for the same
    (cadence, period) raises StoreError and changes nothing; a digest naming papers outside the edition, or
    listing papers not in it, raises ValueError and changes nothing."""
    in_edition = {pid for pid, _ in sections}
    merged: dict[tuple[tuple[int, ...], tuple[int, ...] | None], _Digest] = {}
    for d in digests:  # few: one per distinct content
        content = tuple(int(i) for i in d.paper_ids)
        missing = set(content) - in_edition
        if missing:
            raise ValueError(f"a digest holds papers {sorted(missing)} not in the edition")
        shown = None if d.listed_ids is None else tuple(int(i) for i in d.listed_ids)
        if shown is not None and not set(shown) <= set(content):
            raise ValueError("an email lists papers not in its digest")
        if not d.reader_ids:
            continue
        into = merged.get((content, shown))
        if into is None:
            merged[(content, shown)] = _Digest(content, shown, [d.reader_ids], list(d.renders))
        else:  # two planned digests with the same papers (readers of another kind, or whose filters came to
            into.parts.append(d.reader_ids)  # the same): their readers are merged as they are written
            into.renders.extend(d.renders)
    try:
        with engine.begin() as conn:
            edition_id = int(conn.execute(insert(EditionRow).values(
                cadence=cadence, period=period, day=day, subject=subject, created_at=now, state="active")
                .returning(EditionRow.id)).scalar_one())
            if sections:
                conn.execute(insert(EditionPaperRow), [
                    {"edition_id": edition_id, "paper_id": pid, "topic": topic, "position": position}
                    for position, (pid, topic) in enumerate(sections)])
            bodies: dict[str, int] = {}
            pg = conn.dialect.name == "postgresql"
            staged: list[tuple[int, list[Sequence[int]]]] = []
            for (content, shown), d in merged.items():
                mark = content if shown is None else (*content, -1, *shown)
                digest_id = int(conn.execute(insert(DigestRow).values(
                    edition_id=edition_id, fingerprint=fingerprint(mark), paper_ids=list(content),
                    listed_ids=None if shown is None else list(shown)).returning(DigestRow.id)).scalar_one())
                kinds: set[str] = set()
                for kind, fields in d.renders:
                    if kind in kinds:
                        continue
                    kinds.add(kind)
                    key = encode_body(fields)[0]
                    if key not in bodies:
                        bodies[key] = body_id(conn, fields)
                    conn.execute(insert(RenderRow).values(edition_id=edition_id, digest_id=digest_id,
                                                          reader_kind=kind, body_id=bodies[key], created_at=now))
                if pg:
                    staged.append((digest_id, d.parts))
                else:
                    _write_deliveries(conn, edition_id, digest_id, _readers(d.parts), cadence, period,
                                      message_id_domain, now)
            if staged:
                _copy_deliveries(conn, edition_id, staged, cadence, period, message_id_domain, now)
            return edition_id
    except IntegrityError:
        raise StoreError(f"There is already a {cadence} edition for {period}.",
                         hint="each period gets one edition; see `newsletter deliveries`") from None


DELIVERY_COLUMNS = ("edition_id", "subscriber_id", "digest_id", "state", "attempts", "message_id",
                    "created_at", "updated_at")


def _delivery_rows(edition_id: int, digest_id: int, reader_ids: Iterable[int], cadence: str, period: str,
                   domain: str, now: datetime) -> Iterator[list[tuple[Any, ...]]]:
    tail = f".{cadence}.{period}@{domain}>"
    head = f"<{edition_id}."
    for chunk in _chunks(reader_ids):
        yield [(edition_id, sid, digest_id, DELIVERY_PENDING, 0, f"{head}{sid}{tail}", now, now)
               for sid in chunk]


def _write_deliveries(conn: Connection, edition_id: int, digest_id: int, reader_ids: Iterable[int], cadence: str,
                      period: str, domain: str, now: datetime) -> None:
    """One pending delivery per reader id (SQLite: an executemany of one prepared INSERT)."""
    raw = conn.connection.driver_connection
    cols = ", ".join(DELIVERY_COLUMNS)
    column_type = DeliveryRow.__table__.c.created_at.type.dialect_impl(conn.dialect)
    bind = column_type.bind_processor(conn.dialect)
    stamp = bind(now) if bind else now  # as SQLAlchemy stores a DateTime on SQLite
    sql = f"INSERT INTO deliveries ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        for rows in _delivery_rows(edition_id, digest_id, reader_ids, cadence, period, domain, now):
            cur.executemany(sql, [(*r[:6], stamp, stamp) for r in rows])
    finally:
        cur.close()


STAGE = "edition_readers"


def _copy_deliveries(conn: Connection, edition_id: int, readers: Sequence[tuple[int, Sequence[Sequence[int]]]],
                     cadence: str, period: str, domain: str, now: datetime) -> None:
    """PostgreSQL: every (reader, digest) pair by COPY into a temporary table, then one INSERT … SELECT in reader
    order. The message id is built by the server exactly as ``_delivery_rows`` builds it."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(f"CREATE TEMP TABLE {STAGE} (subscriber_id BIGINT NOT NULL, digest_id BIGINT NOT NULL) "
                    "ON COMMIT DROP")
        with cur.copy(f"COPY {STAGE} (subscriber_id, digest_id) FROM STDIN") as copy:
            for digest_id, parts in readers:
                end = f"\t{digest_id}\n"
                for chunk in _chunks(_readers(parts)):
                    copy.write(end.join(map(str, chunk)) + end)
        cur.execute(
            f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) "
            "SELECT %(e)s, s.subscriber_id, s.digest_id, %(state)s, 0, "
            "%(head)s || CAST(s.subscriber_id AS TEXT) || %(tail)s, %(now)s, %(now)s "
            f"FROM {STAGE} s ORDER BY s.subscriber_id",
            {"e": edition_id, "state": DELIVERY_PENDING, "head": f"<{edition_id}.",
             "tail": f".{cadence}.{period}@{domain}>", "now": now})
        cur.execute(f"DROP TABLE {STAGE}")
