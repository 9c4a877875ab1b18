"""The plan's side of the per-reader ranking (issue 15): retrain the models whose signals changed, find the
readers of a batch who have one, and give their digest its own order and "For you" block.

Readers without signals are not touched: they stay in the shared groups, and their digest is today's. A
reader with a model gets a group (and a digest) of their own; within each section their papers follow the
blend of their model and the upvotes (``relevance.rank``), and with at least 3 signals the digest opens with
the best ``digest.for_you`` of them, each with a one-line reason. Topic filters and the sent record are
applied before (the reader's papers are the group's), and a For you paper is shown once: its section names it
in one line, as it does a top paper.

Cost: models are trained only for readers whose signals changed since (``store.signals.stale_readers``),
streamed in batches; per reader batch one range query finds who has a model, one reads their models and
positives. Paper vectors are computed once per plan.

Example::

    personal = Personalizer(store.engine, settings)
    personal.retrain()
    shared, own = personal.split(batch)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, select

from ..models import DigestContent, ForYou, Paper, TopicSection
from ..store.schema import PaperRow, SignalRow
from ..store.signals import models_for, readers_with_models, save_models, stale_readers
from . import Candidate, CandidateSet, ReaderModel, Signal, Vector, for_you, rank, train, vectorize

MIN_SIGNALS = 3  # the For you block needs this many signals
REASON_TITLE = 80  # characters of the liked paper's title in "Because you liked …"


def paper_vector(title: str, abstract: str, keywords: Sequence[str]) -> Vector:
    return vectorize(title or "", abstract or "", tuple(keywords or ()))


def retrain(engine: Engine, now: datetime | None = None) -> int:
    """Train and store the model of every reader whose signals changed since their model was trained; returns
    how many. A reader who removed every signal keeps no model (their digest is today's again)."""
    done = 0
    vectors: dict[int, Vector] = {}
    for batch in stale_readers(engine):
        out: list[tuple[int, bytes | None, int, int]] = []
        for sid, version, rows in batch:
            signals = []
            for r in rows:
                vec = vectors.get(r.paper_id)
                if vec is None:
                    vec = vectors[r.paper_id] = paper_vector(r.title, r.abstract, r.keywords)
                signals.append(Signal(r.paper_id, vec, r.kind, r.created_at))
            if signals:
                model = train(signals)
                out.append((sid, model.to_bytes(), len(signals), version))
            else:
                out.append((sid, None, 0, version))
        save_models(engine, out, now or datetime.now(timezone.utc))
        done += len(out)
        if len(vectors) > 50_000:
            vectors.clear()
    return done


class Personalizer:
    """Per plan: which readers get their own ranking, and their digests."""

    def __init__(self, engine: Engine, for_you_count: int = 5) -> None:
        self.engine = engine
        self.for_you_count = for_you_count
        self.readers: dict[int, tuple[bytes, int, list[tuple[int, str, Vector]]]] = {}
        self._vectors: dict[int, Vector] = {}
        self._sets: dict[tuple[int, ...], CandidateSet] = {}  # the papers of a digest, indexed once for its readers
        self._any = None  # whether any reader has a model: one query, so a plan without signals costs nothing

    def has_any(self) -> bool:
        if self._any is None:
            from ..store.schema import ReaderModelRow

            with self.engine.connect() as conn:
                self._any = conn.execute(select(ReaderModelRow.subscriber_id).where(
                    ReaderModelRow.signal_count > 0).limit(1)).first() is not None
        return bool(self._any)

    def split(self, rows: Sequence[tuple[int, Any, Any, Any]]) -> tuple[list[Any], list[Any]]:
        """(rows of readers without a model, rows of readers with one) of a batch ascending by id."""
        if not rows or not self.has_any():
            return list(rows), []
        lo, hi = rows[0][0] - 1, rows[-1][0]
        personal = readers_with_models(self.engine, lo, hi)
        if not personal:
            return list(rows), []
        own = [r for r in rows if r[0] in personal]
        models = models_for(self.engine, [r[0] for r in own])
        liked = self._liked(lo, hi)
        for r in own:
            if r[0] in models:
                data, count = models[r[0]]
                self.readers[r[0]] = (data, count, liked.get(r[0], []))
        return [r for r in rows if r[0] not in self.readers], [r for r in own if r[0] in self.readers]

    def _liked(self, lo: int, hi: int) -> dict[int, list[tuple[int, str, Vector]]]:
        q = (select(SignalRow.subscriber_id, SignalRow.paper_id, PaperRow.title, PaperRow.abstract, PaperRow.ai_keywords)
             .join(PaperRow, PaperRow.id == SignalRow.paper_id)
             .where(SignalRow.subscriber_id > lo, SignalRow.subscriber_id <= hi, SignalRow.kind != "fewer")
             .order_by(SignalRow.subscriber_id, SignalRow.created_at, SignalRow.id))
        out: dict[int, list[tuple[int, str, Vector]]] = {}
        with self.engine.connect() as conn:
            for sid, pid, title, abstract, keywords in conn.execute(q):
                vec = self._vectors.get(pid)
                if vec is None:
                    vec = self._vectors[pid] = paper_vector(title, abstract, keywords or ())
                out.setdefault(int(sid), []).append((int(pid), title, vec))
        return out

    def is_personal(self, subscriber_id: int) -> bool:
        return subscriber_id in self.readers

    def _vector(self, paper: Paper) -> Vector:
        vec = self._vectors.get(paper.id)
        if vec is None:
            vec = self._vectors[paper.id] = paper_vector(paper.title, paper.abstract, paper.ai_keywords)
        return vec

    def apply(self, content: DigestContent, subscriber_id: int) -> DigestContent:
        """``content`` in the reader's own order, opened by their For you block (see the module docstring)."""
        found = self.readers.get(subscriber_id)
        if found is None:
            return content
        data, count, liked = found
        key = tuple(sorted(p.id for s in content.sections for p in s.papers))
        prepared = self._sets.get(key)
        if prepared is None:
            if len(self._sets) > 256:
                self._sets.clear()
            papers = {p.id: p for s in content.sections for p in s.papers}
            prepared = self._sets[key] = CandidateSet(
                [Candidate(p.id, self._vector(p), p.upvotes, p.best_rank) for p in papers.values()])
        return personalize(content, ReaderModel.from_bytes(data), liked, self._vector, self.for_you_count, prepared)


def personalize(content: DigestContent, model: ReaderModel, liked: Sequence[tuple[int, str, Vector]],
                vector_of: Any, for_you_count: int = 5, candidates: Sequence[Candidate] | None = None) -> DigestContent:
    """Pure: sections reordered by the blend, the For you block picked from the papers the email shows, and
    taken out of Top papers (a paper is shown once)."""
    papers = {p.id: p for s in content.sections for p in s.papers}
    if not papers:
        return content
    if candidates is None:
        candidates = [Candidate(p.id, vector_of(p), p.upvotes, p.best_rank) for p in papers.values()]
    ranked = rank(model, candidates, liked=liked)
    position = {r.paper_id: i for i, r in enumerate(ranked)}
    sections = tuple(TopicSection(s.slug, s.name, tuple(sorted(s.papers, key=lambda p: position[p.id])), s.total)
                     for s in content.sections)
    titles = {pid: title for pid, title, _v in liked}
    picks = for_you(ranked, k=for_you_count, min_signals=MIN_SIGNALS)
    block = tuple(ForYou(papers[r.paper_id], reason_for(titles.get(r.reason_paper_id))) for r in picks)
    chosen = {f.paper.id for f in block}
    top = tuple(p for p in content.top if p.id not in chosen)
    return replace(content, sections=sections, top=top, for_you=block)


def reason_for(title: str | None) -> str:
    if not title:
        return "Ranked by what you marked"
    from ..render.textfilters import clean, shorten

    return f"Because you liked “{shorten(clean(title), REASON_TITLE)}”"


def add_personal(builder: Any, personal: Personalizer, rows: Iterable[Any]) -> None:
    """The plan's hook: the batch's readers without a model join the shared groups, the others get their own."""
    rows = list(rows)
    shared, own = personal.split(rows)
    builder.add(shared)
    if own:
        builder.add_alone(own)
