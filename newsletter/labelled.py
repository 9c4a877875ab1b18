"""Hand-labelled papers with their texts, for ``newsletter topics eval`` and for training the topic model.

A labels file names papers by title (and, better, by arXiv id); the texts come from, in order: the file's own
``abstract`` column, a folder (or file) of saved Daily Papers API responses (``--papers``), the store, and the
sample pages bundled with the package. This module does the reading; ``classify.evaluate`` the scoring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .classify.evaluate import Label
from .errors import NewsletterError, NotFound, ParseError
from .models import FetchedPaper, Paper, normalize_arxiv_id, normalize_title

REAL_DATA_ENV = "NEWSLETTER_REAL_DATA"


def real_data_folder(repo_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where the real upstream responses live: ``$NEWSLETTER_REAL_DATA``, else ``<repo>/../shared/data/real``."""
    env = (os.environ if environ is None else environ).get(REAL_DATA_ENV)
    return Path(env) if env else Path(repo_root).resolve().parent / "shared" / "data" / "real"


class PaperIndex:
    """Papers found by arXiv id or by normalised title."""

    def __init__(self, papers: Iterable[FetchedPaper] = ()) -> None:
        self.by_id: dict[str, FetchedPaper] = {}
        self.by_title: dict[str, FetchedPaper] = {}
        for p in papers:
            self.add(p)

    def add(self, paper: FetchedPaper) -> None:
        if paper.arxiv_id:
            self.by_id.setdefault(paper.arxiv_id, paper)
        self.by_title.setdefault(normalize_title(paper.title), paper)

    def find(self, arxiv_id: str, title: str) -> FetchedPaper | None:
        bare = normalize_arxiv_id(arxiv_id) if arxiv_id else None
        if bare and bare in self.by_id:
            return self.by_id[bare]
        return self.by_title.get(normalize_title(title))

    def __len__(self) -> int:
        return len(self.by_title)


def daily_papers(path: str | os.PathLike[str]) -> PaperIndex:
    """Every paper of a Daily Papers API response file, or of every ``*.json`` file in a folder."""
    from .sources.huggingface import items_from_document, paper_from_item

    root = Path(path)
    files = sorted(root.glob("*.json")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise NewsletterError(f"{path}: no Daily Papers JSON files there.",
                              hint="pass a saved /api/daily_papers response or a folder of them")
    index = PaperIndex()
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ParseError(f"{f}: not a readable JSON document ({exc})") from None
        for n, item in enumerate(items_from_document(data, str(f), allow_wrapper=True)):
            index.add(paper_from_item(item, None, f"{f}, item {n}"))
    return index


def sample_index() -> PaperIndex:
    from .pipeline import sample_pages
    from .sources.hf_page import parse_page

    index = PaperIndex()
    for page in sample_pages():
        for fetched in parse_page(page.read_text(encoding="utf-8"), origin=str(page)).papers:
            index.add(fetched)
    return index


def as_paper(fetched: FetchedPaper, pid: int) -> Paper:
    return Paper(id=pid, key=fetched.key, title=fetched.title, abstract=fetched.abstract,
                 arxiv_id=fetched.arxiv_id, organization=fetched.organization, ai_summary=fetched.ai_summary,
                 ai_keywords=tuple(fetched.ai_keywords), github_repo=fetched.github_repo)


def resolve(labels: Sequence[Label], indexes: Sequence[PaperIndex], store: Any = None,
            fallback: Sequence[PaperIndex] = ()) -> dict[int, Paper]:
    """The paper of each label (by label index): its own abstract, else ``indexes``, else the store, else
    ``fallback`` (the sample pages). Labels with no text anywhere are left out."""
    out: dict[int, Paper] = {}
    for i, label in enumerate(labels):
        pid = -(i + 1)
        if label.abstract:
            out[i] = Paper(id=pid, key=f"label:{i}", title=label.title, abstract=label.abstract,
                           arxiv_id=normalize_arxiv_id(label.arxiv_id) if label.arxiv_id else None)
            continue
        found = next((f for f in (ix.find(label.arxiv_id, label.title) for ix in indexes) if f), None)
        if found is not None:
            out[i] = as_paper(found, pid)
            continue
        if store is not None:
            try:
                out[i] = store.paper(label.arxiv_id or label.title)
                continue
            except NotFound:
                pass
        found = next((f for f in (ix.find(label.arxiv_id, label.title) for ix in fallback) if f), None)
        if found is not None:
            out[i] = as_paper(found, pid)
    return out
