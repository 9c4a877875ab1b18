"""Catch-up fetching against a loopback stand-in of the Daily Papers API whose lists grow through the day."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from newsletter import config
from newsletter.pipeline import Newsletter

from support import DATA, GrowingDailyPapers

PAGE0 = DATA / "hf_api/daily_papers_2025-03-14_p0.json"


def items_listed(day: date, hours: list[int], template: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the recorded items, relisted on ``day`` at these hours (UTC), with fresh ids."""
    out = []
    for n, hour in enumerate(hours):
        item = json.loads(json.dumps(template[n % len(template)]))
        item["paper"]["id"] = f"{day:%y%m}.{day.day:02d}{n:03d}"
        item["paper"]["title"] = f"Paper {n} listed {day} at {hour:02d}:00"
        item["paper"]["submittedOnDailyAt"] = f"{day}T{hour:02d}:00:00.000Z"
        out.append(item)
    return out


@pytest.fixture
def api(httpserver) -> GrowingDailyPapers:
    template = json.loads(PAGE0.read_text())
    friday, monday = date(2025, 3, 14), date(2025, 3, 17)
    standin = GrowingDailyPapers({friday: items_listed(friday, [1, 3, 11, 16], template),
                                  monday: items_listed(monday, [2, 9], template)})
    httpserver.expect_request("/api/daily_papers").respond_with_handler(standin.handler)
    return standin


def newsletter(db_url: str, tmp_path: Path, base_url: str, **settings: Any) -> Newsletter:
    return Newsletter(config.from_mapping(
        {"database_url": db_url, "sources": [{"type": "huggingface", "base_url": base_url, "retries": 0}],
         **settings}, environ={}, base_dir=tmp_path))


def test_friday_is_read_again_on_monday_and_late_papers_arrive(db_url, tmp_path, httpserver, api):
    nl = newsletter(db_url, tmp_path, httpserver.url_for("/").rstrip("/"))
    friday, monday = date(2025, 3, 14), date(2025, 3, 17)

    api.now = datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)  # Friday's send: 2 of 4 are up
    nl.fetch(friday)
    assert api.asked == [friday - timedelta(days=13) + timedelta(days=n) for n in range(14)]  # fresh store
    assert len(nl.store.papers(since=friday, until=friday)) == 2

    api.asked.clear()
    api.now = datetime(2025, 3, 17, 8, 0, tzinfo=timezone.utc)  # Monday's send
    report = nl.fetch(monday)
    # Thursday and Friday were read on Friday, less than a day after they ended: read again, with the
    # weekend and Monday.
    assert api.asked == [friday - timedelta(1), friday, friday + timedelta(1), friday + timedelta(2), monday]
    assert len(nl.store.papers(since=friday, until=friday)) == 4  # the two late papers, listed on Friday
    assert [p.title for p in nl.store.papers(since=monday, until=monday)] == ["Paper 0 listed 2025-03-17 at 02:00"]
    [entry] = report.sources
    assert entry.error is None and entry.papers == 5 and entry.days == api.asked

    api.asked.clear()
    api.now = datetime(2025, 3, 18, 8, 0, tzinfo=timezone.utc)
    nl.fetch(date(2025, 3, 18))
    assert api.asked == [friday + timedelta(2), monday, date(2025, 3, 18)]  # Thursday to Saturday are complete
    nl.close()


def test_never_asks_for_a_day_later_than_today_in_utc(db_url, tmp_path, httpserver, api):
    # Tokyo, 08:00 on Monday the 17th is 23:00 UTC on Sunday: the send's local day is ahead of UTC.
    nl = newsletter(db_url, tmp_path, httpserver.url_for("/").rstrip("/"),
                    schedule={"timezone": "Asia/Tokyo"}, windows={"daily": 2, "weekly": 3})
    api.now = datetime(2025, 3, 16, 23, 0, tzinfo=timezone.utc)
    real_today = datetime.now(timezone.utc).date()
    assert date(2025, 3, 17) < real_today  # a replay: --date acts as if today were that day

    report = nl.fetch(date(2025, 3, 16))  # what the send of the 17th local asks once clamped to UTC

    assert max(api.asked) == date(2025, 3, 16) and report.sources[0].error is None
    api.asked.clear()
    api.now = datetime.now(timezone.utc)
    later = nl.fetch(real_today + timedelta(days=3))  # a --date beyond today in UTC is clamped to it

    assert later.sources[0].error is None and max(api.asked) == real_today
    nl.close()


def test_a_refusal_shows_the_apis_error_and_keeps_the_days_already_read(db_url, tmp_path, httpserver, api):
    nl = newsletter(db_url, tmp_path, httpserver.url_for("/").rstrip("/"), windows={"daily": 2, "weekly": 4})
    api.now = datetime(2025, 3, 15, 12, 0, tzinfo=timezone.utc)  # the stand-in's "today" lags the asked day

    [entry] = nl.fetch(date(2025, 3, 16)).sources

    assert entry.error.endswith("date=2025-03-16: HTTP 400 BAD REQUEST: Date cannot be in the future")
    assert entry.days == [date(2025, 3, 13), date(2025, 3, 14), date(2025, 3, 15)]
    assert len(nl.store.papers(since=date(2025, 3, 14), until=date(2025, 3, 14))) == 4  # stored all the same
    nl.close()


def test_a_paper_withdrawn_after_it_was_stored_is_never_sent(db_url, tmp_path, httpserver, api):
    nl = newsletter(db_url, tmp_path, httpserver.url_for("/").rstrip("/"), windows={"daily": 3, "weekly": 3})
    nl.store.add_subscriber("reader@example.org")
    friday = date(2025, 3, 14)
    api.now = datetime(2025, 3, 14, 12, 0, tzinfo=timezone.utc)
    nl.fetch(friday)
    first = api.lists[friday][0]["paper"]
    assert first["id"] in [p.arxiv_id for p in nl.plan("daily", friday).candidates]

    first["withdrawnAt"] = "2025-03-14T20:00:00.000Z"  # withdrawn that evening
    api.now = datetime(2025, 3, 15, 8, 0, tzinfo=timezone.utc)
    [entry] = nl.fetch(date(2025, 3, 15)).sources

    assert any(r.endswith(f"paper {first['id']} was withdrawn (2025-03-14)") for r in entry.skipped)
    assert first["id"] not in [p.arxiv_id for p in nl.plan("daily", date(2025, 3, 15)).candidates]
    assert nl.store.paper(first["id"]).arxiv_id == first["id"]  # kept in the store, never planned again
    nl.close()


def test_the_cli_says_which_days_were_stored_before_a_failure(tmp_path, httpserver, api):
    from click.testing import CliRunner

    from newsletter.cli import main
    from support import write_config

    api.now = datetime(2025, 3, 15, 12, 0, tzinfo=timezone.utc)
    cfg = write_config(tmp_path, windows={"daily": 2, "weekly": 4}, sources=[
        {"type": "huggingface", "base_url": httpserver.url_for("/").rstrip("/"), "retries": 0}])

    result = CliRunner().invoke(main, ["--config", str(cfg), "fetch", "--date", "2025-03-16"])

    assert result.exit_code == 1
    assert "HTTP 400 BAD REQUEST: Date cannot be in the future" in result.output
    assert "the 3 listing days read before that (2025-03-13 to 2025-03-15, 4 papers) were stored" in result.output


def test_an_operator_in_tokyo_gets_papers_at_the_8_oclock_send(tmp_path, httpserver, api):
    """08:00 in Tokyo is 23:00 UTC the day before: the send of the local day asks the API for no day later
    than today in UTC (it would answer 400), and the reader gets the papers listed so far."""
    from newsletter import schedule
    from newsletter.deliver.outbox import OutboxMessenger

    nl = newsletter(f"sqlite:///{tmp_path / 'n.db'}", tmp_path, httpserver.url_for("/").rstrip("/"),
                    schedule={"timezone": "Asia/Tokyo", "daily": "0 8 * * mon-fri"},
                    windows={"daily": 7, "weekly": 7})
    nl.store.add_subscriber("reader@example.org")
    fire = datetime(2025, 3, 17, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # Monday, local
    api.now = fire.astimezone(timezone.utc)  # Sunday 23:00 UTC
    nl.utc_clock = lambda: api.now

    report = schedule.run_due_digest(nl, "daily", fire, now=api.now,
                                     messenger=OutboxMessenger(tmp_path / "outbox"))

    assert report is not None and report.day == date(2025, 3, 17)
    assert [s.error for s in report.fetch.sources] == [None]
    assert max(api.asked) == date(2025, 3, 16)  # today in UTC, never Tokyo's Monday
    assert report.delivery is not None and report.delivery.sent == 1
    [reader] = nl.store.subscribers()
    assert len(nl.store.delivered_papers(reader.id)) == 4  # Friday's four papers, all up by then
    nl.close()
