"""Shared fixtures: real SQLite files, a private database on the real PostgreSQL server, the sample pages.

PostgreSQL must be reachable (127.0.0.1:5432, user postgres, trust auth, database ``test``): an
unreachable server fails the tests that need it rather than skipping them. Override the server with
NEWSLETTER_TEST_PG (a SQLAlchemy URL of a database the tests may create databases from).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, text

from newsletter.store import Store
from newsletter.store.schema import Base

from support import PAGES, real_data_dir, write_config

PG_ADMIN_URL = os.environ.get("NEWSLETTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nl_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required for the store tests and is unreachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        existing = {r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))}
        tables = [t.name for t in Base.metadata.sorted_tables if t.name in existing]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on a SQLite file and on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("pg_database_url")
    Store.open(url).close()  # migrate once, then start every test from empty tables
    _empty_postgres(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    yield s
    s.close()


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    return write_config(tmp_path)


@pytest.fixture
def page_copy(tmp_path: Path) -> Any:
    """Copy a sample page into tmp_path (so a test can damage it)."""

    def copy(name: str) -> Path:
        dest = tmp_path / PAGES[name].name
        shutil.copy(PAGES[name], dest)
        return dest

    return copy


CHROMIUM = os.environ.get("NEWSLETTER_CHROMIUM", "/usr/bin/chromium")
# As root and on a closed network: no sandbox, and no background connections Chromium would make.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (which never downloads a browser of its own here)."""
    if os.environ.get("NEWSLETTER_SKIP_BROWSER") == "1":
        pytest.skip("NEWSLETTER_SKIP_BROWSER=1")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install Debian's package (apt-get install chromium), "
                    "point NEWSLETTER_CHROMIUM at a Chromium binary, or set NEWSLETTER_SKIP_BROWSER=1 to skip "
                    "the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]' (never `playwright install`: Debian's "
                    "Chromium is used)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real upstream data; the test is skipped, saying why, where it is absent."""
    folder = real_data_dir()
    if not (folder / "README.md").is_file():
        pytest.skip(f"real data not found at {folder} (a clone with ../shared/data/real beside it, "
                    "or NEWSLETTER_REAL_DATA=<folder>, has it)")
    return folder
