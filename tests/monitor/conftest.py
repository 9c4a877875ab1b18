"""Fixtures of the monitoring tests: the delivery tests' real SMTP server, and the processes a test starts."""

from __future__ import annotations

from typing import Iterator

import pytest
from monitor_support import Process

from mailkit import MailServer


@pytest.fixture
def smtpd() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; each is stopped at the end whatever happened."""
    started: list[Process] = []
    yield started
    for p in started:
        p.stop()


