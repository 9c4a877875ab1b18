"""DKIM through the real SMTP path: `newsletter send` (and a test send) with dkim.* set, to aiosmtpd on
127.0.0.1; every received message's bytes verify with dkimpy against the test key's TXT record."""

from __future__ import annotations

from pathlib import Path

import dkim
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mailkit import MailServer
from test_cli_deliver import DAY, READERS, run, write_config

from newsletter.render.dkim import dkim_txt_record

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                        serialization.NoEncryption()).decode()
ENV = {"NEWSLETTER_SIGNING_KEY": "dkim-send-signing-key-" + "x" * 32, "DKIM_PRIVATE_KEY": PEM}


def dns(name: bytes, timeout: int = 5) -> bytes:
    return dkim_txt_record(KEY).encode() if name == b"mail2026._domainkey.example.org." else b""


def configure(tmp_path: Path, port: int) -> Path:
    cfg = write_config(tmp_path, port)
    data = yaml.safe_load(cfg.read_text())
    data.update(signing_key="${NEWSLETTER_SIGNING_KEY}",
                dkim={"domain": "example.org", "selector": "mail2026", "private_key": "${DKIM_PRIVATE_KEY}"})
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def test_every_digest_received_over_smtp_verifies(tmp_path: Path, smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port)
    for email in READERS:
        run(cfg, "subscribers", "add", email, env=ENV)
    run(cfg, "fetch", "--date", DAY, env=ENV)
    run(cfg, "send", "--cadence", "daily", "--date", DAY, env=ENV)
    received = smtpd.handler.received
    assert sorted(r.rcpt for r in received) == READERS
    for r in received:
        assert r.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
        assert dkim.verify(r.data, dnsfunc=dns), r.rcpt
        assert not dkim.verify(r.data.replace(b"One-Click", b"One-Klick"), dnsfunc=dns)
    # A test send is signed the same way.
    run(cfg, "send", "--to", "ops@example.org", "--date", DAY, env=ENV)
    test_send = smtpd.handler.received[-1]
    assert test_send.rcpt == "ops@example.org" and dkim.verify(test_send.data, dnsfunc=dns)


def test_a_dkim_key_that_cannot_be_used_stops_the_send_before_any_message(tmp_path: Path,
                                                                          smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port)
    run(cfg, "subscribers", "add", READERS[0], env=ENV)
    run(cfg, "fetch", "--date", DAY, env=ENV)
    result = run(cfg, "send", "--cadence", "daily", "--date", DAY, ok=False,
                 env={**ENV, "DKIM_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----"})
    assert result.exit_code != 0
    assert "dkim.private_key: not an unencrypted PEM private key" in " ".join(result.output.split())
    assert smtpd.handler.received == []


def test_config_check_reads_the_dkim_key(tmp_path: Path, smtpd: MailServer) -> None:
    cfg = configure(tmp_path, smtpd.port)
    assert "is valid" in " ".join(run(cfg, "config", "check", env=ENV).output.split())
    result = run(cfg, "config", "check", ok=False, env={**ENV, "DKIM_PRIVATE_KEY": "nonsense"})
    assert result.exit_code != 0 and "dkim.private_key: not an unencrypted PEM private key" in result.output
