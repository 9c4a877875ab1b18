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
    """Each day offers exactly the papers its page lists minus those an earlier email listed; what an email
    lists is recorded as sent, and what it could not list (the size limit) is offered again while in the
    window, so no paper is listed twice."""
    nl = newsletter_on(db_url, tmp_path)
    reader = nl.store.add_subscriber("reader@example.org")
    offered: list[set[str]] = []
    listed: list[set[str]] = []
    for name in ("mar14", "mar25", "oct28"):  # date order
        nl.import_file(PAGES[name], PAGE_DAYS[name])
        plan = nl.plan("daily", PAGE_DAYS[name])
        [mine] = [r for r in plan.readers if r.subscriber.id == reader.id]
        before = set(nl.store.delivered_papers(reader.id))
        edition = nl.record_edition(plan, subject=f"digest {name}")
        nl.store.set_delivery_state(edition, reader.id, "sent")
        key = {p.id: p.key for p in nl.store.papers()}
        assert len(mine.papers) == len({p.key for p in mine.papers})  # no paper twice within a digest
        offered.append({p.key for p in mine.papers})
        listed.append({key[i] for i in set(nl.store.delivered_papers(reader.id)) - before})

    page_keys = {name: {p.key for p in nl.store.papers(since=PAGE_DAYS[name], until=PAGE_DAYS[name])} for name in PAGES}
    earlier: set[str] = set()
    for name, offer, sent in zip(("mar14", "mar25", "oct28"), offered, listed):
        # The pages are more than a window apart: a day offers its own page, less what was listed before.
        assert offer == page_keys[name] - earlier
        assert sent and sent <= offer
        assert not sent & earlier  # never listed twice
        earlier |= sent
    assert sum(len(s) for s in listed) == len(earlier)
    assert set().union(*offered) == {p.key for p in nl.store.papers()}  # every paper was offered
    assert nl.store.paper_count() == 227
    # A paper on both March pages is listed once: on Mar 14, or on Mar 25 if the Mar 14 email had no room.
    both = page_keys["mar25"] & page_keys["mar14"]
    titles = {n: {normalize_title(ln) for ln in _titles(PAGES[n])} for n in PAGES}
    assert len(both) == len(titles["mar25"] & titles["mar14"]) > 0
    assert len(offered[1]) == 69 - len(both & listed[0])
    assert all(len([s for s in listed[:2] if k in s]) <= 1 for k in both)
    # The sent record holds one delivery per edition for this reader, not one row per paper.
    counts = nl.store.table_counts()
    assert (counts["deliveries"], counts["digests"]) == (3, 3)
    nl.close()


def test_a_rerun_of_the_same_day_offers_only_what_the_email_could_not_list(db_url: str, tmp_path: Path) -> None:
    nl = newsletter_on(db_url, tmp_path)
    reader = nl.store.add_subscriber("reader@example.org")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    plan = nl.plan("daily", PAGE_DAYS["mar14"])
    offered = {p.id for p in plan.readers[0].papers}
    [planned] = nl.planned_digests(plan)
    listed = set(planned.listed)
    assert listed and listed < offered  # the size limit leaves some of the 85 for the web copy
    edition = nl.record_edition(plan, planned=[planned])
    # Queued but not yet sent: what the email lists is already taken, so a second plan must not offer it
    # again; what it could not list stays eligible.
    again = nl.plan("daily", PAGE_DAYS["mar14"])
    assert again.existing_edition == edition
    taken = offered - {p.id for p in again.readers[0].papers}
    assert taken == listed
    nl.store.set_delivery_state(edition, reader.id, "failed", error="550")
    # A failed send gives the papers back: they carry over to the next digest, even outside the window.
    later = nl.plan("daily", PAGE_DAYS["mar25"])
    # (What the email never listed was not lost with it: it was eligible while in the window, and is out of it
    # by now.)
    assert {p.id for p in later.readers[0].papers} == taken
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
    offered = {p.id for p in first.readers[0].papers}
    assert len(offered) == 85
    [planned] = nl.planned_digests(first)
    listed = set(planned.listed)  # what the email lists; the size limit leaves the rest for the web copy
    assert listed and listed < offered
    edition = nl.record_edition(first, planned=[planned])
    nl.store.set_delivery_state(edition, reader.id, state, error="451 4.3.0 try again later"
                                if state == "retry" else None)
    [nxt] = nl.plan("daily", PAGE_DAYS["mar14"] + timedelta(days=1)).readers
    # Only what the email could not list is offered again; what it lists is held while it is on its way.
    assert {p.id for p in nxt.papers} == offered - listed
    nl.close()


def _titles(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [lines[i - 1] for i, ln in enumerate(lines) if len(ln) > 250]


def test_papers_a_reader_filters_out_are_not_marked_sent(db_url: str, tmp_path: Path) -> None:
    """Left out by the reader's topics: not recorded as sent, so they reach the reader if they add the topic.
    Papers beyond the email's caps are in the reader's web copy but not recorded as sent either."""
    nl = newsletter_on(db_url, tmp_path, max_papers=10, max_per_topic=4)
    picky = nl.store.add_subscriber("picky@example.org", topics=["quantization"])
    everyone = nl.store.add_subscriber("all@example.org")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    plan = nl.plan("daily", PAGE_DAYS["mar14"])
    edition = nl.record_edition(plan)
    for sub in (picky, everyone):
        nl.store.set_delivery_state(edition, sub.id, "sent")
    sent = {sub.id: set(nl.store.delivered_papers(sub.id)) for sub in (picky, everyone)}
    assert len(sent[everyone.id]) == 10  # what the email lists; the other 75 stay eligible
    assert 0 < len(sent[picky.id]) <= 4
    assert all("quantization" in nl.store.paper(pid).topics for pid in sent[picky.id])
    # The next day the picky reader adds a topic: its papers from the window come, the quantization ones
    # the email listed don't; those it cut do.
    nl.store.add_subscriber("picky@example.org", topics=["quantization", "3d"], update_existing=True)
    nxt = {r.subscriber.id: r for r in nl.plan("daily", PAGE_DAYS["mar14"].replace(day=15)).readers}
    assert {p.id for p in nxt[everyone.id].papers} == {p.id for p in nl.store.papers()} - sent[everyone.id]
    assert {p.id for p in nxt[picky.id].papers} == {p.id for p in nl.store.papers()} - sent[picky.id]
    digest = nl.reader_digests(nl.plan("daily", PAGE_DAYS["mar14"].replace(day=15)))[picky.id]
    assert digest.papers and all({"3d", "quantization"} & set(p.topics) for p in digest.papers)
    # The edition records each paper of every reader's web copy once, in its section.
    assert len(nl.store.edition_papers(edition)) == 85
    nl.close()


def test_a_section_the_caps_cut_is_named_and_its_papers_come_next_time(db_url: str, tmp_path: Path) -> None:
    """Two weeks of a weekly reader whose 3D papers (18, the biggest topic of the page) all rank below
    ``digest.max_papers``: the first email names the topic with its count and a link to the reader's web copy,
    does not record those papers as sent, and the next week's digest holds them again."""
    from datetime import timedelta

    nl = newsletter_on(db_url, tmp_path, max_papers=5, max_per_topic=5)
    reader = nl.store.add_subscriber("weekly@example.org", cadence="weekly")
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    cut = {p.id for p in nl.store.papers() if p.topic == "3d"}
    assert len(cut) == 18
    edition = nl.record_edition(nl.plan("weekly", PAGE_DAYS["mar14"]))
    nl.store.set_delivery_state(edition, reader.id, "sent")
    sent = set(nl.store.delivered_papers(reader.id))
    assert len(sent) == 5 and not cut & sent  # only what the email listed counts as sent
    # The email as it went out names the topic, with its count in the contents and a link to the web copy.
    shown = nl.preview(edition_id=edition, subscriber=reader.email)
    assert "3D &amp; neural graphics" in shown.html and "+ 18 on the web" in shown.html
    assert "3D & neural graphics (0, + 18 on the web)" in shown.text
    assert f"/editions/{edition}/yours?token=" in shown.html
    # A week later, still in the 14-day window: the cut papers come again, the listed ones do not.
    second = nl.plan("weekly", PAGE_DAYS["mar14"] + timedelta(days=7))
    [mine] = second.readers
    assert cut <= {p.id for p in mine.papers}
    assert not set(nl.store.delivered_papers(reader.id)) & {p.id for p in mine.papers}
    nl.close()
