"""Fixtures of the delivery tests: a real SMTP server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from mailkit import MailServer

from newsletter.store import Store


@pytest.fixture
def smtpd() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'newsletter.db'}"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    store = Store.open(sqlite_url)
    yield store
    store.close()
