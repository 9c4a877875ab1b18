"""Fixtures of the web tests: a test app on a real database (SQLite file, or PostgreSQL with ``db_url``)
driven in-process, with a clock the tests move."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from web_support import Clock, make_settings

from newsletter.config import Settings
from newsletter.store import Store
from newsletter.web import create_app


class WebApp:
    """One app with its settings, store and clock; ``client()`` makes in-process HTTP clients (own cookies)."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, **kwargs: Any) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.app = create_app(settings, store, production=False, environ={}, clock=clock,
                              monotonic=clock.monotonic, **kwargs)
        self.subs = self.app.state.web.subscriptions
        self._clients: list[TestClient] = []

    def token(self, purpose: str, subscriber_id: int, age: timedelta = timedelta()) -> str:
        """A token as an email sent ``age`` ago would carry it."""
        return self.subs.signer.sign(purpose, subscriber_id, self.clock.now - age)

    def client(self, ip: str = "198.51.100.7") -> TestClient:
        client = TestClient(self.app, base_url="http://127.0.0.1:8000", client=(ip, 50000),
                            follow_redirects=False)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def make_web(tmp_path: Path) -> Iterator[Callable[..., WebApp]]:
    """``make_web(db_url=None, web={...}, **settings)``: a WebApp; closed at the end of the test."""
    made: list[WebApp] = []
    stores: list[Store] = []

    def make(db_url: str | None = None, messenger_factory: Any = None, **overrides: Any) -> WebApp:
        settings = make_settings(tmp_path, db_url, **overrides)
        store = Store.open(settings.resolved_database_url)
        stores.append(store)
        kwargs = {"messenger_factory": messenger_factory} if messenger_factory else {}
        web = WebApp(settings, store, Clock(), **kwargs)
        made.append(web)
        return web

    yield make
    for web in made:
        web.close()
    for store in stores:
        store.close()


@pytest.fixture
def web(make_web: Callable[..., WebApp]) -> WebApp:
    """A test app on a SQLite file."""
    return make_web()


@pytest.fixture
def web_db(make_web: Callable[..., WebApp], db_url: str) -> WebApp:
    """A test app on SQLite and on PostgreSQL (the test runs twice)."""
    return make_web(db_url)
