"""GET /metrics from a real `newsletter serve` process, about sends made by another process (the test's own
CLI run, to aiosmtpd on 127.0.0.1): the counts live in the database, so the web process reports what the
sender did. The text is read with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mailkit import MailServer
from monitor_support import Process, serve
from prometheus_client.parser import text_string_to_metric_families
from test_cli_deliver import DAY, READERS, run, write_config

ENV = {"NEWSLETTER_SIGNING_KEY": "metrics-signing-key-" + "x" * 32}
EVERYONE = [*READERS, "dee@example.org", "eve@example.org"]
DEFERRED, REFUSED = READERS[1], READERS[2]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def configure(tmp_path: Path, port: int, **extra: Any) -> Path:
    cfg = write_config(tmp_path, port)
    data = yaml.safe_load(cfg.read_text())
    data.update(signing_key="${NEWSLETTER_SIGNING_KEY}", **extra)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def scrape(server: Process, **kwargs: Any) -> httpx.Response:
    return httpx.get(server.url + "/metrics", timeout=30, **kwargs)


def test_metrics_report_what_a_sender_in_another_process_did(tmp_path: Path, smtpd: MailServer,
                                                              processes: list[Process]) -> None:
    cfg = configure(tmp_path, smtpd.port)
    for email in EVERYONE:
        run(cfg, "subscribers", "add", email, env=ENV)
    smtpd.handler.rcpt_replies = {DEFERRED: "451 4.3.0 try again later", REFUSED: "550 5.1.1 no such user"}
    run(cfg, "send", "--cadence", "daily", "--date", DAY, env=ENV)
    web = serve(processes, cfg, "--no-scheduler", env=ENV)

    answer = scrape(web)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")  # the exposition format
    found = samples(answer.text)
    assert value(found, "newsletter_messages_sent_total") == 3
    assert value(found, "newsletter_messages_retried_total", reason="smtp_451") == 1
    assert value(found, "newsletter_messages_failed_total", reason="smtp_550") == 1
    assert value(found, "newsletter_send_duration_seconds_count") == 5
    assert value(found, "newsletter_send_duration_seconds_bucket", le="+Inf") == 5
    assert 0 < value(found, "newsletter_send_duration_seconds_sum") < 30
    assert value(found, "newsletter_queue_depth", state="retry") == 1
    assert value(found, "newsletter_queue_depth", state="pending") == 0
    assert value(found, "newsletter_deliveries", state="sent") == 3
    assert value(found, "newsletter_deliveries", state="failed") == 1
    assert value(found, "newsletter_subscribers", status="active") == 5
    assert value(found, "newsletter_fetch_results_total", source="hf-page", outcome="ok") == 1
    assert value(found, "newsletter_fetch_papers_total", source="hf-page") > 0
    first_send = value(found, "newsletter_last_send_timestamp_seconds")

    # The server takes the deferred reader now; a retry in this process, and the web process's next scrape
    # counts it.
    smtpd.handler.rcpt_replies = {REFUSED: "550 5.1.1 no such user"}
    run(cfg, "retry", "--now", env=ENV)
    found = samples(scrape(web).text)
    assert value(found, "newsletter_messages_sent_total") == 4
    assert value(found, "newsletter_messages_retried_total", reason="smtp_451") == 1
    assert value(found, "newsletter_queue_depth", state="retry") == 0
    assert value(found, "newsletter_send_duration_seconds_count") == 6
    assert value(found, "newsletter_last_send_timestamp_seconds") >= first_send
    assert sorted(r.rcpt for r in smtpd.handler.received) == sorted(set(EVERYONE) - {REFUSED})


def test_metrics_answer_this_machine_only_unless_a_token_is_set(tmp_path: Path, smtpd: MailServer,
                                                                processes: list[Process]) -> None:
    cfg = configure(tmp_path, smtpd.port)
    web = serve(processes, cfg, "--no-scheduler", env=ENV)
    assert scrape(web).status_code == 200  # loopback
    # Through the reverse proxy (X-Forwarded-For from 127.0.0.1), the client is the one it names.
    outside = scrape(web, headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status_code == 403 and "metrics.token" in outside.json()["message"]

    (tmp_path / "token").mkdir()
    cfg_token = configure(tmp_path / "token", smtpd.port, metrics={"token": "${METRICS_TOKEN}"})
    guarded = serve(processes, cfg_token, "--no-scheduler", env={**ENV, "METRICS_TOKEN": "s3cret-scrape"})
    assert scrape(guarded).status_code == 401
    assert scrape(guarded).headers["www-authenticate"] == "Bearer"
    assert scrape(guarded, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = scrape(guarded, headers={"Authorization": "Bearer s3cret-scrape", "X-Forwarded-For": "203.0.113.9"})
    assert ok.status_code == 200 and "newsletter_queue_depth" in ok.text


@pytest.mark.postgres
def test_counters_from_two_processes_add_up_on_postgresql(pg_database_url: str) -> None:
    """Two writers adding to the same counters at once both count (INSERT … ON CONFLICT DO UPDATE)."""
    import threading

    from newsletter.store import Store
    from newsletter.store.monitor import add_counts, counters, label_key

    store = Store.open(pg_database_url)
    try:
        key = ("messages_sent", label_key({}))
        before = {n: v for n, _, v in counters(store.engine)}.get("messages_sent", 0.0)
        threads = [threading.Thread(target=lambda: [add_counts(store.engine, {key: 1.0}) for _ in range(50)])
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = {n: v for n, _, v in counters(store.engine)}["messages_sent"]
        assert after - before == 200
    finally:
        store.close()
