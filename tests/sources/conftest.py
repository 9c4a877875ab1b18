"""Shared fixtures for the source tests: recorded responses, and a sleep that records instead of sleeping.

Every network test talks to pytest-httpserver's real HTTP server on 127.0.0.1; nothing reaches the internet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"


class SleepRecorder:
    """Stands in for ``time.sleep``: records each requested wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def data() -> Path:
    return DATA
