"""Queries of papers: ingesting fetched batches (merged, never duplicated), reading papers back with their
trending span, their topics and their embeddings. A mixin of ``Store``.

Example: ``store.ingest([batch]); store.papers(since=day, until=day)``
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..models import FetchedPaper, Paper, SourceBatch, normalize_title
from .listing_days import ListingRead, complete_days, record_reads
from .schema import EmbeddingRow, PaperRow, SightingRow

ID_CHUNK = 500  # ids bound per statement: never a list that grows with papers


def utcnow() -> datetime:
    from datetime import timezone

    return datetime.now(timezone.utc)


@dataclass
class IngestResult:
    new: int = 0
    updated: int = 0
    sightings: int = 0
    new_paper_ids: list[int] | None = None


class PaperQueries:
    """The paper queries of ``Store`` (which supplies ``session()`` and ``engine``)."""

    engine: Any

    def session(self) -> Session:  # pragma: no cover - Store's
        raise NotImplementedError


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
        q = q.order_by(stats.c.last.desc(), PaperRow.upvotes.desc(), stats.c.best_rank, PaperRow.id)
        if ids is not None:
            wanted = sorted(set(ids))
            if len(wanted) > ID_CHUNK:  # never one statement binding a list that grows with papers
                found = [p for chunk in _chunks(wanted, ID_CHUNK)
                         for p in self.papers(since=since, until=until, topic=topic, search=search, ids=chunk)]
                found.sort(key=lambda p: (-(p.last_trending.toordinal() if p.last_trending else 0),
                                          -(p.upvotes or 0), p.best_rank or 10**9, p.id))
                return found[:limit] if limit else found
            q = q.where(PaperRow.id.in_(wanted))
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


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
