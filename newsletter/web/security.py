"""What keeps the web app safe to expose: CSRF tokens, rate limits, security headers, the client's address.

- CSRF: a signed double-submit cookie. The cookie holds a random nonce; each form carries HMAC(key, nonce).
  A forged cross-site POST has neither the cookie's value (the same-origin policy hides it) nor a way to sign a
  nonce of its own. The one-click unsubscribe POST is exempt: its signed token alone authenticates it.
- Rate limits: token buckets keyed by client IP and by email address, kept in the database
  (store/rate_limits), so every worker process spends from the same ones. They bound a burst; the lasting
  "one confirmation email per address per window" rule is in the database too (store/subscriptions).
- Request bodies: at most ``web.max_body_bytes``, checked before the app reads them (the declared
  Content-Length, and the bytes counted as they stream in, so a chunked upload is cut off too): 413.
- Host header: only site_url's host, the loopback names and ``web.trusted_hosts``; anything else gets 400,
  and every redirect is built from site_url, never from the Host header.
- Headers: a strict Content-Security-Policy (no scripts at all, styles from this site only), nosniff, no
  Referer (links carry tokens), no framing; on every response, errors included.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, MutableMapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # Page URLs carry signed tokens: never hand them to another site in a Referer header.
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (pure ASGI, so streaming and errors are covered)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in self.headers.items() if k.encode() not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(HTTPException):
    """A request body over the limit (raised while it streams in; answered 413)."""

    def __init__(self) -> None:
        super().__init__(413, "The request is too large.")


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` before they are read into memory.

    A declared ``Content-Length`` over the limit is answered by ``refuse(request)`` at once, without calling the
    app; a body without one (chunked) is counted as it streams in, and the app's next read raises BodyTooLarge
    (an HTTPException the app's handlers answer 413) once the count passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, refuse: Callable[[Request], Response]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if declared:
            value = declared[0].strip()
            if not value.isdigit() or len(value) > 18 or int(value) > self.max_bytes:
                await self.refuse(Request(scope))(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            if seen > self.max_bytes:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        await self.app(scope, counted, send)


def allowed_hosts(site_url: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The host names the app answers to: site_url's, the loopback names, and the configured extra ones."""
    from urllib.parse import urlsplit

    host = (urlsplit(site_url).hostname or "").lower()
    return frozenset({host, "127.0.0.1", "localhost", "::1", *(h.lower() for h in extra)} - {""})


class TrustedHostMiddleware:
    """Answers ``refuse(request)`` (400) to a Host header naming none of ``hosts`` (``*`` allows any)."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], refuse: Callable[[Request], Response]) -> None:
        self.app = app
        self.hosts = hosts
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.hosts and host_of(scope) not in self.hosts:
            await self.refuse(Request(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def host_of(scope: Scope) -> str:
    """The Host header's name, lower case, without its port (brackets kept off an IPv6 address)."""
    raw = next((v for k, v in scope.get("headers", ()) if k.lower() == b"host"), b"")
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# --- CSRF ---------------------------------------------------------------------------------------------------


class Csrf:
    """Signed double-submit cookie. ``form_token(request)`` for a page; ``valid(request, token)`` on a POST."""

    field = "csrf_token"

    def __init__(self, key: bytes, *, secure: bool) -> None:
        self._key = hashlib.sha256(b"csrf\x00" + key).digest()  # a key of its own, derived from the signing key
        self.secure = secure
        # The __Host- prefix makes the browser refuse the cookie unless it is Secure, host-only and Path=/,
        # so a sibling subdomain cannot plant one.
        self.cookie = "__Host-nl_csrf" if secure else "nl_csrf"

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode("ascii", "replace"), hashlib.sha256).hexdigest()

    def form_token(self, request: Request) -> str:
        """The hidden field's value for this browser; sets up a new cookie when it has none."""
        nonce = request.cookies.get(self.cookie) or getattr(request.state, "csrf_nonce", None)
        if not nonce or len(nonce) > 100:
            nonce = secrets.token_urlsafe(32)
            request.state.csrf_nonce = nonce  # set_cookie() puts it on the response
        return self._sign(nonce)

    def set_cookie(self, request: Request, response: Response) -> None:
        nonce = getattr(request.state, "csrf_nonce", None)
        if nonce:
            response.set_cookie(self.cookie, nonce, max_age=7 * 86400, path="/", secure=self.secure,
                                httponly=True, samesite="lax")

    def valid(self, request: Request, token: str | None) -> bool:
        nonce = request.cookies.get(self.cookie)
        if not nonce or not token or len(token) > 200:
            return False
        return hmac.compare_digest(self._sign(nonce), token)


# --- rate limits ----------------------------------------------------------------------------------------


class TokenBucket:
    """``capacity`` requests at once per key, refilled at ``capacity`` per ``period`` seconds.

    ``take(key)`` spends a token and returns 0, or returns the seconds until one is free (nothing spent).
    Full buckets are forgotten when the table grows past ``max_keys``, so memory stays bounded.
    """

    def __init__(self, capacity: int, period: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 50_000) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:  # still too many: drop the oldest
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: len(self._buckets) // 2]:
                del self._buckets[key]


class SharedTokenBucket:
    """The same bucket rule as TokenBucket, kept in the database (shared by every worker process).

    ``clock`` must be one every process shares (wall-clock seconds). Addresses are stored as a hash only.
    Buckets untouched for a whole period are full again and are forgotten now and then.
    """

    def __init__(self, store: Any, name: str, capacity: int, period: float, *,
                 clock: Callable[[], float] = time.time, prune_every: int = 500) -> None:
        self.store, self.name, self.capacity, self.period, self.clock = store, name, capacity, period, clock
        self.prune_every = prune_every
        self._count = 0

    def take(self, key: str) -> float:
        from ..store import rate_limits

        now = self.clock()
        digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:40]
        wait = rate_limits.take(self.store, f"{self.name}:{digest}", capacity=self.capacity, period=self.period,
                                now=now)
        self._count += 1
        if self._count % self.prune_every == 0:
            rate_limits.prune(self.store, older_than=now - self.period)
        return wait


@dataclass
class RateLimits:
    per_ip: TokenBucket | SharedTokenBucket
    per_address: TokenBucket | SharedTokenBucket

    @classmethod
    def from_settings(cls, web: Any, clock: Callable[[], float] = time.time, store: Any = None) -> "RateLimits":
        """Buckets in ``store`` (shared by every process on that database), or in this process without one."""
        period = web.rate_window_minutes * 60
        if store is not None:
            return cls(SharedTokenBucket(store, "ip", web.subscribe_per_ip, period, clock=clock),
                       SharedTokenBucket(store, "address", web.subscribe_per_address, period, clock=clock))
        return cls(TokenBucket(web.subscribe_per_ip, period, clock=clock),
                   TokenBucket(web.subscribe_per_address, period, clock=clock))


class FormExpired(Exception):
    """A form came without a valid CSRF token (expired, or sent from another site)."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many requests.")
        self.retry_after = max(1, int(retry_after + 0.999))


def client_ip(request: Request) -> str:
    """The peer address. Behind a reverse proxy, uvicorn's --proxy-headers (on by default for 127.0.0.1)
    has already put the X-Forwarded-For client here; the header itself is never trusted."""
    return request.client.host if request.client else "unknown"


def no_store(response: Response) -> Response:
    """Pages reached with a token must not be kept by a shared cache or the back-forward cache."""
    response.headers["cache-control"] = "no-store"
    return response


