"""Structured logs (log.format: json): one JSON object per line, with the edition, delivery and source of
what the record is about; plain text stays the default."""

from __future__ import annotations

import json
import re
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from mailkit import MailServer, free_port
from monitor_support import CLI
from test_cli_deliver import DAY, READERS, run
from test_metrics import ENV, configure

from newsletter.config import Log
from newsletter.monitor.logs import JsonFormatter, configure as configure_logs, log_context, unconfigure
from newsletter.pipeline import Newsletter
from newsletter.schedule import run_fetch


@pytest.fixture
def json_logs() -> Iterator[Callable[[], None]]:
    """Turns JSON logs on in this process when called (after the CLI runs of a test, which set the level
    from their config); off again at the end."""
    yield lambda: configure_logs(Log(format="json", level="info"))
    unconfigure()
    logging.getLogger().setLevel(logging.WARNING)


def records(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_a_record_carries_its_fields_from_extra_or_from_the_context() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("newsletter.x", logging.WARNING, __file__, 1, "failed %s", ("ada",), None)
    record.delivery = 42
    with log_context(edition=7, source=None):
        data = json.loads(formatter.format(record))
    assert data["message"] == "failed ada" and data["level"] == "WARNING" and data["logger"] == "newsletter.x"
    assert (data["edition"], data["delivery"]) == (7, 42) and "source" not in data
    assert data["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        failing = logging.LogRecord("n", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failing))["exc"]


def test_send_and_fetch_records_name_their_edition_delivery_and_source(
        tmp_path: Path, smtpd: MailServer, json_logs: Callable[[], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = configure(tmp_path, smtpd.port)
    data = yaml.safe_load(cfg.read_text())
    data["sources"].append({"type": "rss", "name": "closed-port", "url": f"http://127.0.0.1:{free_port()}/feed",
                            "retries": 0, "timeout": 2})
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    for email in READERS:
        run(cfg, "subscribers", "add", email, env=ENV)
    smtpd.handler.rcpt_replies = {READERS[1]: "550 5.1.1 no such user", READERS[2]: "451 4.3.0 later"}
    json_logs()
    capsys.readouterr()
    nl = Newsletter.from_config(cfg, ENV)
    try:
        report = nl.send("daily", __import__("datetime").date.fromisoformat(DAY))
        run_fetch(nl)
    finally:
        nl.close()
    logged = records(capsys.readouterr().err)
    failed = next(r for r in logged if r["message"].startswith(f"failed {READERS[1]}"))
    retry = next(r for r in logged if r["message"].startswith(f"will retry {READERS[2]}"))
    for r in (failed, retry):
        assert r["edition"] == report.edition_id and isinstance(r["delivery"], int)
    assert failed["delivery"] != retry["delivery"]
    source = [r for r in logged if r.get("source") == "closed-port"]
    assert source and any("closed-port" in r["message"] for r in source)
    made = next(r for r in logged if "edition" in r["message"] and "made" in r["message"])
    assert made["level"] == "INFO"


def test_the_cli_logs_json_lines_with_log_format_json(tmp_path: Path, smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port, log={"format": "json"})
    for email in READERS:
        run(cfg, "subscribers", "add", email, env=ENV)
    smtpd.handler.rcpt_replies = {READERS[0]: "550 5.1.1 no such user"}
    done = subprocess.run([sys.executable, "-c", CLI, "--config", str(cfg), "-v", "send", "--cadence", "daily",
                           "--date", DAY], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **ENV, "NEWSLETTER_DATABASE_URL": ""})
    assert done.returncode == 0, done.stderr
    # The log records are JSON lines (the command's own summary lines for people stay as they are).
    assert not re.search(r"^(DEBUG|INFO|WARNING|ERROR) ", done.stderr, re.M)
    logged = records("\n".join(line for line in done.stderr.splitlines() if line.startswith("{")))
    assert any(r["logger"] == "newsletter.pipeline" and r["level"] == "INFO" for r in logged)  # -v: info
    failed = next(r for r in logged if r["message"].startswith(f"failed {READERS[0]}"))
    assert failed["edition"] == 1 and failed["delivery"] >= 1 and failed["level"] == "WARNING"


def test_text_stays_the_default(tmp_path: Path, smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port)
    run(cfg, "subscribers", "add", READERS[0], env=ENV)
    smtpd.handler.rcpt_replies = {READERS[0]: "550 5.1.1 no such user"}
    done = subprocess.run([sys.executable, "-c", CLI, "--config", str(cfg), "send", "--cadence", "daily",
                           "--date", DAY], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **ENV, "NEWSLETTER_DATABASE_URL": ""})
    assert done.returncode == 0, done.stderr
    assert f"WARNING newsletter.deliver.sender: failed {READERS[0]}" in done.stderr
    assert not done.stderr.lstrip().startswith("{")
