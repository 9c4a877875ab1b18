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
import hashlib
import hmac
import secrets
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


class Signer:
    """Signs and verifies tokens with one secret key."""

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(raw) < 16:
            raise NewsletterError("The signing key is too short (under 16 bytes).",
                                  hint="set NEWSLETTER_SIGNING_KEY to a long random value, e.g. `openssl rand -hex 32`")
        self._key = raw

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
