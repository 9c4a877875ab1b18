"""DKIM through the real SMTP path: `newsletter send` (and a test send) with dkim.* set, to aiosmtpd on
127.0.0.1; every received message's bytes verify with dkimpy against the test key's TXT record."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import dkim
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mailkit import MailServer
from test_cli_deliver import DAY, READERS, run, write_config

from newsletter.render import dkim as dkim_module
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


def test_two_readers_of_one_digest_share_its_canonical_body(tmp_path: Path, smtpd: MailServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Since issue 15 no two readers share a body (their links and card tokens are their own), so what is
    shared is the work on the constant chunks: through the real send path, the digest's ``SharedBody`` is made
    once, canonicalizing each constant chunk once; per message only that reader's own chunks are canonicalized
    (their bytes plus the constant ones are the whole body received); both signatures verify with dkimpy.
    (How the bytes split, constant and personal, and what signing costs per message: bench/bench_dkim.py.)"""
    made: list[Sequence[bytes | None]] = []
    canonicalized: list[tuple[bool, int]] = []  # (while making a SharedBody, bytes) per relaxed_chunk call
    making = threading.local()
    real_init, real_chunk = dkim_module.SharedBody.__init__, dkim_module.relaxed_chunk

    def counted_init(self: Any, parts: Sequence[bytes | None]) -> None:
        made.append(list(parts))
        making.on = True
        try:
            real_init(self, parts)
        finally:
            making.on = False

    def counted_chunk(chunk: bytes) -> bytes:
        canonicalized.append((getattr(making, "on", False), len(chunk)))
        return real_chunk(chunk)

    cfg = configure(tmp_path, smtpd.port)
    for email in READERS[:2]:
        run(cfg, "subscribers", "add", email, env=ENV)
    run(cfg, "fetch", "--date", DAY, env=ENV)
    monkeypatch.setattr(dkim_module.SharedBody, "__init__", counted_init)
    monkeypatch.setattr(dkim_module, "relaxed_chunk", counted_chunk)
    run(cfg, "send", "--cadence", "daily", "--date", DAY, env=ENV)

    received = smtpd.handler.received
    assert sorted(r.rcpt for r in received) == READERS[:2]
    bodies = [r.data.partition(b"\r\n\r\n")[2] for r in received]
    assert bodies[0] != bodies[1]  # their own links: no two bodies alike
    for r in received:
        assert dkim.verify(r.data, dnsfunc=dns), r.rcpt
    assert len(made) == 1  # one digest: its shared body made once for both readers
    constant = [p for p in made[0] if p is not None]
    places = sum(p is None for p in made[0])
    assert places >= 2 and len(constant) >= 2
    once = [n for inside, n in canonicalized if inside]
    per_message = [n for inside, n in canonicalized if not inside]
    assert len(once) == len(constant) and sum(once) == sum(map(len, constant))  # each constant chunk once
    assert len(per_message) == 2 * places  # then, per message, only its own chunks
    mine = [sum(per_message[:places]), sum(per_message[places:])]
    assert sorted(mine) == sorted(len(b) - sum(once) for b in bodies)
