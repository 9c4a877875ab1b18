"""Edition reports: every figure checked against an edition with known outcomes (sent through a real SMTP server
on 127.0.0.1, bounces and complaints read through the inbound code, unsubscribes), on SQLite and PostgreSQL; the
queries are a fixed number of aggregates whatever the number of deliveries; ``newsletter report`` prints them."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from mailkit import MailServer, build_message, queue_edition
from report_world import DEFERRED, T0, build, percentile, smtp_times
from sqlalchemy import event, select
from support import ROOT

from newsletter.cli import main
from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.errors import NotFound
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryQueue
from newsletter.store.reports import edition_report, latest_edition_id, sends_over_time
from newsletter.store.schema import DeliveryRow, SubscriberRow


def test_every_figure_of_the_report_is_true(store: Store, smtpd: MailServer, tmp_path: Path) -> None:
    world = build(store, smtpd, tmp_path)
    want = world.expected
    report = edition_report(store.engine, world.edition_id)
    assert (report.edition_id, report.cadence, report.period, report.state) == (world.edition_id, "daily",
                                                                                "2026-03-14", "active")
    for name in ("readers", "sent", "failed", "waiting", "deferred", "bounced", "hard_bounced", "complaints",
                 "unsubscribes", "first_sent", "last_sent", "send_seconds"):
        assert getattr(report, name) == want[name], name
    assert report.deliveries == {"sent": want["sent"], "failed": 1, "retry": 1}
    got_domains = {d.domain: {k: v for k, v in vars(d).items() if k not in ("domain", "smtp_median_ms", "smtp_p95_ms")}
                   for d in report.domains}
    assert got_domains == want["domains"]
    times = smtp_times(store, world.edition_id)  # each sent message's stored SMTP time, read row by row
    for d in report.domains:
        assert d.smtp_median_ms == pytest.approx(percentile(times.get(d.domain, []), 0.5), abs=0.051), d.domain
        assert d.smtp_p95_ms == pytest.approx(percentile(times.get(d.domain, []), 0.95), abs=0.051), d.domain
    assert [d.domain for d in report.slowest_domains] == sorted(
        times, key=lambda name: (-percentile(times[name], 0.95), -percentile(times[name], 0.5), name))
    # Failing domains first (a failure or a bounce), then the deferred one, then by the slowest send.
    ranked = [d.domain for d in report.domains]
    assert set(ranked[:3]) == {"example.org", "mail.example.net", "dead.example.com"}
    assert ranked[3:] == ["slow.example.com"]
    assert [(p.paper_id, p.readers) for p in report.top_papers] == want["top_papers"]  # paper c: web copy only
    assert report.top_papers[0].title == "Alpha: the paper everyone got"
    assert DEFERRED not in world.received


def test_the_latest_edition_and_a_missing_one(store: Store) -> None:
    with pytest.raises(NotFound, match="No editions yet"):
        edition_report(store.engine)
    first = queue_edition(store, 2, period="2026-03-13", now=T0 - timedelta(days=1))
    second = queue_edition(store, 3, period="2026-03-14", now=T0)
    assert latest_edition_id(store.engine) == second
    report = edition_report(store.engine)
    assert (report.edition_id, report.readers, report.sent, report.send_seconds) == (second, 3, 0, None)
    assert edition_report(store.engine, first).readers == 2
    with pytest.raises(NotFound, match="No edition 999"):
        edition_report(store.engine, 999)


class Statements:
    """The statements a block sends to the database."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.seen: list[str] = []

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()).upper())

    def __enter__(self) -> "Statements":
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)


def send_all(store: Store, server: MailServer) -> None:
    messenger = SmtpMessenger("127.0.0.1", server.port, pool_size=2, timeout=10)
    try:
        Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(batch_size=500)).run()
    finally:
        messenger.close()


def test_the_report_is_a_fixed_number_of_aggregate_queries(store: Store, smtpd: MailServer) -> None:
    """The same statements for 6 deliveries as for 600, each an aggregate over the edition's deliveries (a
    GROUP BY or one row of counts): nothing is fetched per delivery or per reader."""
    statements = {}
    for n, period in ((3, "2026-03-13"), (300, "2026-03-14")):
        eid = queue_edition(store, n, emails=[f"x{i}@d{i % 7}.example.net" for i in range(n)], period=period)
        send_all(store, smtpd)
        with Statements(store) as seen:
            report = edition_report(store.engine, eid)
            series = sends_over_time(store.engine, eid)
        assert report.readers == report.sent == 2 * n and sum(series.counts) == 2 * n
        assert sum(d.readers for d in report.domains) == 2 * n and len(report.domains) == min(n, 7) + 1
        assert [(p.readers) for p in report.top_papers] == [2 * n]
        statements[n] = seen.seen
    assert len(statements[3]) == len(statements[300]) == 11
    for sql in statements[300]:
        if " FROM DELIVERIES" in sql or "JOIN DELIVERIES" in sql:
            assert "GROUP BY" in sql or any(f in sql for f in ("COUNT(", "MIN(", "MAX(")), sql


def test_sends_over_time_counts_every_sent_message(store: Store, smtpd: MailServer, tmp_path: Path) -> None:
    world = build(store, smtpd, tmp_path)
    series = sends_over_time(store.engine, world.edition_id, buckets=4)
    sent_at = sorted(world.expected["sent_at"].values())
    assert series.start == sent_at[0] and sum(series.counts) == len(sent_at)
    span = (sent_at[-1] - sent_at[0]).total_seconds()
    assert series.bucket_seconds == -(-int(span) // 4) and len(series.counts) == 4
    by_bucket = [0] * 4
    for t in sent_at:
        by_bucket[min(3, int((t - sent_at[0]).total_seconds() // series.bucket_seconds))] += 1
    assert series.counts == by_bucket


def write_config(tmp_path: Path, url: str) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(database_url=url, messenger="outbox", sample_fallback=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_report_command(sqlite_store: Store, smtpd: MailServer, tmp_path: Path) -> None:
    world = build(sqlite_store, smtpd, tmp_path)
    cfg = write_config(tmp_path, str(sqlite_store.engine.url))
    runner = CliRunner(env={"NEWSLETTER_DATABASE_URL": ""})
    out = runner.invoke(main, ["--config", str(cfg), "report", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    want = world.expected
    for name in ("readers", "sent", "failed", "bounced", "complaints", "unsubscribes", "send_seconds"):
        assert data[name] == want[name], name
    assert data["edition_id"] == world.edition_id
    assert {d["domain"]: d["failed"] for d in data["domains"]}["dead.example.com"] == 1
    assert data["top_papers"][0]["readers"] == want["sent"]
    text = runner.invoke(main, ["--config", str(cfg), "report", str(world.edition_id)])
    assert text.exit_code == 0, text.output
    flat = " ".join(text.output.split())
    assert f"Edition {world.edition_id}" in flat and f"{want['sent']} sent" in flat and "dead.example.com" in flat
    assert "Alpha: the paper everyone got" in flat and "2 unsubscribed within 7 days" in flat
    missing = runner.invoke(main, ["--config", str(cfg), "report", "999"])
    assert missing.exit_code == 1 and "No edition 999" in missing.output


SLOW = 0.25  # seconds the slow domain's server takes to answer each message's data


def test_a_slow_domain_is_named_slowest_with_its_true_smtp_time(store: Store, smtpd: MailServer) -> None:
    """A real SMTP server that answers one domain's messages 250 ms late: the report names that domain the
    slowest, with median and p95 SMTP times of at least those 250 ms, each message's stored time at least what
    the server itself took over its data, and the percentiles what the stored times give.
    Once with one connection (each "sent" its own statement), once with three (several in one statement)."""
    fast = [f"f{i}@fast.example.org" for i in range(8)]
    slow = [f"s{i}@slow.example.net" for i in range(4)]
    smtpd.handler.data_delay = {e: SLOW for e in slow}
    for pool, period in ((1, "2026-03-13"), (3, "2026-03-14")):
        eid = queue_edition(store, emails=fast + slow, period=period)
        messenger = SmtpMessenger("127.0.0.1", smtpd.port, pool_size=pool, timeout=10)
        try:
            Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(batch_size=50)).run(eid)
        finally:
            messenger.close()
        times = smtp_times(store, eid)
        assert sorted(len(v) for v in times.values()) == [4, 8]
        with store.engine.connect() as conn:
            stored = dict(conn.execute(select(SubscriberRow.email, DeliveryRow.smtp_ms)
                                       .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
                                       .where(DeliveryRow.edition_id == eid)).all())
        for email, ms in stored.items():
            assert ms >= int(smtpd.handler.spans[email] * 1000), (pool, email)  # the client's time holds the server's work
        report = edition_report(store.engine, eid)
        slowest = report.slowest_domains[0]
        assert slowest.domain == "slow.example.net" and slowest.timed == 4, pool
        assert slowest.smtp_median_ms >= SLOW * 1000 and slowest.smtp_p95_ms >= SLOW * 1000
        assert slowest.smtp_median_ms == pytest.approx(percentile(times["slow.example.net"], 0.5), abs=0.051)
        assert slowest.smtp_p95_ms == pytest.approx(percentile(times["slow.example.net"], 0.95), abs=0.051)
        other = report.slowest_domains[1]
        assert other.domain == "fast.example.org" and other.timed == 8
        assert other.smtp_p95_ms == pytest.approx(percentile(times["fast.example.org"], 0.95), abs=0.051)
        # No domain failed, so the failing-first list is the slowest-first list too.
        assert [d.domain for d in report.domains] == ["slow.example.net", "fast.example.org"]


BUILD = 1.5  # seconds one message takes to build, while the server answers the one before


def test_the_smtp_time_leaves_out_the_send_loops_own_work(sqlite_store: Store, smtpd: MailServer) -> None:
    """The next message is built while the server takes this one's data (``waiting``); a build that takes
    1.5 s is not the server's time: the first message's stored time stays under it (the kernel's receive stamp
    of the reply), while the server answers at once (with only the time of reading the reply once the build is
    done, it would be over 1.5 s)."""
    eid = queue_edition(sqlite_store, 3, period="2026-03-14")
    built: list[str] = []

    def slow_build(d: Any) -> Any:
        built.append(d.email)
        if len(built) == 2:  # the second message, built while the first one's reply is on its way
            time.sleep(BUILD)
        return build_message(d)

    messenger = SmtpMessenger("127.0.0.1", smtpd.port, pool_size=1, timeout=10)
    try:
        Sender(DeliveryQueue(sqlite_store.engine), messenger, slow_build, DeliveryPolicy(batch_size=10)).run(eid)
    finally:
        messenger.close()
    with sqlite_store.engine.connect() as conn:
        stored = dict(conn.execute(select(SubscriberRow.email, DeliveryRow.smtp_ms)
                                   .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
                                   .where(DeliveryRow.edition_id == eid)).all())
    first = built[0]
    assert stored[first] is not None and stored[first] < BUILD * 1000, stored
    assert all(stored[e] >= int(smtpd.handler.spans[e] * 1000) for e in built), (stored, smtpd.handler.spans)


def test_the_report_shows_the_smtp_times(sqlite_store: Store, smtpd: MailServer, tmp_path: Path) -> None:
    """``newsletter report`` (text and --json) carries each domain's median and p95 SMTP time and the slowest."""
    smtpd.handler.data_delay = {"late@slow.example.net": SLOW}
    eid = queue_edition(sqlite_store, 2, emails=["late@slow.example.net"], period="2026-03-14")
    send_all(sqlite_store, smtpd)
    cfg = write_config(tmp_path, str(sqlite_store.engine.url))
    runner = CliRunner(env={"NEWSLETTER_DATABASE_URL": ""})
    out = runner.invoke(main, ["--config", str(cfg), "report", str(eid), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    slowest = data["slowest_domains"][0]
    assert slowest["domain"] == "slow.example.net" and slowest["timed"] == 1
    assert slowest["smtp_median_ms"] == slowest["smtp_p95_ms"] == smtp_times(sqlite_store, eid)["slow.example.net"][0]
    assert slowest["smtp_median_ms"] >= SLOW * 1000
    text = runner.invoke(main, ["--config", str(cfg), "report", str(eid)])
    flat = " ".join(text.output.split())
    assert "Slowest domains (SMTP time per message" in flat and "median p95" in flat
    ms = slowest["smtp_p95_ms"]
    assert (f"{ms / 1000:.1f}s" if ms >= 1000 else f"{int(ms)} ms") in flat
