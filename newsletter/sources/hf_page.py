"""A saved copy of the Hugging Face Daily Papers page, as the text a browser's "save as text" gives.

The page is a header (ending in the day, e.g. ``Mar 14``) followed by entries::

    Title
                                  (blank)
    Abstract, one paragraph
                                  (blank)
      • 4 authors                 optional block: "• N authors", or "<org-slug> <Org Name>",
    ·                             then a middle dot,
    Jan 12, 2024 7                then the publication date (year omitted for the page's own year)
                                  and, optionally, the upvote count.

The page date may carry its year (``Oct 28, 2025``, as the bundled Oct 28 sample does); without one it is
the latest such day not after today (or within a week of the trending day the caller gives), and later than
any year an entry shows.

Some pages carry the metadata block on every entry, some on none, some on a few: all three are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pydantic import Field

from ..errors import ParseError, SourceError
from ..models import FetchedPaper, SourceBatch
from . import SourceOptions

MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_MON = "(" + "|".join(MONTHS) + ")"
PAGE_DATE = re.compile(rf"^{_MON} (\d{{1,2}})(?:, (\d{{4}}))?$")
ENTRY_DATE = re.compile(rf"^{_MON} (\d{{1,2}})(?:, (\d{{4}}))?(?: (\d+))?$")
AUTHORS = re.compile(r"^[\u2022*·-]?\s*(\d+) authors?$")
DOT = "\u00b7"
HEADER_LINES = 12  # the page date is always within the first few lines
MAX_TITLE = 400
PAGE_AFTER_TRENDING = timedelta(days=7)  # how much later than its trending day a yearless page may be dated


class Options(SourceOptions):
    path: str = Field(description="The saved page (text file).")
    trending_date: date | None = Field(None, description="Trending day of the page; default: the page's own date.")
    year: int | None = Field(None, ge=1991, le=2100, description="Year of the page when it shows none.")


@dataclass
class _Line:
    number: int
    text: str


class SavedPageSource:
    """Reads a saved Daily Papers page. Example config: ``{type: hf-page, path: pages/mar14.txt}``."""

    options_model = Options

    def __init__(self, name: str, options: Options, today: date | None = None) -> None:
        self.name = name
        self.options = options
        self.today = today

    def fetch(self, day: date | None = None) -> SourceBatch:
        path = Path(self.options.path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{path}: not UTF-8 text; is it a saved copy of the Daily Papers page?") from None
        except OSError as exc:
            raise SourceError(f"Cannot read {path}: {exc.strerror}") from None
        # The day the papers are stored as trending is the caller's; the dates on the page are the page's own.
        # A page without a year is read as of the trending day, not given that day's year: a page of Oct 28
        # stored as trending on Jan 5 is from the October before, and so are the publication dates it shows.
        # (A page dated up to a week after the trending day still counts as the same year's: a page saved in
        # another time zone, or a day late.)
        trending = day or self.options.trending_date
        as_of = trending + PAGE_AFTER_TRENDING if trending else self.today
        page = parse_page(text, origin=str(path), year=self.options.year, today=as_of)
        return SourceBatch(self.name, trending or page.day, page.papers)


@dataclass
class ParsedPage:
    day: date
    papers: list[FetchedPaper]


def parse_page(text: str, origin: str = "page", year: int | None = None, today: date | None = None) -> ParsedPage:
    """Parse the page text into papers in page order (rank 1 first). Raises ParseError with a line number."""
    lines = [_Line(i, raw.strip()) for i, raw in enumerate(text.splitlines(), start=1)]
    content = [ln for ln in lines if ln.text]
    start, (month, day_of_month, page_year) = _find_page_date(content, origin)
    entries = content[start:]
    if not entries:
        raise ParseError(f"{origin}: no papers after the page date on line {content[start - 1].number}.")

    # Explicit years on entries are always earlier than the page's own year (the page omits its own).
    explicit_years = [int(m.group(3)) for ln in entries if (m := ENTRY_DATE.match(ln.text)) and m.group(3)]
    page_day = _page_day(month, day_of_month, page_year or year, explicit_years, today or date.today())

    papers: list[FetchedPaper] = []
    i = 0
    while i < len(entries):
        title = entries[i]
        if title.text == DOT or ENTRY_DATE.match(title.text) or AUTHORS.match(title.text):
            raise ParseError(f"{origin}, line {title.number}: expected a paper title, found {title.text[:60]!r}.")
        if len(title.text) > MAX_TITLE:
            raise ParseError(
                f"{origin}, line {title.number}: a {len(title.text)}-character line where a title should be; "
                "an entry above is probably missing its title or abstract."
            )
        if i + 1 >= len(entries):
            raise ParseError(f"{origin}, line {title.number}: the page ends after the title {title.text[:60]!r} (no abstract).")
        abstract = entries[i + 1]
        paper = FetchedPaper(title=title.text, abstract=abstract.text, rank=len(papers) + 1)
        i += 2
        if i + 1 < len(entries) and entries[i + 1].text == DOT:
            i = _read_meta(entries, i, paper, page_day, origin)
        elif i < len(entries) and entries[i].text == DOT:
            raise ParseError(f"{origin}, line {entries[i].number}: a '·' without the authors or organisation line before it.")
        papers.append(paper)
    return ParsedPage(page_day, papers)


def _read_meta(entries: list[_Line], i: int, paper: FetchedPaper, page_day: date, origin: str) -> int:
    who = entries[i].text
    if m := AUTHORS.match(who):
        paper.author_count = int(m.group(1))
    else:
        # "<org-slug> <Org Name>": the slug is the organisation's URL name, the rest its display name.
        slug, _, display = who.partition(" ")
        paper.organization = display.strip() or slug
    if i + 2 >= len(entries) or not (m := ENTRY_DATE.match(entries[i + 2].text)):
        where = entries[i + 2] if i + 2 < len(entries) else entries[i + 1]
        raise ParseError(
            f"{origin}, line {where.number}: expected a date like 'Mar 20' or 'Jan 12, 2024' after '·', "
            f"found {where.text[:60]!r}." if i + 2 < len(entries) else f"{origin}: the page ends after '·' (no date)."
        )
    month, dom, yr, upvotes = MONTHS[m.group(1)], int(m.group(2)), m.group(3), m.group(4)
    year = int(yr) if yr else page_day.year
    paper.published = _safe_date(year, month, dom, origin, entries[i + 2].number)
    if not yr and paper.published > page_day:  # "Dec 30" seen on a page of Jan 2: last year
        paper.published = _safe_date(year - 1, month, dom, origin, entries[i + 2].number)
    if upvotes is not None:
        paper.upvotes = int(upvotes)
    return i + 3


def _find_page_date(content: list[_Line], origin: str) -> tuple[int, tuple[int, int, int | None]]:
    for index, line in enumerate(content[:HEADER_LINES]):
        if m := PAGE_DATE.match(line.text):
            return index + 1, (MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)) if m.group(3) else None)
    raise ParseError(
        f"{origin}: no page date (a line like 'Mar 14') in the first {HEADER_LINES} lines; "
        "this does not look like a saved copy of the Daily Papers page."
    )


def _page_day(month: int, dom: int, year: int | None, explicit_years: list[int], today: date) -> date:
    if year:
        return _safe_date(year, month, dom, "page", 0)
    # The latest year in which the page's day is not in the future, but after every explicit year.
    candidate = today.year if (month, dom) <= (today.month, today.day) else today.year - 1
    if explicit_years:
        candidate = max(candidate, max(explicit_years) + 1)
    return _safe_date(candidate, month, dom, "page", 0)


def _safe_date(year: int, month: int, dom: int, origin: str, number: int) -> date:
    try:
        return date(year, month, dom)
    except ValueError:
        raise ParseError(f"{origin}, line {number}: {year}-{month:02d}-{dom:02d} is not a calendar date.") from None
