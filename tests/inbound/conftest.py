"""Fixtures of the inbound-mail tests: the real bounce mails (read in place), a real Dovecot (IMAP and
POP3, plain+STARTTLS and implicit TLS) on loopback with a throwaway maildir, and a test CA.

The bounce mails live in ``<repo>/../shared/data/real/bounces`` (``NEWSLETTER_REAL_DATA`` overrides the
``real`` folder); where they are absent, the tests that need them skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from dovecot_server import Dovecot, DovecotUnavailable, TestCA, make_ca, start_dovecot
from support import ROOT


def real_data_dir() -> Path:
    return Path(os.environ.get("NEWSLETTER_REAL_DATA") or ROOT.parent / "shared" / "data" / "real")


@pytest.fixture(scope="session")
def bounces_dir() -> Path:
    folder = real_data_dir() / "bounces"
    if not (folder / "README.md").is_file():
        pytest.skip(f"the real bounce mails are not at {folder} (set NEWSLETTER_REAL_DATA to the folder "
                    "holding bounces/)")
    return folder


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def dovecot(test_ca: TestCA) -> Iterator[Dovecot]:
    """A private Dovecot on 127.0.0.1 (its own base_dir, config, passwd-file user); stopped after the test."""
    try:
        box = start_dovecot(test_ca)
    except DovecotUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver on 127.0.0.1 (by address, not "localhost"), any free port."""
    return ("127.0.0.1", 0)
