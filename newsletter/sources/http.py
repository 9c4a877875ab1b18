"""HTTP for every network source: one GET with timeouts, a byte cap, retries, and a per-host rate limiter.

``get(url)`` returns the response body or raises ``SourceError`` with a one-line message naming the URL:

* connect and read timeouts (a read timeout bounds the wait for each chunk; ``total_timeout`` bounds the
  whole download, so a server dripping one byte at a time cannot hold a fetch forever);
* a byte cap checked against ``Content-Length`` and again while streaming (after decompression), so an
  oversized or endless body is aborted rather than buffered;
* retries with exponential backoff (``backoff * 2**attempt``) on HTTP 429, any 5xx, connection errors and
  timeouts, honouring ``Retry-After`` (seconds or an HTTP date), every wait capped at ``max_wait``;
* a User-Agent naming the project.

``sleep`` and ``now`` are parameters so tests can run against a real local server without waiting.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import httpx

from ..errors import NetworkUnavailable, SourceError

USER_AGENT = "trending-papers-newsletter/0.1 (self-hosted newsletter of trending ML papers; python-httpx)"

DEFAULT_TIMEOUT = 20.0  # seconds to wait for each read
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_RETRIES = 3  # retries after the first attempt
DEFAULT_BACKOFF = 1.0  # first wait; doubles on each retry
DEFAULT_MAX_WAIT = 60.0  # no single wait (backoff or Retry-After) is longer than this

Sleep = Callable[[float], None]


class _Retryable(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's requested wait, if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection could be made at all (no network, DNS, refused)


def get(
    url: str,
    *,
    params: Mapping[str, str | int | float] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    total_timeout: float | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    max_wait: float = DEFAULT_MAX_WAIT,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    now: Callable[[], datetime] | None = None,
    limiter: RateLimiter | None = None,
    min_interval: float | None = None,
) -> bytes:
    """GET ``url`` (with query ``params``) and return the body, or raise ``SourceError``.

    ``total_timeout`` defaults to four times ``timeout``. ``limiter`` (with ``min_interval`` seconds, else the
    limiter's own) spaces every attempt, retries included, from the previous request to the same host.
    ``client`` lets a caller share a connection pool; by default each call opens and closes its own.
    """
    shown = display_url(url, params)
    parts = urlsplit(shown)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"GET {shown}: only http:// and https:// URLs can be fetched")

    request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    limits = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
    deadline_seconds = total_timeout if total_timeout is not None else 4 * timeout
    attempts = max(0, retries) + 1
    own_client = client is None
    http = client or httpx.Client(follow_redirects=True)
    try:
        for attempt in range(attempts):
            if limiter is not None:
                limiter.wait(parts.hostname, min_interval)
            try:
                return _attempt(http, url, params, request_headers, limits, max_bytes, deadline_seconds, shown, now)
            except _Retryable as failure:
                if attempt == attempts - 1:
                    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
                    error = NetworkUnavailable if failure.unreachable else SourceError
                    raise error(f"GET {shown}: {failure.reason} (gave up after {tries})") from None
                wait = failure.retry_after if failure.retry_after is not None else backoff * 2**attempt
                sleep(min(max(wait, 0.0), max_wait))
    finally:
        if own_client:
            http.close()
    raise AssertionError("unreachable")  # pragma: no cover


def display_url(url: str, params: Mapping[str, str | int | float] | None = None) -> str:
    """The URL a GET of ``url`` with ``params`` requests, as error messages show it."""
    try:
        full = httpx.URL(url)
        return str(full.copy_merge_params(params) if params else full)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise SourceError(f"GET {url}: not a valid URL") from None


def _attempt(
    http: httpx.Client,
    url: str,
    params: Mapping[str, str | int | float] | None,
    headers: dict[str, str],
    limits: httpx.Timeout,
    max_bytes: int,
    deadline_seconds: float,
    shown: str,
    now: Callable[[], datetime] | None,
) -> bytes:
    started = time.monotonic()
    try:
        with http.stream(
            "GET", url, params=params, headers=headers, timeout=limits, follow_redirects=True
        ) as response:
            status = response.status_code
            if status == 429 or 500 <= status <= 599:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
                raise _Retryable(f"HTTP {status} {response.reason_phrase}".rstrip(), retry_after)
            if not 200 <= status <= 299:
                raise SourceError(f"GET {shown}: HTTP {status} {response.reason_phrase}".rstrip())
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > max_bytes:
                raise SourceError(
                    f"GET {shown}: response is {int(declared):,} bytes, over the limit of {max_bytes:,} bytes",
                    hint="raise the source's max_bytes option if this size is expected",
                )
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise SourceError(
                        f"GET {shown}: response exceeded the limit of {max_bytes:,} bytes; download aborted",
                        hint="raise the source's max_bytes option if this size is expected",
                    )
                if time.monotonic() - started > deadline_seconds:
                    raise _Retryable(f"download took longer than {deadline_seconds:g} s")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        what = {
            httpx.ConnectTimeout: f"could not connect within {limits.connect:g} s",
            httpx.ReadTimeout: f"no data for {limits.read:g} s (read timeout)",
            httpx.WriteTimeout: "timed out sending the request",
            httpx.PoolTimeout: "timed out waiting for a free connection",
        }.get(type(exc), "timed out")
        raise _Retryable(what, unreachable=isinstance(exc, httpx.ConnectTimeout)) from None
    except httpx.ConnectError as exc:
        if _name_not_resolved(exc):  # no DNS (an offline machine): trying again cannot help
            raise NetworkUnavailable(f"GET {shown}: cannot connect: {_reason(exc)}") from None
        raise _Retryable(f"cannot connect: {_reason(exc)}", unreachable=True) from None
    except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
        raise _Retryable(f"connection broken: {_reason(exc)}") from None
    except httpx.TooManyRedirects:
        raise SourceError(f"GET {shown}: too many redirects") from None
    except httpx.DecodingError:
        raise SourceError(f"GET {shown}: the response's compressed body could not be decoded") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise SourceError(f"GET {shown}: redirected to a URL that cannot be fetched") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"GET {shown}: {type(exc).__name__}: {_reason(exc)}") from None


def _name_not_resolved(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return "name or service not known" in text or "name resolution" in text or "nodename nor servname" in text


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad.

    >>> parse_retry_after("120")
    120.0
    >>> then = datetime(2015, 10, 21, 7, 27, tzinfo=timezone.utc)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: then)
    60.0
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # reject negatives and NaN
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now() if now is not None else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def http_url(value: object) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None (drops ``javascript:``, ``data:``, relative...)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return text


def check_http_url(value: str) -> str:
    """Pydantic validator for URL options: an absolute http(s) URL."""
    if http_url(value) is None:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value.strip()


class RateLimiter:
    """At least ``min_interval`` seconds between the starts of two requests to the same host.

    Thread-safe: each caller reserves the next free slot for its host, then sleeps outside the lock, so
    hosts do not wait on each other. ``clock`` (monotonic seconds) and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        min_interval: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # host -> earliest start of its next request
        self._lock = threading.Lock()

    def wait(self, host: str, min_interval: float | None = None) -> float:
        """Block until a request to ``host`` may start; returns the seconds waited."""
        interval = self.min_interval if min_interval is None else min_interval
        key = host.lower()
        with self._lock:
            current = self._clock()
            slot = max(current, self._next.get(key, current))
            self._next[key] = slot + interval
        delay = slot - current
        if delay > 0:
            self._sleep(delay)
        return delay


class HttpSource:
    """What every source that reads over HTTP keeps: its name, its options and the injectable parts (an
    ``httpx.Client`` for connection reuse, ``sleep`` for the backoff, ``today`` for the trending day)."""

    def __init__(self, name: str, options: Any, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, today: date | None = None) -> None:
        self.name = name
        self.options = options
        self.client = client
        self.sleep = sleep
        self.today = today

    def get(self, url: str, params: Mapping[str, str | int | float] | None = None, *, accept: str,
            **extra: Any) -> bytes:
        """``get`` with this source's ``timeout``, ``max_bytes`` and ``retries`` options and injected parts."""
        opts = self.options
        return get(url, params=params, timeout=opts.timeout, max_bytes=opts.max_bytes, retries=opts.retries,
                   headers={"Accept": accept}, client=self.client, sleep=self.sleep, **extra)
