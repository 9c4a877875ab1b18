"""The mailbox reader against a real Dovecot on loopback (IMAP with STARTTLS and TLS, POP3 with STLS and
TLS), through ``newsletter inbound`` and ``newsletter bounces``: every real report is read once, takes
effect, and is moved or flagged; mail that is none of these stays in place and is reported once."""

from __future__ import annotations

import imaplib
import json
import ssl
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.inbound.classify import classify
from newsletter.models import SUBSCRIBER_BOUNCED, SUBSCRIBER_UNSUBSCRIBED

from inbound_support import make_world, readdressed

HUMAN = (b"From: Ada <ada@example.org>\r\nTo: papers@example.org\r\nSubject: Question\r\n"
         b"Message-ID: <q1@example.org>\r\n\r\nWhen does the weekly issue go out?\r\n")


def _expected_kind(name: str) -> str:
    return {"complaint__apple__mail-unsubscribe.eml": "unsubscribe",
            "complaint__other__arf-auth-failure-dmarc.eml": "report"}.get(name, name.split("__")[0])


def _run(world, *args: str, env: dict[str, str], ok: bool = True):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["--config", str(world.config_path), *args], env=env)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_imap_starttls_reads_every_real_report_once_and_files_it_away(
        tmp_path: Path, dovecot, bounces_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("newsletter.inbound.mailbox.BATCH", 7)  # fetches and moves in several batches
    env = {"INBOUND_PASSWORD": dovecot.password}
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org", "bob@example.org"),
                       environ=env, inbound=dovecot.settings("imap", "starttls", processed_folder="Processed"),
                       delivery={"bounce_limit": 1})
    files = sorted(bounces_dir.glob("*.eml"))
    for path in files:
        dovecot.deliver(path.read_bytes())
    ada, bob = world.sent["ada@example.org"], world.sent["bob@example.org"]
    # Ada's digest bounces back to its VERP address; Bob's provider reports a complaint about his.
    dovecot.deliver(readdressed((bounces_dir / "hard__exim__user-unknown-5.1.1.eml").read_bytes(), to=ada.return_path))
    arf = (bounces_dir / "complaint__yahoo__arf-abuse-2.eml").read_bytes()
    dovecot.deliver(arf.replace(classify(arf).recipient.encode(), bob.email.encode()))
    dovecot.deliver(HUMAN)
    world.nl.close()

    out = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert out["read"] == len(files) + 3
    want = Counter(_expected_kind(p.name) for p in files) + Counter({"hard": 1, "complaint": 1, "unknown": 1})
    assert out["kinds"] == dict(want)
    assert out["effects"]["bounced"] == 1 and out["effects"]["unsubscribed"] == 1
    assert [k["subject"] for k in out["kept"]] == ["Question"]
    assert world.subscriber(ada.email).status == SUBSCRIBER_BOUNCED
    assert world.subscriber(bob.email).status == SUBSCRIBER_UNSUBSCRIBED
    # Processed mail moved to the folder; the question left in the inbox for a person.
    assert dovecot.folder_count("Processed") == len(files) + 2 and dovecot.folder_count() == 1

    again = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert again["read"] == 0 and again["kept"] == []

    shown = json.loads(_run(world, "bounces", "--json", env=env).output)
    assert sum(shown["counts"].values()) == len(files) + 3
    mine = [e for e in shown["events"] if e["email"] == ada.email]
    assert mine[0]["effect"] == "bounced" and mine[0]["delivery_id"] == ada.delivery_id
    assert "5.1.1" in mine[0]["reason"] and mine[0]["edition_id"] is not None
    complaints = json.loads(_run(world, "bounces", "--kind", "complaint", "--json", env=env).output)["events"]
    assert {e["kind"] for e in complaints} == {"complaint"} and len(complaints) == 11 + 1  # 13 files, 2 told apart, and Bob's
    assert [e["effect"] for e in complaints if e["email"] == bob.email] == ["unsubscribed"]
    table = _run(world, "bounces", "--email", ada.email, env=env).output
    assert "hard" in table and "bounced" in table


def test_imap_over_tls_flags_processed_mail_and_leaves_it_unseen_for_people(
        tmp_path: Path, dovecot, bounces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"INBOUND_PASSWORD": dovecot.password}
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",), environ=env,
                       inbound=dovecot.settings("imap", "tls"))
    world.nl.close()
    for name in ("soft__postfix__5.2.2-mailbox-full.eml", "delay__gmail__4.4.1-delay.eml"):
        dovecot.deliver((bounces_dir / name).read_bytes())
    dovecot.deliver(HUMAN)
    out = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert out["read"] == 3 and out["kinds"] == {"soft": 1, "delay": 1, "unknown": 1}
    assert json.loads(_run(world, "inbound", "--json", env=env).output)["read"] == 0
    conn = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps,
                             ssl_context=ssl.create_default_context(cafile=str(dovecot.ca_file)))
    conn.login(dovecot.user, dovecot.password)
    conn.select("INBOX")
    _typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
    flags = sorted(d.decode() for d in data if isinstance(d, bytes))
    conn.logout()
    assert len(flags) == 3
    assert sum("$NewsletterDone" in f and "\\Seen" in f for f in flags) == 2
    assert sum("$NewsletterKept" in f and "\\Seen" not in f for f in flags) == 1  # the question: still unread


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_pop3_deletes_what_it_processed_and_keeps_the_rest(tmp_path: Path, dovecot, bounces_dir: Path,
                                                          security: str) -> None:  # type: ignore[no-untyped-def]
    env = {"INBOUND_PASSWORD": dovecot.password}
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",), environ=env,
                       inbound=dovecot.settings("pop3", security), delivery={"bounce_limit": 1})
    ada = world.sent["ada@example.org"]
    world.nl.close()
    dovecot.deliver(readdressed((bounces_dir / "hard__qmail__user-unknown-crlf.eml").read_bytes(), to=ada.return_path))
    dovecot.deliver((bounces_dir / "autoreply__other__away-until-may-5.eml").read_bytes())
    dovecot.deliver(HUMAN)
    out = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert out["read"] == 3 and out["effects"]["bounced"] == 1 and len(out["kept"]) == 1
    assert world.subscriber(ada.email).status == SUBSCRIBER_BOUNCED
    assert dovecot.folder_count() == 1
    again = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert again["read"] == 1 and again["kept"] == [] and again["already_recorded"] == 1  # reported once


def test_a_refused_login_or_an_untrusted_certificate_is_a_clear_error(tmp_path: Path, dovecot) -> None:  # type: ignore[no-untyped-def]
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",),
                       inbound=dovecot.settings("imap", "starttls"))
    world.nl.close()
    wrong = _run(world, "inbound", env={"INBOUND_PASSWORD": "wrong"}, ok=False)
    assert wrong.exit_code != 0 and "refused" in wrong.output and "Traceback" not in wrong.output
    settings = dovecot.settings("pop3", "tls")
    settings.pop("ca_file")  # the system's CAs do not know the test CA
    (tmp_path / "other").mkdir()
    other = make_world(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}", ("ada@example.org",), inbound=settings)
    other.nl.close()
    untrusted = _run(other, "inbound", env={"INBOUND_PASSWORD": dovecot.password}, ok=False)
    assert untrusted.exit_code != 0 and "TLS" in untrusted.output and "inbound.ca_file" in untrusted.output


def test_without_a_mailbox_the_command_says_which_setting_to_set(tmp_path: Path) -> None:
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",))
    world.nl.close()  # type: ignore[attr-defined]
    result = _run(world, "inbound", env={}, ok=False)
    assert result.exit_code == 2 and "inbound.host" in result.output and "Traceback" not in result.output


def test_a_pass_that_stopped_after_storing_but_before_filing_repeats_nothing(
        tmp_path: Path, dovecot, bounces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from newsletter.inbound import InboundProcessor
    from newsletter.inbound.process import message_key

    env = {"INBOUND_PASSWORD": dovecot.password}
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",), environ=env,
                       inbound=dovecot.settings("imap", "tls", processed_folder="Done"), delivery={"bounce_limit": 2})
    ada = world.sent["ada@example.org"]
    raw = readdressed((bounces_dir / "hard__gmail__5.1.1-user-unknown.eml").read_bytes(), to=ada.return_path)
    dovecot.deliver(raw)
    # The earlier pass stored the event (the bounce counted once), then died before the MOVE.
    processor = InboundProcessor(world.nl.settings, world.nl.store)  # type: ignore[attr-defined]
    assert processor.handle(classify(raw), key=message_key(raw), source="mailbox").effect == "counted"
    world.nl.close()  # type: ignore[attr-defined]
    out = json.loads(_run(world, "inbound", "--json", env=env).output)
    assert out["read"] == 1 and out["already_recorded"] == 1 and out["effects"] == {}
    assert world.bounce_count(ada.email) == 1 and dovecot.folder_count("Done") == 1 and dovecot.folder_count() == 0
