"""HTTP for every network source: one GET with timeouts, a byte cap, retries, and a per-host rate limiter.

``get(url)`` returns the response body or raises ``SourceError`` with a one-line message naming the URL:

* connect and read timeouts (a read timeout bounds the wait for each chunk), and one ``deadline`` for the
  whole fetch, retries and waits included, so a server dripping one byte at a time costs at most that;
* a byte cap checked against ``Content-Length`` and again while streaming (after decompression), so an
  oversized or endless body is aborted rather than buffered;
* retries with exponential backoff (``backoff * 2**attempt``) on HTTP 429, any 5xx, connection errors and
  timeouts, honouring ``Retry-After`` (seconds or an HTTP date), every wait capped at ``max_wait``;
* redirects followed hop by hop, each checked against the SSRF rules of ``netguard`` before it is asked;
* the upstream's own error text (a JSON ``error``) in the message of a 4xx answer;
* a User-Agent naming the project.

``sleep`` and ``now`` are parameters so tests can run against a real local server without waiting.
"""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from datetime import date, datetime, timezone
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import httpx

from ..errors import NetworkUnavailable, SourceError
from . import netguard

USER_AGENT = "trending-papers-newsletter/0.1 (self-hosted newsletter of trending ML papers; python-httpx)"

DEFAULT_TIMEOUT = 20.0  # seconds to wait for each read
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_RETRIES = 3  # retries after the first attempt
DEFAULT_BACKOFF = 1.0  # first wait; doubles on each retry
DEFAULT_MAX_WAIT = 60.0  # no single wait (backoff or Retry-After) is longer than this
DEFAULT_DEADLINE = 60.0  # a whole source fetch, retries and waits included, takes at most this

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
    deadline: float = DEFAULT_DEADLINE,
    started: float | None = None,
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
    response_headers: dict[str, str] | None = None,
) -> bytes:
    """GET ``url`` (with query ``params``) and return the body, or raise ``SourceError``.

    ``response_headers``, when given, receives the final response's ``content-type``.

    ``deadline`` bounds the whole call, retries and waits included, counted from ``started`` (a
    ``time.monotonic()`` reading; default: now), so a source that makes several requests can share one
    deadline. ``limiter`` (with ``min_interval`` seconds, else the limiter's own) spaces every attempt,
    retries included, from the previous request to the same host. ``client`` lets a caller share a
    connection pool; by default each call opens its own, whose connections go only to checked addresses
    (``netguard``). Redirects are followed here, hop by hop, each checked before it is requested.
    """
    shown = display_url(url, params)
    parts = urlsplit(shown)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"GET {shown}: only http:// and https:// URLs can be fetched")

    request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    fetch = _Fetch(shown, (started if started is not None else time.monotonic()) + deadline, deadline)
    attempts = max(0, retries) + 1
    guard = netguard.Guard()
    own_client = client is None
    http = client or netguard.guarded_client(guard)
    try:
        for attempt in range(attempts):
            if limiter is not None:
                limiter.wait(parts.hostname, min_interval)
            try:
                body, content_type = _attempt(http, guard, url, params, request_headers, timeout,
                                              connect_timeout, max_bytes, fetch, now)
                if response_headers is not None:
                    response_headers["content-type"] = content_type
                return body
            except _Retryable as failure:
                tries = f"{attempt + 1} attempts" if attempt else "1 attempt"
                error = NetworkUnavailable if failure.unreachable else SourceError
                if attempt == attempts - 1:
                    raise error(f"GET {shown}: {failure.reason} (gave up after {tries})") from None
                wait = failure.retry_after if failure.retry_after is not None else backoff * 2**attempt
                wait = min(max(wait, 0.0), max_wait)
                if wait >= fetch.remaining():
                    raise error(f"GET {shown}: {failure.reason} (gave up after {tries}: another try would "
                                f"pass the deadline of {deadline:g} s)") from None
                sleep(wait)
    finally:
        if own_client:
            http.close()
    raise AssertionError("unreachable")  # pragma: no cover


class _Fetch:
    """One call's URL as shown, and its deadline (a monotonic time) with the seconds it was set to."""

    def __init__(self, shown: str, deadline_at: float, seconds: float) -> None:
        self.shown, self.deadline_at, self.seconds = shown, deadline_at, seconds

    def remaining(self) -> float:
        return self.deadline_at - time.monotonic()

    def expired(self) -> SourceError:
        return SourceError(f"GET {self.shown}: gave up: the source's deadline of {self.seconds:g} s passed",
                           hint="raise the source's deadline option if this upstream is this slow")


def display_url(url: str, params: Mapping[str, str | int | float] | None = None) -> str:
    """The URL a GET of ``url`` with ``params`` requests, as error messages show it."""
    try:
        full = httpx.URL(url)
        return str(full.copy_merge_params(params) if params else full)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise SourceError(f"GET {url}: not a valid URL") from None


_REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


def _attempt(
    http: httpx.Client,
    guard: netguard.Guard,
    url: str,
    params: Mapping[str, str | int | float] | None,
    headers: dict[str, str],
    timeout: float,
    connect_timeout: float,
    max_bytes: int,
    fetch: _Fetch,
    now: Callable[[], datetime] | None,
) -> tuple[bytes, str]:
    shown = fetch.shown
    target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
    limits = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
    try:
        for hop in range(MAX_REDIRECTS + 1):
            remaining = fetch.remaining()
            if remaining <= 0:
                raise fetch.expired()
            # Every wait is cut to what is left of the deadline: no read can outlast it.
            limits = httpx.Timeout(min(timeout, remaining), connect=min(connect_timeout, timeout, remaining))
            try:
                guard.check(target, first=hop == 0)
            except netguard.DestinationRefused as exc:
                raise SourceError(f"GET {shown}: {exc}") from None
            with http.stream("GET", target, headers=headers, timeout=limits, follow_redirects=False) as response:
                status = response.status_code
                if status in _REDIRECTS and response.headers.get("Location"):
                    try:
                        target = target.join(response.headers["Location"])
                    except (httpx.InvalidURL, ValueError):
                        raise SourceError(f"GET {shown}: redirected to a URL that cannot be fetched") from None
                    if target.scheme not in ("http", "https"):
                        raise SourceError(f"GET {shown}: redirected to a URL that cannot be fetched")
                    continue
                return _body(response, shown, max_bytes, fetch, now), response.headers.get("content-type", "")
        raise SourceError(f"GET {shown}: too many redirects (more than {MAX_REDIRECTS})")
    except httpx.TimeoutException as exc:
        if fetch.remaining() <= 0:
            raise fetch.expired() from None
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
    except socket.gaierror as exc:  # raised by the guard's own lookup
        raise NetworkUnavailable(f"GET {shown}: cannot connect: cannot resolve {target.host} ({exc.strerror})") from None
    except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
        raise _Retryable(f"connection broken: {_reason(exc)}") from None
    except httpx.DecodingError:
        raise SourceError(f"GET {shown}: the response's compressed body could not be decoded") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise SourceError(f"GET {shown}: redirected to a URL that cannot be fetched") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"GET {shown}: {type(exc).__name__}: {_reason(exc)}") from None


def _body(response: httpx.Response, shown: str, max_bytes: int, fetch: _Fetch,
          now: Callable[[], datetime] | None) -> bytes:
    status = response.status_code
    if status == 429 or 500 <= status <= 599:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        raise _Retryable(f"HTTP {status} {response.reason_phrase}".rstrip(), retry_after)
    if not 200 <= status <= 299:
        detail = _error_text(response)
        raise SourceError(f"GET {shown}: HTTP {status} {response.reason_phrase}".rstrip() + (f": {detail}" if detail else ""))
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
        if fetch.remaining() <= 0:
            raise fetch.expired()
        chunks.append(chunk)
    return b"".join(chunks)


def _error_text(response: httpx.Response) -> str:
    """The upstream's own words for a refusal: a JSON ``error``/``message``, else a short plain text body."""
    try:
        raw = b""
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) > 4096:
                return ""
    except httpx.HTTPError:
        return ""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str) and data[key].strip():
                return " ".join(data[key].split())[:200]
        return ""
    if text and "<" not in text[:1]:  # not an HTML error page
        return " ".join(text.split())[:200]
    return ""


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
    ``httpx.Client`` for connection reuse, ``sleep`` for the backoff, ``today`` for the trending day).

    ``fetch`` starts the source's one deadline (its ``deadline`` option) and calls ``read``: every request
    of that fetch, pages and retries included, shares it.
    """

    def __init__(self, name: str, options: Any, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, today: date | None = None) -> None:
        self.name = name
        self.options = options
        self.client = client
        self.sleep = sleep
        self.today = today
        self.started: float | None = None

    def fetch(self, day: date | None = None) -> Any:
        with self.one_deadline():
            return self.read(day)

    @contextmanager
    def one_deadline(self) -> Iterator[None]:
        """Every fetch inside shares one deadline (a catch-up over several days is one source fetch)."""
        if self.started is not None:
            yield
            return
        self.started = time.monotonic()
        try:
            yield
        finally:
            self.started = None

    def read(self, day: date | None) -> Any:  # pragma: no cover - every source defines it
        raise NotImplementedError

    def get(self, url: str, params: Mapping[str, str | int | float] | None = None, *, accept: str,
            **extra: Any) -> bytes:
        """``get`` with this source's ``timeout``, ``deadline``, ``max_bytes`` and ``retries`` options."""
        opts = self.options
        return get(url, params=params, timeout=opts.timeout, max_bytes=opts.max_bytes, retries=opts.retries,
                   deadline=opts.deadline, started=self.started, headers={"Accept": accept},
                   client=self.client, sleep=self.sleep, **extra)


def deadline_field() -> Any:
    """The ``deadline`` option every HTTP source has."""
    from pydantic import Field

    return Field(DEFAULT_DEADLINE, gt=0, le=3600,
                 description="Seconds one fetch of this source may take in all, retries and waits included.")
