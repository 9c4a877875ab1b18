"""DKIM signing (newsletter/render/dkim.py): verified by dkimpy (an independent implementation) against the
public key of a key generated for the test, on both the email-package path and the shared-body fast path,
which give the same bytes; the headers RFC 8058 needs are signed; tampering breaks the signature."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from render_sample import sample_digest, settings
from test_message import EDITION, LINKS, WHEN
from test_render import hostile_digest

from newsletter.config import from_mapping
from newsletter.errors import ConfigError
from newsletter.render import render_digest
from newsletter.render.dkim import (
    DkimSigner,
    SharedBody,
    dkim_txt_record,
    load_private_key,
    relaxed_body,
    signer_from_settings,
)
from newsletter.render.message import MessageFactory, Recipient, build_message

SELECTOR, DOMAIN = "news", "example.org"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
SIGNER = DkimSigner(DOMAIN, SELECTOR, KEY)
REQUIRED = {"from", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post"}


def dns(name: bytes, timeout: int = 5) -> bytes:
    """The TXT record a resolver would return for the selector (and nothing for any other name)."""
    return dkim_txt_record(KEY).encode() if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else b""


def verify(message: bytes) -> bool:
    return bool(dkim.verify(message, dnsfunc=dns))


def signature_tags(message: bytes) -> dict[str, str]:
    value = message_from_bytes(message, policy=policy.compat32)["DKIM-Signature"]
    tags = {}
    for part in re.sub(r"\s+", "", value).split(";"):
        if part:
            k, _, v = part.partition("=")
            tags[k] = v
    return tags


def reader(i: int, name: str | None = "Ada Lovelace") -> Recipient:
    return Recipient(f"reader{i}@example.org", f"<7.{i}.daily.2025-03-14@example.org>",
                     LINKS.for_reader(i, 1_741_939_200), name)


def test_a_signed_digest_verifies_with_dkimpy_and_signs_what_rfc_8058_requires() -> None:
    rendered = render_digest(sample_digest(), settings(), EDITION)
    raw = MessageFactory(settings(), SIGNER).prepare(rendered).message(reader(1), WHEN)
    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n\td=example.org; s=news;")
    assert verify(raw)
    tags = signature_tags(raw)
    signed = tags["h"].lower().split(":")
    assert REQUIRED <= set(signed)
    # Over-signed: a second From, Subject or List-Unsubscribe added on the way breaks the signature.
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert signed.count(name) == 2, name
    assert tags["t"] == str(int(WHEN.timestamp()))
    field = raw[:raw.index(b"\r\nFrom: ")]
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))  # folded like the other fields


def test_the_fast_path_and_the_email_package_path_give_the_same_signed_bytes() -> None:
    s = settings()
    factory = MessageFactory(s, SIGNER)
    for content in (sample_digest(topics=["3d"], top=0), hostile_digest(), sample_digest()):
        rendered = render_digest(content, s, EDITION)
        prepared = factory.prepare(rendered)
        assert prepared._shared_body is not None  # the body hash is shared, not recomputed whole
        for i, name in enumerate(["Ada Lovelace", None, "Zoë Ünïcødé", "  spaced   out  "]):
            when = WHEN + timedelta(minutes=i)
            r = reader(i, name)
            fast = prepared.message(r, when)
            assert fast == build_message(rendered, r, s, when, SIGNER), name
            assert fast == SIGNER.sign(build_message(rendered, r, s, when), when)
            assert verify(fast), name
            # Unsigned, the message is what it was: the signature is one field in front.
            unsigned = MessageFactory(s).prepare(rendered).message(r, when)
            assert fast.endswith(unsigned) and fast[:-len(unsigned)].startswith(b"DKIM-Signature:")


def test_the_shared_body_hash_is_the_hash_of_the_whole_canonical_body() -> None:
    parts = [b"Hello  \t world \r\n\r\n", None, b"middle\r\n", None, b"end \r\n\r\n\r\n"]
    shared = SharedBody(parts)
    for personal in ([b"Hi Ada   \r\n", b"link\t\r\n"], [b"\r\n", b" x \r\n"]):
        it = iter(personal)
        body = b"".join(p if p is not None else next(it) for p in parts)
        assert shared.hash(personal) == DkimSigner.body_hash(body)
    assert relaxed_body(b"a  b \r\n\r\n\r\n") == b"a b\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""
    with pytest.raises(ValueError):
        SharedBody([b"a\r\n", None])  # the end is personal: the end-of-body rule cannot be applied in advance


@pytest.mark.parametrize("tamper", [
    lambda m: m.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing"),
    lambda m: m.replace(b"\r\nList-Unsubscribe: <", b"\r\nList-Unsubscribe: <https://evil.example/u>, <", 1),
    lambda m: m.replace(b"\r\nFrom: ", b"\r\nFrom: Mallory <m@evil.example>\r\nFrom: ", 1),
    lambda m: m.replace(b"\r\nSubject: ", b"\r\nSubject: urgent ", 1),
    lambda m: m[:-200] + m[-200:].replace(b"=", b"-", 1),  # one body byte
])
def test_a_changed_message_fails_verification(tamper) -> None:  # type: ignore[no-untyped-def]
    rendered = render_digest(sample_digest(topics=["3d"], top=0), settings(), EDITION)
    raw = MessageFactory(settings(), SIGNER).prepare(rendered).message(reader(2), WHEN)
    changed = tamper(raw)
    assert changed != raw
    assert not verify(changed)


def test_whitespace_a_relay_may_change_keeps_the_signature() -> None:
    """relaxed/relaxed: a relay that re-folds headers or strips trailing spaces does not break it."""
    rendered = render_digest(sample_digest(topics=["3d"], top=0), settings(), EDITION)
    raw = MessageFactory(settings(), SIGNER).prepare(rendered).message(reader(3), WHEN)
    refolded = raw.replace(b"\r\nList-Unsubscribe-Post: ", b"\r\nList-Unsubscribe-Post:\r\n\t  ", 1)
    assert verify(refolded)


def signing_settings(tmp_path: Path, **dkim_settings: object):  # type: ignore[no-untyped-def]
    return from_mapping({"dkim": dkim_settings}, {"DKIM_PRIVATE_KEY": PEM.replace("\n", "\\n")}, base_dir=tmp_path)


def test_the_key_comes_from_an_environment_variable_or_a_file(tmp_path: Path) -> None:
    from_env = signer_from_settings(signing_settings(tmp_path, domain="Example.ORG", selector=SELECTOR,
                                                     private_key="${DKIM_PRIVATE_KEY}"))
    (tmp_path / "dkim.pem").write_text(PEM)
    from_file = signer_from_settings(signing_settings(tmp_path, domain=DOMAIN, selector=SELECTOR,
                                                      private_key_file="dkim.pem"))
    for signer in (from_env, from_file):
        assert signer is not None and signer.domain == DOMAIN
        rendered = render_digest(sample_digest(topics=["3d"], top=0), settings(), EDITION)
        assert verify(build_message(rendered, reader(4), settings(), WHEN, signer))
    assert signer_from_settings(signing_settings(tmp_path)) is None  # no dkim.domain: not signed


@pytest.mark.parametrize("dkim_settings, key, says", [
    ({"domain": DOMAIN, "private_key_file": "dkim.pem"}, "dkim.selector", "is not set"),
    ({"domain": DOMAIN, "selector": SELECTOR}, "dkim.private_key", "is needed"),
    ({"domain": DOMAIN, "selector": SELECTOR, "private_key": PEM}, "dkim.private_key", "literal secret"),
    ({"domain": "not a domain", "selector": SELECTOR, "private_key_file": "k"}, "dkim.domain", "not a domain"),
    ({"domain": DOMAIN, "selector": "bad selector", "private_key_file": "k"}, "dkim.selector", "not a selector"),
])
def test_an_incomplete_dkim_setting_is_a_config_error_naming_the_key(tmp_path: Path, dkim_settings: dict,
                                                                     key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        signing_settings(tmp_path, **dkim_settings)
    assert key in str(caught.value) and says in str(caught.value) + str(caught.value.hint)


def test_a_key_that_cannot_be_used_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    missing = signing_settings(tmp_path, domain=DOMAIN, selector=SELECTOR, private_key_file="nowhere.pem")
    with pytest.raises(ConfigError, match="dkim.private_key_file: cannot read"):
        signer_from_settings(missing)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="dkim.private_key_file: not an unencrypted PEM private key"):
        signer_from_settings(signing_settings(tmp_path, domain=DOMAIN, selector=SELECTOR, private_key_file="junk.pem"))
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ConfigError, match="dkim.private_key: the key is not an RSA key"):
        load_private_key(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), "dkim.private_key")
