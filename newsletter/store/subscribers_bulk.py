"""Importing many readers at once, set-based: the rows go into a temporary table in bulk (``COPY`` on
PostgreSQL, one prepared ``executemany`` on SQLite), then one ``INSERT … SELECT`` adds the new readers and
(with ``update_existing``) one ``UPDATE … FROM`` changes the others. All or nothing, in one transaction.

Example: ``import_subscribers(store.engine, [{"email": "ada@example.org", "topics": ["llm"]}])``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import DateTime, Engine, bindparam, text

from ..errors import StoreError
from ..models import CADENCES, SUBSCRIBER_ACTIVE, SUBSCRIBER_STATUSES

TEMP = "import_readers"
COLUMNS = ("email", "name", "status", "cadence", "topics", "excluded_keywords")
CHUNK = 20_000
ANALYZE_AFTER = 10_000  # readers added or changed at once: PostgreSQL's statistics are refreshed


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int

    @property
    def total(self) -> int:
        return self.added + self.updated


def _check(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise StoreError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")


class _Dumps:
    """``json.dumps`` of a list, each distinct list of strings encoded once: readers share a few choices of
    topics and keywords, and encoding them was 40% of an import's CPU. Bounded: cleared at ``CACHE`` entries."""

    CACHE = 4096

    def __init__(self) -> None:
        self.seen: dict[tuple[str, ...], str] = {}

    def __call__(self, values: Iterable[Any]) -> str:
        key = tuple(values)
        found = self.seen.get(key)  # type: ignore[arg-type]
        if found is None:
            found = json.dumps(list(key))
            if all(type(v) is str for v in key):  # True == 1: only strings are cached by equality
                if len(self.seen) >= self.CACHE:
                    self.seen.clear()
                self.seen[key] = found
        return found


def _rows(specs: Iterable[Mapping[str, Any]]) -> Iterator[list[tuple[Any, ...]]]:
    """Checked rows (seq, email, name, status, cadence, topics JSON, excluded keywords JSON), in chunks."""
    dumps = _Dumps()
    chunk: list[tuple[Any, ...]] = []
    for seq, spec in enumerate(specs):
        cadence, status = spec.get("cadence") or "daily", spec.get("status") or SUBSCRIBER_ACTIVE
        if cadence not in CADENCES:
            _check("cadence", cadence, CADENCES)
        if status not in SUBSCRIBER_STATUSES:
            _check("status", status, SUBSCRIBER_STATUSES)
        email = str(spec["email"]).strip().lower()
        topics = spec.get("topics")
        chunk.append((seq, email, spec.get("name"), status, cadence,
                      None if topics is None else dumps(topics), dumps(spec.get("excluded_keywords") or ())))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_subscribers(engine: Engine, specs: Iterable[Mapping[str, Any]], *, now: datetime,
                       update_existing: bool = False) -> ImportResult:
    """Add readers (update the ones already there with ``update_existing``; otherwise any of them already
    being there raises StoreError and nothing is stored). Addresses are stored lower-cased."""
    pg = engine.dialect.name == "postgresql"
    js = "CAST({} AS JSON)" if pg else "{}"
    stamp = bindparam("now", type_=DateTime(timezone=True))
    table = (f"{TEMP} (seq BIGINT PRIMARY KEY, email TEXT NOT NULL, name TEXT, status TEXT, cadence TEXT, "
             "topics TEXT, excluded_keywords TEXT)")
    with engine.begin() as conn:
        rows = 0
        if pg:
            conn.exec_driver_sql(f"CREATE TEMP TABLE {table} ON COMMIT DROP")
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:  # type: ignore[union-attr]
                with cur.copy(f"COPY {TEMP} (seq, {', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for chunk in _rows(specs):
                        rows += len(chunk)
                        for row in chunk:
                            copy.write_row(row)
        else:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{TEMP}")
            conn.exec_driver_sql(f"CREATE TEMP TABLE {table}")
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for chunk in _rows(specs):
                    rows += len(chunk)
                    cur.executemany(f"INSERT INTO {TEMP} VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            finally:
                cur.close()
        if not rows:
            return ImportResult(0, 0)
        conn.exec_driver_sql(f"CREATE INDEX ix_{TEMP}_email ON {TEMP} (email)")
        twice = conn.execute(text(f"SELECT email FROM {TEMP} GROUP BY email HAVING COUNT(*) > 1 "
                                  "ORDER BY email LIMIT 1")).scalar()
        if twice is not None:
            if not update_existing:
                raise StoreError(f"{twice} is given twice.", hint="give each address once, or pass --update")
            conn.exec_driver_sql(f"DELETE FROM {TEMP} WHERE seq NOT IN (SELECT MAX(seq) FROM {TEMP} GROUP BY email)")
        try:
            existing = conn.execute(text(f"SELECT s.email, s.status FROM subscribers s JOIN {TEMP} t "
                                         "ON t.email = s.email ORDER BY s.email LIMIT 1")).first()
            if existing is not None and not update_existing:
                raise StoreError(f"{existing[0]} is already a subscriber ({existing[1]}).",
                                 hint="use `newsletter subscribers list` to see it, or pass --update")
            updated = 0
            if existing is not None:
                updated = conn.execute(text(
                    f"UPDATE subscribers SET name = t.name, status = t.status, cadence = t.cadence, "
                    f"topics = {js.format('t.topics')}, excluded_keywords = {js.format('t.excluded_keywords')}, "
                    "updated_at = :now, confirmed_at = CASE WHEN t.status = :active AND subscribers.confirmed_at "
                    f"IS NULL THEN :now ELSE subscribers.confirmed_at END FROM {TEMP} t "
                    "WHERE subscribers.email = t.email").bindparams(stamp), {"now": now, "active": SUBSCRIBER_ACTIVE}
                ).rowcount
            added = conn.execute(text(
                "INSERT INTO subscribers (email, name, status, cadence, topics, excluded_keywords, bounce_count, "
                "created_at, updated_at, confirmed_at) "
                f"SELECT t.email, t.name, t.status, t.cadence, {js.format('t.topics')}, "
                f"{js.format('t.excluded_keywords')}, 0, :now, :now, "
                "CASE WHEN t.status = :active THEN :now END "
                f"FROM {TEMP} t WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.email = t.email) "
                "ORDER BY t.seq" if not pg else
                "INSERT INTO subscribers (email, name, status, cadence, topics, excluded_keywords, bounce_count, "
                "created_at, updated_at, confirmed_at) "
                f"SELECT t.email, t.name, t.status, t.cadence, {js.format('t.topics')}, "
                f"{js.format('t.excluded_keywords')}, 0, :now, :now, "
                "CASE WHEN t.status = :active THEN CAST(:now AS TIMESTAMPTZ) END "
                f"FROM {TEMP} t WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.email = t.email) "
                "ORDER BY t.seq").bindparams(stamp), {"now": now, "active": SUBSCRIBER_ACTIVE}).rowcount
            if pg and added + updated >= ANALYZE_AFTER:
                # Fresh statistics: without them PostgreSQL guesses that few readers are active and plans the
                # readers' keyset batches (``store.sent``) as a sort of the whole table per batch.
                conn.exec_driver_sql("ANALYZE subscribers")
        finally:
            if not pg:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{TEMP}")
    return ImportResult(added, updated)
