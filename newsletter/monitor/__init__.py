"""Monitoring: what ``/healthz`` and ``/metrics`` report, kept true across processes.

A sender (``newsletter send``, the scheduler in ``newsletter schedule`` or ``serve``) and the web process that
answers ``/metrics`` are different processes, so nothing here lives only in one process's memory:

- Message outcomes and send durations are counted by ``MeteredMessenger`` (wrapped around the messenger the
  send loop is given) and added to the ``metric_counters`` table at most every ``FLUSH_SECONDS`` and when the
  run ends; a crash loses at most that much counting, never a message.
- Fetch results per source are added to the same table after each fetch.
- The last fetch, the last send run and the scheduler's heartbeat are small JSON records in ``app_state``.
- Queue depth, deliveries by state and readers by status are counted at scrape time (``store.monitor``).

``metrics.MetricsCollector`` turns all of it into Prometheus families on each scrape, ``health.health``
into the ``/healthz`` answer.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import Engine

from ..deliver import MessageFailure, OutgoingMessage, PermanentFailure, TemporaryFailure
from ..store.monitor import add_counts, label_key, write_json_state

if TYPE_CHECKING:
    from ..deliver import Messenger
    from ..deliver.sender import DeliveryReport
    from ..reports import FetchReport

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
# Seconds one message's hand-over takes (SMTP: MAIL FROM to the 250 after DATA), as histogram bounds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAST_FETCH, LAST_SEND, SCHEDULER = "monitor.last_fetch", "monitor.last_send", "monitor.scheduler"
HEARTBEAT_SECONDS = 60.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def failure_reason(failure: MessageFailure) -> str:
    """A short, bounded label for why a message was not accepted: the SMTP reply code, else the kind."""
    if failure.code:
        return f"smtp_{failure.code}"
    text = failure.message.lower()
    if "did not answer" in text or "timed out" in text or "timeout" in text:
        return "timeout"
    if "smtputf8" in text:
        return "smtputf8"
    if "connection" in text or "dropped" in text or "disconnect" in text:
        return "connection"
    return "other"


class Counts:
    """Counter increments not yet stored, added to the database by ``flush`` (thread-safe)."""

    def __init__(self, engine: Engine, flush_seconds: float = FLUSH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.flush_seconds, self.clock = engine, flush_seconds, clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], float] = defaultdict(float)
        self._flushed_at = clock()

    def add(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._pending[(name, label_key(labels))] += amount

    def observe_duration(self, seconds: float) -> None:
        bound = next((b for b in DURATION_BUCKETS if seconds <= b), None)
        with self._lock:
            self._pending[("send_duration_bucket", label_key({"le": repr(bound) if bound else "+Inf"}))] += 1
            self._pending[("send_duration_sum", label_key({}))] += seconds
            self._pending[("send_duration_count", label_key({}))] += 1

    def maybe_flush(self) -> None:
        if self.clock() - self._flushed_at >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Store what was counted. A failed write keeps the counts for the next flush (and is logged)."""
        with self._lock:
            pending, self._pending = dict(self._pending), defaultdict(float)
            self._flushed_at = self.clock()
        if not pending:
            return
        try:
            add_counts(self.engine, pending)
        except Exception as exc:  # noqa: BLE001 - counting must never stop a send
            log.warning("could not store %d metric counts (kept for the next try): %s", len(pending), exc)
            with self._lock:
                for key, value in pending.items():
                    self._pending[key] += value


class MeteredMessenger:
    """A messenger that counts what happens to each message it hands over (sent, retried or failed, with the
    reason) and how long the hand-over took, into ``Counts``. Everything else is the wrapped messenger's.

    Example: ``Sender(queue, MeteredMessenger(build_messenger(settings), store.engine), prepare).run()``
    """

    def __init__(self, inner: Messenger, engine: Engine, *, counts: Counts | None = None) -> None:
        self.inner = inner
        self.counts = counts or Counts(engine)
        params = inspect.signature(inner.send).parameters
        self._inner_ready, self._inner_waiting = "ready" in params, "waiting" in params

    def __getattr__(self, name: str) -> Any:  # name, concurrency, rate_limit, ...: the wrapped messenger's
        return getattr(self.inner, name)

    def send(self, message: OutgoingMessage, ready: Callable[[], None] | None = None,
             waiting: Callable[[], None] | None = None) -> int | None:
        """The inner messenger's send, counted (and what it returns, the SMTP time, handed back); ``ready`` and ``waiting`` (see ``SmtpMessenger.send``) pass
        through (``waiting`` only to a messenger that takes it: the send loop builds the next message itself
        otherwise), so the send loop still builds the next message while the server takes this one."""
        waited = 0.0

        def timed_ready() -> None:  # the wait for the previous commit is not this message's send time
            nonlocal waited
            started = time.perf_counter()
            try:
                assert ready is not None
                ready()
            finally:
                waited += time.perf_counter() - started

        def timed_waiting() -> None:  # building the next message is not this message's send time either
            nonlocal waited
            started = time.perf_counter()
            try:
                assert waiting is not None
                waiting()
            finally:
                waited += time.perf_counter() - started

        started = time.perf_counter()
        try:
            if self._inner_waiting:
                smtp_ms = self.inner.send(message, timed_ready if ready is not None else None,  # type: ignore[call-arg]
                                          waiting=timed_waiting if waiting is not None else None)
            elif self._inner_ready:
                smtp_ms = self.inner.send(message, timed_ready if ready is not None else None)  # type: ignore[call-arg]
            else:
                if ready is not None:
                    timed_ready()
                smtp_ms = self.inner.send(message)
        except TemporaryFailure as exc:
            self._count("messages_retried", started, waited, reason=failure_reason(exc))
            raise
        except PermanentFailure as exc:
            self._count("messages_failed", started, waited, reason=failure_reason(exc))
            raise
        else:
            self._count("messages_sent", started, waited)
            return smtp_ms

    def _count(self, name: str, started: float, waited: float, **labels: str) -> None:
        self.counts.add(name, **labels)
        self.counts.observe_duration(max(0.0, time.perf_counter() - started - waited))
        self.counts.maybe_flush()

    def flush(self) -> None:
        self.counts.flush()

    def close(self) -> None:
        self.counts.flush()
        self.inner.close()


# --- records of runs ----------------------------------------------------------------------------------------


def record_fetch(engine: Engine, report: FetchReport, started: datetime, finished: datetime | None = None) -> None:
    """After a fetch: count each source's result and keep the run as the last fetch."""
    finished = finished or utcnow()
    counts: dict[tuple[str, str], float] = defaultdict(float)
    sources: dict[str, dict[str, Any]] = {}
    for entry in report.sources:
        outcome = "error" if entry.error else ("ok" if entry.papers else "empty")
        counts[("fetch_results", label_key({"source": entry.source, "outcome": outcome}))] += 1
        counts[("fetch_papers", label_key({"source": entry.source}))] += entry.papers
        sources[entry.source] = {"outcome": outcome, "papers": entry.papers, "error": entry.error}
    failed = sum(1 for s in sources.values() if s["outcome"] == "error")
    outcome = "ok" if not failed else ("failed" if failed == len(sources) else "partial")
    if report.used_sample:
        outcome = "sample"  # every source was unreachable: the bundled sample page was stored instead
    record = {"at": finished.isoformat(), "started": started.isoformat(),
              "seconds": round((finished - started).total_seconds(), 3), "outcome": outcome,
              "new_papers": report.ingest.new if report.ingest else 0, "sources": sources}
    add_counts(engine, counts)
    write_json_state(engine, LAST_FETCH, record)


def record_send(engine: Engine, report: DeliveryReport | None, error: BaseException | None, started: datetime,
                edition_id: int | None = None, finished: datetime | None = None) -> None:
    """After a send run that did something (or stopped on an error): keep it as the last send."""
    if error is None and (report is None or not report.done):
        return  # a look for due deliveries that found none is not a send
    finished = finished or utcnow()
    if error is not None:
        outcome = "error"
    elif report is not None and (report.failed or report.retry or report.expired):
        outcome = "failures"
    else:
        outcome = "ok"
    record: dict[str, Any] = {"at": finished.isoformat(), "started": started.isoformat(),
                              "seconds": round((finished - started).total_seconds(), 3), "outcome": outcome,
                              "edition": edition_id}
    if report is not None:
        record.update(sent=report.sent, retry=report.retry, failed=report.failed, suppressed=report.suppressed,
                      expired=report.expired)
    if error is not None:
        record["error"] = str(error).splitlines()[0][:500] if str(error) else type(error).__name__
    write_json_state(engine, LAST_SEND, record)


def heartbeat(engine: Engine, *, started: datetime, next_runs: dict[str, str | None],
              stopped: bool = False, now: datetime | None = None) -> None:
    """The scheduler's heartbeat: when it last said it runs, where, and its jobs' next run times."""
    now = now or utcnow()
    write_json_state(engine, SCHEDULER, {
        "heartbeat": now.isoformat(), "started": started.isoformat(), "pid": os.getpid(),
        "host": socket.gethostname(), "next_runs": next_runs, "interval_seconds": HEARTBEAT_SECONDS,
        "stopped": now.isoformat() if stopped else None})


__all__ = ["Counts", "MeteredMessenger", "failure_reason", "heartbeat", "record_fetch", "record_send"]
