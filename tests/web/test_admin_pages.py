"""The operator pages under /admin, in-process on a real database: off (404) without admin.password_hash; the
argon2 login, rate-limited per IP in the database's buckets; the signed session cookie (HttpOnly,
SameSite=Strict, Secure on https); CSRF tokens bound to the session on every POST; logout ending the session;
no-store on every answer; editions with pause, resume and cancel; the report with its plot; the reader search
with keyset pages. The same in Chromium: tests/web/test_admin_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from web_support import Clock, add_sent_edition, make_settings

from newsletter import config
from newsletter.cli import main
from newsletter.store import Store
from newsletter.store.control import edition_states
from newsletter.web import create_app
from newsletter.web.admin_auth import check_password, hash_password

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)
ADMIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Admin:
    def __init__(self, tmp_path: Path, db_url: str | None = None, *, password_hash: str | None = HASH,
                 site_url: str = "http://127.0.0.1:8000", **admin: Any) -> None:
        settings = make_settings(tmp_path, db_url, site_url=site_url)
        self.settings = settings.model_copy(update={"admin": config.Admin(password_hash=password_hash, **admin)})
        self.store = Store.open(self.settings.resolved_database_url)
        self.clock = Clock()
        self.app = create_app(self.settings, self.store, production=False, environ={}, clock=self.clock,
                              monotonic=self.clock.monotonic)
        self.base = "https://127.0.0.1:8000" if site_url.startswith("https") else "http://127.0.0.1:8000"
        self.clients: list[TestClient] = []

    def client(self, ip: str = "198.51.100.7") -> TestClient:
        c = TestClient(self.app, base_url=self.base, client=(ip, 50000), follow_redirects=False)
        self.clients.append(c)
        return c

    def login(self, client: TestClient, password: str = PASSWORD) -> Any:
        page = client.get("/admin/login")
        token = ADMIN_CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        return client.post("/admin/login", data={"csrf_token": token, "password": password})

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.store.close()


@pytest.fixture
def admin(tmp_path: Path) -> Any:
    a = Admin(tmp_path, login_attempts=5, login_window_minutes=15)
    yield a
    a.close()


def csrf(html: str) -> str:
    return ADMIN_CSRF.findall(html)[-1]


def test_everything_under_admin_is_404_when_not_configured(tmp_path: Path) -> None:
    off = Admin(tmp_path, password_hash=None)
    try:
        c = off.client()
        for path in ("/admin", "/admin/login", "/admin/readers", "/admin/editions/1", "/admin/anything"):
            r = c.get(path)
            assert r.status_code == 404 and r.headers["cache-control"] == "no-store", path
        for path in ("/admin/login", "/admin/logout", "/admin/editions/1/pause"):
            assert c.post(path, data={"password": PASSWORD}).status_code == 404, path
    finally:
        off.close()


def test_login_session_cookie_and_logout(admin: Admin) -> None:
    c = admin.client()
    r = c.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "http://127.0.0.1:8000/admin/login"
    assert r.headers["cache-control"] == "no-store"
    wrong = admin.login(c, "not the password")
    assert wrong.status_code == 401 and "not right" in wrong.text and "nl_admin" not in c.cookies
    no_csrf = c.post("/admin/login", data={"password": PASSWORD})
    assert no_csrf.status_code == 403 and "nl_admin" not in c.cookies
    ok = admin.login(c)
    assert ok.status_code == 303 and ok.headers["location"] == "http://127.0.0.1:8000/admin"
    cookie = next(v for k, v in ok.headers.multi_items() if k == "set-cookie" and v.startswith("nl_admin="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert "Secure" not in cookie  # site_url is http here
    page = c.get("/admin")
    assert page.status_code == 200 and "Editions" in page.text and page.headers["cache-control"] == "no-store"
    assert c.get("/admin/login").status_code == 303  # logged in already

    stolen = c.cookies["nl_admin"]
    bye = c.post("/admin/logout", data={"csrf_token": csrf(page.text)})
    assert bye.status_code == 303 and bye.headers["location"].endswith("/admin/login")
    assert c.get("/admin").status_code == 303
    replay = admin.client("203.0.113.9")
    replay.cookies.set("nl_admin", stolen)
    assert replay.get("/admin").status_code == 303  # the session ended on the server too, not only the cookie
    admin.clock.advance(seconds=1)
    assert admin.login(c).status_code == 303 and c.get("/admin").status_code == 200  # a new session works


def test_a_forged_or_expired_session_is_refused(admin: Admin) -> None:
    c = admin.client()
    assert admin.login(c).status_code == 303
    good = c.cookies["nl_admin"]
    issued, nonce, mac = good.split(".")
    forged = admin.client("203.0.113.10")
    for value in (f"{int(issued) + 1}.{nonce}.{mac}", f"{issued}.{nonce}x.{mac}", "garbage", "1.2.3", ""):
        forged.cookies.set("nl_admin", value)
        assert forged.get("/admin").status_code == 303, value
    admin.clock.advance(hours=admin.settings.admin.session_hours, seconds=1)
    assert c.get("/admin").status_code == 303


def test_https_cookies_are_secure_and_host_prefixed(tmp_path: Path) -> None:
    a = Admin(tmp_path, site_url="https://papers.example.org")
    try:
        c = a.client()
        ok = a.login(c)
        assert ok.status_code == 303
        cookie = next(v for k, v in ok.headers.multi_items() if k == "set-cookie" and "nl_admin=" in v)
        assert cookie.startswith("__Host-nl_admin=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
    finally:
        a.close()


def test_login_is_rate_limited_per_ip_in_the_database(tmp_path: Path, db_url: str) -> None:
    admin = Admin(tmp_path, db_url, login_attempts=5, login_window_minutes=15)
    try:
        _rate_limited(admin)
    finally:
        admin.close()


def _rate_limited(admin: Admin) -> None:
    c = admin.client()
    for _ in range(5):
        assert admin.login(c, "wrong password!").status_code == 401
    limited = admin.login(c)  # even the right password: the bucket is empty
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.headers["cache-control"] == "no-store" and "nl_admin" not in c.cookies
    # Kept in the database: a second app on the same database (another worker) sees the same bucket.
    other = create_app(admin.settings, admin.store, production=False, environ={}, clock=admin.clock,
                       monotonic=admin.clock.monotonic)
    with TestClient(other, base_url=admin.base, client=("198.51.100.7", 1), follow_redirects=False) as c2:
        assert admin.login(c2).status_code == 429
    assert admin.login(admin.client("203.0.113.20")).status_code == 303  # another address is not held back
    admin.clock.advance(minutes=3.5)  # 5 attempts per 15 minutes: one back every 3
    assert admin.login(c).status_code == 303


def test_editions_pause_resume_cancel_with_csrf(admin: Admin) -> None:
    eid = add_sent_edition(admin.store, admin.settings, ("a@example.org", "b@example.org", "c@example.net"), sent=1)
    c = admin.client()
    admin.login(c)
    page = c.get("/admin")
    assert f'/admin/editions/{eid}/pause' in page.text and "active" in page.text
    token = csrf(page.text)
    assert c.post(f"/admin/editions/{eid}/pause", data={}).status_code == 403
    assert c.post(f"/admin/editions/{eid}/pause", data={"csrf_token": "0" * 64}).status_code == 403
    other = admin.client("203.0.113.30")
    admin.login(other)
    assert other.post(f"/admin/editions/{eid}/pause", data={"csrf_token": token}).status_code == 403  # not its session
    assert edition_states(admin.store.engine)[0].state == "active"

    r = c.post(f"/admin/editions/{eid}/pause", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["cache-control"] == "no-store"
    assert edition_states(admin.store.engine)[0].state == "paused"
    page = c.get(r.headers["location"].replace("http://127.0.0.1:8000", ""))
    assert f"Edition {eid} is now paused" in page.text and f"/admin/editions/{eid}/resume" in page.text
    assert c.post(f"/admin/editions/{eid}/resume", data={"csrf_token": token}).status_code == 303
    assert c.post(f"/admin/editions/{eid}/cancel", data={"csrf_token": token}).status_code == 303
    state = edition_states(admin.store.engine)[0]
    assert state.state == "cancelled" and state.deliveries == {"sent": 1, "cancelled": 2}
    refused = c.post(f"/admin/editions/{eid}/resume", data={"csrf_token": token})
    assert refused.status_code == 409 and "cannot be resumed" in refused.text
    assert c.post("/admin/editions/999/pause", data={"csrf_token": token}).status_code == 404
    assert c.post(f"/admin/editions/{eid}/explode", data={"csrf_token": token}).status_code == 404


def test_the_report_page_with_its_plot(admin: Admin) -> None:
    emails = tuple(f"r{i}@example.org" for i in range(5)) + ("z@slow.example.net",) + tuple(
        f"r{i}@example.org" for i in range(5, 8))
    # SMTP times: example.org 10, 20, 30, 40, 50 ms (median 30, p95 48); slow.example.net 900 ms.
    eid = add_sent_edition(admin.store, admin.settings, emails, sent=6, failed=1,
                           smtp_ms=lambda i, email: 900 if "slow" in email else 10 * (i + 1))
    c = admin.client()
    admin.login(c)
    r = c.get(f"/admin/editions/{eid}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    text = " ".join(re.sub(r"<[^>]+>", " ", r.text).split())
    for figure in ("Readers 9", "Sent 6", "Failed 1", "Waiting 2", "Bounced 0", "Complaints 0",
                   "Unsubscribed in 7 days 0", "Time to send 2 min 30 s"):
        assert figure in text, figure
    assert "<svg" in r.text and r.text.count('class="bar"') >= 1 and "example.org" in text
    assert "Fast KV caches" in text
    slowest = r.text[r.text.index('id="slowest"'):]
    rows = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr[^>]*><td>.*?</tr>", slowest)]
    assert rows[:2] == ["slow.example.net 1 1 0 0 0 1 900 ms 900 ms", "example.org 8 5 1 0 0 5 30 ms 48 ms"], rows
    assert "<title>slow.example.net: p95 900 ms, median 900 ms, 1 timed</title>" in slowest
    assert "<script" not in r.text and "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")
    assert c.get("/admin/editions/999").status_code == 404


def test_the_reader_search_pages_by_keyset(tmp_path: Path, db_url: str) -> None:
    admin = Admin(tmp_path, db_url)
    try:
        _reader_search(admin)
    finally:
        admin.close()


def _reader_search(admin: Admin) -> None:
    admin.store.add_subscribers([{"email": f"reader{i:03d}@example.org", "cadence": "daily"} for i in range(120)]
                                + [{"email": "odd_one%@other.example.net", "cadence": "weekly"}])
    admin.store.add_subscriber("gone@example.org")
    from newsletter.store.subscriptions import RequestMeta, unsubscribe

    unsubscribe(admin.store, admin.store.subscriber("gone@example.org").id, RequestMeta())
    c = admin.client()
    admin.login(c)
    first = c.get("/admin/readers", params={"q": "READER", "status": "active"})
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert first.text.count("@example.org</td>") == 50 and "reader000@" in first.text and "reader049@" in first.text
    nxt = re.search(r'href="([^"]*after=\d+)"', first.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = c.get(nxt)
    assert "reader050@" in second.text and "reader049@" not in second.text
    nxt = re.search(r'href="([^"]*after=\d+)"', second.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    third = c.get(nxt)
    assert third.text.count("@example.org</td>") == 20 and "Next page" not in third.text
    # % and _ are matched as themselves, not as wildcards.
    odd = c.get("/admin/readers", params={"q": "_one%"})
    assert odd.text.count("</td><td><span class=\"status") == 1 and "odd_one%@other.example.net" in odd.text
    gone = c.get("/admin/readers", params={"status": "unsubscribed"})
    assert "gone@example.org" in gone.text and "reader000@" not in gone.text
    assert "No reader matches" in c.get("/admin/readers", params={"q": "nobody-here"}).text


def test_hash_password_command() -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["admin", "hash-password", "--stdin"], input=PASSWORD + "\n")
    assert out.exit_code == 0, out.output
    made = out.output.strip().splitlines()[0]
    assert made.startswith("$argon2id$") and check_password(made, PASSWORD) and not check_password(made, "nope")
    assert config.Admin(password_hash=made).password_hash == made
    short = runner.invoke(main, ["admin", "hash-password", "--stdin"], input="short\n")
    assert short.exit_code == 1 and "too short" in short.output
    with pytest.raises(Exception, match="argon2"):
        config.Admin(password_hash="plain-text-password")


def test_a_new_password_ends_every_session(tmp_path: Path) -> None:
    first = Admin(tmp_path)
    try:
        c = first.client()
        assert first.login(c).status_code == 303
        cookie = c.cookies["nl_admin"]
    finally:
        first.close()
    second = Admin(tmp_path, password_hash=hash_password("another long password"))  # same database and key
    try:
        c = second.client()
        c.cookies.set("nl_admin", cookie)
        assert c.get("/admin").status_code == 303
        assert second.login(c).status_code == 401 and second.login(c, "another long password").status_code == 303
    finally:
        second.close()
