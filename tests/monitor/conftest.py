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




@pytest.fixture(autouse=True)
def _plain_logs_after() -> Iterator[None]:
    """A CLI run in this process with ``log.format: json`` installs the JSON handler on the root logger:
    remove it after each test, so later tests' output is not mixed with JSON lines."""
    import logging

    from newsletter.monitor.logs import unconfigure

    level = logging.getLogger().level
    yield
    unconfigure()
    logging.getLogger().setLevel(level)
