"""`newsletter send`, `deliveries` and `retry` end to end: the real pipeline and message builder, a real SMTP
server on 127.0.0.1 and a SQLite file."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from mailkit import PASSWORD, MailServer
from support import PAGES, ROOT

from newsletter.cli import main

DAY = "2025-03-14"
READERS = ["ada@example.org", "bob@example.org", "cy@example.org"]

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def write_config(tmp_path: Path, port: int, **smtp: Any) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(database_url="sqlite:///newsletter.db", messenger="smtp", sample_fallback=False,
                sources=[{"type": "hf-page", "path": str(PAGES["mar14"]), "trending_date": DAY}])
    data["smtp"] = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10, "pool_size": 2,
                    **smtp}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(cfg: Path, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"NEWSLETTER_DATABASE_URL": "", **(env or {})})
    result = runner.invoke(main, ["--config", str(cfg), *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def flat(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def readers(tmp_path: Path, smtpd: MailServer) -> Path:
    cfg = write_config(tmp_path, smtpd.port)
    for email in READERS:
        run(cfg, "subscribers", "add", email)
    return cfg


def test_send_builds_the_edition_and_delivers_it_once(readers: Path, smtpd: MailServer) -> None:
    report = json.loads(run(readers, "send", "--date", DAY, "--json").output)
    assert report["created"] and report["period"] == DAY and report["readers"] == 3
    assert report["delivery"]["sent"] == 3
    assert sorted(smtpd.handler.copies().items()) == [(e, 1) for e in READERS]
    for received in smtpd.handler.received:  # a real message from the message stage, with the delivery's id
        parsed = message_from_bytes(received.data, policy=policy.default)
        assert parsed["To"].addresses[0].addr_spec == received.rcpt
        assert parsed["Message-ID"] == received.message_id
        assert received.message_id.startswith(f"<{report['edition_id']}.")

    again = json.loads(run(readers, "send", "--date", DAY, "--json").output)  # again: resumes, sends nothing
    assert not again["created"] and again["edition_id"] == report["edition_id"]
    assert again["delivery"]["sent"] == 0
    assert len(smtpd.handler.received) == 3

    editions = json.loads(run(readers, "deliveries", "--json").output)
    counts = [(e["period"], e["sent"], e["pending"], e["retry"], e["failed"]) for e in editions]
    assert counts == [(DAY, 3, 0, 0, 0)]
    rows = json.loads(run(readers, "deliveries", "--edition", str(report["edition_id"]), "--json").output)
    assert sorted(r["email"] for r in rows) == READERS and {r["state"] for r in rows} == {"sent"}
    table = run(readers, "deliveries").output
    assert "sent" in table and DAY in table


def test_a_dry_run_writes_and_sends_nothing(readers: Path, smtpd: MailServer) -> None:
    out = flat(run(readers, "send", "--date", DAY, "--dry-run"))
    assert "3 readers would get a digest; nothing written or sent" in out
    assert json.loads(run(readers, "deliveries", "--json").output) == []
    assert smtpd.handler.received == []


def test_retry_resumes_after_a_temporary_failure(readers: Path, smtpd: MailServer) -> None:
    smtpd.handler.rcpt_replies["bob@example.org"] = "451 4.3.2 Try again later"
    out = flat(run(readers, "send", "--date", DAY))
    assert "2 sent" in out and "1 to retry" in out and "451 4.3.2 Try again later" in out
    assert "Nothing was due" in flat(run(readers, "retry"))  # the backoff has not passed
    smtpd.handler.rcpt_replies.clear()
    report = json.loads(run(readers, "retry", "--now", "--json").output)
    assert report["sent"] == 1
    assert sorted(smtpd.handler.copies().items()) == [(e, 1) for e in READERS]


def test_a_refused_login_is_one_clear_line_and_exit_code_3(tmp_path: Path) -> None:
    with MailServer(auth=True) as server:
        cfg = write_config(tmp_path, server.port, username="bot", password="${SMTP_PASSWORD}")
        run(cfg, "subscribers", "add", "ada@example.org")
        result = run(cfg, "send", "--date", DAY, ok=False, env={"SMTP_PASSWORD": "wrong"})
        assert result.exit_code == 3
        assert "error: The SMTP server 127.0.0.1:" in flat(result)
        assert "refused the login as bot: 535" in flat(result)
        assert "Traceback" not in result.output
        editions = json.loads(run(cfg, "deliveries", "--json").output)
        assert [(e["sent"], e["pending"]) for e in editions] == [(0, 1)]  # queued, not lost, not marked
        report = json.loads(run(cfg, "retry", "--json", env={"SMTP_PASSWORD": PASSWORD}).output)
        assert report["sent"] == 1 and len(server.handler.received) == 1
