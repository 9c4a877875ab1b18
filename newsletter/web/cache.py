"""Public pages rendered once: a bounded in-process cache of finished bodies, with ETag, 304 and gzip.

An edition's page, the archive and the feeds are the same for everyone and change rarely (a sent edition
never does, short of a cancel, a GDPR erasure scrubbing a paper's text, or a re-fetch raising a paper's
upvotes). Each is rendered once per *key*: a tuple of everything the page is made of, read from the database
in one small query per request (``store.subscriptions.edition_version``), plus the ``Fingerprint`` of the
settings and templates it is rendered with. A change anywhere in the key is a new entry, so nothing has to
be told to forget anything, and every worker process (each with its own cache) serves the same bytes with
the same ETag: the ETag is a hash of the body, not of the key or the process.

Each entry holds the body once plainly and once gzipped (level 9, no timestamp, so every worker makes the
same bytes). ``respond`` picks the encoding from ``Accept-Encoding`` (``Vary: Accept-Encoding`` on both),
answers ``If-None-Match`` with 304, and HEAD with the headers alone. The cache is bounded by the bytes it
holds (``web.page_cache_mb``); the least recently used entries go first.

A reader's web copy (``/editions/N/yours``) is personal: its body is cached per *digest* (readers with the same
papers share one digest, and the page holds nothing else of theirs), but every request checks its token first,
and the answer says ``private, no-store`` so no shared cache or browser keeps it.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

from starlette.requests import Request
from starlette.responses import Response

GZIP_MIN_BYTES = 512  # smaller bodies are sent as they are: the gzip header would eat the gain
PRIVATE = "private, no-store"
_TAG = re.compile(r'(?:W/)?"([^"]*)"')


@dataclass(frozen=True)
class Page:
    """A finished body, its gzipped bytes (None when compressing does not pay) and its strong ETags."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    digest: str  # a hash of the body

    @classmethod
    def of(cls, body: bytes | str, media_type: str, *, compress: bool = True) -> "Page":
        """``compress`` False: no gzipped copy (a page made for one answer is not worth level 9)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        packed = None
        if compress and len(data) >= GZIP_MIN_BYTES:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
        if packed is not None and len(packed) >= len(data):
            packed = None
        return cls(data, packed, media_type, hashlib.sha256(data).hexdigest()[:32])

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @property
    def etag_gzip(self) -> str:  # a strong ETag names one representation: the gzipped bytes have their own
        return f'"{self.digest}-gz"'

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"") + 200


class PageCache:
    """Pages by key, least recently used first out once they hold more than ``max_bytes``. Thread-safe (sync
    routes run in a thread pool). ``max_bytes`` 0 keeps nothing (every request renders)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, Page] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return page

    def put(self, key: Hashable, page: Page) -> Page:
        if page.size > self.max_bytes:
            return page
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._pages[key] = page
            self._bytes += page.size
            while self._bytes > self.max_bytes:
                _, gone = self._pages.popitem(last=False)
                self._bytes -= gone.size
        return page

    def page(self, key: Hashable, make: Callable[[], Page]) -> Page:
        """The cached page of ``key``, made (and kept) on a miss. Two requests missing at once both render;
        the bytes are the same, so either may be kept."""
        return self.get(key) or self.put(key, make())

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def bytes(self) -> int:
        return self._bytes


def accepts_gzip(header: str | None) -> bool:
    """Whether ``Accept-Encoding`` takes gzip (``gzip``, ``x-gzip`` or ``*``, with a q above 0; an explicit
    ``gzip;q=0`` refuses it whatever ``*`` says)."""
    if not header:
        return False
    wildcard: bool | None = None
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            wildcard = q > 0
    return bool(wildcard)


def not_modified(header: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*``, or any listed tag equal to ``etag`` by the weak comparison."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    mine = etag.strip('"')
    return any(tag == mine for tag in _TAG.findall(header))


def respond(request: Request, page: Page, *, cache_control: str, status: int = 200,
            headers: Mapping[str, str] | None = None) -> Response:
    """``page`` as the request asks for it: gzipped or not, 304 for a matching If-None-Match, headers only for
    HEAD. Never a cookie: these answers may be kept by shared caches."""
    packed = page.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding"))
    etag = page.etag_gzip if packed else page.etag
    out = {**(headers or {}), "etag": etag, "cache-control": cache_control, "vary": "Accept-Encoding"}
    if status == 200 and not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=out)
    body = page.gzipped if packed else page.body
    assert body is not None
    if packed:
        out["content-encoding"] = "gzip"
    if request.method == "HEAD":
        out["content-length"] = str(len(body))
        return Response(b"", status_code=status, headers=out, media_type=page.media_type)
    return Response(body, status_code=status, headers=out, media_type=page.media_type)


def fingerprint(settings: Any, templates: Path) -> str:
    """A hash of what every cached page is rendered with besides the database: the settings (site_url, names,
    topics, subject format, ...) and every template file's bytes. A new install or a changed config.yaml
    starts with new keys (the web app reads templates once, at start)."""
    h = hashlib.sha256(settings.model_dump_json().encode())
    for path in sorted(p for p in templates.rglob("*") if p.is_file() and "static" not in p.parts):
        h.update(str(path.relative_to(templates)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


__all__ = ["PRIVATE", "Page", "PageCache", "accepts_gzip", "fingerprint", "not_modified", "respond"]
