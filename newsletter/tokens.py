"""Signed tokens for the links in every email: confirm, manage preferences, unsubscribe.

A token carries (purpose, subscriber id, issued-at) and an HMAC-SHA256 tag over them, base64url-encoded, so
the web app can act on a link without a database lookup of the token and nobody can forge one for another
reader. The verifier checks the purpose, the tag (in constant time) and the age; the age limit is the
verifier's choice, not baked into the token, so a policy change applies to links already sent.

Example::

    signer = Signer(b"a long random key")
    token = signer.sign("unsubscribe", 42)
    signer.verify(token, "unsubscribe").subscriber_id  # 42
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from .errors import NewsletterError

PURPOSES = ("confirm", "preferences", "unsubscribe", "web-copy")

DAY = 86_400
# How old a token may be when it is used. Unsubscribe links must keep working for a long time: RFC 8058 and
# the large mailbox providers expect a one-click link to work for at least 30 days after the message was sent,
# and a reader who digs out an old digest should still be able to leave.
# A reader's web copy of a digest (their papers, including those the email cut) opens as long as unsubscribing.
MAX_AGE_SECONDS = {"confirm": 7 * DAY, "preferences": 90 * DAY, "unsubscribe": 365 * DAY, "web-copy": 365 * DAY}

_TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5 allows truncation to >= half)
_DOMAIN = b"trending-papers-newsletter token v1\x00"  # binds tags to this use of the key
STATE_KEY = "signing_key"  # Store.get_state key of the generated per-database key


class InvalidToken(NewsletterError):
    """The token is malformed, for another purpose, or its signature does not match."""


class ExpiredToken(InvalidToken):
    """The token is genuine but older than its purpose allows."""


@dataclass(frozen=True)
class TokenClaims:
    purpose: str
    subscriber_id: int
    issued_at: int  # Unix seconds


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or len(text) > 200 or not text.isascii():
        raise InvalidToken("Malformed token.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise InvalidToken("Malformed token.") from None
    # One spelling per token: base64 ignores the spare low bits of the last character and stray
    # characters, so an edited token could still decode to the same bytes. Only the canonical form counts.
    if _b64encode(raw) != text:
        raise InvalidToken("Malformed token.")
    return raw


def _key_bytes(key: bytes | str) -> bytes:
    """The signing key's bytes; both signers refuse a key under 16 bytes."""
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < 16:
        raise NewsletterError("The signing key is too short (under 16 bytes).",
                              hint="set NEWSLETTER_SIGNING_KEY to a long random value, e.g. `openssl rand -hex 32`")
    return raw


class Signer:
    """Signs and verifies tokens with one secret key."""

    def __init__(self, key: bytes | str) -> None:
        self._key = _key_bytes(key)

    def card_signer(self) -> "CardSigner":
        """The signer of card tokens under the same key."""
        return CardSigner(self._key)

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def sign(self, purpose: str, subscriber_id: int, issued_at: int | datetime | None = None) -> str:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        if isinstance(issued_at, datetime):
            issued_at = int(issued_at.timestamp())
        issued = int(time.time()) if issued_at is None else int(issued_at)
        payload = f"{purpose}:{int(subscriber_id)}:{issued}".encode("ascii")
        return _b64encode(payload + self._tag(payload))

    def verify(self, token: str, purpose: str, *, now: int | datetime | None = None,
               max_age_seconds: int | None = None) -> TokenClaims:
        """The claims of a genuine, unexpired token for ``purpose``; raises InvalidToken or ExpiredToken."""
        raw = _b64decode(token)
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidToken("This link is not valid.", hint="use the link from your most recent email")
        try:
            got_purpose, sid, issued = payload.decode("ascii").split(":")
            claims = TokenClaims(got_purpose, int(sid), int(issued))
        except ValueError:
            raise InvalidToken("Malformed token.") from None
        if claims.purpose != purpose:
            raise InvalidToken("This link is not valid here.", hint="use the link from your most recent email")
        if isinstance(now, datetime):
            now = int(now.timestamp())
        current = int(time.time()) if now is None else int(now)
        limit = MAX_AGE_SECONDS[purpose] if max_age_seconds is None else max_age_seconds
        if current - claims.issued_at > limit:
            raise ExpiredToken("This link has expired.", hint="use the link from your most recent email")
        if claims.issued_at - current > 300:  # more than clock skew ahead: not ours
            raise InvalidToken("This link is not valid.")
        return claims


# --- card tokens: one short token per (reader, paper) for the links on each card of a digest ----------------

CARD_PURPOSE = 0x01  # the first byte: room for other compact purposes later
CARD_TOKEN_CHARS = 24  # 18 bytes, base64url without padding: every card token has this length
CARD_MAX_AGE_DAYS = 365
_CARD_DOMAIN = b"trending-papers-newsletter card v1\x00"
_CARD_TAG_BYTES = 7
_CARD = struct.Struct(">BIIH")
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # purpose, reader id, paper id, issued day (days since 1970-01-01, UTC)


@dataclass(frozen=True)
class CardClaims:
    subscriber_id: int
    paper_id: int
    issued_day: int


class CardSigner:
    """Signs the one token a card of a digest carries for its reader: "more like this", "fewer like this" and
    (with ``tracking.clicks``) the tracked title link share it, the direction being in the URL path.

    A token is 18 bytes, base64url (24 characters): a purpose byte, the reader id, the paper id, the issue day
    and a 56-bit tag. The tag is a keyed BLAKE2b of the card under a per-reader key, itself an HMAC-SHA256
    (under the signing key, like the other tokens) of the reader id and day: a message signs 50 cards with one
    HMAC and 50 fast BLAKE2b calls. Fixed length, so an encoded email line keeps its layout whatever the token.
    """

    def __init__(self, key: bytes | str) -> None:
        self._mac = hmac.new(_key_bytes(key), _CARD_DOMAIN, hashlib.sha256)

    def reader_key(self, subscriber_id: int, issued_day: int) -> bytes:
        mac = self._mac.copy()
        mac.update(struct.pack(">II", subscriber_id & 0xFFFFFFFF, issued_day & 0xFFFF))
        return mac.digest()

    def for_reader(self, subscriber_id: int, issued_day: int) -> Callable[[int], str]:
        """A function paper id -> that reader's card token (what a message fills in per card)."""
        key = self.reader_key(subscriber_id, issued_day)
        sid, day = int(subscriber_id), int(issued_day)
        pack, blake, encode = _CARD.pack, hashlib.blake2b, binascii.b2a_base64

        def raw(paper_id: int) -> bytes:
            payload = pack(CARD_PURPOSE, sid, paper_id, day)
            tag = blake(payload, key=key, digest_size=_CARD_TAG_BYTES).digest()
            return encode(payload + tag, newline=False).translate(_URLSAFE)  # 18 bytes: no padding

        def token(paper_id: int) -> str:
            return raw(paper_id).decode("ascii")

        token.raw = raw  # type: ignore[attr-defined]  # the bytes, for the message fast path
        return token

    def sign(self, subscriber_id: int, paper_id: int, issued_at: int | datetime | None = None) -> str:
        if isinstance(issued_at, datetime):
            issued_at = int(issued_at.timestamp())
        issued = int(time.time()) if issued_at is None else int(issued_at)
        return self.for_reader(subscriber_id, issued // DAY)(paper_id)

    def verify(self, token: str, *, now: int | datetime | None = None,
               max_age_days: int = CARD_MAX_AGE_DAYS) -> CardClaims:
        """The claims of a genuine card token not older than ``max_age_days``; raises InvalidToken or ExpiredToken."""
        if len(token) != CARD_TOKEN_CHARS:
            raise InvalidToken("This link is not valid.", hint="use the link from your most recent email")
        raw = _b64decode(token)
        payload, tag = raw[:_CARD.size], raw[_CARD.size:]
        purpose, sid, pid, day = _CARD.unpack(payload)
        key = self.reader_key(sid, day)
        if purpose != CARD_PURPOSE or not hmac.compare_digest(
                tag, hashlib.blake2b(payload, key=key, digest_size=_CARD_TAG_BYTES).digest()):
            raise InvalidToken("This link is not valid.", hint="use the link from your most recent email")
        if isinstance(now, datetime):
            now = int(now.timestamp())
        today = (int(time.time()) if now is None else int(now)) // DAY
        if today - day > max_age_days:
            raise ExpiredToken("This link has expired.", hint="use the link from your most recent email")
        if day - today > 1:
            raise InvalidToken("This link is not valid.")
        return CardClaims(sid, pid, day)


def signing_key(configured: str | None, get_state: Callable[[str], str | None],
                add_state: Callable[[str, str], str]) -> bytes:
    """The configured key; else a random key generated once and kept in the database, so local runs work.

    ``add_state`` stores a value only where none is stored yet and returns what is stored (``Store.add_state``:
    an insert that does nothing on conflict, then a read), so senders starting together on a fresh database all
    use the first key written, and a key that links were already signed with is never replaced.
    """
    if configured:
        return configured.encode("utf-8")
    stored = get_state(STATE_KEY)
    if not stored:
        stored = add_state(STATE_KEY, secrets.token_urlsafe(48))
    return stored.encode("utf-8")
