"""The per-reader ranking in the pipeline (issue 15): retrain the models whose signals changed, and put a
reader's shared digest in their own order with their "For you" block.

Readers with signals stay in their shared groups: the same digest row, the same papers listed (and recorded
as sent), the same stored render as the other readers of that digest. Their ranking is presentational. The
caps (``digest.max_papers``, ``digest.max_per_topic``) and the size guard cut by the shared order; within what
the email lists, the reader's model reorders each section (the blend of the model and the upvotes,
``relevance.rank``) and, from 3 signals, picks the ``digest.for_you`` best papers outside Top papers for the For
you block, each with its one-line reason; its section names such a paper in one line, so no paper is shown
twice. A paper cut by the caps stays eligible (it is not recorded as sent) and is in the reader's web copy,
in their order.

- ``Personalizer`` (per plan): retrains (or, for ``diff`` and ``preview``, trains in memory and saves
  nothing), notes which readers of each batch have a model (one range query per batch), and gives a reader's
  view of a digest (``view``, ``web_view``) for preview, diff and the web copy.
- ``Ranker`` (per send, and inside the Personalizer): a reader's order and picks from their stored model over
  a digest's papers indexed once (``CandidateSet``); the liked papers that reasons name are read once and kept.
  ``render.foryou.PersonalKit`` then writes the message from the shared digest's encoded chunks.

Example::

    personal = Personalizer(store.engine, settings.digest.for_you)
    personal.prepare()  # retrain and save (send); Personalizer(..., save=False) for a dry run
    content = personal.view(content, rendered.listed, reader_id)
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import Engine, select

from ..errors import ParseError
from ..models import DigestContent, Paper
from ..render.foryou import PersonalKit, eligible, listed_content, personal_content, reason_text
from ..store.signals import models_for, paper_texts, readers_with_models, save_models, stale_readers
from . import Candidate, CandidateSet, ReaderModel, Signal, Vector, rank, train, vectorize
from .ranking import LIKED_MAX, _reason

MIN_SIGNALS = 3  # the For you block needs this many signals
CACHE = 50_000  # paper vectors kept (liked papers and digests' papers)


def paper_vector(title: str, abstract: str, keywords: Sequence[str]) -> Vector:
    return vectorize(title or "", abstract or "", tuple(keywords or ()))


def trained_models(engine: Engine) -> Iterator[list[tuple[int, bytes | None, int, int]]]:
    """Batches of (reader, model bytes or None, signal count, signals_version) for every reader whose signals
    changed since their model was trained (None: they removed every signal)."""
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
                out.append((sid, model.to_bytes(), model.signal_count, version))
            else:
                out.append((sid, None, 0, version))
        yield out
        if len(vectors) > CACHE:
            vectors.clear()


def retrain(engine: Engine, now: datetime | None = None) -> int:
    """Train and store the model of every reader whose signals changed since their model was trained; returns
    how many. A reader who removed every signal keeps no model (their digest is today's again)."""
    done = 0
    for out in trained_models(engine):
        save_models(engine, out, now or datetime.now(timezone.utc))
        done += len(out)
    return done


class Ranker:
    """A reader's order and For you picks over one digest's listed papers, from their model. The digest's
    papers are indexed once (``candidates``); the liked papers reasons name are read once and kept."""

    def __init__(self, engine: Engine | None, for_you_count: int = 5) -> None:
        self.engine = engine
        self.for_you_count = for_you_count
        self._vectors: dict[int, Vector] = {}
        self._titles: dict[int, str] = {}
        self._sets: dict[tuple[int, ...], tuple[CandidateSet, frozenset[int]]] = {}

    def vector(self, paper: Paper) -> Vector:
        vec = self._vectors.get(paper.id)
        if vec is None:
            if len(self._vectors) > CACHE:
                self._vectors.clear()
                self._titles.clear()
            vec = self._vectors[paper.id] = paper_vector(paper.title, paper.abstract, paper.ai_keywords)
            self._titles[paper.id] = paper.title
        return vec

    def candidates(self, content: DigestContent) -> tuple[CandidateSet, frozenset[int]]:
        """The CandidateSet of ``content``'s papers (indexed once, kept for the next reader of the same
        papers) and the ids For you may pick (listed, outside Top papers)."""
        papers = {p.id: p for s in content.sections for p in s.papers}
        key = tuple(sorted(papers))
        found = self._sets.get(key)
        if found is None:
            if len(self._sets) > 256:
                self._sets.clear()
            prepared = CandidateSet([Candidate(p.id, self.vector(p), p.upvotes, p.best_rank) for p in papers.values()])
            found = self._sets[key] = (prepared, frozenset(p.id for p in eligible(content)))
        return found

    def _liked(self, ids: Sequence[int]) -> list[tuple[int, frozenset[int], dict[int, float]]]:
        missing = [i for i in ids if i not in self._vectors]
        if missing and self.engine is not None:
            for pid, (title, abstract, keywords) in paper_texts(self.engine, missing).items():
                self._vectors[pid] = paper_vector(title, abstract, keywords)
                self._titles[pid] = title
        return [(pid, *v.head()) for pid in ids[-LIKED_MAX:] if (v := self._vectors.get(pid))]

    def choose(self, model: ReaderModel, content: DigestContent,
               prepared: tuple[CandidateSet, frozenset[int]] | None = None) -> tuple[list[int], list[tuple[int, str]]]:
        """(paper ids best first, For you picks as (paper id, reason)) of ``content`` (what the email lists)
        for a reader with ``model``."""
        candidates, pickable = prepared or self.candidates(content)
        ranked = rank(model, candidates)
        order = [r.paper_id for r in ranked]
        picks: list[tuple[int, str]] = []
        if model.signal_count >= MIN_SIGNALS and self.for_you_count > 0:
            chosen = [pid for pid in order if pid in pickable][:self.for_you_count]
            if chosen:
                liked = self._liked(model.liked)
                for pid in chosen:
                    why = _reason(pid, self._vectors[pid], liked) if liked else None
                    picks.append((pid, reason_text(self._titles.get(why) if why is not None else None)))
        return order, picks


class Personalizer:
    """Per plan: which readers have a model, and their view of a digest."""

    def __init__(self, engine: Engine, for_you_count: int = 5, *, save: bool = True) -> None:
        self.engine = engine
        self.for_you_count = for_you_count
        self.save = save
        self.ranker = Ranker(engine, for_you_count)
        self.personal: set[int] = set()  # readers of this plan with a model
        self._fresh: dict[int, bytes | None] = {}  # dry run: models trained in memory (None: no model now)
        self._models: dict[int, ReaderModel | None] = {}
        self._layouts: dict[tuple[Any, ...], Any] = {}
        self._any: bool | None = None

    def prepare(self) -> int:
        """Retrain the stale models: stored (``save``), else kept in memory for this plan only. Returns how many."""
        if self.save:
            return retrain(self.engine)
        for out in trained_models(self.engine):
            self._fresh.update((sid, data) for sid, data, _count, _version in out)
        return len(self._fresh)

    def has_any(self) -> bool:
        if self._any is None:
            from ..store.schema import ReaderModelRow

            with self.engine.connect() as conn:
                self._any = conn.execute(select(ReaderModelRow.subscriber_id).where(
                    ReaderModelRow.signal_count > 0).limit(1)).first() is not None
            self._any = self._any or any(v is not None for v in self._fresh.values())
        return bool(self._any)

    def note(self, rows: Sequence[tuple[int, Any, Any, Any]]) -> None:
        """Note the readers with a model in a batch ascending by id (one range query)."""
        if not rows or not self.has_any():
            return
        lo, hi = rows[0][0] - 1, rows[-1][0]
        found = readers_with_models(self.engine, lo, hi)
        for sid, data in self._fresh.items():
            if lo < sid <= hi:
                (found.add if data is not None else found.discard)(sid)
        self.personal.update(found)

    def is_personal(self, subscriber_id: int) -> bool:
        return subscriber_id in self.personal

    def any_personal(self, reader_ids: Iterable[int]) -> bool:
        personal = self.personal
        return bool(personal) and any(sid in personal for sid in reader_ids)

    def model(self, subscriber_id: int) -> ReaderModel | None:
        if subscriber_id not in self._models:
            data: bytes | None
            if subscriber_id in self._fresh:
                data = self._fresh[subscriber_id]
            else:
                data = models_for(self.engine, [subscriber_id]).get(subscriber_id, (None, 0))[0]
            self._models[subscriber_id] = ReaderModel.from_bytes(data) if data else None
            if len(self._models) > 4096:
                self._models.clear()
        return self._models.get(subscriber_id)

    def choose(self, content: DigestContent, listed: Iterable[int], subscriber_id: int
               ) -> tuple[DigestContent, list[int], list[tuple[int, str]]] | None:
        """(what the email lists, the reader's order, their picks), or None for a reader without a model."""
        model = self.model(subscriber_id)
        if model is None or not model.signal_count:
            return None
        base = listed_content(content, listed)
        order, picks = self.ranker.choose(model, base)
        return base, order, picks

    def view(self, content: DigestContent, listed: Iterable[int], subscriber_id: int, *,
             rendered: Any = None, settings: Any = None) -> DigestContent:
        """The email's content as the reader gets it: what it lists, in their order, with their For you block
        (``content`` as it is for a reader without a model). Given the shared ``rendered`` and ``settings``, as
        send decides it: no For you block where the variant would not fit the size guard, the shared order
        where the templates carry no marks."""
        listed = list(listed)
        chosen = self.choose(content, listed, subscriber_id)
        if chosen is None:
            return content
        base, order, picks = chosen
        if rendered is not None and settings is not None:
            from ..render.foryou import kit_layout

            key = (id(rendered), tuple(listed))
            if key not in self._layouts:
                if len(self._layouts) > 64:
                    self._layouts.clear()
                self._layouts[key] = kit_layout(rendered, content, listed, settings)
            layout = self._layouts[key]
            if layout is None:
                return content
            if not layout.fits(len(picks)):
                picks = []
        return personal_content(base, order, picks)

    def web_view(self, content: DigestContent, listed: Iterable[int], subscriber_id: int) -> DigestContent:
        """The reader's web copy: every paper of their digest (also those the email cut), each section in their
        order, with the email's For you block."""
        listed = list(listed)
        chosen = self.choose(content, listed, subscriber_id)
        if chosen is None:
            return content
        _base, _order, picks = chosen
        model = self.model(subscriber_id)
        assert model is not None
        whole, _ = self.ranker.candidates(content)
        order = [r.paper_id for r in rank(model, whole)]
        return personal_content(content, order, picks)


class SendPersonal:
    """The send loop's side (``render.message.DeliveryMessages``): a ``PersonalKit`` per shared digest and
    kind of reader, built once, and per reader with a model (it comes with the claimed delivery) their order
    and picks. Bounded: the ``KITS`` most recently used kits."""

    KITS = 32

    def __init__(self, messages: Any) -> None:
        self.messages = messages
        self.nl = messages.nl
        self.ranker = Ranker(self.nl.store.engine, self.nl.settings.digest.for_you)
        self._kits: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._papers: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def kit(self, delivery: Any, prepared: Any) -> Any:
        key = (delivery.edition_id, delivery.digest_id, delivery.topics, tuple(delivery.excluded_keywords))
        found = self._kits.get(key)
        if found is not None and found[0] is prepared:
            self._kits.move_to_end(key)
            return found[1]
        kit = self._build(delivery, prepared)
        self._kits[key] = (prepared, kit)
        while len(self._kits) > self.KITS:
            self._kits.popitem(last=False)
        return kit

    def _build(self, delivery: Any, prepared: Any) -> Any:
        from ..models import Subscriber
        from ..store.editions import digest_listed_ids
        from ..topics import build_digest

        where = (delivery.edition_id, delivery.digest_id)
        found = self._papers.get(where)
        if found is None:
            found = self._papers[where] = self.nl.edition_papers_for(*where)
            while len(self._papers) > 8:
                self._papers.popitem(last=False)
        record, papers = found
        settings = self.nl.settings
        who = Subscriber(0, "", "active", record.cadence, delivery.topics, tuple(delivery.excluded_keywords))
        # Uncapped: every listed paper is in it whatever its upvotes did since (the kit takes the listed ones).
        uncapped = settings.digest.model_copy(update={"max_papers": 10**9, "max_per_topic": 10**9})
        content = build_digest(papers, settings.topics, who, uncapped, record.cadence, record.period, record.day)
        listed = digest_listed_ids(self.nl.store.engine, delivery.digest_id)
        kit = PersonalKit.build(prepared, content, listed, settings, self.messages.factory.lines)
        if kit is not None:
            kit.prepared = self.ranker.candidates(kit.content)
        return kit

    def message(self, delivery: Any, prepared: Any, recipient: Any, date: datetime) -> bytes | None:
        """The reader's message in their own order, or None (no kit: their templates lack the marks)."""
        kit = self.kit(delivery, prepared)
        if kit is None:
            return None
        try:
            model = ReaderModel.from_bytes(delivery.model)
        except ParseError:
            return None
        order, picks = self.ranker.choose(model, kit.content, kit.prepared)
        return kit.message(recipient, date, order, picks)  # type: ignore[no-any-return]


def add_personal(builder: Any, personal: Personalizer, rows: Iterable[Any]) -> None:
    """The plan's hook: every reader joins the shared groups; those with a model are noted."""
    rows = list(rows)
    personal.note(rows)
    builder.add(rows)
