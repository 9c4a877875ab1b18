"""Web hardening against a real uvicorn server on 127.0.0.1 in a process of its own: request bodies capped before
they are read (declared and chunked, forms, the API and the webhooks alike, without the server's memory
growing), the Host header never trusted, and redirects built from site_url."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from support import wait_listening
from web_support import free_port, make_settings

LIMIT = 65536
SERVE = """
import sys, uvicorn
from newsletter.config import load
from newsletter.web import create_app
uvicorn.run(create_app(load(sys.argv[1], {}), production=False, environ={}), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning")
"""


class Server:
    """``newsletter``'s web app under uvicorn in a child process (so its memory can be read)."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(config), str(self.port)])
        try:
            wait_listening(self.proc, self.port, 30, "the web server did not start")
        except RuntimeError:
            self.stop()
            raise

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hardening")
    make_settings(tmp, webhooks={"ses_topic_arns": ["arn:aws:sns:us-east-1:123456789012:bounces"]})
    running = Server(tmp / "config.yaml")
    yield running
    running.stop()


def chunked_post(url: str, path: str, content_type: str, total: int, chunk: int = 65536) -> tuple[int, bytes, int]:
    """POST ``total`` bytes with Transfer-Encoding: chunked (no Content-Length) over a raw socket; stops sending
    as soon as the server answers. Returns (status, response bytes, bytes sent)."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    block = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    sent = 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            sock.sendall(block)
            sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or len(answer) < 200:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    return int(answer.split(b" ", 2)[1]), answer, sent


ROUTES = [("/api/subscriptions", "application/json"), ("/subscribe", "application/x-www-form-urlencoded"),
          ("/unsubscribe?token=x", "application/x-www-form-urlencoded"), ("/webhooks/postmark", "application/json"),
          ("/webhooks/sendgrid", "application/json"), ("/webhooks/ses", "text/plain"),
          ("/api/confirm", "application/json")]
# Routes that read their body (the postmark and sendgrid webhooks are off here and answer 404 unread).
READING = [r for r in ROUTES if r[0] not in ("/webhooks/postmark", "/webhooks/sendgrid")]


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(server: Server, path: str,
                                                                     content_type: str) -> None:
    body = b'{"email": "' + b"a" * (LIMIT + 10) + b'"}'
    response = httpx.post(server.url + path, content=body, headers={"content-type": content_type}, timeout=30)
    assert response.status_code == 413
    if path.startswith("/api/") or path.startswith("/webhooks/"):
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]
        assert response.json()["error"] == "request_too_large"
    else:
        assert "Request too large" in response.text and "64 KB" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"  # the security headers are on it too


def test_a_body_under_the_limit_still_works(server: Server) -> None:
    response = httpx.post(server.url + "/api/subscriptions", json={"email": "ada@example.org", "website": "x" * 100})
    assert response.status_code == 202


@pytest.mark.parametrize(("path", "content_type"), READING)
def test_a_chunked_body_over_the_limit_is_cut_off_while_it_streams(server: Server, path: str,
                                                                   content_type: str) -> None:
    status, answer, sent = chunked_post(server.url, path, content_type, total=20 * 1024 * 1024)
    assert status == 413, answer[:300]
    assert sent < 20 * 1024 * 1024  # the server answered long before the 20 MB were sent


def test_the_server_does_not_grow_with_huge_uploads(server: Server) -> None:
    """300 MB offered, declared and chunked: the server's resident memory stays where it was."""
    chunked_post(server.url, "/api/subscriptions", "application/json", total=1024 * 1024)  # warm up
    before = server.rss_kb()
    for _ in range(3):
        chunked_post(server.url, "/api/subscriptions", "application/json", total=100 * 1024 * 1024)
        port = server.port
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"POST /api/subscriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {300 * 1024 * 1024}\r\n\r\n".encode() + b"[" * 65536)
            assert sock.recv(100).startswith(b"HTTP/1.1 413")
    after = server.rss_kb()
    print(f"server RSS {before} kB before, {after} kB after 3 uploads offering 100 MB chunked and 3 declaring 300 MB")
    assert after - before < 20 * 1024, f"RSS grew from {before} kB to {after} kB"


# --- the Host header ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/editions/", "/", "/api/topics", "/subscribe"])
def test_a_foreign_host_header_is_refused(server: Server, path: str) -> None:
    response = httpx.get(server.url + path, headers={"host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.text and "evil.example" not in response.headers.get("location", "")


def test_a_trailing_slash_redirect_goes_to_site_url(server: Server) -> None:
    response = httpx.get(server.url + "/editions/?page=2", headers={"host": "localhost:1"})
    assert response.status_code == 307
    assert response.headers["location"] == "http://127.0.0.1:8000/editions?page=2"  # site_url, not the Host


def test_trusted_hosts_are_a_setting(make_web) -> None:  # type: ignore[no-untyped-def]
    web = make_web(site_url="https://papers.example.org", web={"trusted_hosts": ["news.example.org"]})
    for host, status in [("papers.example.org", 200), ("news.example.org", 200), ("localhost:8000", 200),
                         ("evil.example", 400), ("papers.example.org.evil.example", 400), ("", 400)]:
        assert web.client().get("/api/topics", headers={"host": host}).status_code == status, host
    response = web.client().get("/editions/", headers={"host": "news.example.org"})
    assert response.headers["location"] == "https://papers.example.org/editions"
    anywhere = make_web(web={"trusted_hosts": ["*"]})
    assert anywhere.client().get("/api/topics", headers={"host": "evil.example"}).status_code == 200


# --- rate limits shared by every worker process -------------------------------------------------------------


def test_rate_limits_hold_across_two_server_processes(tmp_path: Path, db_url: str) -> None:
    """Two uvicorn processes on one database spend from the same buckets: alternating between them gets
    exactly the configured number through, not twice as many."""
    make_settings(tmp_path, web={"subscribe_per_ip": 6, "subscribe_per_address": 2}, database_url=db_url)
    first = Server(tmp_path / "config.yaml")
    try:
        second = Server(tmp_path / "config.yaml")
    except Exception:
        first.stop()
        raise
    try:
        servers = [first, second]
        statuses = []
        emails = ["ada@example.org"] * 4 + [f"reader{i}@example.org" for i in range(4)]
        for i, email in enumerate(emails):
            response = httpx.post(servers[i % 2].url + "/api/subscriptions", json={"email": email}, timeout=30)
            statuses.append(response.status_code)
        # ada: 2 per address (from both processes together); then the IP's 6 are spent after 2 more.
        assert statuses == [202, 202, 429, 429, 202, 202, 429, 429]
    finally:
        first.stop()
        second.stop()
