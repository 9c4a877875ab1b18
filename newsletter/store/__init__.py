"""The store: the one module that owns every query. SQLite by default, PostgreSQL through a URL.

``Store.open(url)`` connects and applies any pending Alembic migration, so the first command on a new
machine creates the database. Every write is one transaction: a batch of fetched papers lands whole or
not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Engine, create_engine, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import NotFound, StoreError
from ..models import (
    CADENCES,
    DELIVERY_PENDING,
    DELIVERY_SENT,
    DELIVERY_STATES,
    EDITION_CANCELLED,
    SUBSCRIBER_ACTIVE,
    SUBSCRIBER_STATUSES,
    TAKEN_DELIVERY_STATES,
    EditionSummary,
    FetchedPaper,
    Paper,
    SourceBatch,
    Subscriber,
    normalize_title,
)
from .schema import (
    Base,
    DeliveryRow,
    DigestRow,
    EditionPaperRow,
    EditionRow,
    EmbeddingRow,
    PaperRow,
    RenderRow,
    SightingRow,
    StateRow,
    SubscriberRow,
)

from .listing_days import ListingRead, complete_days, record_reads

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class IngestResult:
    new: int = 0
    updated: int = 0
    sightings: int = 0
    new_paper_ids: list[int] | None = None


class Store:
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

    # --- papers ---------------------------------------------------------------------------------------

    def ingest(self, batches: Sequence[SourceBatch], now: datetime | None = None,
               listing_reads: Mapping[str, Sequence[ListingRead]] | None = None) -> IngestResult:
        """Record fetched papers and their sightings in one transaction; the same paper is merged, not duplicated.

        ``listing_reads`` (source name -> the days read) are recorded in the same transaction, so a day is
        only ever marked read together with its papers.
        """
        now = now or utcnow()
        result = IngestResult(new_paper_ids=[])
        with self.session() as s, s.begin():
            for source, reads in (listing_reads or {}).items():
                record_reads(s, source, reads, now)
            gone = sorted({i for batch in batches for i in batch.withdrawn if i})
            if gone:  # a handful at most: a paper is rarely withdrawn
                s.execute(update(PaperRow).where(PaperRow.arxiv_id.in_(gone), PaperRow.withdrawn_at.is_(None))
                          .values(withdrawn_at=now))
            for batch in batches:
                for fetched in batch.papers:
                    row, created = self._merge_paper(s, fetched, now)
                    if created:
                        result.new += 1
                        result.new_paper_ids.append(row.id)  # type: ignore[union-attr]
                    else:
                        result.updated += 1
                    result.sightings += self._record_sighting(s, row, batch, fetched, now)
        return result

    def _merge_paper(self, s: Session, fetched: FetchedPaper, now: datetime) -> tuple[PaperRow, bool]:
        title_key = normalize_title(fetched.title)
        row = None
        if fetched.arxiv_id:
            row = s.scalar(select(PaperRow).where(PaperRow.arxiv_id == fetched.arxiv_id))
            if row is None:  # seen before without an id (e.g. a saved page): adopt it
                row = s.scalar(select(PaperRow).where(PaperRow.title_key == title_key, PaperRow.arxiv_id.is_(None)))
        else:
            row = s.scalar(select(PaperRow).where(PaperRow.title_key == title_key).order_by(PaperRow.id))
        created = row is None
        if row is None:
            row = PaperRow(key=fetched.key, title_key=title_key, title=fetched.title, abstract=fetched.abstract,
                           authors=[], ai_keywords=[], topics=[], created_at=now, updated_at=now)
            s.add(row)
        _enrich(row, fetched, now)
        s.flush()
        return row, created

    def _record_sighting(self, s: Session, row: PaperRow, batch: SourceBatch, fetched: FetchedPaper, now: datetime) -> int:
        existing = s.scalar(select(SightingRow).where(
            SightingRow.paper_id == row.id, SightingRow.source == batch.source,
            SightingRow.trending_date == batch.trending_date))
        if existing is not None:
            existing.rank = fetched.rank if fetched.rank is not None else existing.rank
            existing.upvotes = fetched.upvotes if fetched.upvotes is not None else existing.upvotes
            existing.seen_at = now
            return 0
        s.add(SightingRow(paper_id=row.id, source=batch.source, trending_date=batch.trending_date,
                          rank=fetched.rank, upvotes=fetched.upvotes, seen_at=now))
        return 1

    def papers(
        self,
        *,
        since: date | None = None,
        until: date | None = None,
        topic: str | None = None,
        search: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int | None = None,
    ) -> list[Paper]:
        """Papers with their trending span; filters combine. ``since``/``until`` bound the trending day.

        A query by trending day (what digests are planned from) leaves out papers reported withdrawn.
        """
        stats = (
            select(
                SightingRow.paper_id.label("pid"),
                func.min(SightingRow.trending_date).label("first"),
                func.max(SightingRow.trending_date).label("last"),
                func.min(SightingRow.rank).label("best_rank"),
            )
            .group_by(SightingRow.paper_id)
            .subquery()
        )
        q = select(PaperRow, stats.c.first, stats.c.last, stats.c.best_rank).outerjoin(stats, stats.c.pid == PaperRow.id)
        if since is not None or until is not None:
            window = select(SightingRow.paper_id)
            if since is not None:
                window = window.where(SightingRow.trending_date >= since)
            if until is not None:
                window = window.where(SightingRow.trending_date <= until)
            q = q.where(PaperRow.id.in_(window), PaperRow.withdrawn_at.is_(None))
        if topic:
            q = q.where(PaperRow.topic == topic)
        if search:
            like = f"%{search.lower()}%"
            q = q.where(or_(func.lower(PaperRow.title).like(like), func.lower(PaperRow.abstract).like(like)))
        if ids is not None:
            q = q.where(PaperRow.id.in_(list(ids)))
        q = q.order_by(stats.c.last.desc(), PaperRow.upvotes.desc(), stats.c.best_rank, PaperRow.id)
        if limit:
            q = q.limit(limit)
        with self.session() as s:
            return [_paper(row, first, last, best) for row, first, last, best in s.execute(q)]

    def complete_listing_days(self, source: str, since: date, until: date) -> set[date]:
        """Days in [since, until] of a dated source known complete (``listing_days``)."""
        return complete_days(self.engine, source, since, until)

    def paper(self, ref: str | int) -> Paper:
        """One paper by id, key (``arxiv:2401.01234``), bare arXiv id, or exact title."""
        from ..models import normalize_arxiv_id

        with self.session() as s:
            row = None
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                row = s.get(PaperRow, int(ref))
            if row is None and isinstance(ref, str):
                arxiv = normalize_arxiv_id(ref)
                conds = [PaperRow.key == ref, PaperRow.title_key == normalize_title(ref)]
                if arxiv:
                    conds.append(PaperRow.arxiv_id == arxiv)
                row = s.scalar(select(PaperRow).where(or_(*conds)).order_by(PaperRow.id))
            if row is None:
                raise NotFound(f"No paper {ref!r}.", hint="see `newsletter papers` for ids and keys")
            pid = row.id
        found = self.papers(ids=[pid])
        return found[0]

    def paper_count(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count(PaperRow.id))) or 0

    def set_classification(self, assignments: Mapping[int, tuple[str, Sequence[str], Mapping[str, float]]],
                           fingerprint: str) -> None:
        """Store each paper's (primary topic, all topics, scores) computed with the given topic settings."""
        rows = [{"id": pid, "topic": primary, "topics": list(topics), "topic_scores": dict(scores),
                 "classified_with": fingerprint} for pid, (primary, topics, scores) in assignments.items()]
        if not rows:
            return
        with self.session() as s, s.begin():
            s.execute(update(PaperRow), rows)  # ORM bulk update by primary key: one executemany

    def unclassified_ids(self, fingerprint: str) -> list[int]:
        with self.session() as s:
            q = select(PaperRow.id).where(or_(PaperRow.classified_with.is_(None), PaperRow.classified_with != fingerprint))
            return list(s.scalars(q))

    def embeddings(self, model: str, paper_ids: Iterable[int]) -> dict[int, bytes]:
        ids = list(paper_ids)
        with self.session() as s:
            out: dict[int, bytes] = {}
            for chunk in _chunks(ids, 500):
                q = select(EmbeddingRow.paper_id, EmbeddingRow.vector).where(
                    EmbeddingRow.model == model, EmbeddingRow.paper_id.in_(chunk))
                out.update({pid: vec for pid, vec in s.execute(q)})
            return out

    def save_embeddings(self, model: str, dim: int, vectors: Mapping[int, bytes]) -> None:
        with self.session() as s, s.begin():
            for pid, vec in vectors.items():
                s.merge(EmbeddingRow(paper_id=pid, model=model, dim=dim, vector=vec))

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
        """Add many readers in one transaction: all of them, or (on any error) none."""
        now = now or utcnow()
        out = []
        with self.session() as s, s.begin():
            for spec in specs:
                cadence, status = spec.get("cadence") or "daily", spec.get("status") or SUBSCRIBER_ACTIVE
                _check_choice("cadence", cadence, CADENCES)
                _check_choice("status", status, SUBSCRIBER_STATUSES)
                email = str(spec["email"]).strip().lower()
                row = s.scalar(select(SubscriberRow).where(SubscriberRow.email == email))
                if row is not None and not update_existing:
                    raise StoreError(f"{email} is already a subscriber ({row.status}).",
                                     hint="use `newsletter subscribers list` to see it, or pass --update")
                if row is None:
                    row = SubscriberRow(email=email, created_at=now, bounce_count=0)
                    s.add(row)
                topics = spec.get("topics")
                row.name, row.status, row.cadence = spec.get("name"), status, cadence
                row.topics = list(topics) if topics is not None else None
                row.excluded_keywords = list(spec.get("excluded_keywords") or ())
                row.updated_at = now
                if status == SUBSCRIBER_ACTIVE and row.confirmed_at is None:
                    row.confirmed_at = now
                s.flush()
                out.append(_subscriber(row))
        return out

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
        if subscriber_ids is not None:
            q = q.where(DeliveryRow.subscriber_id.in_(list(subscriber_ids)))
        taken: dict[int, set[int]] = defaultdict(set)
        returned: dict[int, set[int]] = defaultdict(set)
        with self.session() as s:
            # Only what the email listed is taken: papers it cut stay eligible for the reader's next digest.
            # A cancelled edition's deliveries that were not sent give their papers back, whatever their state.
            for sid, state, paper_ids, listed, edition_state in s.execute(q):
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
        _check_choice("cadence", cadence, CADENCES)
        now = now or utcnow()
        in_edition = {pid for pid, _ in sections}
        try:
            with self.session() as s, s.begin():
                edition = EditionRow(cadence=cadence, period=period, day=day, subject=subject, created_at=now)
                s.add(edition)
                s.flush()
                for position, (pid, topic) in enumerate(sections):
                    s.add(EditionPaperRow(edition_id=edition.id, paper_id=pid, topic=topic, position=position))
                by_content: dict[tuple[tuple[int, ...], tuple[int, ...] | None], DigestRow] = {}
                digest_of: dict[int, int] = {}
                for sid, paper_ids in digests.items():
                    content = tuple(paper_ids)
                    missing = set(content) - in_edition
                    if missing:
                        raise ValueError(f"digest for subscriber {sid} holds papers {sorted(missing)} not in the edition")
                    shown = tuple(listed[sid]) if listed is not None and sid in listed else None
                    if shown is not None and not set(shown) <= set(content):
                        raise ValueError(f"the email to subscriber {sid} lists papers not in their digest")
                    digest = by_content.get((content, shown))
                    if digest is None:
                        mark = content if shown is None else (*content, -1, *shown)
                        digest = DigestRow(edition_id=edition.id, fingerprint=_fingerprint(mark), paper_ids=list(content),
                                           listed_ids=None if shown is None else list(shown))
                        s.add(digest)
                        s.flush()
                        by_content[(content, shown)] = digest
                    digest_of[sid] = digest.id
                    s.add(DeliveryRow(edition_id=edition.id, subscriber_id=sid, digest_id=digest.id,
                                      state=DELIVERY_PENDING, attempts=0,
                                      message_id=f"<{edition.id}.{sid}.{cadence}.{period}@{message_id_domain}>",
                                      created_at=now, updated_at=now))
                for sid, kind, fields in renders:
                    s.add(RenderRow(edition_id=edition.id, digest_id=digest_of[sid], reader_kind=kind, created_at=now,
                                    **{k: fields[k] for k in ("subject", "html", "text", "preheader", "slots",
                                                              "shown", "shortened")}))
                return edition.id
        except IntegrityError:
            raise StoreError(f"There is already a {cadence} edition for {period}.",
                             hint="each period gets one edition; see `newsletter deliveries`") from None

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
            ids = [r.id for r in rows]
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


def _enrich(row: PaperRow, f: FetchedPaper, now: datetime) -> None:
    """Fill what the row lacks and refresh what changes (upvotes, stars, comments); never erase."""
    if f.arxiv_id and not row.arxiv_id:
        row.arxiv_id = f.arxiv_id
        row.key = f.key
    if len(f.abstract) > len(row.abstract or ""):
        row.abstract = f.abstract
    if f.authors:
        row.authors = list(f.authors)
        row.author_count = len(f.authors)
    elif f.author_count and not row.authors:
        row.author_count = f.author_count
    for attr in ("organization", "published", "ai_summary", "github_repo", "project_page", "thumbnail"):
        value = getattr(f, attr)
        if value:
            setattr(row, attr, value)
    if f.url and (not row.url or "huggingface.co/papers/" in f.url):
        row.url = f.url
    if f.ai_keywords:
        row.ai_keywords = list(f.ai_keywords)
    for attr in ("upvotes", "num_comments", "github_stars"):  # counts only grow; keep the highest seen
        value = getattr(f, attr)
        if value is not None and (getattr(row, attr) is None or value > getattr(row, attr)):
            setattr(row, attr, value)
    row.updated_at = now


def _paper(row: PaperRow, first: date | None, last: date | None, best: int | None) -> Paper:
    return Paper(
        id=row.id, key=row.key, title=row.title, abstract=row.abstract or "", arxiv_id=row.arxiv_id,
        authors=tuple(row.authors or ()), author_count=row.author_count, organization=row.organization,
        published=row.published, upvotes=row.upvotes, num_comments=row.num_comments, ai_summary=row.ai_summary,
        ai_keywords=tuple(row.ai_keywords or ()), github_repo=row.github_repo, github_stars=row.github_stars,
        project_page=row.project_page, thumbnail=row.thumbnail, url=row.url, topic=row.topic,
        topics=tuple(row.topics or ()), first_trending=first, last_trending=last, best_rank=best,
    )


def _subscriber(row: SubscriberRow) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, status=row.status, cadence=row.cadence,
        topics=tuple(row.topics) if row.topics is not None else None,
        excluded_keywords=tuple(row.excluded_keywords or ()), name=row.name, created_at=row.created_at,
    )


def _fingerprint(paper_ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(paper_ids)).encode()).hexdigest()


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StoreError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")


def _safe_url(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
