"""Text helpers shared by the email and the web pages: cleaning untrusted text (titles and abstracts come from
the web) and the small formatting filters the templates use. Pure: no I/O.

Untrusted text is cleaned of control, bidi-override and zero-width characters, cut to a sane length before
any other work, and never trusted as a link: ``safe_url`` lets only absolute http(s) URLs through.
"""

from __future__ import annotations

import functools
import re
import textwrap
import unicodedata
from datetime import date
from typing import Any, Sequence
from urllib.parse import quote, urlsplit

from markupsafe import Markup

from ..models import Paper

SUMMARY_CHARS = 240  # about two lines at desktop width
TITLE_CHARS = 300
MAX_FIELD_CHARS = 20_000  # untrusted text is cut to this before any other work (a 1 MB abstract stays cheap)


# --- cleaning untrusted text -----------------------------------------------------------------------------


@functools.cache
def _invisible_pattern() -> re.Pattern[str]:
    """Control, format (bidi overrides, zero-width), private-use and surrogate characters, and line/paragraph
    separators. Zero-width (non-)joiners stay: scripts and emoji sequences need them."""
    keep = {0x200C, 0x200D}
    ranges: list[tuple[int, int]] = []
    planes = list(range(0x0, 0x30000)) + list(range(0xE0000, 0xE1000))
    for cp in planes:
        if cp in keep or chr(cp) in "\t\n":
            continue
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    ranges += [(0xF0000, 0x10FFFF)]  # supplementary private-use planes
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{body}]")


def strip_invisible(value: str) -> str:
    """Remove characters that can hide or reorder text (U+202E, U+200B, ...) and control characters."""
    return _strip_short(value) if len(value) <= 2000 else _invisible_pattern().sub("", value)


# The same titles, names and summaries come back in every digest that holds their paper: the pure helpers
# below are cached, so rendering hundreds of distinct digests does each paper's work once.
_cached = functools.lru_cache(maxsize=16_384)


@_cached
def _strip_short(value: str) -> str:
    return _invisible_pattern().sub("", value)


def clean(value: Any) -> str:
    """Untrusted text made safe to show: bounded length, invisible characters removed, whitespace collapsed.

    Returns a plain ``str``: in the HTML templates autoescaping then escapes it, once.
    """
    if value is None:
        return ""
    text = str(value)
    return _clean_short(text) if len(text) <= 2000 else _clean(text)


@_cached
def _clean_short(text: str) -> str:
    return _clean(text)


def _clean(value: str) -> str:
    text = " ".join(value[:MAX_FIELD_CHARS].split())  # line breaks of every kind become spaces
    text = unicodedata.normalize("NFC", strip_invisible(text))
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s)")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "vs.", "fig.", "figs.", "eq.", "cf.", "approx.", "resp.",
                  "no.", "sec.", "ref.", "dr.", "prof.", "mr.", "ms.")


def cut_at_sentence(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The longest run of whole sentences of ``text`` within ``limit`` characters; if the first sentence alone
    is longer, that sentence cut at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    window = text[:limit + 1]
    best = 0
    for match in _SENTENCE_END.finditer(window):
        end = match.end()
        before = window[:end].lower()
        if before.endswith(_ABBREVIATIONS):  # "e.g." ends no sentence
            continue
        following = text[end:end + 2].strip()
        if following and following[0].islower():
            continue
        best = end
    if best >= limit * 0.35:
        return text[:best].rstrip()
    return shorten(text, limit)


# --- filters ------------------------------------------------------------------------------------------


_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f<>\"\\`]")


@_cached
def safe_url(value: Any) -> str:
    """``value`` if it is an absolute http(s) URL, made ASCII; else "" (a template then shows no link).

    Refused: other schemes (``javascript:``, ``data:``, ``mailto:``), relative or protocol-relative URLs,
    user-info (``https://huggingface.co@evil.example``), whitespace, quotes and invisible characters.
    """
    if not value:
        return ""
    url = str(value).strip()
    if len(url) > 2048 or _URL_FORBIDDEN.search(url) or strip_invisible(url) != url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return ""
    del port
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return ""
    if not url.isascii():
        url = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    return url


def format_day(value: date | None) -> str:
    """``Mar 14, 2025``."""
    return f"{value:%b} {value.day}, {value.year}" if value else ""


def short_day(value: date | None) -> str:
    """``Mar 14``."""
    return f"{value:%b} {value.day}" if value else ""


def compact_number(value: int | None) -> str:
    """``952``, ``1.9k``, ``16.2k``, ``3.1M``."""
    if value is None:
        return ""
    n = int(value)
    if abs(n) < 1000:
        return str(n)
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if abs(n) >= size:
            shown = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return f"{shown}{unit}"
    return str(n)  # pragma: no cover


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 paper``, ``2 papers``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


@_cached
def format_authors(paper: Paper) -> str:
    """``A, B, C et al.`` (the first three); ``4 authors`` when only the count is known."""
    names = [n for n in (clean(a) for a in paper.authors[:4]) if n]
    if len(paper.authors) > 3:
        return ", ".join(shorten(n, 60) for n in names[:3]) + " et al."
    if names:
        return ", ".join(shorten(n, 60) for n in names)
    if paper.author_count:
        return plural(paper.author_count, "author")
    return ""


@_cached
def summary(paper: Paper, limit: int = SUMMARY_CHARS) -> str:
    """The AI summary when there is one, else the abstract cut at a sentence boundary."""
    text = clean(paper.ai_summary) or clean((paper.abstract or "")[:limit * 4])
    return cut_at_sentence(text, limit)


@_cached
def meta_items(paper: Paper) -> tuple[str, ...]:
    """Who, where, when and how popular, as short plain strings (joined with `` · `` by the templates)."""
    items = [format_authors(paper), shorten(clean(paper.organization), 80), format_day(paper.published)]
    if paper.upvotes is not None:
        items.append(plural(paper.upvotes, "upvote"))
    if paper.num_comments:
        items.append(plural(paper.num_comments, "comment"))
    return tuple(i for i in items if i)


@_cached
def paper_links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """(label, url) of the PDF, code (with stars) and project page, http(s) only."""
    links = []
    if pdf := safe_url(paper.pdf_url):
        links.append(("PDF", pdf))
    if code := safe_url(paper.github_repo):
        stars = f" ★ {compact_number(paper.github_stars)}" if paper.github_stars else ""
        links.append((f"Code{stars}", code))
    if project := safe_url(paper.project_page):
        links.append(("Project page", project))
    return tuple(links)


@_cached
def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Plain text wrapped for the text part (``first`` prefixes the first line, ``indent`` the others); long
    words such as URLs are not broken."""
    return textwrap.fill(text, width=width, initial_indent=indent if first is None else first,
                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def wrap_items(items: Sequence[str], width: int = 72, indent: str = "", sep: str = " · ") -> str:
    """``items`` joined by ``sep`` and wrapped between items where possible (``52 upvotes`` stays whole)."""
    glued = sep.join(i.replace(" ", "\u00a0") for i in items)
    return wrap(glued, width, indent).replace("\u00a0", " ")


def _finalize_html(value: Any) -> Any:
    # Every {{ expression }} passes here before autoescaping: strings are cleaned of invisible characters
    # even where a template forgets `| clean`. Markup (trusted, from us) passes untouched.
    if isinstance(value, str) and not isinstance(value, Markup):
        return strip_invisible(value)
    return "" if value is None else value


def _finalize_text(value: Any) -> Any:
    if isinstance(value, str):
        return strip_invisible(value)
    return "" if value is None else value
