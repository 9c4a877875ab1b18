"""arXiv: the Atom query API, or the daily RSS listings. Both are parsed by ``rss.parse_feed`` (the safe path).

* ``mode: api`` — ``GET https://export.arxiv.org/api/query?search_query=...&sortBy=submittedDate
  &sortOrder=descending&max_results=N``: the newest N submissions matching ``query`` (arXiv's query syntax,
  e.g. ``abs:diffusion AND cat:cs.CV``) and/or ``categories`` (``cat:cs.LG OR cat:cs.CL``), ANDed when both
  are given; by default ``cat:cs.LG``.
* ``mode: listing`` — ``GET https://rss.arxiv.org/rss/cs.LG+cs.CL``: the day's announcements in those
  categories; replacements (new versions of older papers) are skipped unless ``include_replacements``.

arXiv has no notion of trending: a batch is what the endpoint returns at fetch time, labelled with the day
asked for (today, UTC, by default). Ranks follow the endpoint's order.

arXiv asks for at most one request every three seconds: every request (retries included) waits for
``min_interval_seconds`` since the previous one to the same host, across all arXiv sources in the process.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timezone
from typing import Any, Callable, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from ..errors import ParseError, SourceError
from ..models import FetchedPaper, SourceBatch
from . import SourceOptions
from . import http as http_helper
from .rss import FEED_ACCEPT, charset_of, entry_authors, paper_from_entry, parse_feed

API_URL = "https://export.arxiv.org/api/query"
LISTING_URL = "https://rss.arxiv.org/rss"
ABS_URL = "https://arxiv.org/abs/{}"
DEFAULT_CATEGORIES = ("cs.LG",)

CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")
# "arXiv:2503.01234v1 Announce Type: new \nAbstract: ..." at the start of a listing's description
_LISTING_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(Abstract:\s*)?", re.I)
_REPLACEMENTS = frozenset({"replace", "replace-cross"})

# One limiter for the whole process, so several arXiv sources together still keep to arXiv's pace.
SHARED_LIMITER = http_helper.RateLimiter()


class Options(SourceOptions):
    mode: Literal["api", "listing"] = Field("api", description="'api' (query API) or 'listing' (daily RSS).")
    query: str | None = Field(None, max_length=1000, description="arXiv search_query (api mode only).")
    categories: tuple[str, ...] | None = Field(None, description="Categories, e.g. [cs.LG, cs.CL]; default cs.LG.")
    max_results: int = Field(50, ge=1, le=2000, description="Keep at most this many papers.")
    include_replacements: bool = Field(False, description="Listing mode: keep replaced (re-versioned) papers.")
    base_url: str | None = Field(None, description=f"Endpoint; default {API_URL} (api) or {LISTING_URL} (listing).")
    min_interval_seconds: float = Field(3.0, ge=0, le=600, description="Least time between two arXiv requests.")
    timeout: float = Field(30.0, gt=0, le=300, description="Seconds to wait for each read.")
    deadline: float = http_helper.deadline_field()
    max_bytes: int = Field(20_000_000, ge=1024, description="Largest response accepted.")
    retries: int = Field(http_helper.DEFAULT_RETRIES, ge=0, le=10, description="Retries on 429, 5xx, network errors.")

    @field_validator("query")
    @classmethod
    def check_query(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value else value

    @field_validator("categories")
    @classmethod
    def check_categories(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name at least one category")
        for category in value:
            if not CATEGORY.match(category):
                raise ValueError(f"{category!r} is not an arXiv category like 'cs.LG' or 'hep-th'")
        return value

    @field_validator("base_url")
    @classmethod
    def check_base_url(cls, value: str | None) -> str | None:
        return None if value is None else http_helper.check_http_url(value)

    @model_validator(mode="after")
    def check_mode(self) -> Options:
        if self.mode == "listing" and self.query is not None:
            raise ValueError("query is for mode 'api'; a listing is chosen by categories")
        return self


class ArxivSource(http_helper.HttpSource):
    """Reads arXiv. Example config: ``{type: arxiv, mode: listing, categories: [cs.LG, cs.CL]}``."""

    options_model = Options
    options: Options

    def __init__(
        self,
        name: str,
        options: Options,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: http_helper.RateLimiter | None = None,
        today: date | None = None,
    ) -> None:
        super().__init__(name, options, client=client, sleep=sleep, today=today)
        self.limiter = limiter or SHARED_LIMITER

    def read(self, day: date | None = None) -> SourceBatch:
        opts = self.options
        if opts.mode == "api":
            url, params = opts.base_url or API_URL, self.api_params()
        else:
            categories = opts.categories or DEFAULT_CATEGORIES
            url, params = (opts.base_url or LISTING_URL).rstrip("/") + "/" + "+".join(categories), None
        origin = http_helper.display_url(url, params)
        headers: dict[str, str] = {}
        body = self.get(url, params, accept=FEED_ACCEPT, limiter=self.limiter,
                        min_interval=opts.min_interval_seconds, response_headers=headers)
        feed = parse_feed(body, origin, charset_of(headers.get("content-type")))
        entries = feed.entries
        if opts.mode == "api":
            _check_api_response(feed, origin)
        elif not opts.include_replacements:
            entries = [e for e in entries if str(e.get("arxiv_announce_type", "")).lower() not in _REPLACEMENTS]
        papers: list[FetchedPaper] = []
        skipped: list[str] = list(feed["cut_off"])
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if len(papers) >= opts.max_results:
                break
            try:
                paper = _paper(entry, len(papers) + 1, f"{origin}: entry {index + 1}", listing=opts.mode == "listing")
            except ParseError as exc:  # one bad entry costs that entry, not the listing
                skipped.append(str(exc))
                continue
            if paper.key not in seen:
                seen.add(paper.key)
                papers.append(paper)
        return SourceBatch(self.name, day or self.today or datetime.now(timezone.utc).date(), papers, skipped)

    def api_params(self) -> dict[str, str | int]:
        opts = self.options
        terms = []
        if opts.query:
            terms.append(opts.query)
        if opts.categories or not opts.query:
            terms.append(" OR ".join(f"cat:{c}" for c in opts.categories or DEFAULT_CATEGORIES))
        query = terms[0] if len(terms) == 1 else " AND ".join(f"({t})" for t in terms)
        return {
            "search_query": query,
            "start": 0,
            "max_results": opts.max_results,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        }


def _check_api_response(feed: Any, origin: str) -> None:
    """The API reports errors as a feed with one entry whose id is ``.../api/errors#...``."""
    entries = feed.entries
    if len(entries) == 1 and "/api/errors" in str(entries[0].get("id", "")):
        detail = " ".join(str(entries[0].get("summary") or entries[0].get("title") or "error").split())
        raise SourceError(f"{origin}: arXiv reported an error: {detail[:200]}")
    total = feed.feed.get("opensearch_totalresults")
    if not entries and total and str(total).isdigit() and int(total) > 0:
        # A known arXiv hiccup: an empty page although matches exist. Storing nothing would hide it.
        raise SourceError(f"{origin}: arXiv returned no entries although it reports {total} matches; try again later")


def _paper(entry: Any, rank: int, where: str, listing: bool) -> FetchedPaper:
    paper = paper_from_entry(entry, rank=rank, where=where)
    arxiv_id = paper.arxiv_id
    if arxiv_id is None:
        raise ParseError(f"{where}: no arXiv id in the entry's id or links")
    paper.arxiv_id = arxiv_id
    paper.url = ABS_URL.format(arxiv_id)
    if listing:
        paper.abstract = _LISTING_PREFIX.sub("", paper.abstract)
        authors = entry_authors(entry)
        if len(authors) == 1 and "," in authors[0]:  # the listing's dc:creator is "A, B, C"
            parts = (re.sub(r"^and\s+", "", name.strip()) for name in authors[0].split(","))
            authors = [name for name in parts if name]
        paper.authors = authors
    return paper
