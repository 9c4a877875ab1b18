"""``newsletter run``, the main job of the quick start: fetch (or the sample offline), send what is due, preview."""

from __future__ import annotations

import email
import json
import socket
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from newsletter import config
from newsletter.cli import main
from newsletter.pipeline import Newsletter

from support import write_config


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, sources=[{"type": "huggingface", "base_url": f"http://127.0.0.1:{closed_port()}",
                                            "retries": 0}])


def cli(cfg: Path, *args: str):  # noqa: ANN201
    result = CliRunner().invoke(main, ["--config", str(cfg), *args])
    assert result.exit_code == 0, result.output
    return result


def test_offline_run_with_no_readers_still_previews_a_real_digest(tmp_path: Path) -> None:
    cfg = offline_config(tmp_path)
    out = cli(cfg, "run", "--cadence", "daily").output
    assert "bundled sample" in out and "No readers yet" in out
    preview = tmp_path / "outbox" / "preview"
    html = (preview / "preview.html").read_text()
    text = (preview / "preview.txt").read_text()
    assert "Mirror Speculative Decoding" in html + text  # a paper of the newest sample page
    message = email.message_from_bytes((preview / "preview.eml").read_bytes())
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]
    assert not list((tmp_path / "outbox").glob("*.eml"))  # nobody to send to, and no empty edition made
    assert json.loads(cli(cfg, "deliveries", "--json").output) == []


def test_run_sends_to_readers_once_through_the_outbox(tmp_path: Path) -> None:
    cfg = offline_config(tmp_path)
    cli(cfg, "subscribers", "add", "ada@example.org")
    cli(cfg, "subscribers", "add", "bob@example.org", "--topics", "3d")
    cli(cfg, "run", "--cadence", "daily")
    sent = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(sent) == 2
    recipients = sorted(email.message_from_bytes(p.read_bytes())["To"] for p in sent)
    assert recipients == ["ada@example.org", "bob@example.org"]
    again = cli(cfg, "run", "--cadence", "daily").output
    assert "resumed; 0 sent" in again
    assert sorted((tmp_path / "outbox").glob("*.eml")) == sent


def test_the_schedule_decides_which_cadences_are_due(tmp_path: Path) -> None:
    settings = config.load(offline_config(tmp_path), {})
    nl = Newsletter(settings)
    assert nl.due_cadences(date(2026, 11, 23)) == ["daily", "weekly"]  # a Monday
    assert nl.due_cadences(date(2026, 11, 24)) == ["daily"]
    assert nl.due_cadences(date(2026, 11, 29)) == []  # a Sunday
    nl.close()


def test_unconfirmed_sign_ups_are_forgotten_once_their_link_expired(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    settings = config.load(offline_config(tmp_path), {})
    nl = Newsletter(settings)
    now = datetime.now(timezone.utc)
    nl.store.add_subscriber("old@example.org", status="pending", now=now - timedelta(days=8))
    nl.store.add_subscriber("fresh@example.org", status="pending", now=now - timedelta(days=2))
    nl.store.add_subscriber("reader@example.org", now=now - timedelta(days=30))  # confirmed long ago
    assert nl.purge_unconfirmed(now) == 1
    assert sorted(s.email for s in nl.store.subscribers()) == ["fresh@example.org", "reader@example.org"]
    nl.close()
