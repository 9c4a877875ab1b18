"""A reader's own order of a shared digest (issue 15), without a render per reader: the personal kit.

Readers with signals stay in their shared digest: the same papers listed (and recorded as sent), the same
stored render for everyone else. Their ranking is presentational. A ``PersonalKit`` is built once per shared
digest from two renders of the papers its email lists, both with the templates' chunk marks
(``mark(name, paper)``, which write nothing in an ordinary email):

- the shared email itself: every section's cards, in today's order;
- the same papers with every paper outside Top papers in a "For you" block: its frame, each paper's For you
  card (its number and reason left as markers) and, in the sections, its one-line "For you N" reference.

Both are cut at the marks into chunks, each a run of whole lines, and each chunk is encoded once
(quoted-printable, card tokens as bytes templates: ``message._encode_part``). Per reader a message is then
the chunks in the reader's order: the sections' cards in the blend order, the For you cards of their picks
with their numbers and "Because you liked …" lines, and those papers' references in their sections. The
reader's card tokens, greeting and links are filled as in every message (``PreparedDigest``). What it costs
per reader is the model's dot products (``relevance.rank``) and joining a few hundred byte chunks.

The size guard holds for the variant: ``extra_bytes(k)`` bounds what a For you block of ``k`` papers can add
(the frame, the contents row, the k largest card-plus-reference minus card, reasons at their longest), the
plan reserves it in the shared digest's guard when the digest has readers with signals, and ``message``
checks the bound again and sends the shared email when a variant would not fit.

A template set without the marks (an operator's own) gives no kit (``build`` returns None): its readers with
signals get the shared email, in today's order.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import escape

from ..models import DigestContent, ForYou, Paper, TopicSection
from . import CARD_SLOT, SIZE_ALLOWANCE, SIZE_LIMIT, SLOTS, RenderedDigest, html_size, render_parts
from .cards import qp_encode_lines
from .message import LineCache, PreparedDigest, _encode_part, _merged, _personal

REASON_CHARS = 80  # characters of a liked paper's title in "Because you liked …"
REASON_BYTES = 400  # a reason's most bytes in the HTML (escaped): what the size guard reserves per pick
TEXT_RANK = "\u2116"  # stands for a For you number ("№": one character, so the text part wraps as for 1-9)


def reason_text(title: str | None) -> str:
    """The one line under a For you card: the liked paper it is most like, or how it was ranked."""
    if not title:
        return "Ranked by what you marked"
    from .textfilters import clean, shorten

    limit = REASON_CHARS
    while True:
        text = f"Because you liked “{shorten(clean(title), limit)}”"
        if len(str(escape(text)).encode("utf-8")) <= REASON_BYTES or limit <= 10:
            return text
        limit //= 2


def listed_content(content: DigestContent, listed: Iterable[int]) -> DigestContent:
    """``content`` with only the papers its email lists, each section keeping its total (the "N more on the
    web" lines stay true) and its papers in today's order."""
    keep = set(listed)
    sections = tuple(TopicSection(s.slug, s.name, tuple(p for p in s.papers if p.id in keep),
                                  max(s.total, len(s.papers))) for s in content.sections)
    return replace(content, top=tuple(p for p in content.top if p.id in keep), sections=sections, for_you=())


def eligible(content: DigestContent) -> list[Paper]:
    """The papers a For you block may pick: those listed in a section and not in Top papers (those are
    everyone's, at the top already)."""
    top = {p.id for p in content.top}
    out: dict[int, Paper] = {}
    for s in content.sections:
        for p in s.papers:
            if p.id not in top:
                out.setdefault(p.id, p)
    return list(out.values())


def personal_content(content: DigestContent, order: Sequence[int], picks: Sequence[tuple[int, str]]
                     ) -> DigestContent:
    """The reader's own view of ``content`` (already cut to what the email lists): each section in the
    order ``order`` (paper ids, best first), and the For you block ``picks`` ((paper id, reason), each a
    listed paper outside Top papers). What the kit's message shows, as a DigestContent (preview, diff, web)."""
    position = {pid: n for n, pid in enumerate(order)}
    last = len(position)
    papers = {p.id: p for s in content.sections for p in s.papers}
    sections = tuple(TopicSection(s.slug, s.name, tuple(sorted(s.papers, key=lambda p: position.get(p.id, last))),
                                  s.total) for s in content.sections)
    block = tuple(ForYou(papers[pid], reason) for pid, reason in picks if pid in papers)
    return replace(content, sections=sections, for_you=block)


# --- cutting the renders into chunks ----------------------------------------------------------------------------


def _mark_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(r"%%nlk" + re.escape(nonce) + r"-([a-z-]+)(\d*)%%")


def _marker(nonce: str) -> Any:
    def mark(name: str, paper: Any = None) -> str:
        return f"%%nlk{nonce}-{name}{int(paper.id) if paper is not None else ''}%%"
    return mark


def _cut(part: str, pattern: re.Pattern[str]) -> list[tuple[str, int | None, str]]:
    """[(mark name, paper id, the text up to the next mark)], the text before the first mark under "".
    Every mark starts a line (a line break is put before one that does not), so each chunk is whole lines."""
    out: list[tuple[str, int | None, str]] = []
    at, name, pid = 0, "", None
    for m in pattern.finditer(part):
        chunk = part[at:m.start()]
        if chunk and not chunk.endswith("\n"):
            chunk += "\n"
        out.append((name, pid, chunk))
        at, name, pid = m.end(), m.group(1), int(m.group(2)) if m.group(2) else None
    out.append((name, pid, part[at:]))
    return out


class KitError(ValueError):
    """The renders do not have the shape of the shipped templates' marks."""


@dataclass
class _Layout:
    """One part (html or text) of a kit, as chunk strings."""

    head: str  # up to the contents' For you row
    between: str  # the contents after that row, up to the For you block
    toc_row: str  # the contents' For you row, its count a marker
    frame_start: str  # the For you block up to its first card
    frame_end: str  # after its last card
    top: str  # from after the For you block to the first section's first paper
    sections: list[tuple[list[int], dict[int, str], dict[int, str], str]]  # (order, cards, refs, tail)
    for_you: dict[int, str]  # paper id -> its For you card

    def sections_card(self, pid: int) -> str:
        return next(cards[pid] for _o, cards, _r, _t in self.sections if pid in cards)

    def sections_ref(self, pid: int) -> str:
        return next(refs[pid] for _o, _c, refs, _t in self.sections if pid in refs)


def _layout(shared: str, variant: str, pattern: re.Pattern[str], eligible_ids: set[int]) -> _Layout:
    one, two = _cut(shared, pattern), _cut(variant, pattern)
    names = [(n, p) for n, p, _ in one]
    if names[:5] != [("", None), ("toc-fy", None), ("toc-fy-after", None), ("fy", None), ("fy-after", None)]:
        raise KitError(f"unexpected marks {names[:5]}")
    head, toc_empty, between, fy_empty = (c for _, _, c in one[:4])
    if toc_empty or fy_empty:
        raise KitError("the shared render has a For you block")
    top = one[4][2]
    sections, cards, order = [], {}, []
    for name, pid, chunk in one[5:]:
        if name == "p" and pid is not None:
            order.append(pid)
            cards[pid] = chunk
        elif name == "end":
            sections.append((order, cards, {}, chunk))
            cards, order = {}, []
        else:
            raise KitError(f"unexpected mark {name!r} in a section")
    if order:
        raise KitError("a section without its end mark")
    # The variant: the contents row, the For you block, then the same sections with references.
    if [n for n, _, _ in two[:3]] != ["", "toc-fy", "toc-fy-after"] or two[3][0] != "fy":
        raise KitError("unexpected marks in the For you render")
    toc_row = two[1][2]
    frame_start = two[3][2]
    for_you: dict[int, str] = {}
    k = 4
    while k < len(two) and two[k][0] == "f":
        for_you[two[k][1]] = two[k][2]  # type: ignore[index]
        k += 1
    if k >= len(two) or two[k][0] != "f-end" or two[k + 1][0] != "fy-after":
        raise KitError("the For you block has no end mark")
    frame_end = two[k][2]
    section_index, refs = 0, sections[0][2] if sections else {}
    for name, pid, chunk in two[k + 2:]:
        if name == "p" and pid is not None:
            if pid in eligible_ids:
                refs[pid] = chunk
        elif name == "end":
            section_index += 1
            refs = sections[section_index][2] if section_index < len(sections) else {}
        else:
            raise KitError(f"unexpected mark {name!r} in a section of the For you render")
    if set(for_you) != eligible_ids or {p for s in sections for p in s[2]} != eligible_ids:
        raise KitError("a paper lacks its For you card or reference")
    return _Layout(head, between, toc_row, frame_start, frame_end, top, sections, for_you)


@dataclass
class KitLayout:
    """The chunks of a shared digest for its readers with signals (both parts), and its sizes."""

    content: DigestContent  # what the email lists, in today's order
    html: _Layout
    text: _Layout
    markers: dict[str, str]  # "rank", "count", "why<paper id>" -> the marker standing for it
    base_size: int  # HTML bytes of the shared email as sent
    card_prefix: str | None

    def _size(self, chunk: str) -> int:
        return html_size(chunk, self.card_prefix)

    def __post_init__(self) -> None:
        html = self.html
        # What each paper's For you card and reference add over its card (the largest first), and the frame.
        self.extra_of = {pid: self._size(html.for_you[pid]) + self._size(html.sections_ref(pid))
                         - self._size(html.sections_card(pid)) for pid in html.for_you}
        self._extra = sorted(self.extra_of.values(), reverse=True)
        self._frame = self._size(html.toc_row) + self._size(html.frame_start) + self._size(html.frame_end)

    def extra_bytes(self, k: int) -> int:
        """The most HTML bytes a For you block of ``k`` papers adds to the shared email (numbers of two
        digits, reasons at ``REASON_BYTES``): what the size guard keeps free when the digest has readers with
        signals."""
        k = min(k, len(self._extra))
        if k <= 0:
            return 0
        marks = 2 * k * (len(TEXT_RANK.encode("utf-8")) - 2) + len(self.markers["count"]) - 2
        return self._frame + sum(self._extra[:k]) + k * REASON_BYTES - marks

    def overflow(self, k: int, size_limit: int = SIZE_LIMIT) -> int:
        """How many bytes the largest variant of ``k`` picks is over the size guard's budget (0: it fits)."""
        return max(0, self.base_size + self.extra_bytes(k) - (size_limit - SIZE_ALLOWANCE))

    def fits(self, k: int, size_limit: int = SIZE_LIMIT) -> bool:
        return self.overflow(k, size_limit) == 0


LAYOUTS = 128  # layouts kept in this process (the plan makes them, the send of the same process reuses them)
_layouts: "OrderedDict[tuple[str, tuple[int, ...]], KitLayout | None]" = OrderedDict()


def kit_layout(rendered: RenderedDigest, content: DigestContent, listed: Iterable[int], settings: Any
               ) -> KitLayout | None:
    """The chunks of ``rendered`` (a shared digest of ``content``, listing ``listed``); None when its
    templates do not carry the marks. Kept per render (its bytes' digest) and listing: the plan checks the size
    guard with it, and a send in the same process builds its messages from it, made from the very content that
    made ``rendered``."""
    from . import template_search_path

    listed = tuple(listed)
    key = (hashlib.sha256("\x00".join((rendered.subject, rendered.html, rendered.text, *map(str, template_search_path(
        settings)))).encode("utf-8", "surrogatepass")).hexdigest(), listed)
    if key in _layouts:
        _layouts.move_to_end(key)
        return _layouts[key]
    layout = _layouts[key] = _kit_layout(rendered, content, listed, settings)
    while len(_layouts) > LAYOUTS:
        _layouts.popitem(last=False)
    return layout


def _kit_layout(rendered: RenderedDigest, content: DigestContent, listed: Sequence[int], settings: Any
                ) -> KitLayout | None:
    nonce = rendered.slots[CARD_SLOT].split("-")[1] if CARD_SLOT in rendered.slots else ""
    if not nonce:
        return None
    base = listed_content(content, listed)
    if {p.id for p in base.papers} | {p.id for p in base.top} != set(listed):
        return None  # the content no longer holds every listed paper: the shared email lists them all
    chosen = eligible(base)
    ids = {p.id for p in chosen}
    mark = _marker(nonce)
    count = f"%%nl-{nonce}-count%%"
    why = {p.id: f"%%nl-{nonce}-why{p.id}%%" for p in chosen}
    try:
        html1, text1 = render_parts(base, settings, rendered, {"mark": mark})
        with_block = replace(base, for_you=tuple(ForYou(p, why[p.id]) for p in chosen))
        html2, text2 = render_parts(with_block, settings, rendered, {
            "mark": mark, "for_you_rank": dict.fromkeys(ids, TEXT_RANK), "for_you_count": count})
        pattern = _mark_pattern(nonce)
        html = _layout(html1, html2, pattern, ids)
        text = _layout(text1, text2, pattern, ids)
    except (KitError, KeyError, IndexError, StopIteration):
        return None
    markers = {"count": count, **{f"why{pid}": m for pid, m in why.items()}}
    prefix = rendered.slots.get(CARD_SLOT)
    # The shared email as the kit writes it: its chunks, each ending its last line.
    base_size = sum(html_size(chunk, prefix) for _n, _p, chunk in _cut(html1, pattern))
    return KitLayout(base, html, text, markers, base_size, prefix)


def render_shared(content: DigestContent, settings: Any, edition_url: str, for_you: int,
                  size_limit: int = SIZE_LIMIT) -> RenderedDigest:
    """The shared digest of ``content`` for readers some of whom have signals: its size guard keeps room for
    the largest For you block of ``for_you`` papers any of them can get (``KitLayout.extra_bytes``), so that
    every reader's variant is within ``size_limit``. Papers it cuts stay eligible (not recorded as sent)."""
    from . import render_digest

    limit = size_limit
    rendered = render_digest(content, settings, edition_url, size_limit=limit)
    for _attempt in range(8):
        layout = kit_layout(rendered, content, rendered.listed, settings)
        if layout is None or layout.fits(for_you, size_limit):
            return rendered
        limit -= layout.overflow(for_you, size_limit) + 200
        rendered = render_digest(content, settings, edition_url, size_limit=limit)
    return rendered  # pragma: no cover - each round takes off at least what is over; the send checks again


# --- the kit ----------------------------------------------------------------------------------------------------


class PersonalKit(PreparedDigest):
    """One shared digest cut into chunks for its readers with signals; ``message(recipient, date, order,
    picks)`` is a reader's email in their own order. Built once per digest (``build``)."""

    def __init__(self, shared: PreparedDigest, layout: KitLayout, cache: LineCache,
                 size_limit: int = SIZE_LIMIT) -> None:
        # Not PreparedDigest.__init__: the headers, the frame and the reader's values are the shared digest's.
        self.signer = shared.signer
        self.rendered = shared.rendered
        self.settings = shared.settings
        self._head = shared._head
        self._shared_body = None
        self.layout = layout
        self.content = layout.content
        self.markers = layout.markers
        self.cache = cache
        self.size_limit = size_limit
        self._before_text, self._between, self._after_html = _frame_parts(shared)
        self._slots = [self.rendered.slots[k] for k in SLOTS]
        self._card_prefix = layout.card_prefix
        html, text = layout.html, layout.text
        self._html_layout, self._text_layout = html, text
        self.parts = {"html": self._encode_layout(html, True), "text": self._encode_layout(text, False)}
        papers = tuple(dict.fromkeys(p.id for s in self.content.sections for p in s.papers))
        self._card_papers = papers
        self._card_keys = tuple(b"%d" % pid for pid in papers)
        self._card_cuts: dict[bytes, tuple[int, int, int]] = {}
        for part in self.parts.values():
            for pieces in part["all"]:
                self._note_cuts(pieces)
        self._variants: dict[tuple[str, str, int, int], list[Any]] = {}
        self._reasons: dict[tuple[bool, str], bytes] = {}
        self._fits = {k: layout.fits(k, size_limit) for k in range(0, len(html.for_you) + 1)}
        self.pickable = frozenset(html.for_you)

    @classmethod
    def build(cls, shared: PreparedDigest, content: DigestContent, listed: Iterable[int], settings: Any,
              cache: LineCache | None = None, size_limit: int = SIZE_LIMIT) -> "PersonalKit | None":
        """The kit of ``shared`` (a prepared shared digest) for ``content`` (its digest, in today's order) and
        ``listed`` (the ids its email lists); None when the templates do not carry the marks."""
        layout = kit_layout(shared.rendered, content, listed, settings)
        if layout is None:
            return None
        return cls(shared, layout, cache or LineCache(), size_limit)

    def _encode(self, chunk: str, html: bool) -> list[Any]:
        return _merged(_encode_part(chunk, self._slots, html=html, cache=self.cache, card_prefix=self._card_prefix))

    def _encode_layout(self, layout: "_Layout", html: bool) -> dict[str, Any]:
        enc = self._encode
        out: dict[str, Any] = {
            "head": enc(layout.head, html), "between": enc(layout.between, html), "top": enc(layout.top, html),
            "frame_start": enc(layout.frame_start, html), "frame_end": enc(layout.frame_end, html),
            "sections": [(order, {pid: enc(c, html) for pid, c in cards.items()}, enc(tail, html))
                         for order, cards, _refs, tail in layout.sections],
        }
        out["all"] = [out["head"], out["between"], out["top"], *(c for _o, cards, _t in out["sections"]
                                                                 for c in cards.values())]
        return out

    def fits(self, k: int) -> bool:
        return self._fits.get(k, False)

    # -- per reader

    def _variant(self, which: str, kind: str, pid: int, rank: int) -> list[Any]:
        """A For you card ("card") or a section's reference ("ref") of ``pid`` with its number, encoded once."""
        key = (which, kind, pid, rank)
        found = self._variants.get(key)
        if found is None:
            layout = self._html_layout if which == "html" else self._text_layout
            chunk = layout.for_you[pid] if kind == "card" else layout.sections_ref(pid)
            chunk = chunk.replace(TEXT_RANK, str(rank), 1)  # the first: the number comes before the title
            found = self._variants[key] = self._split_reason(chunk, pid, which == "html")
            self._note_cuts(found)
        return found

    def _note_cuts(self, pieces: Sequence[Any]) -> None:
        for piece in pieces:
            self._card_cuts.update(getattr(piece, "cuts", None) or {})

    def _split_reason(self, chunk: str, pid: int, html: bool) -> list[Any]:
        marker = self.markers.get(f"why{pid}")
        if marker and marker in chunk:
            lines = chunk.split("\n")
            at = next(i for i, line in enumerate(lines) if marker in line)
            before = "\n".join(lines[:at]) + "\n" if at else ""
            after = "\n".join(lines[at + 1:])
            return [*self._encode(before, html), _Reason(lines[at], marker, html), *self._encode(after, html)]
        return self._encode(chunk, html)

    def _reason(self, piece: "_Reason", reason: str) -> bytes:
        key = (piece.html, piece.line.replace(piece.marker, reason))
        found = self._reasons.get(key)
        if found is None:
            value = str(escape(reason)) if piece.html else reason
            if len(self._reasons) > 4096:
                self._reasons.clear()
            found = self._reasons[key] = qp_encode_lines([piece.line.replace(piece.marker, value).encode("utf-8")])
        return found

    def _assemble(self, which: str, order: Sequence[int], picks: Sequence[tuple[int, str]]) -> list[Any]:
        part = self.parts[which]
        position = {pid: n for n, pid in enumerate(order)}
        chosen = {pid: n for n, (pid, _r) in enumerate(picks, 1)}
        out: list[Any] = list(part["head"])
        if picks:
            out.extend(self._count(which, len(picks)))
        out.extend(part["between"])
        if picks:
            out.extend(part["frame_start"])
            for n, (pid, reason) in enumerate(picks, 1):
                for piece in self._variant(which, "card", pid, n):
                    out.append(self._reason(piece, reason) if type(piece) is _Reason else piece)
            out.extend(part["frame_end"])
        out.extend(part["top"])
        last = len(position)
        for section_order, cards, tail in part["sections"]:
            for pid in sorted(section_order, key=lambda p: position.get(p, last)):
                if pid in chosen:
                    out.extend(self._variant(which, "ref", pid, chosen[pid]))
                else:
                    out.extend(cards[pid])
            out.extend(tail)
        return out

    def _count(self, which: str, k: int) -> list[Any]:
        key = (which, "count", 0, k)
        found = self._variants.get(key)
        if found is None:
            layout = self._html_layout if which == "html" else self._text_layout
            found = self._variants[key] = self._encode(layout.toc_row.replace(self.markers["count"], str(k)),
                                                       which == "html")
            self._note_cuts(found)
        return found

    def message(self, recipient: Any, date: datetime, order: Sequence[int] = (),  # type: ignore[override]
                picks: Sequence[tuple[int, str]] = ()) -> bytes:
        """The reader's email: the sections in ``order`` (paper ids, best first) and For you ``picks``
        ((paper id, reason), papers outside Top papers). A variant the size guard would not take is sent
        as the shared email's order with no For you block."""
        picks = [(pid, reason) for pid, reason in picks if pid in self.pickable]
        if picks and not self.fits(len(picks)):
            picks = []
        body = [self._before_text, *self._assemble("text", order, picks), self._between,
                *self._assemble("html", order, picks), self._after_html]
        values = _personal(self.rendered, recipient)
        slot_values = (self.rendered.html_values(values), self.rendered.text_values(values))
        head = b"".join(self._fill(self._head, recipient, date, slot_values))
        parts = self._fill(body, recipient, date, slot_values)
        if self.signer is None:
            return head + b"".join(parts)
        body_bytes = b"".join(parts)
        return b"".join([self.signer.signature(head, self.signer.body_hash(body_bytes), date), head, body_bytes])


@dataclass(frozen=True)
class _Reason:
    """The line of a For you card that holds its reason (per reader; encoded once per reason)."""

    line: str
    marker: str
    html: bool


def _frame_parts(shared: PreparedDigest) -> tuple[bytes, bytes, bytes]:
    """The MIME lines before the text part, between the parts and after the HTML part of ``shared``'s
    messages (its boundary): what a kit's messages wrap their own bodies in."""
    from .message import _BOUNDARY_STAND_IN, _Frame, boundary_for

    frame = _Frame.compose(shared.settings)
    boundary = boundary_for(shared.rendered).encode("ascii")
    stand_in = _BOUNDARY_STAND_IN.encode("ascii")
    return (frame.before_text.replace(stand_in, boundary), frame.between.replace(stand_in, boundary),
            frame.after_html.replace(stand_in, boundary))

