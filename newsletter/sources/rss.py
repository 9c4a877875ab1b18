"""Any RSS or Atom feed, and the safe XML path every feed-reading source (``arxiv`` too) goes through.

XML safety: feedparser's own parsers are not a defence (its loose parser expands entities itself, and
neither limits expansion). So the bytes are first vetted by ``defusedxml`` with expat: a document that
declares any entity (the "billion laughs" and external-entity attacks), refers to an external DTD, or is
not well-formed XML is refused with ``ParseError``. Only then are the vetted bytes handed to feedparser,
as a stream (feedparser treats a plain string as a URL or a file name to open). A plain ``<!DOCTYPE rss>``
and the historical RSS 0.91 public DTD (never fetched) are allowed.

Entries map to papers: title, summary as plain text (HTML stripped), authors, published day, link (http(s)
only), and the arXiv id when the link or the entry id contains one.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from typing import Any
from xml.etree.ElementTree import ParseError as XMLSyntaxError

import defusedxml
import feedparser
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import Field, field_validator

from ..errors import ParseError
from ..models import FetchedPaper, SourceBatch, normalize_arxiv_id
from . import SourceOptions
from . import http as http_helper

FEED_ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"

# DOCTYPEs that name an external DTD but are harmless: nothing is ever fetched, and these are common.
_HARMLESS_PUBLIC_IDS = frozenset({"-//Netscape Communications//DTD RSS 0.91//EN"})

# bozo exceptions that do not mean the document is broken.
_BENIGN_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


class Options(SourceOptions):
    url: str = Field(description="The feed's URL (http or https).")
    max_entries: int = Field(100, ge=1, le=1000, description="Keep at most this many entries, in feed order.")
    timeout: float = Field(http_helper.DEFAULT_TIMEOUT, gt=0, le=300, description="Seconds to wait for each read.")
    max_bytes: int = Field(5_000_000, ge=1024, description="Largest feed accepted.")
    retries: int = Field(http_helper.DEFAULT_RETRIES, ge=0, le=10, description="Retries on 429, 5xx, network errors.")

    @field_validator("url")
    @classmethod
    def check_url(cls, value: str) -> str:
        return http_helper.check_http_url(value)


class FeedSource(http_helper.HttpSource):
    """Reads an RSS/Atom feed. Example config: ``{type: rss, url: https://example.org/papers.xml}``."""

    options_model = Options
    options: Options

    def fetch(self, day: date | None = None) -> SourceBatch:
        opts = self.options
        body = self.get(opts.url, accept=FEED_ACCEPT)
        feed = parse_feed(body, opts.url)
        papers: list[FetchedPaper] = []
        seen: set[str] = set()
        for index, entry in enumerate(feed.entries[: opts.max_entries]):
            paper = paper_from_entry(entry, rank=len(papers) + 1, where=f"{opts.url}: entry {index + 1}")
            if paper.key not in seen:
                seen.add(paper.key)
                papers.append(paper)
        return SourceBatch(self.name, day or self.today or datetime.now(timezone.utc).date(), papers)


# --- the safe path ------------------------------------------------------------------------------------


class _Discard:
    """An ElementTree parser target that keeps nothing: vetting needs the parse, not the tree."""

    def start(self, tag: str, attrs: dict) -> None: ...
    def end(self, tag: str) -> None: ...
    def data(self, text: str) -> None: ...
    def close(self) -> None: ...


class _VettingParser(DefusedXMLParser):
    """defusedxml's expat parser, also refusing a DOCTYPE that points at an external DTD."""

    def __init__(self) -> None:
        super().__init__(target=_Discard(), forbid_dtd=True, forbid_entities=True, forbid_external=True)

    def defused_start_doctype_decl(self, name, sysid, pubid, has_internal_subset):  # type: ignore[override]
        if sysid and pubid not in _HARMLESS_PUBLIC_IDS:
            super().defused_start_doctype_decl(name, sysid, pubid, has_internal_subset)


def vet_xml(body: bytes, origin: str) -> None:
    """Raise ``ParseError`` unless ``body`` is well-formed XML free of entity declarations and external DTDs."""
    parser = _VettingParser()
    try:
        parser.feed(body)
        parser.close()
    except defusedxml.EntitiesForbidden as exc:
        raise ParseError(
            f"{origin}: refused: the document declares the XML entity {exc.name!r} "
            "(entity expansion is not allowed in feeds)"
        ) from None
    except defusedxml.DTDForbidden as exc:
        raise ParseError(f"{origin}: refused: the document refers to an external DTD ({exc.sysid[:80]!r})") from None
    except defusedxml.DefusedXmlException:
        raise ParseError(f"{origin}: refused: the document refers to an external resource") from None
    except XMLSyntaxError as exc:
        raise ParseError(f"{origin}: not well-formed XML ({exc})") from None


def parse_feed(body: bytes, origin: str) -> Any:
    """Vet ``body`` (``vet_xml``), then parse it with feedparser; ``ParseError`` if it is not a sound feed."""
    vet_xml(body, origin)
    feed = feedparser.parse(io.BytesIO(body), resolve_relative_uris=False, sanitize_html=True)
    if feed.get("bozo") and not isinstance(feed.get("bozo_exception"), _BENIGN_BOZO):
        reason = " ".join(str(feed.get("bozo_exception") or "malformed").split())[:160]
        raise ParseError(f"{origin}: malformed feed ({reason})")
    if not feed.get("version"):
        raise ParseError(f"{origin}: not an RSS or Atom feed")
    return feed


# --- entries ------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    _BLOCK = frozenset(
        "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr "
        "li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
    )
    _SKIP = frozenset({"script", "style", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, script/style removed, spaces collapsed."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return " ".join("".join(extractor.parts).split())


def entry_text(entry: Any, key: str) -> str:
    """An entry's ``title``/``summary`` as plain text, stripping HTML only when the feed marked it as HTML."""
    value = entry.get(key)
    if not isinstance(value, str):
        return ""
    kind = (entry.get(f"{key}_detail") or {}).get("type", "text/html")
    return html_to_text(value) if "html" in kind else " ".join(value.split())


_NEW_STYLE_ID = re.compile(r"^\d{4}\.\d{4,5}$")


def arxiv_id_in(value: Any) -> str | None:
    """The arXiv id in a link or entry id. Old-style ids (``hep-th/9901001``) only count in arXiv URLs or ids,
    so a blog path such as ``/posts/1234567`` is not mistaken for one."""
    if not isinstance(value, str) or not value:
        return None
    found = normalize_arxiv_id(value)
    if found and ("arxiv" in value.lower() or _NEW_STYLE_ID.match(found)):
        return found
    return None


def entry_link(entry: Any) -> str | None:
    """The entry's http(s) link: ``link``, else its first http(s) alternate link. Other schemes are dropped."""
    if link := http_helper.http_url(entry.get("link")):
        return link
    for candidate in entry.get("links") or []:
        if candidate.get("rel", "alternate") == "alternate" and (link := http_helper.http_url(candidate.get("href"))):
            return link
    return None


def entry_arxiv_id(entry: Any, link: str | None = None) -> str | None:
    """The arXiv id in the entry's link, else its id, else any of its other links (e.g. a pdf link)."""
    candidates = [link, entry.get("id")] + [other.get("href") for other in entry.get("links") or []]
    return next((found for value in candidates if (found := arxiv_id_in(value))), None)


def entry_day(entry: Any) -> date | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday)
    except (AttributeError, ValueError):
        return None


def entry_authors(entry: Any) -> list[str]:
    names: list[str] = []
    for author in entry.get("authors") or []:
        name = author.get("name") if isinstance(author, dict) else None
        if isinstance(name, str) and (clean := " ".join(name.split())):
            names.append(clean)
    if not names and isinstance(entry.get("author"), str) and entry["author"].strip():
        names.append(" ".join(entry["author"].split()))
    return names


def paper_from_entry(entry: Any, rank: int | None, where: str) -> FetchedPaper:
    """Map one feedparser entry to a ``FetchedPaper``; ``ParseError`` (prefixed by ``where``) if it has no title."""
    title = entry_text(entry, "title")
    if not title:
        raise ParseError(f"{where}: the entry has no title")
    link = entry_link(entry)
    return FetchedPaper(
        title=title,
        abstract=entry_text(entry, "summary"),
        arxiv_id=entry_arxiv_id(entry, link),
        authors=entry_authors(entry),
        published=entry_day(entry),
        url=link,
        rank=rank,
    )
