"""The store: the one module that owns every query. SQLite by default, PostgreSQL through a URL.

``Store.open(url)`` connects and applies any pending Alembic migration, so the first command on a new
machine creates the database. Every write is one transaction: a batch of fetched papers lands whole or
not at all.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import NotFound, StoreError
from ..models import (
    CADENCES,
    DELIVERY_SENT,
    DELIVERY_STATES,
    EDITION_CANCELLED,
    SUBSCRIBER_ACTIVE,
    SUBSCRIBER_STATUSES,
    TAKEN_DELIVERY_STATES,
    EditionSummary,
    Subscriber,
)
from .papers import ID_CHUNK, IngestResult, PaperQueries, _chunks, _paper  # noqa: F401 - re-exported
from .schema import (
    Base,
    DeliveryRow,
    DigestRow,
    EditionPaperRow,
    EditionRow,
    StateRow,
    SubscriberRow,
)

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Store(PaperQueries):
    """Example: ``store = Store.open("sqlite:///newsletter.db"); store.papers(limit=10)``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    # --- connection and schema ---------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> "Store":
        try:
            engine = create_engine(url, future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"Cannot use database URL {_safe_url(url)}: {exc}",
                             hint="check database_url or NEWSLETTER_DATABASE_URL; PostgreSQL needs the [postgres] extra") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            path = engine.url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        store = cls(engine)
        if migrate:
            store.upgrade()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _alembic_config(self, connection: Any) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        return cfg

    def current_revision(self) -> str | None:
        from alembic.migration import MigrationContext

        with self._connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config(None)).get_current_head()

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply pending migrations; returns (revision before, revision after)."""
        from alembic import command

        before = self.current_revision()
        if before == self.head_revision():
            return before, before
        with self._connect() as conn:
            with conn.begin():
                command.upgrade(self._alembic_config(conn), "head")
        return before, self.current_revision()

    def _connect(self) -> Any:
        try:
            return self.engine.connect()
        except OperationalError as exc:
            raise StoreError(f"Cannot connect to the database {_safe_url(str(self.engine.url))}: {exc.orig}",
                             hint="is the server running and the URL right?") from None

    def session(self) -> Session:
        return self._sessions()

    # --- small named state --------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(StateRow, key)
            return row.value if row else None

    def set_state(self, key: str, value: str) -> None:
        with self.session() as s, s.begin():
            s.merge(StateRow(key=key, value=value))

    def add_state(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless something is stored there already, and return what is stored.

        One ``INSERT … ON CONFLICT DO NOTHING`` then a read, so processes starting together all end with the
        first value written, and a value already stored (a signing key that links were made with) is never
        replaced.
        """
        table = StateRow.__table__
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        with self.engine.begin() as conn:
            conn.execute(dialect_insert(table).values(key=key, value=value).on_conflict_do_nothing(
                index_elements=[table.c.key]))
            stored = conn.execute(select(table.c.value).where(table.c.key == key)).scalar_one()
        return stored

    # --- subscribers ----------------------------------------------------------------------------------

    def add_subscriber(self, email: str, *, cadence: str = "daily", topics: Sequence[str] | None = None,
                       excluded_keywords: Sequence[str] = (), status: str = SUBSCRIBER_ACTIVE,
                       name: str | None = None, now: datetime | None = None, update_existing: bool = False) -> Subscriber:
        """Add one reader (or update them with ``update_existing``); the address is stored lower-cased."""
        spec = dict(email=email, cadence=cadence, topics=topics, excluded_keywords=excluded_keywords,
                    status=status, name=name)
        return self.add_subscribers([spec], now=now, update_existing=update_existing)[0]

    def add_subscribers(self, specs: Sequence[Mapping[str, Any]], *, now: datetime | None = None,
                        update_existing: bool = False) -> list[Subscriber]:
        """Add many readers in one transaction: all of them, or (on any error) none. Returns them as stored."""
        self.import_subscribers(specs, now=now, update_existing=update_existing)
        emails = list(dict.fromkeys(str(spec["email"]).strip().lower() for spec in specs))
        found: dict[str, Subscriber] = {}
        with self.session() as s:
            for chunk in _chunks(emails, ID_CHUNK):
                found.update((r.email, _subscriber(r)) for r in s.scalars(
                    select(SubscriberRow).where(SubscriberRow.email.in_(chunk))))
        return [found[e] for e in emails]

    def import_subscribers(self, specs: Iterable[Mapping[str, Any]], *, now: datetime | None = None,
                           update_existing: bool = False) -> "ImportResult":
        """Add many readers set-based (``store.subscribers_bulk``); returns how many were added and updated."""
        from .subscribers_bulk import import_subscribers

        return import_subscribers(self.engine, specs, now=now or utcnow(), update_existing=update_existing)

    def remove_subscriber(self, email: str, *, forget: bool = False, now: datetime | None = None) -> Subscriber:
        """Unsubscribe (kept, so nothing is re-sent on return), or with ``forget`` delete every trace (the GDPR
        erasure, ``store.readers.erase``)."""
        now = now or utcnow()
        if forget:
            from .readers import erase

            result = self.subscriber(email)
            erase(self, email)
            return result
        with self.session() as s, s.begin():
            row = s.scalar(select(SubscriberRow).where(SubscriberRow.email == email.strip().lower()))
            if row is None:
                raise NotFound(f"No subscriber {email}.", hint="see `newsletter subscribers list`")
            result = _subscriber(row)
            if forget:
                s.delete(row)
            else:
                row.status, row.unsubscribed_at, row.updated_at = "unsubscribed", now, now
            return result

    def subscribers(self, *, status: str | None = None, cadence: str | None = None) -> list[Subscriber]:
        q = select(SubscriberRow).order_by(SubscriberRow.id)
        if status:
            q = q.where(SubscriberRow.status == status)
        if cadence:
            q = q.where(SubscriberRow.cadence == cadence)
        with self.session() as s:
            return [_subscriber(r) for r in s.scalars(q)]

    def subscriber_count(self, *, status: str | None = None, cadence: str | None = None) -> int:
        q = select(func.count(SubscriberRow.id))
        if status:
            q = q.where(SubscriberRow.status == status)
        if cadence:
            q = q.where(SubscriberRow.cadence == cadence)
        with self.session() as s:
            return int(s.scalar(q) or 0)

    def subscribers_by_ids(self, ids: Iterable[int]) -> list[Subscriber]:
        """These readers, ascending by id (read in chunks: no statement binds more than ``ID_CHUNK`` ids)."""
        wanted = sorted(set(ids))
        out: list[Subscriber] = []
        with self.session() as s:
            for chunk in _chunks(wanted, ID_CHUNK):
                out.extend(_subscriber(r) for r in s.scalars(
                    select(SubscriberRow).where(SubscriberRow.id.in_(chunk)).order_by(SubscriberRow.id)))
        return out

    def subscriber(self, ref: str | int) -> Subscriber:
        with self.session() as s:
            if isinstance(ref, int) or str(ref).isdigit():
                row = s.get(SubscriberRow, int(ref))
            else:
                row = s.scalar(select(SubscriberRow).where(SubscriberRow.email == str(ref).strip().lower()))
            if row is None:
                raise NotFound(f"No subscriber {ref}.", hint="see `newsletter subscribers list`")
            return _subscriber(row)

    # --- the sent record ------------------------------------------------------------------------------

    def taken_and_returned(self, since: date, subscriber_ids: Iterable[int] | None = None
                           ) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
        """For each subscriber: papers already taken (sent or on their way) and papers given back by failed
        or suppressed deliveries that no later delivery took (they carry over), from editions since ``since``."""
        q = (
            select(DeliveryRow.subscriber_id, DeliveryRow.state, DigestRow.paper_ids, DigestRow.listed_ids,
                   EditionRow.state.label("edition_state"))
            .join(DigestRow, DigestRow.id == DeliveryRow.digest_id)
            .join(EditionRow, EditionRow.id == DeliveryRow.edition_id)
            .where(EditionRow.day >= since)
        )
        queries = [q] if subscriber_ids is None else [
            q.where(DeliveryRow.subscriber_id.in_(chunk)) for chunk in _chunks(sorted(set(subscriber_ids)), ID_CHUNK)]
        taken: dict[int, set[int]] = defaultdict(set)
        returned: dict[int, set[int]] = defaultdict(set)
        with self.session() as s:
            # Only what the email listed is taken: papers it cut stay eligible for the reader's next digest.
            # A cancelled edition's deliveries that were not sent give their papers back, whatever their state.
            for sid, state, paper_ids, listed, edition_state in (r for query in queries for r in s.execute(query)):
                held = state in TAKEN_DELIVERY_STATES and (state == DELIVERY_SENT or edition_state != EDITION_CANCELLED)
                (taken if held else returned)[sid].update(
                    paper_ids if listed is None else listed)
        for sid in list(returned):
            returned[sid] -= taken.get(sid, set())
        return dict(taken), {k: v for k, v in returned.items() if v}

    def create_edition(self, cadence: str, period: str, day: date, subject: str,
                       sections: Sequence[tuple[int, str | None]],
                       digests: Mapping[int, Sequence[int]], *, message_id_domain: str = "newsletter.invalid",
                       now: datetime | None = None, listed: Mapping[int, Sequence[int]] | None = None,
                       renders: Sequence[tuple[int, str, Mapping[str, Any]]] = ()) -> int:
        """Record an edition: its papers (id, topic) in order, and for each subscriber the ordered paper ids
        of their digest, and (``listed``) those of them their email lists: only these count as sent (default:
        all). ``renders`` are (subscriber id, reader kind, rendered fields) of the emails as rendered, kept in the
        same transaction for the digest of that subscriber. Readers with the same papers share one digest row.
        One edition per (cadence, period): a second call for the same period raises StoreError and changes
        nothing."""
        from array import array

        from .record import EditionDigest, write_edition

        _check_choice("cadence", cadence, CADENCES)
        kinds: dict[int, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        for sid, kind, fields in renders:
            kinds[sid].append((kind, fields))
        by_content: dict[tuple[tuple[int, ...], tuple[int, ...] | None], EditionDigest] = {}
        in_edition = {pid for pid, _ in sections}
        for sid, paper_ids in digests.items():
            content = tuple(paper_ids)
            missing = set(content) - in_edition
            if missing:
                raise ValueError(f"digest for subscriber {sid} holds papers {sorted(missing)} not in the edition")
            shown = tuple(listed[sid]) if listed is not None and sid in listed else None
            if shown is not None and not set(shown) <= set(content):
                raise ValueError(f"the email to subscriber {sid} lists papers not in their digest")
            d = by_content.get((content, shown))
            if d is None:
                d = by_content[(content, shown)] = EditionDigest(content, shown, array("q"))
            d.reader_ids.append(sid)  # type: ignore[attr-defined]
            d.renders.extend(kinds.get(sid, ()))
        for d in by_content.values():
            d.reader_ids = array("q", sorted(d.reader_ids))
        return write_edition(self.engine, cadence, period, day, subject, list(sections), by_content.values(),
                             message_id_domain=message_id_domain, now=now or utcnow())

    def edition_id_for(self, cadence: str, period: str) -> int | None:
        with self.session() as s:
            return s.scalar(select(EditionRow.id).where(EditionRow.cadence == cadence, EditionRow.period == period))

    def set_delivery_state(self, edition_id: int, subscriber_id: int, state: str, *, error: str | None = None,
                           now: datetime | None = None) -> None:
        _check_choice("state", state, DELIVERY_STATES)
        now = now or utcnow()
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": error}
        if state == "sent":
            values["sent_at"] = now
        with self.session() as s, s.begin():
            done = s.execute(update(DeliveryRow).where(DeliveryRow.edition_id == edition_id,
                                                       DeliveryRow.subscriber_id == subscriber_id).values(**values))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"No delivery of edition {edition_id} to subscriber {subscriber_id}.")

    def editions(self, cadence: str | None = None, limit: int | None = None) -> list[EditionSummary]:
        q = select(EditionRow).order_by(EditionRow.day.desc(), EditionRow.id.desc())
        if cadence:
            q = q.where(EditionRow.cadence == cadence)
        if limit:
            q = q.limit(limit)
        with self.session() as s:
            rows = list(s.scalars(q))
            ids = [r.id for r in rows]  # the editions listed: a page of them
            counts: dict[int, dict[str, int]] = defaultdict(dict)
            sizes: dict[int, int] = {}
            if ids:
                for eid, state, n in s.execute(select(DeliveryRow.edition_id, DeliveryRow.state, func.count())
                                               .where(DeliveryRow.edition_id.in_(ids))
                                               .group_by(DeliveryRow.edition_id, DeliveryRow.state)):
                    counts[eid][state] = n
                for eid, n in s.execute(select(EditionPaperRow.edition_id, func.count())
                                        .where(EditionPaperRow.edition_id.in_(ids)).group_by(EditionPaperRow.edition_id)):
                    sizes[eid] = n
            return [EditionSummary(r.id, r.cadence, r.period, r.subject, r.created_at, sizes.get(r.id, 0), counts[r.id])
                    for r in rows]

    def edition_papers(self, edition_id: int) -> list[tuple[int, str | None]]:
        with self.session() as s:
            q = select(EditionPaperRow.paper_id, EditionPaperRow.topic).where(
                EditionPaperRow.edition_id == edition_id).order_by(EditionPaperRow.position)
            return [(pid, topic) for pid, topic in s.execute(q)]

    def delivered_papers(self, subscriber_id: int) -> list[int]:
        """Every paper a subscriber was actually sent (state 'sent': what their emails listed), oldest edition first."""
        q = (select(DigestRow.paper_ids, DigestRow.listed_ids).join(DeliveryRow, DeliveryRow.digest_id == DigestRow.id)
             .join(EditionRow, EditionRow.id == DeliveryRow.edition_id)
             .where(DeliveryRow.subscriber_id == subscriber_id, DeliveryRow.state == "sent")
             .order_by(EditionRow.day, EditionRow.id))
        with self.session() as s:
            return [pid for ids, listed in s.execute(q) for pid in (ids if listed is None else listed)]

    def table_counts(self) -> dict[str, int]:
        with self.session() as s:
            return {t.name: s.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}


# --- helpers ------------------------------------------------------------------------------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _subscriber(row: SubscriberRow) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, status=row.status, cadence=row.cadence,
        topics=tuple(row.topics) if row.topics is not None else None,
        excluded_keywords=tuple(row.excluded_keywords or ()), name=row.name, created_at=row.created_at,
    )



def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StoreError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")


from .subscribers_bulk import ImportResult  # noqa: E402 - re-exported


def _safe_url(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
