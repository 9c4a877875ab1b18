"""The security rules, each shown in-process: one answer for every bad token, CSRF on forms, RFC 8058 one-click
unsubscribe without cookies, GETs that change nothing, rate limits, the honeypot, no address enumeration, the
per-address confirmation window, and the security headers on every response."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from web_support import csrf_of, outbox

from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED
from newsletter.store.subscriptions import consents
from newsletter.tokens import Signer

EMAIL = "ada@example.org"
DAY = timedelta(days=1)


def bad_tokens(web: Any) -> dict[str, str]:
    """Every way a token can be wrong, for a reader who exists (id 1) unless it says otherwise."""
    reader = web.store.add_subscriber(EMAIL)
    gone = web.store.add_subscriber("gone@example.org")
    gone_token = {p: web.token(p, gone.id) for p in ("confirm", "preferences", "unsubscribe")}
    web.store.remove_subscriber("gone@example.org", forget=True)
    good = web.token("unsubscribe", reader.id)
    return {
        "missing": "",
        "garbage": "not-a-token",
        "non-ascii": "tökén",
        "huge": "A" * 5000,
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "other key": Signer(b"x" * 32).sign("unsubscribe", reader.id, web.clock.now),
        "expired confirm": web.token("confirm", reader.id, age=8 * DAY),
        "expired preferences": web.token("preferences", reader.id, age=91 * DAY),
        "expired unsubscribe": web.token("unsubscribe", reader.id, age=366 * DAY),
        "from the future": web.token("unsubscribe", reader.id, age=-DAY),
        "wrong purpose": web.token("confirm", reader.id),  # a confirm token is no unsubscribe/preferences token
        "reader gone confirm": gone_token["confirm"],
        "reader gone preferences": gone_token["preferences"],
        "reader gone unsubscribe": gone_token["unsubscribe"],
    }


def strip_volatile(html: str) -> str:
    """A page without its CSRF field and the freshly signed tokens of its links (they carry the time)."""
    html = re.sub(r'name="(csrf_token|token)" value="[^"]*"', "", html)
    return re.sub(r"token=[A-Za-z0-9_-]+", "token=", html)


def test_every_bad_token_gets_the_same_answer_on_every_page(web: Any) -> None:
    tokens = bad_tokens(web)
    client = web.client()
    csrf = csrf_of(client.get("/").text)
    answers = set()
    for name, token in tokens.items():
        if name == "wrong purpose":
            probes = [("GET", f"/preferences?token={token}", None), ("GET", f"/unsubscribe?token={token}", None),
                      ("POST", f"/unsubscribe?token={token}", {"List-Unsubscribe": "One-Click"})]
        else:
            probes = [("GET", f"/confirm?token={token}", None), ("GET", f"/preferences?token={token}", None),
                      ("GET", f"/unsubscribe?token={token}", None),
                      ("POST", f"/unsubscribe?token={token}", {"List-Unsubscribe": "One-Click"}),
                      ("POST", "/confirm", {"csrf_token": csrf, "token": token}),
                      ("POST", "/preferences", {"csrf_token": csrf, "token": token, "cadence": "daily"}),
                      ("POST", "/resubscribe", {"csrf_token": csrf, "token": token})]
        for method, url, data in probes:
            response = client.request(method, url, data=data)
            assert response.status_code == 400, (name, method, url)
            assert not token or token not in response.text, "a bad token is never echoed"
            answers.add(strip_volatile(response.text))
    assert len(answers) == 1, "bad tokens must be indistinguishable"
    answer = answers.pop()
    assert "invalid or has expired" in answer and 'action="/fresh-link"' in answer  # offers a fresh link
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE  # nothing changed on the way


def test_every_bad_token_gets_the_same_answer_from_the_api(web: Any) -> None:
    tokens = bad_tokens(web)
    client = web.client()
    answers = set()
    tokens.update({"not a string": 12345, "null": None, "a list": [tokens["garbage"]]})  # type: ignore[dict-item]
    for name, token in tokens.items():
        calls = [("POST", "/api/unsubscribe", {"token": token}), ("GET", f"/api/preferences?token={token}", None)]
        if name != "wrong purpose":
            calls += [("POST", "/api/confirm", {"token": token}), ("POST", "/api/resubscribe", {"token": token}),
                      ("PUT", "/api/preferences", {"token": token, "cadence": "daily"})]
        for method, url, body in calls:
            response = client.request(method, url, json=body)
            assert response.status_code == 400, (name, method, url, response.text)
            if isinstance(token, str) and token:
                assert token not in response.text, "a bad token is never echoed"
            answers.add(response.text)
        missing = client.request("POST", "/api/unsubscribe", json={})  # no token at all
        answers.add(missing.text)
    assert len(answers) == 1
    assert "invalid or has expired" in answers.pop()
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE


def test_unsubscribe_links_work_for_well_over_30_days(web: Any) -> None:
    reader = web.store.add_subscriber(EMAIL)
    token = web.token("unsubscribe", reader.id, age=45 * DAY)
    assert web.client().get(f"/unsubscribe?token={token}").status_code == 200
    response = web.client().post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED


# --- CSRF --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["no cookie, no field", "no field", "cookie from another browser", "wrong field",
                                  "field without cookie"])
def test_forms_refuse_a_missing_or_foreign_csrf_token(web: Any, case: str) -> None:
    reader = web.store.add_subscriber(EMAIL, status=SUBSCRIBER_UNSUBSCRIBED, topics=["vision"])
    victim, attacker = web.client(), web.client()
    victim_field = csrf_of(victim.get("/").text)
    attacker_field = csrf_of(attacker.get("/").text)
    prefs = web.token("preferences", reader.id)
    forms = {
        "/subscribe": {"email": "bob@example.org", "cadence": "daily", "topics": ["vision"]},
        "/preferences": {"token": prefs, "cadence": "weekly", "topics": ["vision"]},
        "/resubscribe": {"token": prefs},
        "/confirm": {"token": web.token("confirm", reader.id)},
    }
    for path, data in forms.items():
        if case == "no cookie, no field":
            client, field = web.client(), None
        elif case == "no field":
            client, field = victim, None
        elif case == "cookie from another browser":
            client, field = victim, attacker_field
        elif case == "wrong field":
            client, field = victim, victim_field[:-4] + "0000"
        else:
            client, field = web.client(), victim_field
        body = dict(data, **({"csrf_token": field} if field else {}))
        response = client.post(path, data=body)
        assert response.status_code == 403, (path, response.text[:200])
        assert "This form has expired" in response.text
    assert outbox(web.settings) == []
    after = web.store.subscriber(EMAIL)
    assert (after.status, after.cadence) == (SUBSCRIBER_UNSUBSCRIBED, "daily")
    assert len(web.store.subscribers()) == 1


def test_the_csrf_cookie_is_httponly_and_samesite(web: Any) -> None:
    response = web.client().get("/subscribe")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("nl_csrf=") and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie


def test_over_https_the_csrf_cookie_is_secure_and_host_only(make_web: Any) -> None:
    web = make_web(site_url="https://papers.example.org", signing_key="${KEY}")
    # signing_key is unset in the test environment: production=False is forced by the fixture
    cookie = web.client().get("/subscribe").headers["set-cookie"]
    assert cookie.startswith("__Host-nl_csrf=") and "Secure" in cookie and "Domain" not in cookie


# --- RFC 8058 one-click unsubscribe ----------------------------------------------------------------------------


def test_one_click_post_without_cookies_unsubscribes_at_once_and_repeats_harmlessly(web_db: Any) -> None:
    web = web_db
    reader = web.store.add_subscriber(EMAIL)
    url = f"{web.settings.site_url}/unsubscribe?token={web.token('unsubscribe', reader.id)}"
    answers = []
    for _ in range(3):
        mail_client = web.client(ip="192.0.2.25")  # a mailbox provider: no cookie, no CSRF token, no referrer
        response = mail_client.post(url, content=b"List-Unsubscribe=One-Click",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200 and "location" not in response.headers
        answers.append(strip_volatile(response.text))
        web.clock.advance(minutes=1)
    assert answers[0] == answers[1] == answers[2] and "You are unsubscribed" in answers[0]
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED
    withdrawals = [c for c in consents(web.store, reader.id) if c.action == "unsubscribe"]
    assert len(withdrawals) == 1 and withdrawals[0].ip == "192.0.2.25"  # unsubscribed once


def test_one_click_post_with_a_multipart_body_works_too(web: Any) -> None:
    reader = web.store.add_subscriber(EMAIL)
    response = web.client().post(f"/unsubscribe?token={web.token('unsubscribe', reader.id)}",
                                 files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200 and web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED


def test_gets_of_every_link_change_nothing(web: Any) -> None:
    reader = web.store.add_subscriber(EMAIL, status=SUBSCRIBER_PENDING)
    scanner = web.client(ip="192.0.2.99")
    for path in ("unsubscribe", "preferences", "confirm"):
        for _ in range(2):
            response = scanner.get(f"/{path}?token={web.token(path, reader.id)}")
            assert response.status_code in (200, 400) and response.headers["cache-control"] == "no-store"
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_PENDING
    assert consents(web.store, reader.id) == []
    assert scanner.head(f"/unsubscribe?token={web.token('unsubscribe', reader.id)}").status_code in (200, 405)
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_PENDING


# --- mail-bombing ---------------------------------------------------------------------------------------------


def post_subscribe(client: Any, email: str) -> Any:
    return client.post("/subscribe", data={"csrf_token": csrf_of(client.get("/").text), "email": email,
                                           "cadence": "daily", "topics": ["vision"]})


def test_rate_limit_per_ip(make_web: Any) -> None:
    web = make_web(web={"subscribe_per_ip": 3, "rate_window_minutes": 60})
    client = web.client(ip="203.0.113.1")
    for i in range(3):
        assert post_subscribe(client, f"r{i}@example.org").status_code == 200
    limited = post_subscribe(client, "r9@example.org")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Too many requests" in limited.text
    assert post_subscribe(web.client(ip="203.0.113.2"), "r9@example.org").status_code == 200  # another IP
    web.clock.advance(minutes=20)  # a third of the hour: one request's worth has come back
    assert post_subscribe(client, "r10@example.org").status_code == 200
    assert post_subscribe(client, "r11@example.org").status_code == 429
    assert len(outbox(web.settings)) == 5


def test_rate_limit_per_address_from_any_ip(make_web: Any) -> None:
    web = make_web(web={"subscribe_per_address": 2, "confirmation_window_minutes": 1})
    for i in range(2):
        assert post_subscribe(web.client(ip=f"203.0.113.{i}"), "victim@example.org").status_code == 200
        web.clock.advance(minutes=2)
    limited = post_subscribe(web.client(ip="203.0.113.50"), "Victim@Example.org")
    assert limited.status_code == 429
    assert post_subscribe(web.client(ip="203.0.113.50"), "other@example.org").status_code == 200


def test_one_confirmation_email_per_address_per_window_even_across_restarts(make_web: Any) -> None:
    web = make_web(web={"confirmation_window_minutes": 15})
    client = web.client()
    answers = {strip_volatile(post_subscribe(client, EMAIL).text) for _ in range(4)}
    assert len(answers) == 1 and len(outbox(web.settings)) == 1
    reader = web.store.subscriber(EMAIL)
    assert len(consents(web.store, reader.id)) == 1
    restarted = make_web(web={"confirmation_window_minutes": 15})  # a new process: the rule is in the database
    restarted.clock.now = web.clock.now + timedelta(minutes=14)
    post_subscribe(restarted.client(), EMAIL)
    assert len(outbox(web.settings)) == 1
    restarted.clock.advance(minutes=2)
    post_subscribe(restarted.client(), EMAIL)
    assert len(outbox(web.settings)) == 2


def test_the_honeypot_answers_like_a_success_and_does_nothing(web: Any) -> None:
    client = web.client()
    trapped = client.post("/subscribe", data={"csrf_token": csrf_of(client.get("/").text), "email": EMAIL,
                                              "topics": ["vision"], "website": "https://spam.example"})
    normal = post_subscribe(web.client(), "bob@example.org")
    assert trapped.status_code == normal.status_code == 200
    assert strip_volatile(trapped.text).replace(EMAIL, "X") == strip_volatile(normal.text).replace("bob@example.org", "X")
    assert [s.email for s in web.store.subscribers()] == ["bob@example.org"]
    assert len(outbox(web.settings)) == 1


@pytest.mark.parametrize("status", [SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED])
def test_the_same_answer_whether_or_not_the_address_is_subscribed(web: Any, status: str) -> None:
    web.store.add_subscriber("known@example.org", status=status)
    known = post_subscribe(web.client(), "known@example.org")
    new = post_subscribe(web.client(), "fresh@example.org")
    assert known.status_code == new.status_code == 200
    assert strip_volatile(known.text).replace("known@", "X@") == strip_volatile(new.text).replace("fresh@", "X@")
    assert {k.lower() for k in known.headers} == {k.lower() for k in new.headers}
    api_known = web.client().post("/api/subscriptions", json={"email": "known@example.org"})
    api_new = web.client().post("/api/subscriptions", json={"email": "fresh2@example.org"})
    assert api_known.status_code == api_new.status_code == 202 and api_known.json() == api_new.json()
    assert web.store.subscriber("known@example.org").status == status  # unchanged until the link is followed


# --- headers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/subscribe"), ("GET", "/editions"), ("GET", "/editions/1"), ("GET", "/feed.atom"),
    ("GET", "/feed.json"), ("GET", "/static/site.css"), ("GET", "/nope"), ("GET", "/unsubscribe?token=x"),
    ("POST", "/subscribe"), ("POST", "/unsubscribe?token=x"), ("GET", "/api/openapi.json"), ("GET", "/api/topics"),
    ("GET", "/api/editions/5"), ("POST", "/api/subscriptions"), ("DELETE", "/editions"),
])
def test_security_headers_on_every_response(web: Any, method: str, path: str) -> None:
    response = web.client().request(method, path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_security_headers_on_a_server_error(web: Any) -> None:
    from fastapi.testclient import TestClient

    web.app.state.web.store = None  # every page that reads the store now fails
    client = TestClient(web.app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    response = client.get("/editions")
    assert response.status_code == 500
    assert response.headers["content-security-policy"] and response.headers["x-content-type-options"] == "nosniff"
    assert "Traceback" not in response.text and "NoneType" not in response.text


def test_head_is_answered_and_405_names_every_allowed_method(web: Any) -> None:
    client = web.client()
    assert client.head("/editions").status_code == 200
    refused = client.delete("/unsubscribe")
    assert refused.status_code == 405
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    api = client.delete("/api/preferences")
    assert api.status_code == 405 and set(api.headers["allow"].split(", ")) == {"GET", "PUT"}
