"""The operator API (/api/admin): off (404) without admin.api_token, 401 without the bearer token or with a wrong
one, and with it: editions with their state, pause, resume, cancel, and each edition's report; on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_support import T0, Clock, add_sent_edition, make_settings

from newsletter import config
from newsletter.store import Store
from newsletter.store.control import edition_states
from newsletter.store.reports import edition_report
from newsletter.web import create_app

TOKEN = "op-token-0123456789abcdef0123456789"
READERS = tuple(f"r{i}@example.org" for i in range(5)) + ("x@other.example.net",)


def client_for(tmp_path: Path, db_url: str | None, token: str | None):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    settings = make_settings(tmp_path, db_url)
    settings = settings.model_copy(update={"admin": config.Admin(api_token=token)})
    store = Store.open(settings.resolved_database_url)
    clock = Clock()
    app = create_app(settings, store, production=False, environ={}, clock=clock, monotonic=clock.monotonic)
    return TestClient(app, base_url="http://127.0.0.1:8000"), store, settings


PATHS = [("get", "/api/admin/editions"), ("post", "/api/admin/editions/1/pause"),
         ("post", "/api/admin/editions/1/resume"), ("post", "/api/admin/editions/1/cancel"),
         ("get", "/api/admin/editions/1/report")]


def test_off_without_a_token_setting(tmp_path: Path) -> None:
    client, store, _ = client_for(tmp_path, None, None)
    try:
        for method, path in PATHS:
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                r = getattr(client, method)(path, headers=headers)
                assert r.status_code == 404, (path, r.text)
                assert r.json()["error"] == "not_found"
    finally:
        client.close()
        store.close()


def test_401_without_the_token_or_with_a_wrong_one(tmp_path: Path) -> None:
    client, store, _ = client_for(tmp_path, None, TOKEN)
    try:
        for method, path in PATHS:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                            {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"},
                            {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": "Bearer"}):
                r = getattr(client, method)(path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"] == "unauthorized" and TOKEN not in r.text
    finally:
        client.close()
        store.close()


def test_a_token_too_short_is_refused_by_the_config() -> None:
    with pytest.raises(Exception, match="too short"):
        config.Admin(api_token="short")


def test_editions_pause_resume_cancel_and_report(tmp_path: Path, db_url: str) -> None:
    client, store, settings = client_for(tmp_path, db_url, TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        eid = add_sent_edition(store, settings, READERS, sent=3, failed=1)
        listed = client.get("/api/admin/editions", headers=auth)
        assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
        [row] = listed.json()
        assert (row["id"], row["state"], row["deliveries"]) == (eid, "active", {"sent": 3, "failed": 1, "pending": 2})

        r = client.post(f"/api/admin/editions/{eid}/pause", headers=auth)
        assert r.status_code == 200 and r.json() == {"edition_id": eid, "before": "active", "after": "paused",
                                                     "cancelled": 0}
        assert edition_states(store.engine)[0].state == "paused"
        assert client.get("/api/admin/editions?state=paused", headers=auth).json()[0]["id"] == eid
        assert client.get("/api/admin/editions?state=active", headers=auth).json() == []
        again = client.post(f"/api/admin/editions/{eid}/pause", headers=auth).json()
        assert (again["before"], again["after"]) == ("paused", "paused")
        assert client.post(f"/api/admin/editions/{eid}/resume", headers=auth).json()["after"] == "active"
        done = client.post(f"/api/admin/editions/{eid}/cancel", headers=auth).json()
        assert (done["after"], done["cancelled"]) == ("cancelled", 2)
        refused = client.post(f"/api/admin/editions/{eid}/resume", headers=auth)
        assert refused.status_code == 409 and "cannot be resumed" in refused.json()["message"]
        assert client.post("/api/admin/editions/999/pause", headers=auth).status_code == 404

        report = client.get(f"/api/admin/editions/{eid}/report", headers=auth)
        assert report.status_code == 200
        data = report.json()
        want = edition_report(store.engine, eid)
        assert (data["readers"], data["sent"], data["failed"], data["send_seconds"]) == (6, 3, 1, 60.0)
        assert data["deliveries"] == {"sent": 3, "failed": 1, "cancelled": 2} == want.deliveries
        assert data["first_sent"].startswith((T0.replace(second=30)).strftime("%Y-%m-%dT%H:%M:30"))
        assert {d["domain"]: (d["readers"], d["sent"], d["failed"]) for d in data["domains"]} == {
            "example.org": (5, 3, 1), "other.example.net": (1, 0, 0)}
        assert [p["readers"] for p in data["top_papers"]] == [3, 3, 3]
        assert client.get("/api/admin/editions/999/report", headers=auth).status_code == 404
    finally:
        client.close()
        store.close()


def test_the_operator_api_is_in_the_openapi_description(tmp_path: Path) -> None:
    client, store, _ = client_for(tmp_path, None, None)
    try:
        spec = client.get("/api/openapi.json").json()
        for _, path in PATHS:
            assert path.replace("/1/", "/{edition_id}/") in spec["paths"]
        op = spec["paths"]["/api/admin/editions/{edition_id}/pause"]["post"]
        assert {"401", "404", "409"} <= set(op["responses"]) and op["security"] == [{"HTTPBearer": []}]
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    finally:
        client.close()
        store.close()
