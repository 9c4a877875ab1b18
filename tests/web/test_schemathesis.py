"""The OpenAPI description exercised by schemathesis against the app running under uvicorn on 127.0.0.1: every
operation gets generated valid and invalid requests; no answer may be a server error, and every answer must
match what the description says (status codes, content types, response schemas)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation.meta import GenerationMode, ParameterLocation
from web_support import LiveServer, add_edition, make_settings

from newsletter import config
from newsletter.store import Store
from newsletter.web import create_app


OPERATOR_TOKEN = "schemathesis-operator-token-0123456789"


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    app_settings = make_settings(tmp, web={"subscribe_per_ip": 100_000, "subscribe_per_address": 100_000,
                                           "confirmation_window_minutes": 60})
    # The operator API on, and every generated request carrying its token (the public API ignores it).
    app_settings = app_settings.model_copy(update={"admin": config.Admin(api_token=OPERATOR_TOKEN)})
    store = Store.open(app_settings.resolved_database_url)
    add_edition(store, app_settings)
    store.add_subscriber("ada@example.org")
    with LiveServer(create_app(app_settings, store, production=False, environ={})) as server:
        yield server.url
    store.close()


@pytest.fixture(scope="module")
def api_schema(live_api: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_api}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def _with_token(case: Any) -> bool:
    """The operator API's calls carry the token, unless this case is about a missing or malformed header (the
    401 it documents)."""
    if not case.path.startswith("/api/admin/") or "Authorization" in (case.headers or {}):
        return False
    components = case.meta.components if case.meta else {}
    header = components.get(ParameterLocation.HEADER)
    return header is None or header.mode != GenerationMode.NEGATIVE


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_description(case: Any) -> None:
    # Every check but "schema-valid data is accepted": an address can match the schema's "format: email" and
    # still be refused (a reserved domain such as .test, a local part over 64 characters), and a topic slug
    # can be well-formed but unknown. Those answers are the documented 422.
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"} if _with_token(case) else None
    response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
