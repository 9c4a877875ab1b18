"""The store → diff → topics → render stages of ``Newsletter``: plan an edition and record it. A mixin.

Readers stream from the store in batches (``store.sent``) and fall into groups of the same choices and the
same unsent papers (``diff.GroupBuilder``); each distinct digest is built and rendered once, and the edition is
written in bulk (``store.record``). Nothing is held per reader but their id.

Example::

    plan = nl.plan("daily")
    print(plan.reader_count, "readers in", len(plan.groups), "groups")
    edition_id = nl.record_edition(plan)
"""

from __future__ import annotations

import heapq
from array import array
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Sequence

from .diff import GroupBuilder, period_for, window_start
from .errors import NewsletterError
from .models import CADENCES, DigestContent, Paper
from .reports import Plan, PlannedDigest

if TYPE_CHECKING:
    from .config import Settings
    from .relevance.personal import Personalizer
    from .render import RenderedDigest
    from .store import Store


class Planning:
    """``plan``, ``planned_digests``, ``record_edition`` and ``edition_subject`` of ``Newsletter``."""

    settings: "Settings"
    store: "Store"

    def classify_new(self, progress: object = None) -> int:  # pragma: no cover - Newsletter's
        raise NotImplementedError

    def digest_content(self, papers: Sequence[Paper], subscriber: object, cadence: str, period: str,
                       day: date) -> DigestContent:  # pragma: no cover - Newsletter's
        raise NotImplementedError

    def render_for(self, content: DigestContent, edition_id: int | None = None) -> "RenderedDigest":  # pragma: no cover
        raise NotImplementedError

    # --- store → diff -----------------------------------------------------------------------------------

    def plan(self, cadence: str, day: date | None = None, subscriber_ids: Sequence[int] | None = None, *,
             save_models: bool = True) -> Plan:
        """What the next ``cadence`` edition for ``day`` (default today) would hold for each active reader
        (``subscriber_ids``: only these), grouped by the same choices and unsent papers.

        Readers' models whose signals changed are retrained first and stored; with ``save_models=False`` (``diff``,
        ``preview``, a dry run) they are trained in memory for this plan and nothing is written."""
        from .relevance.personal import add_personal
        from .store.sent import parse_history, reader_batches, sent_digests

        if cadence not in CADENCES:
            raise NewsletterError(f"Unknown cadence {cadence!r}.", hint="use daily or weekly")
        day = day or date.today()
        self.classify_new()  # a changed topic setting reclassifies before anything is planned
        start = window_start(day, self.settings.window_days(cadence))
        candidates = self.store.papers(since=start, until=day)
        candidates.sort(key=lambda p: (-(p.upvotes or 0), p.best_rank or 10**6, p.id))
        # A paper can only have been sent in an edition made on or after the day it first trended; papers
        # given back by failed sends are looked for one window further back (they carry over once).
        earliest = min((p.first_trending for p in candidates if p.first_trending), default=start)
        carry_from = start - timedelta(days=self.settings.window_days(cadence))
        since = min(earliest, carry_from)
        digests = sent_digests(self.store.engine, since)
        in_window = {p.id for p in candidates}
        others = {pid for d in digests.values() for pid in d.papers} - in_window
        carry = {p.id: p for p in self.store.papers(ids=others)} if others else {}
        carry.update((p.id, p) for p in candidates)
        builder = GroupBuilder(cadence, candidates, lambda h: parse_history(h, digests), carry)
        personal = self.personalizer(save=save_models)  # issue 15: readers with signals get their own ranking
        for batch in reader_batches(self.store.engine, cadence, since, subscriber_ids):
            add_personal(builder, personal, batch)
        period = period_for(cadence, day)
        return Plan(cadence, day, period, start, candidates, builder.groups(), self.store.edition_id_for(cadence, period),
                    load_subscribers=self.store.subscribers_by_ids, personal=personal)

    def personalizer(self, save: bool = True) -> "Personalizer":
        """A ``Personalizer`` for one plan, the models whose signals changed retrained (stored only if ``save``)."""
        from .relevance.personal import Personalizer

        personal = Personalizer(self.store.engine, self.settings.digest.for_you, save=save)
        personal.prepare()
        return personal

    def reader_digests(self, plan: Plan) -> dict[int, DigestContent]:
        """Each reader's digest: their unsent papers that pass their topics and excluded keywords, grouped.

        The caps are not applied here: a digest holds every such paper (the reader's web copy). The email lists
        the best of them (``planned_digests``); only those are recorded as sent. One computation per group; the
        mapping has an entry per reader with something in it (for small plans).
        """
        out: dict[int, DigestContent] = {}
        for group, full in self._full_digests(plan):
            for sid in group.ids:
                out[sid] = full
        return out

    def _full_digests(self, plan: Plan) -> list[tuple[object, DigestContent]]:
        from .topics import build_digest

        uncapped = self.settings.digest.model_copy(update={"max_papers": 10**9, "max_per_topic": 10**9})
        shared: dict[tuple[object, ...], DigestContent] = {}
        out = []
        for group in plan.groups:
            if not group.papers:
                continue
            sub = group.subscriber
            key = (tuple(p.id for p in group.papers), sub.topics, sub.excluded_keywords)
            if key not in shared:
                shared[key] = build_digest(group.papers, self.settings.topics, sub, uncapped, plan.cadence,
                                           plan.period, plan.day)
            if shared[key].paper_count:
                out.append((group, shared[key]))
        return out

    def planned_digests(self, plan: Plan) -> list[PlannedDigest]:
        """The distinct digests of the next edition, as ``send`` makes and records them: the same code path
        serves ``send``, ``diff`` and ``preview``. Each is rendered once (the email's size guard decides what it
        lists); most readers first."""
        from .store.editions import reader_kind

        planned: dict[tuple[object, ...], PlannedDigest] = {}
        parts: dict[tuple[object, ...], list["array[int]"]] = {}
        personal: dict[tuple[object, ...], bool] = {}
        for group, full in self._full_digests(plan):
            sub = group.subscriber  # type: ignore[attr-defined]
            kind = reader_kind(sub.topics, sub.excluded_keywords)
            key = (tuple(p.id for p in group.papers), kind)  # type: ignore[attr-defined]
            if key not in planned:
                content = self.digest_content(group.papers, sub, plan.cadence, plan.period, plan.day)  # type: ignore[attr-defined]
                planned[key] = PlannedDigest(array("q"), full, content, None, kind, sub)  # type: ignore[arg-type]
                parts[key] = []
            parts[key].append(group.ids)  # type: ignore[attr-defined]
            if not personal.get(key) and plan.personal is not None:
                personal[key] = plan.personal.any_personal(group.ids)  # type: ignore[attr-defined]
        for key, d in planned.items():
            # Rendered once; for a digest with readers with signals the size guard keeps room for the For you
            # block their copies add (render.foryou: the variant is never over the limit).
            d.rendered = self.render_shared(d.content, personal=personal.get(key, False))
            # Each group's ids ascend: one group's array is shared as it is, several are merged in order
            # (never a list of every reader: memory stays a few bytes per reader).
            ids = parts[key]
            d.reader_ids = ids[0] if len(ids) == 1 else array(max(i.typecode for i in ids), heapq.merge(*ids))
        return sorted(planned.values(), key=lambda d: (-d.reader_count, d.reader_ids[0]))

    def render_shared(self, content: DigestContent, edition_id: int | None = None, *,
                      personal: bool = False) -> "RenderedDigest":
        """``render_for(content)``; with ``personal`` (readers with signals get this digest) the size guard
        also keeps room for the largest For you block ``digest.for_you`` papers can make of it."""
        from .render.foryou import render_shared
        from .render.links import edition_url

        if not personal or self.settings.digest.for_you <= 0:
            return self.render_for(content, edition_id)
        return render_shared(content, self.settings, edition_url(self.settings.site_url, edition_id),
                             self.settings.digest.for_you)

    def reader_copy(self, content: DigestContent, shared: "RenderedDigest", subscriber_id: int,
                    personal: "Personalizer", edition_id: int | None = None) -> tuple[DigestContent, "RenderedDigest"]:
        """(content, rendered) of the email a reader with signals gets of the shared digest ``shared`` (of
        ``content``): what it lists, in their order, with their For you block; as ``send`` writes it
        (``render.foryou``), rendered whole. ``shared`` itself for a reader without a model, or when the
        templates carry no marks (send then sends them the shared email)."""
        from .render import render_digest
        from .render.foryou import kit_layout, personal_content
        from .render.links import edition_url

        chosen = personal.choose(content, shared.listed, subscriber_id)
        layout = kit_layout(shared, content, shared.listed, self.settings) if chosen else None
        if chosen is None or layout is None:
            return content, shared
        base, order, picks = chosen
        if not layout.fits(len(picks)):
            picks = []
        mine = personal_content(base, order, picks)
        return mine, render_digest(mine, self.settings, edition_url(self.settings.site_url, edition_id),
                                   size_limit=10**9)

    def record_edition(self, plan: Plan, subject: str | None = None, now: datetime | None = None,
                       planned: Sequence[PlannedDigest] | None = None) -> int:
        """Write the edition of ``plan``: one pending delivery per reader whose digest holds something, and each
        distinct digest's email as rendered (retries and ``preview --edition`` show exactly it).

        What is recorded as sent to a reader is exactly what their email lists. A paper left out by their
        topics or excluded keywords, or cut from the email by ``digest.max_papers``, ``digest.max_per_topic``
        or the size limit, is not: it stays eligible while it is in the window (the cut ones are in the
        reader's web copy, which holds every paper of their digest).
        """
        from .store.record import EditionDigest, write_edition

        planned = self.planned_digests(plan) if planned is None else planned
        order: dict[int, str | None] = {}
        for d in planned:
            for section in d.full.sections:
                for p in section.papers:
                    order.setdefault(p.id, section.slug)
        if subject is None:
            subject = self.edition_subject(plan, planned)
        host = self.settings.sender.email.rpartition("@")[2] or "newsletter.invalid"
        digests = [EditionDigest([p.id for p in d.full.papers], list(d.listed), d.reader_ids, [(d.kind, {
            "subject": d.rendered.subject, "html": d.rendered.html, "text": d.rendered.text,
            "preheader": d.rendered.preheader, "slots": dict(d.rendered.slots), "shown": dict(d.rendered.shown),
            "shortened": d.rendered.shortened})]) for d in planned]
        return write_edition(self.store.engine, plan.cadence, plan.period, plan.day, subject, list(order.items()),
                             digests, message_id_domain=host, now=now or datetime.now(timezone.utc))

    def edition_subject(self, plan: Plan, planned: Sequence[PlannedDigest] | None = None) -> str:
        """The edition's subject (its archive title): ``digest.subject`` filled in for every paper the edition
        holds, in the sections its web page shows them in (so the title and the page count the same)."""
        from .render import EmailCounts, format_subject
        from .topics import rank_key

        planned = self.planned_digests(plan) if planned is None else planned
        sections: dict[int, str] = {}
        papers: dict[int, Paper] = {}
        for d in planned:
            for section in d.full.sections:
                for p in section.papers:
                    sections.setdefault(p.id, section.slug)
                    papers.setdefault(p.id, p)
        best = min(papers.values(), key=rank_key, default=None)
        counts = EmailCounts(len(papers), len(set(sections.values())), 0, best.title if best else "")
        empty = DigestContent(plan.cadence, plan.period, plan.day, (), ())
        return format_subject(self.settings.digest.subject, empty, counts)
