"""The schedule: APScheduler 3 cron jobs that call ``Newsletter.send``. No logic of their own beyond the when.

- One job per cadence with a fixed id (``digest-daily``, ``digest-weekly``), a cron trigger from
  ``schedule.daily``/``schedule.weekly`` in ``schedule.timezone``, kept in APScheduler's SQLAlchemy job store
  in the same database (its own table, ``apscheduler_jobs``, made by APScheduler and not by our migrations).
- ``coalesce`` (runs missed while down collapse into one), ``max_instances=1``, and a misfire grace of
  ``schedule.misfire_grace_hours``: APScheduler's default grace of one second would silently skip a digest
  whenever the process was down, or busy, at the minute it was due.
- The digest's day is the local day of the *scheduled* fire time, not of the moment the job ran, so a run
  that starts late (within the grace) still makes the digest of the day it was meant for. A run past the grace
  is logged and not sent late.
- A ``fetch`` job (``schedule.fetch``, hourly by default, in memory) reads every source between the sends:
  a day's Daily Papers list grows after the morning send, and an RSS or arXiv feed scrolls; the sends
  still fetch first. Re-reading is harmless: paper identity and the sent record dedupe.
- A third job, ``deliveries``, looks every few minutes (the first backoff step) for deliveries that became
  due: retries whose backoff has passed, and whatever a failed or stopped run left queued.
- With ``inbound.host`` set, a fourth job, ``inbound``, reads the bounce mailbox on ``schedule.inbound``.
- Nothing here prevents doubles: the edition for (cadence, period) is unique in the store, so a restart, two
  schedulers or a daylight-saving change that fires a cron twice resume the one edition instead of making two.

Example::

    scheduler = DigestScheduler(Newsletter.from_config("config.yaml"))
    scheduler.run_forever()  # until SIGINT or SIGTERM
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, inspect, text

from . import cron, monitor
from .config import Settings
from .errors import ConfigError
from .models import CADENCES
from .pipeline import Newsletter, SendReport
from .store.deliveries import SenderBusy

if TYPE_CHECKING:
    from .deliver.sender import DeliveryReport

log = logging.getLogger(__name__)

JOB_IDS = {cadence: f"digest-{cadence}" for cadence in CADENCES}
DELIVERIES_JOB_ID = "deliveries"  # retries whose backoff has passed, and whatever a failed run left queued
FETCH_JOB_ID = "fetch"  # reads the sources between sends, so late papers and scrolling feeds are not missed
INBOUND_JOB_ID = "inbound"  # one pass over the bounce mailbox (schedule.inbound), when inbound.host is set
HEARTBEAT_JOB_ID = "heartbeat"  # the scheduler says it is alive, in the database, for /healthz (newsletter/monitor)
JOBSTORE_TABLE = "apscheduler_jobs"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.schedule.timezone)


def grace(settings: Settings) -> timedelta:
    return timedelta(hours=settings.schedule.misfire_grace_hours)


def retry_interval(settings: Settings) -> timedelta:
    """How often the deliveries job looks for due retries: the first backoff step, within 1 to 15 minutes."""
    return timedelta(seconds=min(max(settings.delivery.backoff_base_seconds, 60.0), 900.0))


def trigger_for(settings: Settings, cadence: str) -> CronTrigger:
    """The cron trigger of ``schedule.<cadence>`` (or of ``schedule.fetch``) in ``schedule.timezone``."""
    expr = getattr(settings.schedule, cadence)
    try:
        return cron.trigger(expr, zone(settings))
    except ValueError as exc:
        raise ConfigError(f"schedule.{cadence}: {expr!r} is not a valid cron expression: {exc}") from None


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every time ``trigger`` fires in [start, end], in order."""
    out = []
    t = trigger.get_next_fire_time(None, start)
    while t is not None and t <= end:
        out.append(t)
        t = trigger.get_next_fire_time(t, t)
    return out


def latest_fire_time(trigger: CronTrigger, now: datetime, within: timedelta) -> datetime | None:
    """The last time ``trigger`` fired at or before ``now``, if that was no longer than ``within`` ago.

    This is the run time APScheduler runs a coalesced job for, so the job can find its scheduled time.
    """
    times = fire_times(trigger, now - within, now)
    return times[-1] if times else None


def run_due_digest(nl: Newsletter, cadence: str, fire_time: datetime | None, *, now: datetime | None = None,
                   **send_options: Any) -> SendReport | None:
    """What the job does when ``cadence``'s trigger fired at ``fire_time``: send the digest of that local day,
    unless the fire time is more than the misfire grace ago."""
    now = now or utcnow()
    settings = nl.settings
    if fire_time is None:
        log.warning("%s digest: no scheduled run within the last %s; nothing sent", cadence, grace(settings))
        return None
    late = now - fire_time
    if late > grace(settings):
        log.warning("%s digest scheduled at %s is %s late, past schedule.misfire_grace_hours (%g): "
                    "not sent late", cadence, fire_time.isoformat(), _round(late),
                    settings.schedule.misfire_grace_hours)
        return None
    day = fire_time.astimezone(zone(settings)).date()
    report = nl.send(cadence, day, **send_options)
    log.info("%s digest %s (scheduled %s): %s", cadence, report.period, fire_time.isoformat(),
             sent_summary(report))
    return report


def sent_summary(report: SendReport) -> str:
    """What a send did, in words that match the database: "edition 7 resumed, 50 sent", or no edition."""
    if report.edition_id is None:
        what = "no reader has anything new; no edition made"
    else:
        state = "made" if report.created else "resumed"
        sent = report.delivery.summary() if report.delivery else "0 sent"
        what = f"edition {report.edition_id} {state}, {sent}"
        if report.edition_state != "active":
            what = f"edition {report.edition_id} is {report.edition_state}; nothing of it sent"
    if report.others is not None and report.others.done:
        what += f"; other editions' due deliveries: {report.others.summary()}"
    return what


# The scheduler running in this process: jobs use its Newsletter (and its test options). A job run by a
# process that has none (it cannot happen with one scheduler per process, but the job store is shared)
# loads the configuration it was registered with.
_active: DigestScheduler | None = None


def run_due_deliveries(nl: Newsletter, **deliver_options: Any) -> DeliveryReport | None:
    """What the deliveries job does: send what became due since the last look (retries whose backoff has
    passed, anything a failed or stopped run left queued). Skipped while another sender holds the database."""
    try:
        report = nl.deliver(**deliver_options)
    except SenderBusy:
        log.info("another sender is at work; due deliveries wait for the next check")
        return None
    if report.done:
        log.info("due deliveries: %d sent, %d to retry, %d failed, %d suppressed", report.sent, report.retry,
                 report.failed, report.suppressed)
    return report


def digest_job(cadence: str, config_path: str | None = None) -> None:
    """The job APScheduler runs (by reference, so the job store can hold it)."""
    with _newsletter(config_path) as (nl, options):
        now = utcnow()
        fire = latest_fire_time(trigger_for(nl.settings, cadence), now, grace(nl.settings))
        try:
            run_due_digest(nl, cadence, fire, now=now, **options)
        except SenderBusy:
            log.warning("%s digest: another sender holds the database; the edition is made and the "
                        "deliveries job sends it when that sender is done", cadence)


def run_fetch(nl: Newsletter) -> None:
    """What the fetch job does: fetch every source (catching up the Daily Papers days) and log the result."""
    from .monitor.logs import log_context

    report = nl.fetch()
    for entry in report.sources:
        if entry.error:
            with log_context(source=entry.source):
                log.warning("fetch: %s", entry.error)
    if report.ingest is not None:
        log.info("fetch: %d new papers, %d updated", report.ingest.new, report.ingest.updated)


def fetch_job(config_path: str | None = None) -> None:
    """The job that fetches between sends (by reference, like ``digest_job``)."""
    with _newsletter(config_path) as (nl, _options):
        run_fetch(nl)


def deliveries_job(config_path: str | None = None) -> None:
    """The job that picks up retries every few minutes (by reference, like ``digest_job``)."""
    with _newsletter(config_path) as (nl, options):
        options.pop("fetch", None)
        run_due_deliveries(nl, **options)


def inbound_job(config_path: str | None = None) -> None:
    """One pass over the bounce mailbox (by reference, like ``digest_job``). A mailbox that cannot be read
    is logged; the next run tries again."""
    from .errors import NewsletterError
    from .inbound import run_pass

    with _newsletter(config_path) as (nl, _options):
        try:
            report = run_pass(nl.settings, nl.store)
        except NewsletterError as exc:
            log.error("inbound mail: %s", exc)
            return
        log.info("inbound mail: %d read: %s", report.read, dict(report.kinds))


@contextmanager
def _newsletter(config_path: str | None) -> Iterator[tuple[Newsletter, dict[str, Any]]]:
    """The Newsletter a job runs with: the active scheduler's (with its options), or one from the config."""
    active = _active
    if active is not None:
        yield active.nl, {**active.send_options, "stop": active.stopping}
        return
    nl = Newsletter.from_config(config_path)
    try:
        yield nl, {}
    finally:
        nl.close()


class _Scheduler(BackgroundScheduler):
    """APScheduler 3's loop makes one more pass over due jobs after ``shutdown()`` has stopped the executors:
    the pass fails to start a due job ("cannot schedule new futures after shutdown",
    agronholm/apscheduler#285) and then moves its stored next run time past the run it never started. A run
    missed while the process was down (or due at the moment it stops) would be lost, so a stopped scheduler
    does not process jobs."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


class DigestScheduler:
    """APScheduler with one cron job per cadence, stored in the newsletter's database."""

    def __init__(self, nl: Newsletter, *, config_path: str | None = None,
                 send_options: Mapping[str, Any] | None = None) -> None:
        self.nl = nl
        self.config_path = config_path
        self.send_options = dict(send_options or {})
        self.stopping = threading.Event()  # asks a send in progress to stop after its current message
        settings = nl.settings
        self.scheduler = _Scheduler(
            # The deliveries job keeps no state worth storing (it is added again at each start): in memory.
            jobstores={"default": SQLAlchemyJobStore(engine=nl.store.engine, tablename=JOBSTORE_TABLE),
                       "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(grace(settings).total_seconds())},
            timezone=zone(settings),
        )
        self.scheduler.add_listener(self._log_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def start(self, now: datetime | None = None) -> None:
        global _active
        _active = self
        self.register_jobs(now)
        self.started = utcnow()
        self.scheduler.add_job(self.beat, IntervalTrigger(seconds=monitor.HEARTBEAT_SECONDS), id=HEARTBEAT_JOB_ID,
                               name="heartbeat", jobstore="memory", replace_existing=True, coalesce=True,
                               max_instances=1, misfire_grace_time=int(monitor.HEARTBEAT_SECONDS))
        self.scheduler.start()
        self.beat()
        for job in self.scheduler.get_jobs():
            log.info("scheduled %s (%s): next run %s", job.id, job.trigger, job.next_run_time)

    def beat(self, stopped: bool = False) -> None:
        """Write the heartbeat /healthz reads (every ``monitor.HEARTBEAT_SECONDS``); a failed write is logged."""
        try:
            next_runs = {job.id: job.next_run_time.isoformat() if job.next_run_time else None
                         for job in self.scheduler.get_jobs() if job.id != HEARTBEAT_JOB_ID}
            monitor.heartbeat(self.nl.store.engine, started=getattr(self, "started", utcnow()),
                              next_runs=next_runs if not stopped else {}, stopped=stopped)
        except Exception as exc:  # noqa: BLE001 - the database may be down; the jobs say so themselves
            log.warning("could not write the scheduler heartbeat: %s", exc)

    def register_jobs(self, now: datetime | None = None) -> None:
        """Add or update the job of each cadence, and the deliveries job. A run that was due while the
        process was down keeps its time, so the misfire grace applies to it; ``replace_existing`` alone
        would reset it to the next future fire time and skip the missed digest without a word."""
        now = now or utcnow()
        settings = self.nl.settings
        stored = stored_next_runs(self.nl.store.engine)
        for cadence in CADENCES:
            job_id = JOB_IDS[cadence]
            trigger = trigger_for(settings, cadence)
            previous = stored.get(job_id)
            if previous is not None and previous <= now:
                next_run = previous
                log.info("%s was due at %s while the scheduler was down", job_id, next_run.isoformat())
            else:
                next_run = trigger.get_next_fire_time(None, now)
            self.scheduler.add_job(
                digest_job, trigger, args=[cadence, self.config_path], id=job_id, name=f"{cadence} digest",
                replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=int(grace(settings).total_seconds()), next_run_time=next_run)
        # Like the deliveries job, the fetch job keeps no state worth storing: a fetch missed while down
        # is made up by the next one (and by the sends, which fetch first).
        fetch_trigger = trigger_for(settings, "fetch")
        self.scheduler.add_job(
            fetch_job, fetch_trigger, args=[self.config_path], id=FETCH_JOB_ID,
            name="fetch", jobstore="memory", replace_existing=True, coalesce=True, max_instances=1,
            misfire_grace_time=int(grace(settings).total_seconds()),
            next_run_time=fetch_trigger.get_next_fire_time(None, now))
        every = retry_interval(settings)
        self.scheduler.add_job(
            deliveries_job, IntervalTrigger(seconds=every.total_seconds()), args=[self.config_path],
            id=DELIVERIES_JOB_ID, name="due deliveries", jobstore="memory", replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=int(every.total_seconds()),
            next_run_time=now + every)
        if settings.inbound.host:  # kept in memory like the deliveries job: a missed pass is simply the next one
            inbound = cron.trigger(settings.schedule.inbound, zone(settings))
            self.scheduler.add_job(
                inbound_job, inbound, args=[self.config_path], id=INBOUND_JOB_ID, name="inbound mail",
                jobstore="memory", replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=300, next_run_time=inbound.get_next_fire_time(None, now))

    def shutdown(self) -> None:
        """Stop: a send in progress finishes its current message, gives the rest back, and the job ends."""
        global _active
        self.stopping.set()
        was_running = self.scheduler.running
        if was_running:
            self.scheduler.shutdown(wait=True)
            self.beat(stopped=True)
        if _active is self:
            _active = None

    def run_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Run in the foreground until SIGINT or SIGTERM; ``ready`` is called once both are handled."""
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.warning("received %s: stopping after the current message", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            if ready is not None:
                ready()
            while not stop.wait(0.5):
                pass
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.warning("scheduler stopped")

    def _log_event(self, event: JobExecutionEvent) -> None:
        when = event.scheduled_run_time
        if event.code == EVENT_JOB_MISSED:
            log.warning("%s scheduled at %s was missed by more than the grace (process down or busy): "
                        "not sent late", event.job_id, when)
        elif event.code == EVENT_JOB_ERROR:
            log.error("%s scheduled at %s failed: %s", event.job_id, when, event.exception)
        else:
            log.info("%s scheduled at %s done", event.job_id, when)


def upcoming(settings: Settings, now: datetime | None = None, count: int = 3,
             stored: Mapping[str, datetime | None] | None = None) -> list[dict[str, Any]]:
    """The next run times of each cadence's job (``newsletter schedule --list``)."""
    now = now or utcnow()
    out = []
    for cadence in CADENCES:
        trigger = trigger_for(settings, cadence)
        runs: list[datetime] = []
        t = trigger.get_next_fire_time(None, now)
        while t is not None and len(runs) < count:
            runs.append(t)
            t = trigger.get_next_fire_time(t, t)
        out.append({"job": JOB_IDS[cadence], "cadence": cadence, "cron": getattr(settings.schedule, cadence),
                    "timezone": settings.schedule.timezone, "next_runs": runs,
                    "stored_next_run": (stored or {}).get(JOB_IDS[cadence])})
    return out


def stored_next_runs(engine: Engine) -> dict[str, datetime | None]:
    """The next run time of each job in the job store, read without starting a scheduler (a run missed
    while the scheduler was down shows as a time in the past)."""
    if not inspect(engine).has_table(JOBSTORE_TABLE):
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE}"))  # a UTC timestamp
        return {job_id: datetime.fromtimestamp(t, timezone.utc) if t is not None else None
                for job_id, t in rows}


def _round(delta: timedelta) -> timedelta:
    return timedelta(seconds=int(delta.total_seconds()))
