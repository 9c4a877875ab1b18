"""Render a digest: Jinja2 fills MJML templates, mjml-python compiles them to HTML; a text template gives the
plain part. Pure apart from reading templates: no clock, no database.

Templates are looked up in the operator's ``templates_dir`` first, then in the shipped ``templates/email/``;
partials start with ``_``. Two Jinja environments share that search path:

- the HTML one autoescapes *every* template it loads (``autoescape=True``: ``select_autoescape()`` would not
  cover ``.mjml``), so anything taken from a paper is escaped exactly once, at output;
- the text one does not escape (``digest.txt``); there untrusted text is only cleaned of control characters.

Per-reader values (greeting, preferences and unsubscribe links) are not rendered in: each is left as a slot
marker, unique to this render, that ``RenderedDigest.fill`` (or ``message.PreparedDigest``) replaces. So one
render serves every reader who gets the same papers. Each marker sits on a line of its own in both parts, so a
message builder re-encodes only those short lines per reader.

Gmail clips HTML over about 102 KB ("[Message clipped]"), hiding the footer with the unsubscribe link, so the
HTML is kept under ``SIZE_LIMIT``: when a digest would exceed it, the longest topic sections are shortened
and each says how many more papers the web copy holds.

The text cleaning and the template filters live in ``textfilters`` (the web pages use them too); the checks of
a template set in ``template_check``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import jinja2
import mjml
from markupsafe import Markup, escape

from ..config import Settings
from ..errors import NewsletterError
from ..models import DigestContent, Paper
from .textfilters import (
    _finalize_html,
    _finalize_text,
    clean,
    compact_number,
    format_authors,
    format_day,
    meta_items,
    paper_links,
    plural,
    safe_url,
    short_day,
    shorten,
    summary,
    wrap,
    wrap_items,
)

SIZE_LIMIT = 100_000  # bytes of HTML; Gmail clips at 102 KB
SIZE_ALLOWANCE = 2_000  # room for what is filled in per reader (tokens are longer than their markers)
# The web copy is a slot too: each reader's own signed link to their digest's papers (``links.web_copy_url``).
SLOTS = ("greeting", "preferences_url", "unsubscribe_url", "web_copy_url")
# Each card's own token (``links.ReaderLinks.card``, one per reader and paper) is a slot too: its marker is
# ``slots[CARD_SLOT] + str(paper id) + "%%"``. Per reader a message fills in each card's token.
CARD_SLOT = "card"
HTML_TEMPLATE = "digest.mjml"
TEXT_TEMPLATE = "digest.txt"
FONT_STACK = ("-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Helvetica, Arial, "
              "sans-serif, 'Apple Color Emoji', 'Segoe UI Emoji'")


class RenderError(NewsletterError):
    """A template is missing or broken, or a digest cannot be made to fit."""


# --- where templates live ------------------------------------------------------------------------------


def shipped_templates_dir() -> Path:
    """``newsletter/templates/email`` inside an installed wheel, else ``templates/email`` of the source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "templates" / "email"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent.parent / "templates" / "email"
    if checkout.is_dir():
        return checkout
    raise RenderError("The shipped email templates are missing (templates/email/).",
                      hint="reinstall the package; a wheel carries them as newsletter/templates/email")


def template_search_path(settings: Settings) -> tuple[Path, ...]:
    """The operator's ``templates_dir`` (if set) first, then the shipped templates."""
    dirs: list[Path] = []
    if settings.templates_dir:
        own = settings.path(settings.templates_dir)
        if not own.is_dir():
            raise RenderError(f"templates_dir {own} is not a folder.",
                              hint="create it, or remove templates_dir from config.yaml to use the shipped templates")
        dirs.append(own)
    dirs.append(shipped_templates_dir())
    return tuple(dirs)


def template_files(search_path: Sequence[Path]) -> list[Path]:
    """Every template file on the search path (what the preview server watches for changes)."""
    return sorted(p for d in search_path for p in d.rglob("*") if p.is_file())


# --- the environments -----------------------------------------------------------------------------------


class Templates:
    """The two Jinja environments over one search path. Templates are read once (``reset_template_cache``
    starts over: the preview server does so when a file changes)."""

    def __init__(self, search_path: Sequence[Path]) -> None:
        self.search_path = tuple(Path(p) for p in search_path)
        loader = jinja2.FileSystemLoader([str(p) for p in self.search_path])
        common: dict[str, Any] = dict(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True, auto_reload=False)
        self.html = jinja2.Environment(autoescape=True, finalize=_finalize_html, **common)
        self.text = jinja2.Environment(autoescape=False, finalize=_finalize_text, keep_trailing_newline=True,
                                       **common)
        for env in (self.html, self.text):
            env.filters.update(
                clean=clean, shorten=shorten, safe_url=safe_url, day=format_day, short_day=short_day,
                count=compact_number, plural=plural, authors=format_authors, summary=summary,
                meta_items=meta_items, paper_links=paper_links, wrap=wrap, wrap_items=wrap_items,
            )

    def render(self, env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"Template {exc.name} not found in {', '.join(map(str, self.search_path))}.",
                              hint="restore it, or remove the override from templates_dir") from None
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"Template {exc.filename or exc.name}, line {exc.lineno}: {exc.message}",
                              hint="fix the template syntax (Jinja2)") from None
        except jinja2.UndefinedError as exc:
            where = _template_line(exc)
            raise RenderError(f"Template {name}{where}: {exc.message}",
                              hint="the variables a template can use are listed in templates/email/digest.mjml") from None


def _template_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt")):
            line = f" ({Path(filename).name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return line


@functools.lru_cache(maxsize=8)
def _templates_for(search_path: tuple[Path, ...]) -> Templates:
    return Templates(search_path)


def templates_for(settings: Settings) -> Templates:
    return _templates_for(template_search_path(settings))


def reset_template_cache() -> None:
    """Forget loaded templates, so a file newly added to ``templates_dir`` takes effect (the preview server)."""
    _templates_for.cache_clear()


# --- the rendered digest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedDigest:
    """One digest rendered for every reader who gets the same papers; per-reader values are slot markers."""

    subject: str
    html: str
    text: str
    preheader: str
    slots: Mapping[str, str]  # slot name -> the marker standing for it in html and text
    shown: Mapping[str, int] = field(default_factory=dict)  # papers shown per section slug
    shortened: bool = False  # the size guard cut sections
    listed: tuple[int, ...] = ()  # ids of the papers the email lists (Top papers, then sections): what is sent
    fallback_url: str = ""  # the web copy link when no per-reader one is given (a preview)

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def _values(self, values: Mapping[str, str]) -> dict[str, str]:
        # A render kept from before the web copy was a slot has no marker for it: only its own slots are filled.
        out = {k: values[k] for k in SLOTS if k in values}
        if not out.get("web_copy_url"):
            out["web_copy_url"] = self.fallback_url
        return {k: v for k, v in out.items() if k in self.slots}

    def html_values(self, values: Mapping[str, str]) -> dict[str, str]:
        """Marker -> value for the HTML part (values escaped for HTML; they sit in text and in href)."""
        return {self.slots[k]: str(escape(v)) for k, v in self._values(values).items()}

    def text_values(self, values: Mapping[str, str]) -> dict[str, str]:
        return {self.slots[k]: v for k, v in self._values(values).items()}

    def fill(self, values: Mapping[str, str], cards: Callable[[int], str] | None = None) -> tuple[str, str]:
        """(html, text) for one reader. ``values`` maps every name in SLOTS to its plain value (without
        ``web_copy_url``, the ``edition_url`` the digest was rendered with); ``cards`` gives the reader's card
        token of a paper (None: ``links.PREVIEW_CARD_TOKEN`` on every card)."""
        missing = [k for k in SLOTS if k not in values and k != "web_copy_url"]
        if missing:
            raise ValueError(f"values for {missing} are missing")
        html = _replace_all(self.html, self.html_values(values))
        text = _replace_all(self.text, self.text_values(values))
        return self.fill_cards(html, cards), self.fill_cards(text, cards)

    def fill_cards(self, text: str, cards: Callable[[int], str] | None) -> str:
        """``text`` with every card marker replaced by the reader's card token (tokens need no escaping)."""
        prefix = self.slots.get(CARD_SLOT)
        if not prefix or prefix not in text:
            return text
        from .links import PREVIEW_CARD_TOKEN

        sign = cards or (lambda _pid: PREVIEW_CARD_TOKEN)
        return re.sub(re.escape(prefix) + r"(\d+)%%", lambda m: sign(int(m.group(1))), text)


def _replace_all(text: str, replacements: Mapping[str, str]) -> str:
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text


def greeting_for(name: str | None) -> str:
    """``Hi Ada,`` from the reader's name, or ``Hello,``; safe to put on one line of a message."""
    first = clean(name).split(" ")[0] if name else ""
    first = shorten(first, 40)
    return f"Hi {first}," if first else "Hello,"


def reader_values(name: str | None, preferences_url: str, unsubscribe_url: str,
                  web_copy_url: str = "") -> dict[str, str]:
    return {"greeting": greeting_for(name), "preferences_url": preferences_url, "unsubscribe_url": unsubscribe_url,
            "web_copy_url": web_copy_url}


# --- subject and preheader -------------------------------------------------------------------------------


class _FieldsOnly(string.Formatter):
    """str.format without attribute or index access: ``{date}`` works, ``{date.__class__}`` does not."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return kwargs[field_name], field_name


@dataclass(frozen=True)
class EmailCounts:
    """What one email says it holds, counted once here for the subject, the heading, the contents, the web pages,
    the API, ``preview`` and ``diff``.

    The rule: a digest counts the papers its email *lists* (in "Top papers" or in a section, each once), and the
    topics those papers sit in. The reader's other eligible papers (cut by ``digest.max_papers``,
    ``digest.max_per_topic`` or the size limit) are counted apart as ``more``: they are in the web copy, are not
    recorded as sent, and come again in the next digest while they are in the window.
    """

    listed: int
    topics: int
    more: int
    top_title: str

    @property
    def total(self) -> int:
        return self.listed + self.more


def listed_ids(content: DigestContent, shown: Mapping[str, int] | None = None) -> tuple[int, ...]:
    """The papers the email lists, in order: For you, Top papers, then each section's shown papers; each once."""
    out: dict[int, None] = {f.paper.id: None for f in content.for_you}
    out.update((p.id, None) for p in content.top if p.id not in out)
    for s in content.sections:
        for p in s.papers[:len(s.papers) if shown is None else shown.get(s.slug, len(s.papers))]:
            out.setdefault(p.id)
    return tuple(out)


def email_counts(content: DigestContent, shown: Mapping[str, int] | None = None) -> EmailCounts:
    """The counts of ``content`` as the email shows it (``shown``: papers per section after the size guard)."""
    listed = set(listed_ids(content, shown))
    topics = sum(1 for s in content.sections if any(p.id in listed for p in s.papers))
    total = sum(max(s.total, len(s.papers)) for s in content.sections)
    first = content.top[0] if content.top else next((p for s in content.sections for p in s.papers
                                                     if p.id in listed), None)
    return EmailCounts(len(listed), topics, max(0, total - len(listed)), clean(first.title) if first else "")


def new_paper_count(content: DigestContent) -> int:
    """The papers the email of ``content`` lists, before the size guard (see ``EmailCounts``)."""
    return email_counts(content).listed


SUBJECT_FIELDS = ("date", "count", "topics", "more", "top_title", "cadence", "period")


def format_subject(template: str, content: DigestContent, counts: EmailCounts | None = None) -> str:
    """The subject from the ``digest.subject`` template; fields {date}, {count} (papers the email lists),
    {topics}, {more} (in the web copy only), {top_title} (the first Top paper), {cadence}, {period}.

    A digest with nothing to list says so, never "0 new in 0 topics".
    """
    counts = counts or email_counts(content)
    if not counts.listed:
        return f"No new papers, {short_day(content.day)}"
    values = {"date": short_day(content.day), "count": counts.listed, "topics": counts.topics, "more": counts.more,
              "top_title": shorten(counts.top_title, 90), "cadence": content.cadence, "period": content.period}
    try:
        subject = " ".join(_FieldsOnly().vformat(template, (), values).split())
    except (KeyError, ValueError, IndexError) as exc:
        raise RenderError(f"digest.subject {template!r} cannot be filled: {exc}",
                          hint="use only the fields " + ", ".join("{" + f + "}" for f in SUBJECT_FIELDS)) from None
    # "1 topics", "1 new papers": the template counts in the plural, English wants the singular.
    return re.sub(r"\b1 (topic|paper|section)s\b", r"1 \1", subject)


def preheader_for(content: DigestContent, counts: EmailCounts | None = None) -> str:
    """The line inboxes show after the subject: the count, then the top titles."""
    counts = counts or email_counts(content)
    titles = [shorten(clean(p.title), 70) for p in (content.top or content.papers)[:3]]
    lead = f"{plural(counts.listed, 'new paper')} in {plural(counts.topics, 'topic')}"
    return shorten(f"{lead}: " + " · ".join(titles), 160) if titles else lead


# Keeps mail clients from filling the preview line with the body text after the preheader.
_PREHEADER_FILLER = Markup("&#847;&zwnj;&nbsp;" * 24)


# --- the view the templates see -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionView:
    slug: str
    name: str
    papers: tuple[Paper, ...]  # listed here (a paper also in Top papers is a one-line reference, see top_rank)
    total: int  # the reader's papers of this topic in this digest (listed here + more)
    more: int  # papers of this topic not listed, in the web copy
    anchor: str
    more_url: str

    @property
    def listed(self) -> int:
        return len(self.papers)


def _sections(content: DigestContent, shown: Mapping[str, int], web_copy_url: str) -> list[SectionView]:
    """Every section with eligible papers, even when the caps or the size guard left it none to show: the
    contents then name it with its count and link its papers in the web copy, so no topic disappears without a
    word (the body shows only sections with papers)."""
    views = []
    for s in content.sections:
        keep = s.papers[:shown.get(s.slug, len(s.papers))]
        total = max(s.total, len(s.papers))
        if not total:
            continue
        anchor = f"topic-{s.slug}"
        views.append(SectionView(s.slug, s.name, keep, total, total - len(keep), anchor, f"{web_copy_url}#{anchor}"))
    return views


def _no_mark(name: str, paper: Any = None) -> str:
    """The templates' ``mark(name, paper)``: nothing in an email; the chunk marks of a personal kit
    (``render.foryou``) where the shared digest is cut into cards that each reader's order permutes."""
    return ""


def _context(content: DigestContent, settings: Settings, shown: Mapping[str, int],
             slots: Mapping[str, str], subject: str, preheader: str, counts: EmailCounts,
             overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    web_copy_url = slots["web_copy_url"]
    every = _sections(content, shown, web_copy_url)
    sections = [v for v in every if v.papers]
    topic_names = {t.slug: t.name for t in settings.topics}
    topic_names.update({s.slug: s.name for s in content.sections})
    return {
        "subject": subject,
        "preheader": preheader,
        "preheader_filler": _PREHEADER_FILLER,
        "list_name": settings.list_name,
        "site_url": settings.site_url,
        "edition_url": web_copy_url,  # "view in browser": the reader's own web copy
        "web_copy_url": web_copy_url,
        "postal_address": settings.postal_address,
        "cadence": content.cadence,
        "period": content.period,
        "day": content.day,
        "top": content.top,
        "top_rank": {p.id: i for i, p in enumerate(content.top, 1)},
        "for_you": content.for_you,
        "for_you_rank": {f.paper.id: i for i, f in enumerate(content.for_you, 1)},
        # "most upvoted first" only when upvotes are known; otherwise the order is the trending rank.
        "by_upvotes": any(p.upvotes for p in content.top),
        "sections": sections,
        "toc": every,  # the contents: every section, also those only in the web copy
        "topic_names": topic_names,
        "counts": counts,
        "paper_count": counts.listed,
        "topic_count": counts.topics,
        "shown_count": counts.listed,
        "not_shown": counts.more,
        "hidden_sections": len(every) - len(sections),
        "slot": slots,
        "card_token": lambda paper: f"{slots[CARD_SLOT]}{int(paper.id)}%%",
        "site": settings.site_url.rstrip("/"),
        "track_clicks": settings.tracking.clicks,
        "font_stack": FONT_STACK,
        "for_you_count": len(content.for_you),
        "mark": _no_mark,
        **(overrides or {}),
    }


# --- compile, size guard, render ----------------------------------------------------------------------------


# mjml-python writes the whole body on one line. A line break before block and table tags (as MJML's own
# JavaScript compiler writes them) changes nothing on screen, and gives each card, heading and link row a
# line of its own: quoted-printable encodes line by line, so a message builder can reuse a line it has
# encoded before (the same card in another digest) and re-encode per reader only the lines with their links.
_BLOCK_START = re.compile(r">(?=<(?:/?(?:div|p|h[1-6]|table|tbody|tr|td)[\s>]|!--\[if |!\[endif\]))")


def compile_mjml(source: str) -> str:
    """MJML to HTML with mjml-python; no web fonts (``fonts={}``: MJML would link Google Fonts)."""
    try:
        html = mjml.mjml2html(source, fonts={})
    except Exception as exc:
        raise RenderError(f"The MJML does not compile: {exc}", hint="check the MJML templates") from None
    html = html.replace("\r\n", "\n").replace("\r", "\n")
    return _BLOCK_START.sub(">\n", html)


def _markers(content: DigestContent, edition_url: str) -> dict[str, str]:
    # A marker must never occur in paper text: it carries a digest of this very content, which no title can
    # contain. Only letters, digits, '%' and '-': unchanged by escaping, MJML and URL contexts.
    nonce = hashlib.sha256(repr((content, edition_url)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    markers = {name: f"%%nl-{nonce}-{name.replace('_', '-')}%%" for name in SLOTS}
    markers[CARD_SLOT] = f"%%nl-{nonce}-c"  # + paper id + "%%"
    return markers


def render_digest(content: DigestContent, settings: Settings, edition_url: str, *,
                  templates: Templates | None = None, size_limit: int = SIZE_LIMIT) -> RenderedDigest:
    """Render ``content`` as HTML and text with the per-reader values left as slot markers.

    ``edition_url`` is the web copy link of readers given no ``web_copy_url`` of their own (a preview). What the
    email lists after the size guard is ``listed``; the subject and every count are those of ``email_counts``.

    Example: ``rendered = render_digest(content, settings, "https://papers.example.org/editions/7")``
    """
    templates = templates or templates_for(settings)
    slots = _markers(content, edition_url)
    shown = {s.slug: len(s.papers) for s in content.sections}
    budget = size_limit - SIZE_ALLOWANCE
    shortened = False
    for _attempt in range(40):
        counts = email_counts(content, shown)
        subject = format_subject(settings.digest.subject, content, counts)
        preheader = preheader_for(content, counts)
        source = templates.render(templates.html, HTML_TEMPLATE,
                                  _context(content, settings, shown, slots, subject, preheader, counts))
        html = compile_mjml(source)
        size = len(html.encode("utf-8")) - _card_marker_excess(html, slots[CARD_SLOT])
        if size <= budget:
            break
        shown = _shrink(shown, html, size, budget, content)
        shortened = True
    else:  # pragma: no cover - _shrink always makes progress, and drops whole sections last
        raise RenderError(f"The digest is {size:,} bytes of HTML even when shortened; the limit is {size_limit:,}.",
                          hint="lower digest.max_papers or digest.max_per_topic")
    text = templates.render(templates.text, TEXT_TEMPLATE,
                            _context(content, settings, shown, slots, subject, preheader, counts))
    return RenderedDigest(subject=subject, html=html, text=_tidy_text(text), preheader=preheader, slots=slots,
                          shown=shown, shortened=shortened, listed=listed_ids(content, shown),
                          fallback_url=edition_url)


def render_parts(content: DigestContent, settings: Settings, rendered: RenderedDigest,
                 overrides: Mapping[str, Any], templates: Templates | None = None) -> tuple[str, str]:
    """(html, text) of ``content`` shown whole (no size guard), with the slots, subject and preheader of
    ``rendered`` and the template variables in ``overrides``: the renders a personal kit (``render.foryou``)
    is cut from."""
    templates = templates or templates_for(settings)
    shown = {s.slug: len(s.papers) for s in content.sections}
    counts = email_counts(content, shown)
    context = _context(content, settings, shown, rendered.slots, rendered.subject, rendered.preheader, counts,
                       overrides)
    html = compile_mjml(templates.render(templates.html, HTML_TEMPLATE, context))
    text = templates.render(templates.text, TEXT_TEMPLATE, context)
    return html, _tidy_text(text)


def html_size(html: str, card_prefix: str | None) -> int:
    """The bytes of ``html`` as sent: card markers counted as the tokens that replace them (the size guard's
    measure)."""
    size = len(html.encode("utf-8"))
    return size - _card_marker_excess(html, card_prefix) if card_prefix else size


def _card_marker_excess(html: str, prefix: str) -> int:
    """How many bytes the card markers of ``html`` are longer than the card tokens that replace them: the size
    guard counts the email as it is sent."""
    from ..tokens import CARD_TOKEN_CHARS

    n = html.count(prefix)
    if not n:
        return 0
    digits = sum(len(m) for m in _card_ids(prefix).findall(html))
    return n * (len(prefix) + 2 - CARD_TOKEN_CHARS) + digits


@functools.lru_cache(maxsize=64)
def _card_ids(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"(\d+)%%")


_CARD_START = re.compile(r'<div class="nl-paper[ "]')
_MORE_LINK_BYTES = 350  # what "N more papers in ... on the web" adds to a section that had none


def _shrink(shown: Mapping[str, int], html: str, size: int, budget: int, content: DigestContent) -> dict[str, int]:
    """Fewer papers per section, enough to get under ``budget``: the last papers of the longest sections go
    first, one section keeps at least one paper while another has more; whole sections (from the end) go last.

    How much each card weighs is read from the compiled HTML (cards start with ``<div class="nl-paper``), so a
    second render nearly always fits; with templates that do not mark cards, an average is used.
    """
    out = dict(shown)
    order = [s.slug for s in content.sections if out.get(s.slug, 0) > 0]
    starts = [m.start() for m in _CARD_START.finditer(html)]
    top = len(content.top) + len(content.for_you)
    weights: dict[str, list[int]] = {}
    if len(starts) == top + sum(out[slug] for slug in order) and len(starts) > 1:
        sizes = [b - a for a, b in itertools.pairwise(starts)] + [0]
        median = sorted(sizes)[len(sizes) // 2]
        sizes = sizes[top:]
        for slug in order:
            # The gap after a section's last card spans the section's frame too: count a typical card.
            weights[slug], sizes = sizes[:out[slug] - 1] + [median], sizes[out[slug]:]
    else:
        average = size // (sum(out.values()) + top + 4)
        weights = {slug: [average] * out[slug] for slug in order}
    totals = {s.slug: max(s.total, len(s.papers)) for s in content.sections}
    need = size - budget + 200
    saved = 0
    while saved < need:
        candidates = [slug for slug in order if out[slug] > 1]
        if candidates:
            slug = max(candidates, key=lambda sl: (out[sl], sum(weights[sl])))
            if out[slug] == totals[slug]:  # its first cut adds the link to the web copy
                saved -= _MORE_LINK_BYTES
            out[slug] -= 1
            saved += weights[slug].pop()
            continue
        remaining = [slug for slug in order if out[slug] > 0]
        if len(remaining) <= 1:
            break
        slug = remaining[-1]
        saved += sum(weights[slug]) + 1_500  # the section's frame goes too
        weights[slug] = []
        out[slug] = 0
    return out


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and len(out) >= 2 and not out[-1] and not out[-2]:
            continue  # at most two blank lines in a row
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def iter_slot_lines(text: str, markers: Iterable[str]) -> Iterable[str]:
    """The lines of ``text`` that hold a slot marker (what a message builder must re-encode per reader)."""
    found = tuple(markers)
    return (line for line in text.split("\n") if any(m in line for m in found))

