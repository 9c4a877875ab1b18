"""The shared HTTP helper against a real local server: retries, Retry-After, caps, timeouts, rate limiting."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from werkzeug import Response

from newsletter.errors import SourceError
from newsletter.sources import http
from newsletter.sources.http import RateLimiter, get, http_url, parse_retry_after


def test_returns_the_body_and_names_the_project(httpserver, sleeps):
    httpserver.expect_request("/hello", query_string={"a": "1", "b": "x y"}).respond_with_data("hi there")

    body = get(httpserver.url_for("/hello"), params={"a": 1, "b": "x y"}, sleep=sleeps)

    assert body == b"hi there"
    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"] == http.USER_AGENT
    assert "trending-papers-newsletter" in http.USER_AGENT
    assert sleeps.waits == []


def test_429_with_retry_after_seconds_waits_as_told_then_succeeds(httpserver, sleeps):
    httpserver.expect_oneshot_request("/busy").respond_with_data("slow down", status=429, headers={"Retry-After": "7"})
    httpserver.expect_oneshot_request("/busy").respond_with_data("[]")

    body = get(httpserver.url_for("/busy"), retries=3, backoff=1.0, sleep=sleeps)

    assert body == b"[]"
    assert sleeps.waits == [7.0]  # the server's wait, not the 1 s backoff
    assert len(httpserver.log) == 2


def test_retry_after_http_date_is_honoured_and_capped(httpserver, sleeps):
    now = datetime(2025, 3, 14, 12, 0, 0, tzinfo=timezone.utc)
    soon = (now + timedelta(seconds=45)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    late = (now + timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    httpserver.expect_oneshot_request("/d").respond_with_data("", status=503, headers={"Retry-After": soon})
    httpserver.expect_oneshot_request("/d").respond_with_data("", status=429, headers={"Retry-After": late})
    httpserver.expect_oneshot_request("/d").respond_with_data("ok")

    body = get(httpserver.url_for("/d"), retries=2, max_wait=120, deadline=300, sleep=sleeps, now=lambda: now)

    assert body == b"ok"
    assert sleeps.waits == [45.0, 120.0]  # two hours asked, capped at max_wait


def test_repeated_500_gives_source_error_after_the_retries(httpserver, sleeps):
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    url = httpserver.url_for("/broken")

    with pytest.raises(SourceError) as caught:
        get(url, retries=2, backoff=0.5, sleep=sleeps)

    message = str(caught.value)
    assert url in message and "HTTP 500" in message and "3 attempts" in message
    assert "\n" not in message
    assert sleeps.waits == [0.5, 1.0]  # exponential backoff
    assert len(httpserver.log) == 3


def test_backoff_never_exceeds_max_wait(httpserver, sleeps):
    httpserver.expect_request("/down").respond_with_data("", status=502)

    with pytest.raises(SourceError):
        get(httpserver.url_for("/down"), retries=3, backoff=10, max_wait=15, sleep=sleeps)

    assert sleeps.waits == [10, 15, 15]


def test_client_errors_are_not_retried(httpserver, sleeps):
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)

    with pytest.raises(SourceError, match=r"HTTP 404 NOT FOUND") as caught:
        get(httpserver.url_for("/missing"), retries=3, sleep=sleeps)

    assert httpserver.url_for("/missing") in str(caught.value)
    assert sleeps.waits == []
    assert len(httpserver.log) == 1


def test_declared_size_over_the_cap_is_refused(httpserver, sleeps):
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)

    with pytest.raises(SourceError, match=r"5,000 bytes, over the limit of 1,000 bytes"):
        get(httpserver.url_for("/big"), max_bytes=1000, sleep=sleeps)
    assert sleeps.waits == []  # a too-large answer is not retried


def test_streamed_body_over_the_cap_is_aborted(httpserver, sleeps):
    sent = []

    def endless(_request):
        def chunks():
            for _ in range(10_000):  # 10 MB if read to the end
                sent.append(1)
                yield b"y" * 1024

        return Response(chunks(), content_type="application/json")  # no Content-Length

    httpserver.expect_request("/stream").respond_with_handler(endless)

    with pytest.raises(SourceError, match=r"exceeded the limit of 8,192 bytes; download aborted"):
        get(httpserver.url_for("/stream"), max_bytes=8192, sleep=sleeps)
    assert sleeps.waits == []


def test_a_slow_server_times_out_into_source_error(httpserver, sleeps):
    def slow(_request):
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)

    # The behaviour, not a duration: the read timeout fired (the server would answer after 1 s), on each of
    # the two attempts, with one backoff between them.
    with pytest.raises(SourceError, match=r"read timeout.*gave up after 2 attempts") as caught:
        get(httpserver.url_for("/slow"), timeout=0.2, retries=1, backoff=0.25, sleep=sleeps)

    assert httpserver.url_for("/slow") in str(caught.value)
    assert sleeps.waits == [0.25]  # one backoff between the two attempts, on the injected sleep


def _dripping(httpserver, path="/drip"):
    def drip(_request):
        def chunks():
            for _ in range(40):
                time.sleep(0.1)
                yield b"z"

        return Response(chunks())

    httpserver.expect_request(path).respond_with_handler(drip)


def test_a_dripping_download_is_stopped_by_the_deadline(httpserver, sleeps):
    _dripping(httpserver)

    with pytest.raises(SourceError, match=r"gave up: the source's deadline of 0.3 s passed"):
        get(httpserver.url_for("/drip"), timeout=2, deadline=0.3, retries=0, sleep=sleeps)


def test_one_deadline_covers_every_retry(httpserver, sleeps):
    # Each attempt used to get its own 4 x timeout: four attempts at a trickle cost four times that.
    _dripping(httpserver, "/trickle")

    with pytest.raises(SourceError, match=r"deadline of 0.5 s passed"):
        get(httpserver.url_for("/trickle"), timeout=2, deadline=0.5, retries=3, sleep=sleeps)

    asked = [r for r, _ in httpserver.log if r.path == "/trickle"]
    assert len(asked) == 1 and sleeps.waits == []  # no retry once the deadline is spent


def test_a_wait_past_the_deadline_gives_up_at_once(httpserver, sleeps):
    httpserver.expect_request("/later").respond_with_data("", status=503, headers={"Retry-After": "90"})

    with pytest.raises(SourceError, match=r"HTTP 503 .*gave up after 1 attempt: another try would pass the "
                                          r"deadline of 60 s"):
        get(httpserver.url_for("/later"), retries=3, max_wait=120, sleep=sleeps)
    assert sleeps.waits == [] and [r.path for r, _ in httpserver.log].count("/later") == 1


def test_requests_of_one_source_fetch_share_its_deadline(httpserver, sleeps):
    from newsletter.sources.http import HttpSource
    from newsletter.sources.rss import Options

    class TwoRequests(HttpSource):
        def read(self, day):
            self.get(httpserver.url_for("/drip"), accept="*/*")
            return self.get(httpserver.url_for("/drip2"), accept="*/*")

    _dripping(httpserver)
    _dripping(httpserver, "/drip2")
    opts = Options(url=httpserver.url_for("/drip"), deadline=5.5, timeout=3, retries=0)

    with pytest.raises(SourceError, match=r"/drip2: gave up: the source's deadline of 5.5 s passed"):
        TwoRequests("two", opts, sleep=sleeps).fetch()  # each body takes ~4 s: the second runs out


def test_a_4xx_shows_the_apis_own_error_text(httpserver, sleeps):
    httpserver.expect_request("/api").respond_with_json({"error": "Date cannot be in the future"}, status=400)

    with pytest.raises(SourceError, match=r"HTTP 400 BAD REQUEST: Date cannot be in the future$"):
        get(httpserver.url_for("/api"), sleep=sleeps)


def test_connection_refused_is_retried_then_reported(sleeps):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(SourceError, match=r"cannot connect.*gave up after 3 attempts"):
        get(f"http://127.0.0.1:{port}/x", retries=2, backoff=2, sleep=sleeps)
    assert sleeps.waits == [2, 4]


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "file:///etc/passwd", "not a url", "/relative"])
def test_only_http_urls_are_fetched(url, sleeps):
    with pytest.raises(SourceError):
        get(url, sleep=sleeps)
    assert sleeps.waits == []


def test_parse_retry_after():
    now = datetime(2015, 10, 21, 7, 27, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3.5 ") == 3.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=lambda: now) == 0.0  # already past
    for bad in (None, "", "-5", "soon", "nan"):
        assert parse_retry_after(bad) is None


def test_http_url_keeps_only_absolute_http_links():
    assert http_url("https://github.com/thu-ml/SageAttention") == "https://github.com/thu-ml/SageAttention"
    assert http_url("  http://example.org/a  ") == "http://example.org/a"
    for bad in ("javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "//example.org/x", "/papers/1",
                "https://", "https://exa mple.org", "mailto:a@b.c", None, 42):
        assert http_url(bad) is None, bad


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_requests_per_host(sleeps):
    clock = FakeClock()
    limiter = RateLimiter(3.0, clock=clock, sleep=sleeps)

    assert limiter.wait("export.arxiv.org") == 0
    assert limiter.wait("export.arxiv.org") == 3.0  # immediately after: a full interval
    assert limiter.wait("huggingface.co") == 0  # other hosts are not held up
    clock.now += 10  # the reserved slot (t=1003) plus an interval has passed
    assert limiter.wait("EXPORT.arxiv.org") == 0
    clock.now += 1
    assert limiter.wait("export.arxiv.org", min_interval=5.0) == 2.0
    assert sleeps.waits == [3.0, 2.0]


def test_retries_also_respect_the_rate_limiter(httpserver, sleeps):
    limiter_sleeps: list[float] = []
    limiter = RateLimiter(clock=FakeClock(), sleep=limiter_sleeps.append)
    httpserver.expect_oneshot_request("/q").respond_with_data("", status=503)
    httpserver.expect_oneshot_request("/q").respond_with_data("done")

    body = get(httpserver.url_for("/q"), retries=1, backoff=0.1, sleep=sleeps, limiter=limiter, min_interval=3.0)

    assert body == b"done"
    assert sleeps.waits == [0.1]
    assert limiter_sleeps == [3.0]  # the retry still waited for its slot


def test_redirects_are_followed_and_params_merged(httpserver, sleeps):
    httpserver.expect_request("/old").respond_with_data("", status=302, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data("moved here")

    assert get(httpserver.url_for("/old"), sleep=sleeps) == b"moved here"
    assert http.display_url("http://h.example/q?a=1", {"b": "x y"}) == "http://h.example/q?a=1&b=x+y"
