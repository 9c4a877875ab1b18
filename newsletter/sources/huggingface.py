"""The Hugging Face Daily Papers JSON API: ``GET {base_url}/api/daily_papers?p=0&limit=50&date=YYYY-MM-DD``.

The body is a list of items, one per paper on the list, in the site's order::

    {"paper": {"id": "2411.10958", "title": ..., "summary": ..., "authors": [{"name": ...}, ...],
               "publishedAt": "2024-11-17T04:35:49.000Z", "submittedOnDailyAt": "2025-03-14T00:12:03.000Z",
               "upvotes": 52, "ai_summary": ..., "ai_keywords": [...], "githubRepo": ..., "githubStars": 1200,
               "projectPage": ..., "organization": {"name": "microsoft", "fullname": "Microsoft"}},
     "title": ..., "summary": ..., "publishedAt": ..., "thumbnail": ..., "numComments": 3,
     "submittedBy": {...}, "organization": {...}}

Pages are read with ``p=0,1,...`` until one holds fewer than ``limit`` items, brings no paper not seen on
an earlier page, or ``max_pages`` were read. An item's ``paper`` object wins over the same top-level key.
A malformed item is skipped and reported (``SourceBatch.skipped``); so is a withdrawn paper
(``paper.withdrawnAt``). Hidden authors (``authors[].hidden``) are left out. ``paper_from_item`` is shared with ``hf_json``.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

from pydantic import Field, field_validator

from ..errors import ParseError
from ..models import FetchedPaper, SourceBatch, normalize_arxiv_id
from . import SourceOptions
from . import http as http_helper

PAPER_PAGE = "https://huggingface.co/papers/{}"
MAX_AUTHORS = 500  # more than any real paper; a longer list is almost certainly junk


class Options(SourceOptions):
    base_url: str = Field("https://huggingface.co", description="Site root; the API is {base_url}/api/daily_papers.")
    limit: int = Field(50, ge=1, le=100, description="Items per page (the API's page size).")
    max_pages: int = Field(5, ge=1, le=50, description="Stop after this many pages.")
    timeout: float = Field(http_helper.DEFAULT_TIMEOUT, gt=0, le=300, description="Seconds to wait for each read.")
    deadline: float = http_helper.deadline_field()
    max_bytes: int = Field(10_000_000, ge=1024, description="Largest response accepted, per page.")
    retries: int = Field(http_helper.DEFAULT_RETRIES, ge=0, le=10, description="Retries on 429, 5xx and network errors.")

    @field_validator("base_url")
    @classmethod
    def check_base_url(cls, value: str) -> str:
        return http_helper.check_http_url(value)


class HuggingFaceSource(http_helper.HttpSource):
    """Reads the Daily Papers API. Example config: ``{type: huggingface, limit: 50}``."""

    options_model = Options
    options: Options
    # The API answers per listing day (``date=``), and a day's list grows after it opens: the pipeline
    # reads every day not yet known complete (see ``store.listing_days``).
    dated_listing = True

    def read(self, day: date | None = None) -> SourceBatch:
        opts = self.options
        url = opts.base_url.rstrip("/") + "/api/daily_papers"
        papers: list[FetchedPaper] = []
        skipped: list[str] = []
        gone: list[str] = []
        listed: list[Any] = []
        seen: set[str] = set()
        for page in range(opts.max_pages):
            params: dict[str, str | int] = {"p": page, "limit": opts.limit}
            if day is not None:
                params["date"] = day.isoformat()
            origin = http_helper.display_url(url, params)
            body = self.get(url, params, accept="application/json")
            items = items_from_document(load_json(body, origin), origin, allow_wrapper=False)
            listed.extend(items)
            fresh = 0
            for index, item in enumerate(items):
                where = f"{origin}: item {index}"
                try:
                    paper = paper_from_item(item, rank=len(papers) + 1, where=where)
                except ParseError as exc:  # one bad item costs that item, not the day
                    skipped.append(str(exc))
                    continue
                if reason := withdrawn(item):
                    skipped.append(f"{where}: paper {paper.arxiv_id} {reason}")
                    gone.append(paper.arxiv_id or "")
                    continue
                key = paper.arxiv_id or ""
                if key in seen:  # the list shifted between pages: keep the first sighting
                    continue
                seen.add(key)
                fresh += 1
                papers.append(paper)
            # Paging follows what the API returns: a short page is the last one, and a page that brings
            # nothing new means the API ignored ``p`` (it answered the whole list at once).
            if len(items) < opts.limit or not fresh:
                break
        # Without a day, the list is "the latest": label it with the day it was listed (early in the UTC
        # morning that is often yesterday's list), not with the clock.
        trending = day or newest_day(listed, url) or self.today or datetime.now(timezone.utc).date()
        return SourceBatch(self.name, trending, papers, skipped, gone)


# --- shared with hf_json -------------------------------------------------------------------------------


def load_json(body: bytes, origin: str) -> Any:
    """Decode a JSON document, turning every failure into a one-line ``ParseError`` naming ``origin``."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the document may be truncated"
        ) from None
    except UnicodeDecodeError:
        raise ParseError(f"{origin}: not valid JSON (the bytes are not UTF-8 text)") from None
    except RecursionError:
        raise ParseError(f"{origin}: not valid JSON (nested too deeply)") from None


def items_from_document(data: Any, origin: str, allow_wrapper: bool) -> list[Any]:
    """The list of items: the document itself, or (``allow_wrapper``) its ``papers`` list."""
    if allow_wrapper and isinstance(data, dict) and "papers" in data:
        data = data["papers"]
    if not isinstance(data, list):
        expected = "a list of papers (or an object with a 'papers' list)" if allow_wrapper else "a list of papers"
        raise ParseError(f"{origin}: expected {expected}, found {_kind(data)}")
    return data


def paper_from_item(item: Any, rank: int | None, where: str) -> FetchedPaper:
    """Map one Daily Papers item to a ``FetchedPaper``; ``ParseError`` (prefixed by ``where``) on a bad shape."""
    if not isinstance(item, dict):
        raise ParseError(f"{where}: expected an object, found {_kind(item)}")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise ParseError(f"{where}: no 'paper' object" if paper is None else f"{where}: 'paper' is {_kind(paper)}")

    raw_id = paper.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise ParseError(f"{where}: paper.id is missing")
    arxiv_id = normalize_arxiv_id(raw_id)
    if arxiv_id is None:
        raise ParseError(f"{where}: paper.id {raw_id[:40]!r} is not an arXiv id")

    title = _text(paper, "title", where) or _text(item, "title", where)
    if not title:
        raise ParseError(f"{where}: paper {arxiv_id} has no title")

    org = _organization(paper.get("organization"), f"{where}: paper.organization")
    if org is None:
        org = _organization(item.get("organization"), f"{where}: organization")

    return FetchedPaper(
        title=title,
        abstract=_text(paper, "summary", where) or _text(item, "summary", where) or "",
        arxiv_id=arxiv_id,
        authors=_authors(paper.get("authors"), where),
        organization=org,
        published=_date(paper, "publishedAt", where) or _date(item, "publishedAt", where),
        upvotes=_count(paper, "upvotes", where),
        num_comments=_count(item, "numComments", where),
        ai_summary=_text(paper, "ai_summary", where),
        ai_keywords=_keywords(paper.get("ai_keywords"), where),
        github_repo=http_helper.http_url(paper.get("githubRepo")),
        github_stars=_count(paper, "githubStars", where),
        project_page=http_helper.http_url(paper.get("projectPage")),
        thumbnail=http_helper.http_url(item.get("thumbnail")),
        url=PAPER_PAGE.format(arxiv_id),
        rank=rank,
    )


def item_day(item: Any, where: str) -> date | None:
    """The day an item was on the list, None if the item says nothing about it.

    ``submittedOnDailyAt``; else (the older responses, 2024) the item's own top-level ``publishedAt``, which
    is when it was listed; only for a bare ``paper`` object, the paper's ``publishedAt`` (its arXiv date).
    A present but malformed date is a ``ParseError``, not a reason to fall back to the next key.
    """
    if not isinstance(item, dict):
        return None
    paper: dict[str, Any] = item["paper"] if isinstance(item.get("paper"), dict) else {}
    for holder, key in ((paper, "submittedOnDailyAt"), (item, "submittedOnDailyAt"), (item, "publishedAt")):
        if found := _date(holder, key, where):
            return found
    return _date(paper, "publishedAt", where)


def withdrawn(item: Any) -> str | None:
    """"was withdrawn on D" when the item's paper carries ``withdrawnAt``; such a paper is never sent."""
    paper = item.get("paper") if isinstance(item, dict) else None
    if not isinstance(paper, dict) or not paper.get("withdrawnAt"):
        return None
    when = paper["withdrawnAt"]
    return f"was withdrawn ({when[:10]})" if isinstance(when, str) else "was withdrawn"


def newest_day(items: list[Any], origin: str) -> date | None:
    """The newest ``item_day`` of the items (the trending day of a saved response), None when none has one."""
    days = [d for index, item in enumerate(items) if (d := item_day(item, f"{origin}: item {index}"))]
    return max(days) if days else None


# --- field readers ------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _text(obj: dict, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}: {key} should be text, found {_kind(value)}")
    return " ".join(value.split()) or None


def _count(obj: dict, key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 0:
        raise ParseError(f"{where}: {key} should be a whole number >= 0, found {value!r:.40}")
    return int(value)


def _parse_instant(value: str) -> date:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.date()


def _date(obj: dict, key: str, where: str) -> date | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}: {key} should be an ISO date, found {_kind(value)}")
    try:
        return _parse_instant(value)
    except ValueError:
        raise ParseError(f"{where}: {key} {value[:40]!r} is not an ISO date") from None


def _authors(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{where}: paper.authors should be a list, found {_kind(value)}")
    if len(value) > MAX_AUTHORS:
        raise ParseError(f"{where}: paper.authors has {len(value)} entries (more than {MAX_AUTHORS})")
    names: list[str] = []
    for author in value:
        if isinstance(author, dict) and author.get("hidden"):  # hidden on the paper's page: hidden here too
            continue
        name = author.get("name") if isinstance(author, dict) else author
        if isinstance(name, str) and (clean := " ".join(name.split())):
            names.append(clean)
    return names


def _keywords(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{where}: paper.ai_keywords should be a list, found {_kind(value)}")
    out: list[str] = []
    for keyword in value:
        if isinstance(keyword, str) and (clean := " ".join(keyword.split())) and clean not in out:
            out.append(clean)
    return out


def _organization(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ParseError(f"{where} should be an object, found {_kind(value)}")
    for key in ("fullname", "name"):
        name = value.get(key)
        if isinstance(name, str) and name.strip():
            return " ".join(name.split())
    return None
