"""Seed interests (issue 15, point 2): arXiv ids pasted on the preferences page, or an uploaded BibTeX file or
Zotero export (CSL JSON, or Zotero's BibTeX), become "seed" signals for the papers the store holds.

Parsing is pure: ``parse_seeds(text)`` reads whatever was given (a list of ids or URLs, BibTeX parsed with
``bibtexparser``, CSL JSON with ``json``) into ``Seed``s (an arXiv id and/or a title). Matching is the
store's (``store.signals.find_papers``): by arXiv id first, else by normalised title. Input is capped
(``MAX_SEED_BYTES``, ``MAX_SEEDS``) with a clear error; a file that is neither gives an error and stores nothing.

Example::

    seeds = parse_seeds("2307.08691\\nhttps://arxiv.org/abs/2411.10958v2")
    [s.arxiv_id for s in seeds]  # ['2307.08691', '2411.10958']
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from ..errors import NewsletterError
from ..models import normalize_arxiv_id, normalize_title

MAX_SEED_BYTES = 1_000_000  # an upload or a pasted list: what the preferences page accepts (413 above)
MAX_SEEDS = 500  # entries read from one upload


class InvalidSeeds(NewsletterError):
    """The upload is not a list of arXiv ids, BibTeX or CSL JSON, or is too large."""


@dataclass(frozen=True)
class Seed:
    arxiv_id: str | None
    title: str | None

    @property
    def title_key(self) -> str | None:
        return normalize_title(self.title) if self.title else None


_BRACES = re.compile(r"[{}]")
_ID_TOKEN = re.compile(r"\S+")


def _clean_title(value: str) -> str:
    return " ".join(_BRACES.sub("", value).replace("\\\\", " ").split())


def parse_seeds(text: str | bytes) -> list[Seed]:
    """Seeds from a pasted list (one id or URL per line, or separated by spaces/commas), BibTeX or CSL JSON."""
    if isinstance(text, bytes):
        if len(text) > MAX_SEED_BYTES:
            raise InvalidSeeds(f"The file is larger than {MAX_SEED_BYTES // 1000} KB.",
                               hint="export only the collection you want to seed from")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidSeeds("The file is not UTF-8 text.", hint="export BibTeX or CSL JSON as UTF-8") from None
    if len(text.encode("utf-8")) > MAX_SEED_BYTES:
        raise InvalidSeeds(f"The text is larger than {MAX_SEED_BYTES // 1000} KB.")
    stripped = text.strip()
    if not stripped:
        return []
    if stripped[0] in "[{" and not stripped.startswith("{@"):
        seeds = _csl_json(stripped)
    elif "@" in stripped and re.search(r"@\w+\s*[{(]", stripped):
        seeds = _bibtex(stripped)
    else:
        seeds = _ids(stripped)
    return _unique(seeds)[:MAX_SEEDS]


def _unique(seeds: list[Seed]) -> list[Seed]:
    seen: set[tuple[str | None, str | None]] = set()
    out = []
    for s in seeds:
        key = (s.arxiv_id, None if s.arxiv_id else s.title_key)
        if key not in seen and (s.arxiv_id or s.title_key):
            seen.add(key)
            out.append(s)
    return out


def _ids(text: str) -> list[Seed]:
    out, bad = [], []
    for token in _ID_TOKEN.findall(text.replace(",", " ").replace(";", " ")):
        found = normalize_arxiv_id(token)
        (out if found else bad).append(Seed(found, None) if found else token)  # type: ignore[arg-type]
    if bad and not out:
        raise InvalidSeeds(f"No arXiv id found (for example {bad[0][:40]!r}).",
                           hint="paste ids like 2307.08691 or arXiv links, or upload a BibTeX or CSL JSON file")
    return out  # type: ignore[return-value]


def _field(entry: Any, *names: str) -> str | None:
    for name in names:
        f = entry.get(name) if hasattr(entry, "get") else None
        if f is not None:
            value = getattr(f, "value", f)
            if isinstance(value, str) and value.strip():
                return value
    return None


def _bibtex(text: str) -> list[Seed]:
    import bibtexparser

    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # a broken entry is counted, not logged
    library = bibtexparser.parse_string(text)
    if not library.entries:
        raise InvalidSeeds("No BibTeX entry could be read from the file.",
                           hint="export the collection as BibTeX (Zotero: Export Collection… → BibTeX)")
    out = []
    for entry in library.entries:
        arxiv = None
        prefix = (_field(entry, "archiveprefix", "archivePrefix") or "").lower()
        eprint = _field(entry, "eprint")
        if eprint and (prefix in ("", "arxiv")):
            arxiv = normalize_arxiv_id(eprint)
        for name in ("url", "doi", "journal", "note", "howpublished"):
            if arxiv:
                break
            value = _field(entry, name)
            if value and ("arxiv" in value.lower() or name == "url"):
                arxiv = normalize_arxiv_id(value)
        title = _field(entry, "title")
        out.append(Seed(arxiv, _clean_title(title) if title else None))
    return out


def _csl_json(text: str) -> list[Seed]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSeeds(f"The file is not valid JSON (line {exc.lineno}).",
                           hint="upload CSL JSON (Zotero: Export Collection… → CSL JSON) or BibTeX") from None
    items = data if isinstance(data, list) else data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidSeeds("The JSON is not a list of CSL items.", hint="upload CSL JSON or BibTeX")
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        arxiv = None
        for name in ("URL", "DOI", "number", "archive_location", "note", "id"):
            value = item.get(name)
            if isinstance(value, str) and (found := normalize_arxiv_id(value)):
                if name != "id" or "arxiv" in value.lower():
                    arxiv = found
                    break
        title = item.get("title")
        out.append(Seed(arxiv, _clean_title(title) if isinstance(title, str) else None))
    return out
