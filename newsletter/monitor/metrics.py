"""``GET /metrics``: Prometheus families computed from the database at each scrape (a custom Collector).

Why not counters in memory, or prometheus-client's multiprocess mode: the messages are sent by whichever
process runs the send (a cron ``newsletter send``, ``newsletter schedule``, the scheduler inside ``serve``),
often not the web process, and those processes come and go. Multiprocess mode needs one shared directory and
an environment variable set before every one of them starts, and loses its files with the machine. The
database is already shared by all of them, so the counts live there (``metric_counters``) and a scrape is
a handful of aggregate queries over small tables plus two ``GROUP BY state`` counts over the deliveries.

Example::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(store.engine))
    print(generate_latest(registry).decode())
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine

from ..models import DELIVERY_STATES, SUBSCRIBER_STATUSES
from ..store.monitor import counters, delivery_states, queue_depth, read_json_states, subscriber_statuses
from . import DURATION_BUCKETS, LAST_FETCH, LAST_SEND, SCHEDULER


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (TypeError, ValueError):
        return None


class MetricsCollector:
    """Every newsletter metric, read from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration (and no query before the first scrape)

    def collect(self) -> Iterator[Metric]:
        stored = counters(self.engine)
        sent = CounterMetricFamily("newsletter_messages_sent", "Messages the mail server accepted (250 after DATA).")
        sent.add_metric([], sum(v for n, _, v in stored if n == "messages_sent"))
        yield sent
        for name, doc in (("messages_failed", "Messages refused for good (5xx), by reason (the SMTP reply code)."),
                          ("messages_retried", "Temporary failures (4xx, timeout, dropped connection), by reason; "
                           "the delivery is retried unless its retry window has passed.")):
            family = CounterMetricFamily(f"newsletter_{name}", doc, labels=["reason"])
            for n, labels, value in stored:
                if n == name:
                    family.add_metric([labels.get("reason", "other")], value)
            yield family
        yield self._durations(stored)
        fetches = CounterMetricFamily("newsletter_fetch_results", "Fetches per source by outcome (ok, empty, error).",
                                      labels=["source", "outcome"])
        papers = CounterMetricFamily("newsletter_fetch_papers", "Papers read per source (new or seen before).",
                                     labels=["source"])
        for n, labels, value in stored:
            if n == "fetch_results":
                fetches.add_metric([labels.get("source", ""), labels.get("outcome", "")], value)
            elif n == "fetch_papers":
                papers.add_metric([labels.get("source", "")], value)
        yield fetches
        yield papers

        depth = GaugeMetricFamily("newsletter_queue_depth", "Deliveries of active editions still to go out, by state.",
                                  labels=["state"])
        for state, n in queue_depth(self.engine).items():
            depth.add_metric([state], n)
        yield depth
        by_state = delivery_states(self.engine)
        deliveries = GaugeMetricFamily("newsletter_deliveries", "Stored deliveries by state, every edition.",
                                       labels=["state"])
        for state in DELIVERY_STATES:
            deliveries.add_metric([state], by_state.get(state, 0))
        yield deliveries
        by_status = subscriber_statuses(self.engine)
        readers = GaugeMetricFamily("newsletter_subscribers", "Readers by status.", labels=["status"])
        for status in SUBSCRIBER_STATUSES:
            readers.add_metric([status], by_status.get(status, 0))
        yield readers

        records = read_json_states(self.engine, (LAST_FETCH, LAST_SEND, SCHEDULER))
        for key, field, name, doc in (
                (LAST_FETCH, "at", "newsletter_last_fetch_timestamp_seconds", "When the last fetch ended."),
                (LAST_SEND, "at", "newsletter_last_send_timestamp_seconds", "When the last send run ended."),
                (SCHEDULER, "heartbeat", "newsletter_scheduler_heartbeat_timestamp_seconds",
                 "The scheduler's last heartbeat (every 60 s while one runs).")):
            when = _timestamp((records.get(key) or {}).get(field))
            if when is not None:
                gauge = GaugeMetricFamily(name, doc)
                gauge.add_metric([], when)
                yield gauge

    @staticmethod
    def _durations(stored: list[tuple[str, dict[str, str], float]]) -> Metric:
        per_bucket = {labels.get("le"): value for n, labels, value in stored if n == "send_duration_bucket"}
        running, buckets = 0.0, []
        for bound in DURATION_BUCKETS:
            running += per_bucket.get(repr(bound), 0.0)
            buckets.append((floatToGoString(bound), running))
        running += per_bucket.get("+Inf", 0.0)
        buckets.append(("+Inf", running))
        total = sum(v for n, _, v in stored if n == "send_duration_sum")
        family = HistogramMetricFamily("newsletter_send_duration_seconds",
                                       "Time to hand one message over (SMTP: MAIL FROM to the reply after DATA).")
        family.add_metric([], buckets, total)
        return family


__all__ = ["MetricsCollector"]
