"""What `send`, `retry` and `deliveries` print is what happened: checked against the database, with a real
SMTP server on 127.0.0.1 and a real SQLite file (issue 9, section 5)."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
from datetime import date, datetime, time, timedelta, timezone
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from mailkit import MailServer, free_port
from sqlalchemy import event, select
from support import ROOT
from test_cli_deliver import DAY, flat, run, write_config

from newsletter import pipeline, schedule
from newsletter.models import DELIVERY_STATES
from newsletter.store import Store
from newsletter.store.deliveries import make_due_now, utcnow
from newsletter.store.schema import DeliveryRow

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PAGE_LIMIT = 4000  # pages of 4 KiB: far more than the test needs, until the filler takes the rest


def db_states(cfg: Path) -> Counter[str]:
    store = Store.open(f"sqlite:///{cfg.parent / 'newsletter.db'}")
    try:
        with store.engine.connect() as conn:
            return Counter(conn.execute(select(DeliveryRow.state)).scalars())
    finally:
        store.close()


def import_readers(cfg: Path, n: int) -> list[str]:
    emails = [f"reader{i:03d}@example.org" for i in range(n)]
    csv = cfg.parent / "readers.csv"
    csv.write_text("email\n" + "".join(f"{e}\n" for e in emails))
    run(cfg, "subscribers", "import", str(csv))
    return emails


def add_readers(cfg: Path, n: int, **options: str) -> list[str]:
    emails = [f"reader{i:03d}@example.org" for i in range(n)]
    for i, email in enumerate(emails):
        args = [f"--{k}={v.format(i=i)}" for k, v in options.items()]
        run(cfg, "subscribers", "add", email, *args)
    return emails


# --- a full disk mid-send -----------------------------------------------------------------------------------


def fill_database(path: Path) -> None:
    """Take every page the database may still grow by (as a full disk would), from another connection."""
    conn = sqlite3.connect(path, timeout=30)
    conn.execute(f"PRAGMA max_page_count={PAGE_LIMIT}")
    conn.execute("CREATE TABLE IF NOT EXISTS ballast (x BLOB)")
    for size in (1 << 20, 1 << 16, 4096, 512, 64, 8):
        while True:
            try:
                conn.execute("INSERT INTO ballast VALUES (?)", (b"x" * size,))
                conn.commit()
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                conn.rollback()
                break
    conn.close()


@pytest.fixture
def limited_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection the CLI opens may grow the database to PAGE_LIMIT pages only (SQLITE_FULL beyond)."""
    real_open = pipeline.Store.open

    def open_limited(url: str, migrate: bool = True) -> Store:
        store = real_open(url, migrate)

        @event.listens_for(store.engine, "connect")
        def limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={PAGE_LIMIT}")

        store.engine.dispose()  # connections opened by the migration had no limit
        return store

    monkeypatch.setattr(pipeline.Store, "open", open_limited)


@pytest.mark.parametrize("connections", [1, 2])
def test_a_full_disk_mid_send_names_the_cause_and_releases_the_claims(tmp_path: Path, smtpd: MailServer,
                                                                       limited_pages: None,
                                                                       connections: int) -> None:
    cfg = write_config(tmp_path, smtpd.port, pool_size=connections)
    # Renders are stored with the edition, before the send; what the send itself writes is each delivery's
    # outcome. With 300 readers those updates outgrow the pages the deliveries table and its indexes already
    # have, so once the filler took the rest the database is full mid-send.
    emails = import_readers(cfg, 300)
    db = tmp_path / "newsletter.db"
    smtpd.handler.on_message = lambda n: fill_database(db) if n == 3 else None
    result = run(cfg, "send", "--date", DAY, ok=False)
    smtpd.handler.on_message = None
    out = flat(result)
    assert result.exit_code != 0
    assert "database or disk is full" in out, out
    assert "PendingRollbackError" not in out and "Unexpected error" not in out
    sent = len(smtpd.handler.received)
    states = db_states(cfg)
    assert states["sent"] == sent and sent >= 3
    assert states["claimed"] == 0  # the claims were released, not left for a lease to run out
    assert states["sent"] + states["pending"] + states["retry"] == len(emails)
    assert f"{sent} sent" in out  # what went out before the failure, as the database has it

    with sqlite3.connect(db) as conn:  # room again
        conn.execute("DROP TABLE ballast")
    report = json.loads(run(cfg, "retry", "--now", "--json").output)
    assert report["sent"] == len(emails) - sent
    assert sorted(smtpd.handler.copies().items()) == [(e, 1) for e in emails]


# --- the SMTP server goes away mid-batch ------------------------------------------------------------------


@pytest.mark.parametrize("connections", [1, 2])
def test_when_the_server_dies_mid_batch_the_hint_counts_what_the_database_marked_sent(
        tmp_path: Path, connections: int) -> None:
    server = MailServer().__enter__()
    stopper = threading.Thread(target=server.controller.stop)
    try:
        cfg = write_config(tmp_path, server.port, pool_size=connections, timeout=5)
        emails = import_readers(cfg, 60)

        def die_at_38(count: int) -> None:
            if count == 38:  # the server goes down with the 38th message in hand
                stopper.start()

        server.handler.on_message = die_at_38
        result = run(cfg, "send", "--date", DAY, ok=False)
    finally:
        if stopper.ident is None:
            stopper.start()
        stopper.join()
    received = len(server.handler.received)
    assert received >= 38  # the other connection may have had one more message in hand
    out = flat(result)
    assert result.exit_code == 3, out
    assert "nothing was marked sent" not in out
    states = db_states(cfg)
    assert 36 <= states["sent"] <= received and states["claimed"] == 0
    assert re.search(rf"this run recorded {states['sent']} sent\b", out), out
    if states["retry"]:
        assert f"{states['retry']} to retry" in out

    with MailServer() as again:  # back up (on another port): the rest go out, nobody twice
        write_config(tmp_path, again.port, pool_size=connections)
        report = json.loads(run(cfg, "retry", "--now", "--json").output)
        assert report["sent"] == len(emails) - states["sent"]
        assert db_states(cfg) == Counter({"sent": len(emails)})


# --- deliveries and retry --------------------------------------------------------------------------------


@pytest.fixture
def three_readers(tmp_path: Path, smtpd: MailServer) -> Path:
    cfg = write_config(tmp_path, smtpd.port)
    add_readers(cfg, 3)
    return cfg


@pytest.mark.parametrize("command", [
    ["deliveries", "--edition", "999"], ["deliveries", "--edition", "999", "--json"],
    ["retry", "--edition", "999"], ["retry", "--now", "--edition", "999", "--json"],
])
def test_an_unknown_edition_is_an_error(three_readers: Path, smtpd: MailServer, command: list[str]) -> None:
    run(three_readers, "send", "--date", DAY)  # edition 1 exists
    result = run(three_readers, *command, ok=False)
    assert result.exit_code != 0
    assert "No edition 999." in flat(result)
    assert "Traceback" not in result.output


def test_deliveries_speak_the_stored_state_names_in_json_the_table_and_state(three_readers: Path,
                                                                              smtpd: MailServer) -> None:
    smtpd.handler.rcpt_replies["reader001@example.org"] = "451 4.3.2 Try again later"
    edition = json.loads(run(three_readers, "send", "--date", DAY, "--json").output)["edition_id"]
    summary = json.loads(run(three_readers, "deliveries", "--json").output)
    stored = set(DELIVERY_STATES)
    assert stored <= set(summary[0]) and not {"retrying", "in_flight"} & set(summary[0])
    assert {s: summary[0][s] for s in stored} == {"sent": 2, "retry": 1, "pending": 0, "claimed": 0,
                                                   "failed": 0, "suppressed": 0, "cancelled": 0}
    header = run(three_readers, "deliveries").output.splitlines()[0].split()
    assert header == ["edition", "cadence", "period", "sent", "pending", "claimed", "retry", "failed",
                      "suppressed"]
    for state, count in summary[0].items():  # every key of the summary that is a state is a --state word
        if state in stored:
            rows = json.loads(run(three_readers, "deliveries", "--edition", str(edition), "--state", state,
                                  "--json").output)
            assert len(rows) == count and {r["state"] for r in rows} <= {state}
    assert "retry" in run(three_readers, "deliveries", "--help").output
    wrong = run(three_readers, "deliveries", "--state", "retry", ok=False)  # no --edition: said, not ignored
    assert wrong.exit_code == 2 and "--state needs --edition" in flat(wrong)


def test_the_send_errors_are_listed_with_a_bullet_not_markup(three_readers: Path, smtpd: MailServer) -> None:
    smtpd.handler.rcpt_replies["reader001@example.org"] = "451 4.3.2 [greylisted] try again later"
    out = run(three_readers, "send", "--date", DAY).output
    assert "[dim]" not in out and "[/dim]" not in out
    assert "  • reader001@example.org: 451 4.3.2 [greylisted] try again later" in out
    table = run(three_readers, "deliveries", "--edition", "1").output  # an error's brackets are text too
    assert "[greylisted]" in table


# --- a send that resumes an edition another process made --------------------------------------------


def config_for(tmp_path: Path, name: str, port: int, database_url: str) -> Path:
    cfg = write_config(tmp_path, port, pool_size=2, timeout=5)
    data = yaml.safe_load(cfg.read_text())
    data["database_url"] = database_url
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_edition_in_another_process(cfg: Path) -> None:
    """`newsletter send` in its own process whose SMTP server is down: it records the edition, sends
    nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(cfg), "send", "--date", DAY],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "Cannot reach the SMTP server" in done.stderr, done.stderr


def test_a_send_that_finds_the_edition_made_meanwhile_says_it_resumed_it_and_what_it_sent(
        tmp_path: Path, smtpd: MailServer, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config_for(tmp_path, "b.yaml", smtpd.port, db_url)
    other = config_for(tmp_path, "a.yaml", free_port(), db_url)  # the other sender: its SMTP is down
    emails = import_readers(cfg, 50)
    real_fetch = pipeline.Newsletter.fetch

    def fetch_while_another_sender_makes_the_edition(self: Any, *args: Any, **kwargs: Any) -> Any:
        make_edition_in_another_process(other)  # between this send's "is there an edition?" and its plan
        return real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.Newsletter, "fetch", fetch_while_another_sender_makes_the_edition)
    out = flat(run(cfg, "send", "--date", DAY))
    monkeypatch.setattr(pipeline.Newsletter, "fetch", real_fetch)
    editions = json.loads(run(cfg, "deliveries", "--json").output)
    assert [(e["edition"], e["sent"]) for e in editions] == [(editions[0]["edition"], len(emails))]
    assert f"daily {DAY}: edition {editions[0]['edition']} resumed; {len(emails)} sent" in out, out
    assert "no edition made" not in out
    assert sorted(smtpd.handler.copies().values()) == [1] * len(emails)


def test_the_scheduler_log_says_no_edition_was_made_or_which_was_resumed(
        tmp_path: Path, smtpd: MailServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_for(tmp_path, "b.yaml", smtpd.port, f"sqlite:///{tmp_path / 'newsletter.db'}")
    other = config_for(tmp_path, "a.yaml", free_port(), f"sqlite:///{tmp_path / 'newsletter.db'}")
    emails = import_readers(cfg, 5)
    make_edition_in_another_process(other)
    nl = pipeline.Newsletter.from_config(cfg, {})
    fire = datetime.combine(date.fromisoformat(DAY), time(8), timezone.utc)
    try:
        with caplog.at_level(logging.INFO, logger="newsletter.schedule"):
            first = schedule.run_due_digest(nl, "daily", fire, now=fire)  # resumes the other's edition
            later = fire + timedelta(days=10)  # past the daily window: nothing is left for anyone
            second = schedule.run_due_digest(nl, "daily", later, now=later, fetch=False)
    finally:
        nl.close()
    assert first is not None and first.edition_id is not None and first.delivery is not None
    assert second is not None and second.edition_id is None  # nothing new for anyone
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.schedule"]
    assert f"daily digest {DAY} (scheduled {fire.isoformat()}): edition {first.edition_id} resumed, " \
           f"{len(emails)} sent" in lines
    assert any(line.endswith("no reader has anything new; no edition made") for line in lines), lines
    assert not any("edition None" in line for line in lines), lines


def test_a_send_counts_its_edition_apart_from_the_retries_of_earlier_ones(three_readers: Path,
                                                                           smtpd: MailServer) -> None:
    smtpd.handler.rcpt_replies["reader001@example.org"] = "451 4.3.2 Try again later"
    first = json.loads(run(three_readers, "send", "--date", DAY, "--json").output)
    assert (first["delivery"]["sent"], first["delivery"]["retry"]) == (2, 1)
    smtpd.handler.rcpt_replies.clear()
    store = Store.open(f"sqlite:///{three_readers.parent / 'newsletter.db'}")
    try:
        make_due_now(store.engine, utcnow())  # its backoff has passed
    finally:
        store.close()
    next_day = "2025-03-15"
    run(three_readers, "import", str(ROOT / "newsletter/sample/daily-papers-mar25.txt"), "--date", next_day)
    out = flat(run(three_readers, "send", "--date", next_day, "--no-fetch"))
    editions = {e["period"]: e for e in json.loads(run(three_readers, "deliveries", "--json").output)}
    assert editions[DAY]["sent"] == 3 and editions[next_day]["sent"] == 3
    second = editions[next_day]["edition"]
    expected = f"daily {next_day}: edition {second} made; 3 sent; other editions' due deliveries: 1 sent"
    assert expected in out, out


def test_a_send_for_a_paused_editions_period_says_it_is_paused_not_resumed(three_readers: Path,
                                                                             smtpd: MailServer) -> None:
    smtpd.handler.rcpt_replies["reader001@example.org"] = "451 4.3.2 Try again later"
    first = json.loads(run(three_readers, "send", "--date", DAY, "--json").output)
    eid = first["edition_id"]
    run(three_readers, "edition", "pause", str(eid))
    smtpd.handler.rcpt_replies.clear()
    out = flat(run(three_readers, "send", "--date", DAY))
    assert f"edition {eid} is paused; nothing of it sent" in out and "resumed" not in out.split("(")[0], out
    run(three_readers, "edition", "cancel", str(eid))
    assert f"edition {eid} is cancelled; nothing of it sent" in flat(run(three_readers, "send", "--date", DAY))
