"""A local JSON file in the shape of the Daily Papers API response (see ``huggingface.py``).

The file holds the API's list of items, or an object ``{"papers": [...]}`` wrapping that list. Items are
mapped exactly as the API's are (``huggingface.paper_from_item``), ranked in file order.

The trending day is, in order: the day asked for, the ``trending_date`` option, the newest day found in the
file (each item's listing day, ``huggingface.item_day``), today (UTC). Withdrawn papers are left out.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from pydantic import Field

from ..errors import SourceError
from ..models import FetchedPaper, SourceBatch
from . import SourceOptions
from .huggingface import items_from_document, load_json, newest_day, paper_from_item, withdrawn

MAX_FILE_BYTES = 50_000_000


class Options(SourceOptions):
    path: str = Field(description="The JSON file (a list of Daily Papers items, or {'papers': [...]}).")
    trending_date: date | None = Field(None, description="Trending day of the file; default: its newest item's day.")


class JsonFileSource:
    """Reads a saved Daily Papers API response. Example config: ``{type: hf-json, path: data/mar14.json}``."""

    options_model = Options

    def __init__(self, name: str, options: Options, *, today: date | None = None) -> None:
        self.name = name
        self.options = options
        self.today = today

    def fetch(self, day: date | None = None) -> SourceBatch:
        path = Path(self.options.path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise SourceError(f"{path}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for a papers file")
            body = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"Cannot read {path}: {exc.strerror or exc}") from None
        origin = str(path)
        items = items_from_document(load_json(body, origin), origin, allow_wrapper=True)
        papers: list[FetchedPaper] = []
        skipped: list[str] = []
        gone: list[str] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            paper = paper_from_item(item, rank=len(papers) + 1, where=f"{origin}: item {index}")
            if reason := withdrawn(item):
                skipped.append(f"{origin}: item {index}: paper {paper.arxiv_id} {reason}")
                gone.append(paper.arxiv_id or "")
                continue
            if paper.key in seen:
                continue
            seen.add(paper.key)
            papers.append(paper)
        trending = day or self.options.trending_date or newest_day(items, origin) or self.today or _utc_today()
        return SourceBatch(self.name, trending, papers, skipped, gone)


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()
