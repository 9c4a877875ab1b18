"""The schedule: a run missed while the process was down, the misfire grace, daylight-saving transitions,
and the foreground `newsletter schedule` command. No test sleeps for the hours it simulates."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import date, datetime, time, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from click.testing import CliRunner
from support import ROOT

from newsletter import schedule
from newsletter.cli import main
from newsletter.config import from_mapping
from newsletter.deliver import OutgoingMessage, TemporaryFailure
from newsletter.deliver.outbox import OutboxMessenger
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.pipeline import Newsletter
from newsletter.store.deliveries import DueDelivery

READERS = ["ada@example.org", "bob@example.org", "cy@example.org"]


def prepare(d: DueDelivery) -> OutgoingMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = "papers@example.org", d.email, "Papers"
    msg["Message-ID"] = d.message_id
    msg.set_content(f"digest {d.digest_id}\n")
    return OutgoingMessage("papers@example.org", d.email, d.message_id, msg.as_bytes())


def config(tmp_path: Path, **schedule_settings: Any) -> dict[str, Any]:
    return {
        "database_url": "sqlite:///newsletter.db",
        "messenger": "outbox",
        "outbox_dir": "outbox",
        "sources": [{"type": "hf-page", "path": str(ROOT / "newsletter/sample/daily-papers-mar14.txt")}],
        "schedule": {"timezone": "UTC", "daily": "0 8 * * *", "weekly": "0 9 1 1 *", "misfire_grace_hours": 6,
                     **schedule_settings},
    }


@pytest.fixture
def newsletter_for(tmp_path: Path) -> Any:
    made: list[Newsletter] = []

    def make(**schedule_settings: Any) -> Newsletter:
        nl = Newsletter(from_mapping(config(tmp_path, **schedule_settings), {}, base_dir=tmp_path))
        nl.store.add_subscribers([{"email": e, "cadence": "daily"} for e in READERS])
        made.append(nl)
        return nl

    yield make
    for nl in made:
        nl.close()


def papers_trending_on(nl: Newsletter, *days: date) -> None:
    nl.store.ingest([SourceBatch("test", d, [FetchedPaper(title=f"Paper of {d}",
                                                                   arxiv_id=f"26{d:%m}.{d:%d}001")])
                     for d in days])


def outbox_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "outbox"
    return sorted(folder.iterdir()) if folder.exists() else []


def send_options(tmp_path: Path) -> dict[str, Any]:
    return {"fetch": False, "messenger": OutboxMessenger(tmp_path / "outbox"), "prepare": prepare}


# --- the job's rule -----------------------------------------------------------------------------------------


def test_the_digest_is_for_the_local_day_of_the_scheduled_time_not_of_when_it_ran(newsletter_for: Any,
                                                                                  tmp_path: Path) -> None:
    nl = newsletter_for(timezone="America/Los_Angeles", daily="0 23 * * *")
    papers_trending_on(nl, date(2026, 3, 3))
    fire = datetime(2026, 3, 3, 23, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # 07:00 UTC on March 4th
    report = schedule.run_due_digest(nl, "daily", fire, now=fire + timedelta(hours=5),
                                     **send_options(tmp_path))
    assert report is not None and report.period == "2026-03-03" and report.delivery.sent == 3


def test_a_digest_past_the_grace_is_logged_and_not_sent_late(newsletter_for: Any, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    nl = newsletter_for()
    papers_trending_on(nl, date(2026, 3, 3))
    fire = datetime(2026, 3, 3, 8, 0, tzinfo=timezone.utc)
    with caplog.at_level(logging.WARNING, logger="newsletter.schedule"):
        assert schedule.run_due_digest(nl, "daily", fire, now=fire + timedelta(hours=6, minutes=1),
                                       **send_options(tmp_path)) is None
    assert "daily digest scheduled at 2026-03-03T08:00:00+00:00 is 6:01:00 late" in caplog.text
    assert "not sent late" in caplog.text
    assert nl.store.editions() == [] and outbox_files(tmp_path) == []


def test_latest_fire_time_finds_the_run_a_coalesced_job_was_scheduled_for() -> None:
    trigger = schedule.CronTrigger.from_crontab("0 8 * * mon-fri", timezone=ZoneInfo("Europe/Berlin"))
    monday_noon = datetime(2026, 3, 16, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert schedule.latest_fire_time(trigger, monday_noon, timedelta(hours=6)) == monday_noon.replace(hour=8)
    assert schedule.latest_fire_time(trigger, monday_noon, timedelta(hours=3)) is None  # past the grace
    saturday = datetime(2026, 3, 14, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert schedule.latest_fire_time(trigger, saturday, timedelta(hours=6)) is None


# --- daylight saving ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone_name, transitions", [
    ("Europe/Berlin", (date(2026, 3, 29), date(2026, 10, 25))),  # 02:00→03:00, 03:00→02:00
    ("America/Los_Angeles", (date(2026, 3, 8), date(2026, 11, 1))),  # 02:00→03:00, 02:00→01:00
])
@pytest.mark.parametrize("cron", ["30 2 * * *", "30 1 * * *", "0 8 * * *", "*/30 1-3 * * *"])
def test_one_digest_per_local_day_across_daylight_saving_changes(
        newsletter_for: Any, tmp_path: Path, zone_name: str, transitions: tuple[date, date],
        cron: str) -> None:
    nl = newsletter_for(timezone=zone_name, daily=cron)
    tz = ZoneInfo(zone_name)
    trigger = schedule.trigger_for(nl.settings, "daily")
    days = [t + timedelta(days=k) for t in transitions for k in (-1, 0, 1)]
    papers_trending_on(nl, *days)
    options = send_options(tmp_path)
    fires_per_day: dict[date, int] = {}
    for transition in transitions:
        start = datetime.combine(transition - timedelta(days=1), time(0), tz)
        end = datetime.combine(transition + timedelta(days=1), time(23, 59), tz)
        for fire in schedule.fire_times(trigger, start, end):  # each time APScheduler would run the job
            local_day = fire.astimezone(tz).date()
            fires_per_day[local_day] = fires_per_day.get(local_day, 0) + 1
            for _ in range(2):  # and a second scheduler (or a restart) running it at the same time
                schedule.run_due_digest(nl, "daily", fire, now=fire + timedelta(minutes=1), **options)
    assert sorted(fires_per_day) == days  # the cron fired on every one of these local days
    editions = nl.store.editions("daily")
    assert sorted(e.period for e in editions) == [d.isoformat() for d in days]  # one digest per local day
    assert all(e.deliveries == {"sent": 3} for e in editions)
    assert len(outbox_files(tmp_path)) == len(days) * len(READERS)  # each reader one message per day
    if cron in ("30 2 * * *", "*/30 1-3 * * *") and zone_name == "Europe/Berlin":
        assert fires_per_day[transitions[1]] > 1  # the repeated hour fired the cron twice: still one digest


def test_the_deliveries_job_sends_retries_whose_time_has_come(newsletter_for: Any, tmp_path: Path) -> None:
    nl = newsletter_for()
    papers_trending_on(nl, date(2026, 3, 3))

    class Flaky(OutboxMessenger):
        """Refuses ada's message with a 451 the first time."""

        refused = False

        def send(self, message: OutgoingMessage, ready: Any = None) -> None:
            if message.recipient == READERS[0] and not Flaky.refused:
                Flaky.refused = True
                raise TemporaryFailure(f"{message.recipient}: 451 4.3.0 try later", code=451)
            super().send(message, ready)

    options = {**send_options(tmp_path), "messenger": Flaky(tmp_path / "outbox")}
    fire = datetime(2026, 3, 3, 8, 0, tzinfo=timezone.utc)
    report = schedule.run_due_digest(nl, "daily", fire, now=fire, **options)
    assert report is not None and (report.delivery.sent, report.delivery.retry) == (2, 1)
    options.pop("fetch")
    later = datetime.now(timezone.utc) + timedelta(minutes=5)  # the first backoff step has passed
    report = schedule.run_due_deliveries(nl, clock=lambda: later, **options)
    assert report is not None and report.sent == 1
    assert len(outbox_files(tmp_path)) == 3
    assert nl.store.editions()[0].deliveries == {"sent": 3}


# --- a run missed while the process was down ----------------------------------------------------------------


def run_scheduler_until(nl: Newsletter, tmp_path: Path, event_mask: int) -> schedule.DigestScheduler:
    """Start the scheduler (a restart) and wait until it reports the job ran (or was missed)."""
    sched = schedule.DigestScheduler(nl, send_options=send_options(tmp_path))
    happened = threading.Event()
    sched.scheduler.add_listener(lambda event: happened.set(), event_mask)
    sched.start()
    try:
        assert happened.wait(60), "the scheduler did not run the missed job"
    finally:
        sched.shutdown()
    return sched


def stop_before(nl: Newsletter, when: datetime) -> None:
    """The first life of the process: it registered the jobs at ``when`` and then went down."""
    sched = schedule.DigestScheduler(nl)
    sched.register_jobs(now=when)
    sched.scheduler.start(paused=True)  # writes the jobs to the store
    sched.scheduler.shutdown()


def test_a_run_missed_while_down_is_sent_once_after_a_restart_within_the_grace(newsletter_for: Any,
                                                                              tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    fire = (now - timedelta(hours=2)).replace(second=0, microsecond=0)  # the send time passed 2 hours ago
    nl = newsletter_for(daily=f"{fire.minute} {fire.hour} * * *")
    papers_trending_on(nl, fire.date())
    stop_before(nl, fire - timedelta(hours=1))
    stored = schedule.stored_next_runs(nl.store.engine)
    assert stored["digest-daily"] == fire

    run_scheduler_until(nl, tmp_path, EVENT_JOB_EXECUTED)
    editions = nl.store.editions("daily")
    assert [(e.period, e.deliveries) for e in editions] == [(fire.date().isoformat(), {"sent": 3})]
    assert len(outbox_files(tmp_path)) == 3

    # Restarted again, or a second scheduler running the job once more: the same edition, nothing new.
    assert schedule.stored_next_runs(nl.store.engine)["digest-daily"] == fire + timedelta(days=1)
    schedule._active = None
    for _ in range(2):
        schedule.run_due_digest(nl, "daily", fire, now=now, **send_options(tmp_path))
    assert len(nl.store.editions("daily")) == 1 and len(outbox_files(tmp_path)) == 3


def test_a_run_missed_by_more_than_the_grace_is_skipped_and_logged(newsletter_for: Any, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(timezone.utc)
    fire = (now - timedelta(hours=8)).replace(second=0, microsecond=0)
    nl = newsletter_for(daily=f"{fire.minute} {fire.hour} * * *")
    papers_trending_on(nl, fire.date())
    stop_before(nl, fire - timedelta(hours=1))
    with caplog.at_level(logging.WARNING):
        run_scheduler_until(nl, tmp_path, EVENT_JOB_MISSED)
    assert "digest-daily scheduled at" in caplog.text and "not sent late" in caplog.text
    assert nl.store.editions() == [] and outbox_files(tmp_path) == []


def test_jobs_are_stored_with_fixed_ids_coalescing_one_instance_and_hours_of_grace(
        newsletter_for: Any) -> None:
    nl = newsletter_for(timezone="Europe/Berlin", daily="0 8 * * mon-fri", weekly="0 9 * * mon")
    saturday = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)
    for _ in range(2):  # a restart registers the same jobs again: replaced, not added
        sched = schedule.DigestScheduler(nl)
        sched.register_jobs(now=saturday)
        sched.scheduler.start(paused=True)
        jobs = {job.id: job for job in sched.scheduler.get_jobs()}
        sched.scheduler.shutdown()
    assert set(jobs) == {"digest-daily", "digest-weekly", "deliveries", "fetch"}
    fetch = jobs["fetch"]  # schedule.fetch, hourly by default, apart from the sends
    assert (fetch.coalesce, fetch.max_instances) == (True, 1)
    assert fetch.next_run_time == datetime(2026, 3, 14, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    for job in (jobs["digest-daily"], jobs["digest-weekly"]):
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 6 * 3600)
    retries = jobs["deliveries"]  # every first backoff step (delivery.backoff_base_seconds: 300)
    assert (retries.coalesce, retries.max_instances) == (True, 1)
    assert retries.trigger.interval == timedelta(minutes=5)
    berlin = ZoneInfo("Europe/Berlin")
    assert jobs["digest-daily"].next_run_time == datetime(2026, 3, 16, 8, 0, tzinfo=berlin)
    assert jobs["digest-weekly"].next_run_time == datetime(2026, 3, 16, 9, 0, tzinfo=berlin)


# --- the command ------------------------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(config(tmp_path, timezone="Europe/Berlin", daily="0 8 * * mon-fri", weekly="0 9 * * mon"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_schedule_list_shows_the_next_run_times(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    result = CliRunner().invoke(main, ["--config", str(cfg), "schedule", "--list", "--json"])
    assert result.exit_code == 0, result.output
    *rows, retries = json.loads(result.output)
    assert [r["job"] for r in rows] == ["digest-daily", "digest-weekly"]
    assert retries == {"job": "deliveries", "every_seconds": 300}
    for row in rows:
        runs = [datetime.fromisoformat(t) for t in row["next_runs"]]
        assert len(runs) == 3 and runs == sorted(runs) and all(t > datetime.now(timezone.utc) for t in runs)
        local = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in runs]
        assert all(t.hour == (8 if row["cadence"] == "daily" else 9) for t in local)
        if row["cadence"] == "weekly":
            assert all(t.weekday() == 0 for t in local)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_foreground_scheduler_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = write_config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(cfg), "schedule"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # wait until it runs
        lines.append(line)
        if "Scheduler running" in line:
            break
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopping after the current message" in rest and "scheduler stopped" in rest


def test_the_fetch_job_reads_the_sources_between_sends(newsletter_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    nl = newsletter_for(fetch="*/20 * * * *")
    assert nl.store.paper_count() == 0
    assert str(schedule.trigger_for(nl.settings, "fetch")) == "cron[month='*', day='*', day_of_week='*', hour='*', minute='*/20']"
    monkeypatch.setattr(schedule, "_active", None)
    monkeypatch.setattr(Newsletter, "from_config", classmethod(lambda cls, path=None, environ=None: nl))
    monkeypatch.setattr(Newsletter, "close", lambda self: None)

    schedule.fetch_job("config.yaml")

    assert nl.store.paper_count() > 0  # the configured source was read and stored by the job alone
