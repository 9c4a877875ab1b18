"""Editions on the web: an edition's papers grouped by topic (the edition page and the API), and the Atom
(RFC 4287) and JSON Feed 1.1 documents of the latest editions.

Paper text is untrusted: the feeds are built with ElementTree and ``json`` (which escape), and the HTML put
inside entries is escaped with ``markupsafe`` and links pass ``render.safe_url`` (http and https only).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from markupsafe import escape

from ..config import Settings
from ..models import DigestContent, Paper
from ..render import EmailCounts, format_subject
from ..render.textfilters import clean, format_day, safe_url, shorten, summary
from ..store import Store
from ..store.subscriptions import EditionInfo, edition_info, published_editions

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_SIZE = 20
OTHER = "other"


@dataclass(frozen=True)
class Section:
    slug: str
    name: str
    papers: tuple[Paper, ...]

    @property
    def anchor(self) -> str:  # the same anchors the email's "N more papers" links point at
        return f"topic-{self.slug}"


@dataclass(frozen=True)
class EditionView:
    """An edition's papers by topic: every paper of the edition, or (``listed`` set) one reader's web copy of
    their digest, with the papers their email listed in ``listed``."""

    info: EditionInfo
    sections: tuple[Section, ...]
    heading: str = ""  # digest.subject filled in with this page's own counts
    listed: frozenset[int] | None = None  # a reader's web copy: the papers their email listed
    for_you: tuple[Any, ...] = ()  # a reader with signals (issue 15): their email's For you block (models.ForYou)

    @property
    def title(self) -> str:
        return self.heading or edition_title(self.info)

    @property
    def paper_count(self) -> int:
        return sum(len(s.papers) for s in self.sections)

    @property
    def topic_count(self) -> int:
        return len(self.sections)

    @property
    def not_listed(self) -> int:
        """Papers of a web copy that the email did not list (they were not counted as sent)."""
        return 0 if self.listed is None else sum(1 for s in self.sections for p in s.papers if p.id not in self.listed)


def personal_web_copy(store: Store, settings: Settings, view: EditionView, subscriber: Any) -> EditionView:
    """A reader with signals (issue 15): their web copy in their own order (each section by the blend of their
    model and the upvotes, over every paper of their digest, also those the email cut) with the For you block
    their email had (picked from what it listed, outside Top papers). ``view`` as it is for other readers."""
    from dataclasses import replace as copy

    from ..relevance.personal import Personalizer
    from ..topics import build_digest

    personal = Personalizer(store.engine, settings.digest.for_you, save=False)
    if personal.model(subscriber.id) is None or view.listed is None:
        return view
    papers = [copy(p, topic=s.slug) for s in view.sections for p in s.papers]
    who = copy(subscriber, cadence=view.info.cadence)
    uncapped = settings.digest.model_copy(update={"max_papers": 10**9, "max_per_topic": 10**9})
    content = build_digest(papers, settings.topics, who, uncapped, view.info.cadence, view.info.period, view.info.day)
    mine = personal.web_view(content, sorted(view.listed), subscriber.id)
    position = {p.id: n for n, p in enumerate(mine.papers)}
    last = len(position)
    sections = tuple(Section(s.slug, s.name, tuple(sorted(s.papers, key=lambda p: position.get(p.id, last))))
                     for s in view.sections)
    return copy(view, sections=sections, for_you=mine.for_you)


def edition_title(info: EditionInfo) -> str:
    return clean(info.subject) or f"{info.cadence.capitalize()} edition, {format_day(info.day)}"


def edition_view(store: Store, settings: Settings, edition_id: int, subscriber_id: int | None = None
                 ) -> EditionView | None:
    """The edition's papers in their sections, in the order of the configured topics (as in the email). With
    ``subscriber_id``: that reader's web copy, exactly the papers of their digest (also those the email cut);
    None when the edition has no delivery to them. Without it, None for a cancelled edition too: an edition
    called off is not published (a reader it reached still has their web copy)."""
    from ..store.editions import delivery_digest_id, digest_listed_ids, digest_paper_ids

    info = edition_info(store, edition_id, published=subscriber_id is None)
    if info is None:
        return None
    placed = store.edition_papers(edition_id)
    listed: frozenset[int] | None = None
    if subscriber_id is not None:
        digest_id = delivery_digest_id(store.engine, edition_id, subscriber_id)
        if digest_id is None:
            return None
        section_of = dict(placed)
        placed = [(pid, section_of.get(pid)) for pid in digest_paper_ids(store.engine, digest_id)]
        listed = frozenset(digest_listed_ids(store.engine, digest_id))
    by_id = {p.id: p for p in store.papers(ids=[pid for pid, _ in placed])} if placed else {}
    grouped: dict[str, list[Paper]] = {}
    for pid, topic in placed:
        if pid in by_id:
            grouped.setdefault(topic or OTHER, []).append(by_id[pid])
    names = {t.slug: t.name for t in settings.topics}
    order = [t.slug for t in settings.topics] + sorted(k for k in grouped if k not in names)
    sections = tuple(Section(slug, names.get(slug, "Other papers" if slug == OTHER else slug), tuple(grouped[slug]))
                     for slug in order if slug in grouped)
    return EditionView(info, sections, _heading(settings, info, sections), listed)


def _heading(settings: Settings, info: EditionInfo, sections: Sequence[Section]) -> str:
    """The page's title: ``digest.subject`` with the counts of what the page shows (``render.EmailCounts``)."""
    from ..topics import rank_key

    papers = [p for s in sections for p in s.papers]
    best = min(papers, key=rank_key, default=None)
    counts = EmailCounts(len(papers), len(sections), 0, best.title if best else "")
    empty = DigestContent(info.cadence, info.period, info.day, (), ())
    return clean(format_subject(settings.digest.subject, empty, counts))


def edition_url(settings: Settings, edition_id: int) -> str:
    return f"{settings.site_url}/editions/{edition_id}"


def _when(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def entry_html(view: EditionView) -> str:
    """A short HTML body for a feed entry: each topic with its paper titles linked."""
    parts = []
    for section in view.sections:
        items = []
        for paper in section.papers:
            title = escape(shorten(clean(paper.title), 300))
            url = safe_url(paper.page_url)
            items.append(f'<li><a href="{escape(url)}">{title}</a></li>' if url else f"<li>{title}</li>")
        parts.append(f"<h3>{escape(section.name)}</h3><ul>{''.join(items)}</ul>")
    return "".join(parts)


def _recent(store: Store, settings: Settings) -> list[EditionView]:
    views = [edition_view(store, settings, e.id) for e in published_editions(store, limit=FEED_SIZE)]
    return [v for v in views if v is not None]


def atom_feed(store: Store, settings: Settings) -> bytes:
    ET.register_namespace("", ATOM_NS)
    views = _recent(store, settings)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", f"{settings.site_url}/editions")
    sub(feed, "title", settings.list_name)
    sub(feed, "subtitle", "Every edition of the trending machine-learning papers digest.")
    updated = max((_when(v.info.created_at) for v in views), default=datetime(2000, 1, 1, tzinfo=timezone.utc))
    sub(feed, "updated", updated.isoformat())
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{settings.site_url}/feed.atom")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{settings.site_url}/editions")
    author = sub(feed, "author")
    sub(author, "name", settings.sender.name)
    sub(feed, "generator", "trending-papers-newsletter")
    for view in views:
        entry = sub(feed, "entry")
        sub(entry, "id", edition_url(settings, view.info.id))
        sub(entry, "title", view.title)
        sub(entry, "updated", _when(view.info.created_at).isoformat())
        sub(entry, "published", _when(view.info.created_at).isoformat())
        sub(entry, "link", rel="alternate", type="text/html", href=edition_url(settings, view.info.id))
        sub(entry, "summary", _summary_line(view))
        for section in view.sections:
            sub(entry, "category", term=section.slug, label=section.name)
        sub(entry, "content", entry_html(view), type="html")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


def json_feed(store: Store, settings: Settings) -> dict[str, Any]:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    items = []
    for view in _recent(store, settings):
        items.append({
            "id": edition_url(settings, view.info.id),
            "url": edition_url(settings, view.info.id),
            "title": view.title,
            "summary": _summary_line(view),
            "content_html": entry_html(view),
            "date_published": _when(view.info.created_at).isoformat(),
            "tags": [s.name for s in view.sections],
        })
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": settings.list_name,
        "home_page_url": f"{settings.site_url}/editions",
        "feed_url": f"{settings.site_url}/feed.json",
        "description": "Every edition of the trending machine-learning papers digest.",
        "authors": [{"name": settings.sender.name}],
        "language": "en",
        "items": items,
    }


def _summary_line(view: EditionView) -> str:
    names = ", ".join(s.name for s in view.sections)
    count = view.paper_count
    return f"{count} paper{'s' if count != 1 else ''} in {len(view.sections)} topic{'s' if len(view.sections) != 1 else ''}: {names}"


def paper_json(paper: Paper) -> dict[str, Any]:
    """A paper as the API shows it (links http(s) only, text cleaned)."""
    return {"id": paper.id, "title": clean(paper.title), "url": safe_url(paper.page_url) or None,
            "pdf_url": safe_url(paper.pdf_url) or None, "arxiv_id": paper.arxiv_id,
            "authors": [clean(a) for a in paper.authors[:20]], "summary": summary(paper),
            "upvotes": paper.upvotes, "code_url": safe_url(paper.github_repo) or None}


__all__: Sequence[str] = ["EditionView", "Section", "atom_feed", "edition_view", "json_feed", "paper_json"]
