"""Any RSS or Atom feed, and the safe XML path every feed-reading source (``arxiv`` too) goes through.

Encodings: the bytes are first decoded with any codec Python knows (Big5, Shift_JIS, KOI8-R...), named by
the byte-order mark or the XML declaration (else, for a document that says nothing and is not UTF-8, the
server's ``charset``), and re-encoded as UTF-8 (``to_utf8``); an unknown encoding is a one-line
``ParseError``.

XML safety: feedparser's own parsers are not a defence (its loose parser expands entities itself, and
neither limits expansion). So the bytes are then vetted by ``defusedxml`` with expat: a document that
declares any entity (the "billion laughs" and external-entity attacks) or refers to an external DTD is
refused with ``ParseError``. A document that is not well-formed XML is read by feedparser's loose parser
only when it holds no DOCTYPE or entity declaration at all. The bytes reach feedparser as a stream
(feedparser treats a plain string as a URL or a file name to open). A plain ``<!DOCTYPE rss>`` and the
historical RSS 0.91 public DTD (never fetched) are allowed. A document feedparser finds no RSS or Atom in
is refused; otherwise each entry is judged alone, and a bad one (no title) is skipped and reported.

Entries map to papers: title, summary as plain text (HTML stripped), authors, published day, link (http(s)
only), and the arXiv id when the link or the entry id contains one.
"""

from __future__ import annotations

import codecs
import email.message
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


class Options(SourceOptions):
    url: str = Field(description="The feed's URL (http or https).")
    max_entries: int = Field(100, ge=1, le=1000, description="Keep at most this many entries, in feed order.")
    timeout: float = Field(http_helper.DEFAULT_TIMEOUT, gt=0, le=300, description="Seconds to wait for each read.")
    deadline: float = http_helper.deadline_field()
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

    def read(self, day: date | None = None) -> SourceBatch:
        opts = self.options
        headers: dict[str, str] = {}
        body = self.get(opts.url, accept=FEED_ACCEPT, response_headers=headers)
        feed = parse_feed(body, opts.url, charset_of(headers.get("content-type")))
        papers: list[FetchedPaper] = []
        skipped: list[str] = list(feed["cut_off"])
        seen: set[str] = set()
        for index, entry in enumerate(feed.entries[: opts.max_entries]):
            try:
                paper = paper_from_entry(entry, rank=len(papers) + 1, where=f"{opts.url}: entry {index + 1}")
            except ParseError as exc:  # one bad entry costs that entry, not the feed
                skipped.append(str(exc))
                continue
            if paper.key not in seen:
                seen.add(paper.key)
                papers.append(paper)
        return SourceBatch(self.name, day or self.today or datetime.now(timezone.utc).date(), papers, skipped)


# --- the safe path ------------------------------------------------------------------------------------


class NotWellFormed(ParseError):
    """The document is not well-formed XML (as opposed to refused for what it declares)."""


# In a document that is not well-formed, any DOCTYPE or entity declaration is refused: the loose parser
# must never see a declaration it could expand.
_DECLARES = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)


_CLOSED_ENTRY = re.compile(rb"</\s*(?:[\w-]+:)?(?:item|entry)\s*>", re.I)


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
        raise NotWellFormed(f"{origin}: not well-formed XML ({exc})") from None


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# The XML declaration, read from the ASCII-compatible start of the document (XML 1.0, section 4.3.3).
_DECLARATION = re.compile(rb"^\s*<\?xml\b[^>]*?\?>")
_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']([^"']*)["']""")


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, None without one.

    >>> charset_of('text/xml; charset="Windows-1251"')
    'windows-1251'
    """
    if not content_type:
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    charset = message.get_content_charset()
    return charset.strip() or None if isinstance(charset, str) else None


def to_utf8(body: bytes, origin: str, http_charset: str | None = None) -> bytes:
    """The document re-encoded as UTF-8, its declaration saying so; ``ParseError`` (one line) when it cannot be.

    expat reads only UTF-8, UTF-16, ISO-8859-1 and ASCII, and raises a bare ``ValueError`` on a multi-byte
    encoding such as Big5 or Shift_JIS. So the document is decoded here with whatever codec Python knows by
    the name the byte-order mark or the declaration gives (UTF-8 when neither does), and handed on as UTF-8.
    """
    encoding = next((name for bom, name in _BOMS if body.startswith(bom)), None)
    declaration = _DECLARATION.match(body) if encoding is None else None
    declared = _ENCODING.search(declaration.group(0)) if declaration else None
    if encoding is None:
        encoding = declared.group(1).decode("ascii", "replace").strip() if declared else "utf-8"
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise ParseError(f"{origin}: refused: the feed declares an unknown encoding ({encoding[:40]!r})") from None
    if codec.name == "utf-8" and declared is None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            # The document says nothing and is not UTF-8: only now is the server's charset believed
            # (servers add a default charset to every text/* answer far more often than a feed
            # declares a wrong encoding, so it never overrides what the document says).
            if http_charset and _known(http_charset) not in (None, "utf-8"):
                return to_utf8(_declare(body, http_charset), origin)
            raise ParseError(
                f"{origin}: refused: the bytes are not UTF-8 (at byte {exc.start}) and the feed declares no "
                "encoding"
            ) from None
        return body
    try:
        text = body.decode(codec.name)
    except UnicodeDecodeError as exc:
        raise ParseError(f"{origin}: refused: the bytes are not valid {encoding} (at byte {exc.start})") from None
    text = text.lstrip("\ufeff")
    head = re.match(r"\s*<\?xml\b[^>]*?\?>", text)
    if head:  # the declaration now names UTF-8, so no parser decodes the text a second time
        fixed = re.sub(r"""\bencoding\s*=\s*["'][^"']*["']""", 'encoding="utf-8"', head.group(0), count=1)
        text = fixed + text[head.end():]
    return text.encode("utf-8")


def _known(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _declare(body: bytes, encoding: str) -> bytes:
    """``body`` with an XML declaration naming ``encoding`` (replacing one without an encoding)."""
    head = _DECLARATION.match(body)
    rest = body[head.end():] if head else body
    return f'<?xml version="1.0" encoding="{encoding}"?>'.encode("ascii") + rest


def parse_feed(body: bytes, origin: str, http_charset: str | None = None) -> Any:
    """Decode (``to_utf8``), vet (``vet_xml``), then parse with feedparser; ``ParseError`` if it is no feed.

    A feed that parses is kept even when feedparser notes a flaw (its ``bozo`` flag): its entries are
    judged one by one. Only a document that is not RSS or Atom at all is refused.
    """
    body = to_utf8(body, origin, http_charset)
    try:
        vet_xml(body, origin)
    except NotWellFormed as exc:
        # Real feeds are often slightly broken (an HTML entity such as &nbsp;, a stray &, a cut-off end
        # tag). feedparser's loose parser reads those, and is safe here because nothing is declared.
        if _DECLARES.search(body):
            raise ParseError(f"{exc}; refused, as it also has a DOCTYPE or entity declaration") from None
        flaw: str | None = str(exc)
    else:
        flaw = None
    feed = feedparser.parse(io.BytesIO(body), resolve_relative_uris=False, sanitize_html=True)
    if not feed.get("version"):
        raise ParseError(f"{flaw}: not an RSS or Atom feed" if flaw else f"{origin}: not an RSS or Atom feed")
    feed["cut_off"] = []
    if flaw:
        # A document cut short (a truncated download) ends in an entry that never closed: its text is
        # incomplete, so it is skipped rather than mailed half.
        closed = len(_CLOSED_ENTRY.findall(body))
        if closed < len(feed.entries):
            feed["cut_off"] = [f"{origin}: entry {n + 1}: cut off by the end of the document"
                               for n in range(closed, len(feed.entries))]
            feed["entries"] = feed.entries[:closed]
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
