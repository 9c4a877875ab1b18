"""The saved Daily Papers page: every entry of the three sample files, with all variants of metadata."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from newsletter.errors import ParseError
from newsletter.sources.hf_page import Options, SavedPageSource, parse_page

from support import PAGE_DAYS, PAGES

EXPECTED_COUNTS = {"mar14": 85, "mar25": 69, "oct28": 97}


def fetch(name: str, **opts: object):  # noqa: ANN201
    return SavedPageSource("hf-page", Options(path=str(PAGES[name]), **opts)).fetch(PAGE_DAYS[name])


def independent_entries(path: Path) -> list[tuple[str, str]]:
    """(title, abstract) pairs read another way: an abstract is a long line, its title the line before."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [(lines[i - 1], ln) for i, ln in enumerate(lines) if len(ln) > 250]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_entry_has_its_title_and_abstract(name: str) -> None:
    batch = fetch(name)
    assert len(batch.papers) == EXPECTED_COUNTS[name]
    assert [(p.title, p.abstract) for p in batch.papers] == independent_entries(PAGES[name])
    assert [p.rank for p in batch.papers] == list(range(1, len(batch.papers) + 1))
    assert batch.trending_date == PAGE_DAYS[name]
    for p in batch.papers:
        assert 5 < len(p.title) < 300 and "\n" not in p.title
        assert len(p.abstract) > 250


@pytest.mark.parametrize("name", sorted(PAGES))
def test_metadata_blocks_are_all_read(name: str) -> None:
    text = PAGES[name].read_text(encoding="utf-8")
    dots = sum(1 for ln in text.splitlines() if ln.strip() == "\u00b7")
    batch = fetch(name)
    assert sum(1 for p in batch.papers if p.published) == dots
    assert sum(1 for p in batch.papers if p.author_count or p.organization) == dots


def by_title(name: str) -> dict[str, object]:
    return {p.title: p for p in fetch(name).papers}


def test_author_count_date_with_year_and_no_upvotes() -> None:
    p = by_title("oct28")["Towards High-Quality and Efficient Speech Bandwidth Extension with Parallel Amplitude and Phase Prediction"]
    assert (p.author_count, p.organization, p.published, p.upvotes) == (4, None, date(2024, 1, 12), None)


def test_date_without_year_takes_the_page_year_and_reads_upvotes() -> None:
    p = by_title("oct28")["VideoRFSplat: Direct Scene-Level Text-to-3D Gaussian Splatting Generation with Flexible Pose and Multi-View Joint Modeling"]
    assert (p.author_count, p.published, p.upvotes) == (6, date(2025, 3, 20), 2)


def test_date_with_year_and_upvotes() -> None:
    p = by_title("oct28")["StreamDiffusion: A Pipeline-level Solution for Real-time Interactive Generation"]
    assert (p.author_count, p.published, p.upvotes) == (10, date(2023, 12, 19), 5)


@pytest.mark.parametrize("title, org, published, upvotes", [
    ("Mirror Speculative Decoding: Breaking the Serial Barrier in LLM Inference", "Apple", date(2025, 10, 15), 2),
    ("SANA-Video: Efficient Video Generation with Block Linear Diffusion Transformer", "NVIDIA", date(2025, 9, 29), 2),
    ("Dr.LLM: Dynamic Layer Routing in LLMs", "Parameter Lab", date(2025, 10, 14), 2),
])
def test_organisation_line_instead_of_authors(title: str, org: str, published: date, upvotes: int) -> None:
    p = by_title("oct28")[title]
    assert (p.organization, p.author_count, p.published, p.upvotes) == (org, None, published, upvotes)


def test_entries_without_metadata_in_a_page_that_has_it() -> None:
    p = by_title("oct28")["Wan: Open and Advanced Large-Scale Video Generative Models"]
    assert (p.author_count, p.organization, p.published, p.upvotes) == (None, None, None, None)
    assert p.abstract.startswith("This report presents Wan")


def test_pages_without_any_metadata() -> None:
    for name in ("mar14", "mar25"):
        assert all(p.published is None and p.author_count is None for p in fetch(name).papers)


def yearless(name: str) -> str:
    """The page as the site shows a day of the current year: its date without the year."""
    return PAGES[name].read_text(encoding="utf-8").replace("\nOct 28, 2025\n", "\nOct 28\n", 1)


def test_page_year_is_inferred_when_not_given() -> None:
    # Explicit years on the Oct 28 page go up to 2024, so the page is from 2025 or later, not in the future.
    page = parse_page(yearless("oct28"), today=date(2025, 11, 1))
    assert page.day == date(2025, 10, 28)
    page = parse_page(PAGES["mar14"].read_text(), today=date(2026, 1, 5))
    assert page.day == date(2025, 3, 14)  # March 14 of this year would be in the future


def test_undated_entry_after_the_page_day_is_from_the_year_before() -> None:
    text = "byAK and the research community\n\nJan 2\n\nA Title\n\n" + "x" * 300 + "\n\n  • 3 authors\n·\nDec 30\n"
    page = parse_page(text, year=2026)
    assert page.papers[0].published == date(2025, 12, 30)


@pytest.mark.parametrize("name, damage, message", [
    ("mar14", lambda t: t.replace("Mar 14\n", "", 1), "no page date"),
    ("mar14", lambda t: t + "\nA title with nothing after it\n", "no abstract"),
    ("oct28", lambda t: t.replace("Jan 12, 2024", "Jam 12, 2024"), "expected a date"),
    ("oct28", lambda t: t.replace("Jan 12, 2024", "Feb 30, 2024"), "not a calendar date"),
    ("oct28", lambda t: t.replace("  \u2022 4 authors\n", "", 1), "without the authors"),
])
def test_malformed_pages_are_refused_with_a_line_number(name, damage, message, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.txt"
    bad.write_text(damage(PAGES[name].read_text()))
    with pytest.raises(ParseError, match=message):
        SavedPageSource("x", Options(path=str(bad))).fetch()


def test_binary_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ParseError, match="not UTF-8"):
        SavedPageSource("x", Options(path=str(bad))).fetch()


def test_the_bundled_oct28_sample_carries_its_real_year() -> None:
    # StreamDiT (arXiv 2507.03745) and the Qwen2.5-Omni report (2503.20215) are 2025 papers, whenever it is read.
    for today in (date(2025, 11, 1), date(2026, 12, 2), date(2031, 6, 1)):
        page = parse_page(PAGES["oct28"].read_text(encoding="utf-8"), today=today)
        papers = {p.title: p for p in page.papers}
        assert page.day == date(2025, 10, 28)
        assert papers["StreamDiT: Real-Time Streaming Text-to-Video Generation"].published == date(2025, 7, 4)
        assert papers["Qwen2.5-Omni Technical Report"].published == date(2025, 3, 26)


@pytest.mark.parametrize("trending", [date(2026, 1, 5), date(2026, 7, 1), date(2025, 10, 28), date(2025, 10, 27)])
def test_publication_dates_are_the_pages_own_whichever_day_it_is_listed(tmp_path: Path, trending: date) -> None:
    page = tmp_path / "oct28.txt"
    page.write_text(yearless("oct28"), encoding="utf-8")
    batch = SavedPageSource("hf-page", Options(path=str(page))).fetch(trending)
    assert batch.trending_date == trending  # stored as listed on the caller's day ...
    papers = {p.title: p for p in batch.papers}  # ... with the dates the page shows, not that day's year
    assert papers["StreamDiT: Real-Time Streaming Text-to-Video Generation"].published == date(2025, 7, 4)
    assert papers["Qwen2.5-Omni Technical Report"].published == date(2025, 3, 26)
    assert all(p.published <= date(2025, 10, 28) for p in batch.papers if p.published)


def test_a_yearless_page_listed_on_the_first_days_of_january_is_from_the_december_before(tmp_path: Path) -> None:
    text = "byAK and the research community\n\nDec 31\n\nA Title\n\n" + "x" * 300 + "\n\n  • 3 authors\n·\nDec 30\n"
    page = tmp_path / "dec31.txt"
    page.write_text(text, encoding="utf-8")
    batch = SavedPageSource("hf-page", Options(path=str(page))).fetch(date(2026, 1, 1))
    assert batch.papers[0].published == date(2025, 12, 30)


def test_no_card_of_a_saved_page_is_dead_text(tmp_path) -> None:
    """Papers from a saved page carry no arXiv id and no link: each card links to a search for its title."""
    import re
    from urllib.parse import parse_qs, urlsplit

    from newsletter import config as config_mod
    from newsletter.pipeline import Newsletter
    from support import PAGE_DAYS, PAGES

    settings = config_mod.from_mapping({"database_url": f"sqlite:///{tmp_path / 'n.db'}",
                                        "digest": {"max_papers": 1000, "max_per_topic": 1000},
                                        "sources": [{"type": "hf-page", "path": str(PAGES["mar14"])}]},
                                       environ={}, base_dir=tmp_path)
    nl = Newsletter(settings)
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    nl.store.add_subscriber("reader@example.org")
    [reader] = nl.plan("daily", PAGE_DAYS["mar14"]).readers
    assert reader.papers and all(p.arxiv_id is None and not p.url for p in reader.papers)

    rendered = nl.render_for(nl.digest_for(reader, day=PAGE_DAYS["mar14"]))
    html = rendered.html

    assert '<span class="nl-title"' not in html  # the dead-text form of a card's title
    hrefs = re.findall(r'<a class="nl-title" href="([^"]+)"', html)
    shown = [p for p in reader.papers if p.id in set(rendered.listed)]  # the size limit leaves the rest out
    assert shown and len(hrefs) >= len(shown)
    searched = {parse_qs(urlsplit(h.replace("&amp;", "&")).query)["query"][0] for h in hrefs}
    assert {p.title for p in shown} <= searched
    assert all(h.startswith("https://arxiv.org/search/?query=") and "searchtype=title" in h for h in hrefs)
    nl.close()
