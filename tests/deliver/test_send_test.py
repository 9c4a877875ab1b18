"""`newsletter send --to`: a test send of the next issue to one address, through the real SMTP path (aiosmtpd on
127.0.0.1), with nothing recorded in the SQLite file."""

from __future__ import annotations

import json
import re
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from mailkit import MailServer
from test_cli_deliver import DAY, READERS, run, write_config

from newsletter.pipeline import Newsletter
from newsletter.tokens import Signer

KEY = "test-send-signing-key-" + "x" * 32
ENV = {"NEWSLETTER_SIGNING_KEY": KEY}


def configure(tmp_path: Path, port: int, **extra: Any) -> Path:
    cfg = write_config(tmp_path, port)
    data = yaml.safe_load(cfg.read_text())
    data.update(signing_key="${NEWSLETTER_SIGNING_KEY}", **extra)  # no key written into the database
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite file, sorted."""
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        out = {}
        with engine.connect() as conn:
            for table in sa.inspect(engine).get_table_names():
                rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
                out[table] = sorted((tuple(r) for r in rows), key=repr)
        return out
    finally:
        engine.dispose()


@pytest.fixture
def cfg(tmp_path: Path, smtpd: MailServer) -> Path:
    path = configure(tmp_path, smtpd.port)
    run(path, "subscribers", "add", READERS[0], "--topics", "quantization,llm-inference", env=ENV)
    for email in READERS[1:]:
        run(path, "subscribers", "add", email, env=ENV)
    run(path, "fetch", "--date", DAY, env=ENV)
    return path


def parsed(data: bytes) -> Any:
    return message_from_bytes(data, policy=policy.default)


def test_a_test_send_goes_to_one_address_as_the_reader_gets_it_and_records_nothing(
        cfg: Path, smtpd: MailServer) -> None:
    db = cfg.parent / "newsletter.db"
    before = snapshot(db)
    assert before["papers"] and not before["editions"] and not before["deliveries"]

    out = run(cfg, "send", "--to", "Ops@Example.org", "--subscriber", READERS[0], "--date", DAY, "--no-fetch",
              "--json", env=ENV)
    report = json.loads(out.output)
    assert report["to"] == "ops@example.org" and report["rendered_for"] == READERS[0]
    assert report["messenger"] == "smtp" and report["cadence"] == "daily" and report["period"] == DAY

    assert [(r.mail_from, r.rcpt) for r in smtpd.handler.received] == [("papers@example.org", "ops@example.org")]
    got = smtpd.handler.received[0]
    message = parsed(got.data)
    assert message["To"].addresses[0].addr_spec == "ops@example.org"
    assert message["Message-ID"] == got.message_id == report["message_id"]
    assert message["Subject"] == report["subject"]

    # Rendered as Ada gets it: her preview's subject and papers, behind the [test] prefix.
    nl = Newsletter.from_config(cfg, {**ENV, "NEWSLETTER_DATABASE_URL": ""})
    try:
        ada = nl.preview(None, READERS[0], date.fromisoformat(DAY))
        everyone = nl.preview("daily", None, ada.day)
    finally:
        nl.close()
    assert report["subject"] == "[test] " + ada.rendered.subject
    assert report["papers"] == len(ada.rendered.listed) > 0
    assert len(everyone.rendered.listed) > report["papers"]  # her topics are two of them
    body = message.get_body(("plain",)).get_content()
    titles = {p.id: p.title for p in ada.content.papers}
    assert all(titles[i].split()[0] in body for i in ada.rendered.listed[:3])

    # Its links are genuine, but signed for no reader: pressing unsubscribe in it unsubscribes nobody.
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = re.search(r"/unsubscribe\?token=([A-Za-z0-9_=-]+)", message["List-Unsubscribe"]).group(1)
    assert Signer(KEY).verify(token, "unsubscribe").subscriber_id == 0
    assert re.search(r"/preferences\?token=", body)

    assert snapshot(db) == before  # nothing recorded: no edition, no delivery, nothing marked sent

    # A reader of every topic by default; the real send then sends everyone everything, as if no test was made.
    plain = json.loads(run(cfg, "send", "--to", "ops@example.org", "--date", DAY, "--no-fetch", "--json",
                           env=ENV).output)
    assert plain["rendered_for"] is None and plain["papers"] == len(everyone.rendered.listed)
    assert snapshot(db) == before
    sent = json.loads(run(cfg, "send", "--date", DAY, "--no-fetch", "--json", env=ENV).output)
    assert sent["created"] and sent["delivery"]["sent"] == len(READERS)
    assert sorted(r.rcpt for r in smtpd.handler.received[2:]) == READERS
    for r in smtpd.handler.received[2:]:
        assert not parsed(r.data)["Subject"].startswith("[test]")


def test_the_human_line_says_where_it_went_and_that_nothing_was_recorded(cfg: Path, smtpd: MailServer) -> None:
    out = run(cfg, "send", "--to", "ops@example.org", "--date", DAY, "--no-fetch", env=ENV)
    line = " ".join(out.output.split())
    assert "sent to ops@example.org by smtp, as a reader of every topic" in line and "nothing recorded" in line
    assert "subject: [test] " in line
    assert len(smtpd.handler.received) == 1


def test_an_address_outside_test_recipients_is_refused_before_anything_happens(
        tmp_path: Path, smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port, test_recipients=["ops@example.org", "qa@example.org"])
    run(cfg, "subscribers", "add", READERS[0], env=ENV)
    before = snapshot(tmp_path / "newsletter.db")
    refused = run(cfg, "send", "--to", "someone@example.net", "--date", DAY, ok=False, env=ENV)
    assert refused.exit_code == 2
    text = " ".join(refused.output.split())
    assert "someone@example.net is not in test_recipients" in text and "ops@example.org, qa@example.org" in text
    assert smtpd.handler.received == []
    assert snapshot(tmp_path / "newsletter.db") == before  # not even fetched

    # One on the list goes (in any case), after the fetch `send` does first.
    run(cfg, "send", "--to", "QA@example.org", "--date", DAY, env=ENV)
    assert [r.rcpt for r in smtpd.handler.received] == ["qa@example.org"]
    after = snapshot(tmp_path / "newsletter.db")
    assert after["papers"] and not after["editions"] and not after["deliveries"]


def test_a_test_send_needs_a_real_address_and_no_dry_run(cfg: Path, smtpd: MailServer) -> None:
    bad = run(cfg, "send", "--to", "not an address", "--no-fetch", ok=False, env=ENV)
    assert bad.exit_code != 0 and "is not an email address" in bad.output
    both = run(cfg, "send", "--to", "ops@example.org", "--dry-run", ok=False, env=ENV)
    assert both.exit_code == 2 and "--dry-run" in both.output
    alone = run(cfg, "send", "--subscriber", READERS[0], ok=False, env=ENV)
    assert alone.exit_code == 2 and "--to" in alone.output
    assert smtpd.handler.received == []


def test_a_refused_recipient_is_the_servers_error_and_records_nothing(cfg: Path, smtpd: MailServer) -> None:
    db = cfg.parent / "newsletter.db"
    before = snapshot(db)
    smtpd.handler.rcpt_replies["ops@example.org"] = "550 5.1.1 no such user"
    refused = run(cfg, "send", "--to", "ops@example.org", "--date", DAY, "--no-fetch", ok=False, env=ENV)
    assert refused.exit_code != 0 and "550" in refused.output and "Traceback" not in refused.output
    assert snapshot(db) == before
