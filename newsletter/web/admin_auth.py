"""The operator's credentials: the API's bearer token and the /admin pages' password and session.

- API: ``Authorization: Bearer <admin.api_token>``, compared in constant time (the SHA-256 digests of both, so
  neither the length nor a prefix leaks). Without ``admin.api_token`` the API is off: 404.
- Pages: the password is checked against ``admin.password_hash`` (argon2id, argon2-cffi). A good login gets a
  signed session cookie (HttpOnly, SameSite=Strict, Secure when site_url is https, ``__Host-`` prefixed then),
  valid ``admin.session_hours``. Its key is derived from the signing key *and* the password hash, so a new
  password ends every session; logging out ends every session issued before it (the time is kept in the
  database, shared by every worker). Each session has a nonce, and the pages' CSRF tokens are HMACs of it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 10
LOGOUT_STATE = "admin_sessions_valid_after"
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not the password, only for equal timing")


def hash_password(password: str) -> str:
    """An argon2id hash (with its own salt and parameters) for admin.password_hash."""
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    """True when ``password`` is the one ``password_hash`` was made from (constant time, argon2)."""
    try:
        return _hasher.verify(password_hash, password[:1024])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def waste_time(password: str) -> None:
    """An argon2 check of the same cost, for a refused attempt that skipped the real one."""
    check_password(_DUMMY, password)


def token_matches(expected: str, given: str | None) -> bool:
    if not given:
        return False
    a = hashlib.sha256(expected.encode("utf-8")).digest()
    b = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(a, b)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, None for anything else."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@dataclass(frozen=True)
class Session:
    issued: int  # milliseconds since the epoch
    nonce: str


class Sessions:
    """Signed session cookies: ``issued.nonce.mac``."""

    def __init__(self, signing_key: bytes, password_hash: str, *, hours: float, secure: bool,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"admin-session\x00" + signing_key + b"\x00" + password_hash.encode()).digest()
        self.max_age = int(hours * 3600)
        self.secure = secure
        self.cookie = "__Host-nl_admin" if secure else "nl_admin"
        self.clock = clock

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{int(self.clock() * 1000)}.{secrets.token_urlsafe(24)}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, value: str | None, valid_after: int = 0) -> Session | None:
        """The session of a cookie value, None when it is absent, forged, expired or issued at or before
        ``valid_after`` (milliseconds: the last logout)."""
        if not value or len(value) > 200:
            return None
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._mac(payload), parts[2]):
            return None
        issued = int(parts[0])
        now = int(self.clock() * 1000)
        if issued > now + 60_000 or now - issued > self.max_age * 1000 or issued <= valid_after:
            return None
        return Session(issued, parts[1])

    def csrf(self, session: Session) -> str:
        """The CSRF token of this session's forms."""
        return hmac.new(self._key, b"csrf\x00" + session.nonce.encode("ascii", "replace"), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and len(token or "") <= 200 and hmac.compare_digest(self.csrf(session), token or "")
