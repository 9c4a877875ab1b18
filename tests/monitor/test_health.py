"""GET /healthz from a real `newsletter serve` process: the database, the scheduler (in this process, or in
another one through its heartbeat in the database), the last fetch and the last send; and 503 with the
reason when the database is gone (a PostgreSQL database dropped under the running server)."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from mailkit import MailServer
from monitor_support import Process, command, serve
from sqlalchemy import create_engine, text
from test_cli_deliver import DAY, READERS, run
from test_metrics import ENV, configure

from newsletter import monitor
from newsletter.store import Store

PG_ADMIN_URL = os.environ.get("NEWSLETTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def healthz(server: Process) -> httpx.Response:
    return httpx.get(server.url + "/healthz", timeout=30)


def eventually(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_healthz_reports_the_database_the_scheduler_the_last_fetch_and_send(
        tmp_path: Path, smtpd: MailServer, processes: list[Process]) -> None:
    cfg = configure(tmp_path, smtpd.port)
    web = serve(processes, cfg, "--no-scheduler", env=ENV)
    answer = healthz(web)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"database": "ok", "scheduler": {"status": "none", "in_process": False,
                                                             "heartbeat": None},
                             "last_fetch": None, "last_send": None}

    for email in READERS:
        run(cfg, "subscribers", "add", email, env=ENV)
    smtpd.handler.rcpt_replies = {READERS[2]: "550 5.1.1 no such user"}
    run(cfg, "send", "--cadence", "daily", "--date", DAY, env=ENV)
    body = healthz(web).json()
    fetch, send = body["last_fetch"], body["last_send"]
    assert fetch["outcome"] == "ok" and fetch["sources"]["hf-page"]["outcome"] == "ok"
    assert fetch["sources"]["hf-page"]["papers"] > 0 and fetch["new_papers"] > 0
    assert datetime.fromisoformat(fetch["at"]) <= datetime.now(timezone.utc)
    assert send["outcome"] == "failures" and (send["sent"], send["failed"]) == (2, 1)
    assert send["edition"] == 1 and send["seconds"] >= 0

    # A scheduler in another process (`newsletter schedule`) is seen through its heartbeat.
    scheduler = command(processes, cfg, "schedule", env=ENV)
    seen = eventually(lambda: healthz(web).json()["scheduler"].get("status") == "running")
    assert seen, (scheduler.stderr.read_text(), healthz(web).json())
    state = healthz(web).json()["scheduler"]
    assert state["in_process"] is False and state["pid"] == scheduler.proc.pid
    assert state["heartbeat_age_seconds"] < 60 and "digest-daily" in state["next_runs"]
    assert scheduler.stop() == 0
    assert healthz(web).json()["scheduler"]["status"] == "stopped"

    # One that died without stopping leaves an old heartbeat: stale.
    store = Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")
    try:
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        monitor.heartbeat(store.engine, started=old, next_runs={}, now=old)
    finally:
        store.close()
    assert healthz(web).json()["scheduler"]["status"] == "stale"


def test_a_scheduler_in_the_web_process_says_so(tmp_path: Path, smtpd: MailServer,
                                                processes: list[Process]) -> None:
    cfg = configure(tmp_path, smtpd.port)
    web = serve(processes, cfg, env=ENV)
    state = eventually(lambda: healthz(web).json()["scheduler"])
    assert state["status"] == "running" and state["in_process"] is True and state["pid"] == web.proc.pid


@pytest.mark.postgres
def test_healthz_answers_503_with_the_reason_when_the_database_is_dropped(
        tmp_path: Path, smtpd: MailServer, processes: list[Process], pg_database_url: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nl_health_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        cfg = configure(tmp_path, smtpd.port)
        web = serve(processes, cfg, "--no-scheduler", env={**ENV, "NEWSLETTER_DATABASE_URL": url})
        assert healthz(web).status_code == 200 and healthz(web).json()["database"] == "ok"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))  # the server's connections are cut
        answer = healthz(web)
        assert answer.status_code == 503
        body = answer.json()
        assert body["database"].startswith("error: ") and f'"{name}" does not exist' in body["database"]
        assert body["scheduler"]["status"] == "unknown"
        metrics = httpx.get(web.url + "/metrics", timeout=30)
        assert metrics.status_code == 503 and "does not exist" in metrics.json()["message"]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
