"""Replaying the three sample pages as three daily runs for one reader (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from newsletter import config
from newsletter.models import normalize_title
from newsletter.pipeline import Newsletter

from support import PAGE_DAYS, PAGES, ROOT


def newsletter_on(db_url: str, tmp_path: Path, **digest: int) -> Newsletter:
    """The shipped topics and settings on ``db_url``; digest caps high unless given, so a digest is the diff."""
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    settings = config.from_mapping({"database_url": db_url, "topics": shipped["topics"],
                                    "digest": {"max_papers": 1000, "max_per_topic": 1000, **digest},
                                    "sources": [{"type": "hf-page", "path": str(PAGES["mar14"])}]},
                                   environ={}, base_dir=tmp_path)
    return Newsletter(settings)


def test_three_daily_runs_send_every_paper_exactly_once(db_url: str, tmp_path: Path) -> None:
    nl = newsletter_on(db_url, tmp_path)
    reader = nl.store.add_subscriber("reader@example.org")
    digests: list[list[str]] = []
    for name in ("mar14", "mar25", "oct28"):  # date order
        nl.import_file(PAGES[name], PAGE_DAYS[name])
        plan = nl.plan("daily", PAGE_DAYS[name])
        [mine] = [r for r in plan.readers if r.subscriber.id == reader.id]
        edition = nl.record_edition(plan, subject=f"digest {name}")
        nl.store.set_delivery_state(edition, reader.id, "sent")
        digests.append([p.key for p in mine.papers])

    page_keys = {name: {p.key for p in nl.store.papers(since=PAGE_DAYS[name], until=PAGE_DAYS[name])} for name in PAGES}
    earlier: set[str] = set()
    for name, digest in zip(("mar14", "mar25", "oct28"), digests):
        assert len(digest) == len(set(digest))  # no paper twice within a digest
        assert set(digest) == page_keys[name] - earlier  # exactly the papers not in an earlier digest
        earlier |= set(digest)
    all_keys = [k for d in digests for k in d]
    assert len(all_keys) == len(set(all_keys))  # no paper twice across digests
    assert set(all_keys) == {p.key for p in nl.store.papers()}  # the union is every distinct paper
    assert len(all_keys) == nl.store.paper_count() == 227
    # Papers on both March pages went out once, on Mar 14 (counted here from the files' titles).
    titles = {n: {normalize_title(ln) for ln in _titles(PAGES[n])} for n in PAGES}
    assert len(page_keys["mar25"] & page_keys["mar14"]) == len(titles["mar25"] & titles["mar14"]) > 0
    assert len(digests[1]) == 69 - len(titles["mar25"] & titles["mar14"])
    # The sent record holds one delivery per edition for this reader, not one row per paper.
    counts = nl.store.table_counts()
    assert (counts["deliveries"], counts["digests"]) == (3, 3)
    nl.close()


def test_a_rerun_of_the_same_day_finds_nothing_new(db_url: str, tmp_path: Path) -> None:
    nl = newsletter_on(db_url, tmp_path)
    reader = nl.store.add_subscriber("reader@example.org")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    plan = nl.plan("daily", PAGE_DAYS["mar14"])
    edition = nl.record_edition(plan)
    # Queued but not yet sent: already taken, so a second plan must not offer the papers again.
    assert all(not r.papers for r in nl.plan("daily", PAGE_DAYS["mar14"]).readers)
    assert nl.plan("daily", PAGE_DAYS["mar14"]).existing_edition == edition
    nl.store.set_delivery_state(edition, reader.id, "failed", error="550")
    # A failed send gives the papers back: they carry over to the next digest, even outside the window.
    later = nl.plan("daily", PAGE_DAYS["mar25"])
    assert len(later.readers[0].papers) == 85
    nl.close()


def test_window_counts_from_trending_not_publication(db_url: str, tmp_path: Path) -> None:
    nl = newsletter_on(db_url, tmp_path)
    nl.store.add_subscriber("reader@example.org")
    nl.import_file(PAGES["oct28"], PAGE_DAYS["oct28"])
    plan = nl.plan("daily", PAGE_DAYS["oct28"])
    assert len(plan.readers[0].papers) == 97  # papers published in 2020-2024 still count: they trended today
    assert nl.plan("daily", PAGE_DAYS["oct28"].replace(day=28 + 3)).readers[0].papers  # within 7 days
    assert not nl.plan("daily", PAGE_DAYS["oct28"] + timedelta(days=7)).readers[0].papers  # window passed
    nl.close()


@pytest.mark.parametrize("cadence, window", [("daily", 7), ("weekly", 14)])
def test_a_paper_stays_eligible_to_the_last_day_of_its_cadence_window_and_not_one_day_more(
        db_url: str, tmp_path: Path, cadence: str, window: int) -> None:
    """The README's windows: 7 days for daily, 14 for weekly, counted from the day the paper trended. The
    day it trended is day 1, so the last day inside the window is day +6 (daily) or +13 (weekly)."""
    nl = newsletter_on(db_url, tmp_path)
    nl.store.add_subscriber("reader@example.org", cadence=cadence)
    trended = PAGE_DAYS["oct28"]
    nl.import_file(PAGES["oct28"], trended)

    def offered(days_later: int) -> int:
        [mine] = nl.plan(cadence, trended + timedelta(days=days_later)).readers
        return len(mine.papers)

    assert offered(0) == 97
    assert offered(window - 1) == 97  # the last day inside the window: every paper still there
    assert offered(window) == 0  # one day later: the window has passed
    nl.close()


@pytest.mark.parametrize("state", ["pending", "claimed", "retry", "sent"])
def test_papers_of_a_delivery_still_on_its_way_are_not_offered_again_the_next_day(
        db_url: str, tmp_path: Path, state: str) -> None:
    """A digest that is queued, being sent or waiting for a retry holds its papers: the next day's plan must
    not offer them again, or they would go out twice once the retry succeeds."""
    nl = newsletter_on(db_url, tmp_path)
    reader = nl.store.add_subscriber("reader@example.org")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    first = nl.plan("daily", PAGE_DAYS["mar14"])
    assert len(first.readers[0].papers) == 85
    edition = nl.record_edition(first)
    nl.store.set_delivery_state(edition, reader.id, state, error="451 4.3.0 try again later"
                                if state == "retry" else None)
    [nxt] = nl.plan("daily", PAGE_DAYS["mar14"] + timedelta(days=1)).readers
    assert nxt.papers == ()
    nl.close()


def _titles(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [lines[i - 1] for i, ln in enumerate(lines) if len(ln) > 250]


def test_papers_a_reader_filters_out_are_not_marked_sent(db_url: str, tmp_path: Path) -> None:
    """Left out by the reader's topics: not recorded as sent, so they reach the reader if they add the topic.
    Papers beyond the email's caps are part of the digest (linked on the web) and recorded."""
    nl = newsletter_on(db_url, tmp_path, max_papers=10, max_per_topic=4)
    picky = nl.store.add_subscriber("picky@example.org", topics=["quantization"])
    everyone = nl.store.add_subscriber("all@example.org")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    plan = nl.plan("daily", PAGE_DAYS["mar14"])
    edition = nl.record_edition(plan)
    for sub in (picky, everyone):
        nl.store.set_delivery_state(edition, sub.id, "sent")
    sent = {sub.id: set(nl.store.delivered_papers(sub.id)) for sub in (picky, everyone)}
    assert len(sent[everyone.id]) == 85  # the email shows 10; the rest are one click away
    assert 0 < len(sent[picky.id]) < 85
    assert all("quantization" in nl.store.paper(pid).topics for pid in sent[picky.id])
    # The next day the picky reader adds a topic: its papers from the window come, the quantization ones don't.
    nl.store.add_subscriber("picky@example.org", topics=["quantization", "3d"], update_existing=True)
    nxt = {r.subscriber.id: r for r in nl.plan("daily", PAGE_DAYS["mar14"].replace(day=15)).readers}
    assert not nxt[everyone.id].papers
    assert {p.id for p in nxt[picky.id].papers} == {p.id for p in nl.store.papers()} - sent[picky.id]
    digest = nl.reader_digests(nl.plan("daily", PAGE_DAYS["mar14"].replace(day=15)))[picky.id]
    assert digest.papers and all("3d" in p.topics for p in digest.papers)
    # The edition records each paper once, in its section.
    assert len(nl.store.edition_papers(edition)) == 85
    nl.close()
