"""The JSON API in-process: every operation, its errors, and its OpenAPI description."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import add_edition, link_in, outbox, token_of

from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED
from newsletter.store.subscriptions import consents

EMAIL = "ada@example.org"


def test_openapi_describes_every_operation_and_no_page(web: Any) -> None:
    spec = web.client().get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations == {
        ("POST", "/api/subscriptions"), ("POST", "/api/confirm"), ("GET", "/api/preferences"),
        ("PUT", "/api/preferences"), ("POST", "/api/unsubscribe"), ("POST", "/api/resubscribe"),
        ("GET", "/api/topics"), ("GET", "/api/editions"), ("GET", "/api/editions/{edition_id}"),
        # The operator API (tests/web/test_admin_api.py), described whether or not admin.api_token is set.
        ("GET", "/api/admin/editions"), ("POST", "/api/admin/editions/{edition_id}/pause"),
        ("POST", "/api/admin/editions/{edition_id}/resume"), ("POST", "/api/admin/editions/{edition_id}/cancel"),
        ("GET", "/api/admin/editions/{edition_id}/report"),
    }
    assert "400" in spec["paths"]["/api/unsubscribe"]["post"]["responses"]
    assert "429" in spec["paths"]["/api/subscriptions"]["post"]["responses"]
    assert web.client().get("/docs").status_code == 404  # no Swagger UI: it would load scripts from a CDN


def test_subscribe_confirm_change_unsubscribe_resubscribe(web_db: Any) -> None:
    web = web_db
    client = web.client()
    accepted = client.post("/api/subscriptions", json={"email": "Ada@Example.org", "cadence": "weekly",
                                                       "topics": ["vision", "3d"], "excluded_keywords": ["survey"]})
    assert accepted.status_code == 202 and accepted.json()["status"] == "check_email"
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_PENDING
    [mail] = outbox(web.settings)
    confirm = token_of(link_in(mail, "/confirm"))

    reader = client.post("/api/confirm", json={"token": confirm})
    assert reader.status_code == 200
    assert reader.json() == {"email": EMAIL, "status": "active", "cadence": "weekly", "topics": ["3d", "vision"],
                             "excluded_keywords": ["survey"]}

    sid = web.store.subscriber(EMAIL).id
    prefs = web.token("preferences", sid)
    assert client.get("/api/preferences", params={"token": prefs}).json()["topics"] == ["3d", "vision"]
    changed = client.put("/api/preferences", json={"token": prefs, "cadence": "daily", "topics": None,
                                                   "excluded_keywords": []})
    assert changed.status_code == 200 and changed.json()["topics"] is None and changed.json()["cadence"] == "daily"

    unsub = web.token("unsubscribe", sid)
    for _ in range(2):  # repeating changes nothing
        gone = client.post("/api/unsubscribe", json={"token": unsub})
        assert gone.status_code == 200 and gone.json()["status"] == "unsubscribed"
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED
    back = client.post("/api/resubscribe", json={"token": unsub})
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert [c.action for c in consents(web.store, sid)] == ["subscribe", "unsubscribe", "resubscribe"]


@pytest.mark.parametrize("body, field", [
    ({"email": "nope"}, "email"),
    ({"email": "ada@localhost"}, "email"),
    ({"email": EMAIL, "topics": ["no-such-topic"]}, "topics"),
    ({"email": EMAIL, "topics": []}, "topics"),
    ({"email": EMAIL, "excluded_keywords": ["x" * 61]}, "excluded_keywords"),
    ({"email": EMAIL, "cadence": "hourly"}, "cadence"),
    ({"email": EMAIL, "unknown": 1}, "unknown"),
    ({}, "email"),
])
def test_subscribe_refuses_bad_input_with_422_and_sends_nothing(web: Any, body: dict[str, Any], field: str) -> None:
    response = web.client().post("/api/subscriptions", json=body)
    assert response.status_code == 422
    assert any(field in map(str, err["loc"]) for err in response.json()["detail"])
    assert outbox(web.settings) == [] and web.store.subscribers() == []


def test_request_bodies_must_be_json(web: Any) -> None:
    """A cross-site HTML form can only send form encodings or text/plain: the API refuses them."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = web.client().post("/api/subscriptions", content=b'{"email": "ada@example.org"}',
                                     headers={"content-type": content_type})
        assert response.status_code == 422, content_type
    assert outbox(web.settings) == []


def test_preferences_refuse_unknown_topics_without_changing_anything(web: Any) -> None:
    reader = web.store.add_subscriber(EMAIL, topics=["vision"])
    response = web.client().put("/api/preferences", json={"token": web.token("preferences", reader.id),
                                                          "topics": ["nope"]})
    assert response.status_code == 422 and web.store.subscriber(EMAIL).topics == ("vision",)


def test_api_honeypot_and_rate_limits(make_web: Any) -> None:
    web = make_web(web={"subscribe_per_ip": 2})
    client = web.client()
    trap = client.post("/api/subscriptions", json={"email": EMAIL, "website": "x"})
    assert trap.status_code == 202 and web.store.subscribers() == []
    assert client.post("/api/subscriptions", json={"email": EMAIL}).status_code == 202
    limited = client.post("/api/subscriptions", json={"email": "bob@example.org"})
    assert limited.status_code == 429 and limited.json()["error"] == "too_many_requests"
    assert int(limited.headers["retry-after"]) > 0


def test_topics_and_editions(web_db: Any) -> None:
    web = web_db
    topics = web.client().get("/api/topics").json()
    assert [t["slug"] for t in topics] == web.settings.topic_slugs()
    first = add_edition(web.store, web.settings)
    listed = web.client().get("/api/editions").json()
    assert [(e["id"], e["paper_count"], e["url"]) for e in listed] == [
        (first, 3, f"{web.settings.site_url}/editions/{first}")]
    assert web.client().get("/api/editions", params={"cadence": "weekly"}).json() == []
    detail = web.client().get(f"/api/editions/{first}").json()
    assert [s["slug"] for s in detail["sections"]] == web.settings.topic_slugs()[:2]
    assert detail["sections"][0]["papers"][0]["pdf_url"].startswith("https://arxiv.org/pdf/")
    missing = web.client().get("/api/editions/424242")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert web.client().get("/api/editions/0").status_code == 422
    assert web.client().get("/api/editions/99999999999999999999").status_code == 422


def test_unknown_api_paths_answer_json_404(web: Any) -> None:
    response = web.client().get("/api/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_confirm_via_api_activates(web: Any) -> None:
    web.client().post("/api/subscriptions", json={"email": EMAIL})
    token = token_of(link_in(outbox(web.settings)[0], "/confirm"))
    assert web.client().post("/api/confirm", json={"token": token}).json()["status"] == SUBSCRIBER_ACTIVE
