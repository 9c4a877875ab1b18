"""The file outbox (plain folder and Maildir), the console messenger, and the registry of messengers."""

from __future__ import annotations

import io
import mailbox
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from mailkit import build_message

from newsletter.config import from_mapping
from newsletter.deliver import MESSENGERS, FatalTransportError, Messenger, build_messenger
from newsletter.deliver.console import ConsoleMessenger
from newsletter.deliver.outbox import OutboxMessenger, file_stem
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.errors import ConfigError
from newsletter.store.deliveries import DueDelivery


def due(i: int, message_id: str | None = None) -> DueDelivery:
    return DueDelivery(id=i, edition_id=3, subscriber_id=i, digest_id=1,
                       message_id=message_id or f"<3.{i}.daily.2026-03-14@example.org>",
                       email=f"r{i}@example.org", name=f"Reader {i}", attempts=0,
                       created_at=datetime(2026, 3, 14, tzinfo=timezone.utc), bounce_count=0)


def test_one_eml_file_per_message_named_by_message_id(tmp_path: Path) -> None:
    outbox = OutboxMessenger(tmp_path / "outbox")
    messages = [build_message(due(i)) for i in range(3)]
    for m in messages:
        outbox.send(m)
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"3.{i}.daily.2026-03-14@example.org.eml" for i in range(3)]
    for f, m in zip(files, messages, strict=True):
        assert f.read_bytes() == m.data
        parsed = message_from_bytes(f.read_bytes(), policy=policy.default)
        assert parsed["Message-ID"] == m.message_id and parsed["To"] == m.recipient


def test_a_repeat_overwrites_instead_of_adding_a_copy_and_leaves_no_temp_files(tmp_path: Path) -> None:
    outbox = OutboxMessenger(tmp_path)
    first = build_message(due(1))
    outbox.send(first)
    again = build_message(due(1))  # the same delivery sent again after a crash: same Message-ID
    outbox.send(again)
    assert [p.name for p in tmp_path.iterdir()] == ["3.1.daily.2026-03-14@example.org.eml"]


def test_unsafe_message_ids_make_safe_distinct_names() -> None:
    a, b = file_stem("<a/b:c@x>"), file_stem("<a_b_c@x>")
    assert "/" not in a and ":" not in a and a != b
    assert file_stem("<../../etc/passwd@x>").startswith("_")
    assert len(file_stem("<" + "x" * 400 + "@example.org>")) < 200


def test_maildir_layout_is_readable_by_the_mailbox_module(tmp_path: Path) -> None:
    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    outbox = OutboxMessenger(box)
    assert outbox.maildir
    for i in range(2):
        outbox.send(build_message(due(i)))
    names = sorted(p.name for p in (box / "new").iterdir())
    assert names == [f"3.{i}.daily.2026-03-14@example.org" for i in range(2)]
    assert list((box / "tmp").iterdir()) == []
    md = mailbox.Maildir(str(box), create=False)
    assert sorted(m["Message-ID"] for m in md) == [f"<3.{i}.daily.2026-03-14@example.org>" for i in range(2)]


def test_maildir_does_not_redeliver_a_message_a_client_already_took(tmp_path: Path) -> None:
    outbox = OutboxMessenger(tmp_path / "md", maildir=True)
    outbox.send(build_message(due(1)))
    new = next((tmp_path / "md" / "new").iterdir())
    new.rename(tmp_path / "md" / "cur" / f"{new.name}:2,S")  # what a mail client does when it is read
    outbox.send(build_message(due(1)))
    assert list((tmp_path / "md" / "new").iterdir()) == []


def test_a_folder_that_cannot_be_written_stops_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FatalTransportError, match="Cannot create the outbox folder"):
        OutboxMessenger(blocker / "outbox")
    outbox = OutboxMessenger(tmp_path / "ok")
    message = build_message(due(1))
    outbox.path_for(message.message_id).mkdir()  # the file's place is taken: the write fails (even as root)
    with pytest.raises(FatalTransportError, match="Cannot write .*3.1.daily.2026-03-14@example.org.eml") as i:
        outbox.send(message)
    assert "newsletter retry" in str(i.value)
    left = sorted(p.name for p in (tmp_path / "ok").iterdir())
    assert left == ["3.1.daily.2026-03-14@example.org.eml"]  # the blocked place only: no temp file left


def test_console_prints_headers_and_the_text(tmp_path: Path) -> None:
    out = io.StringIO()
    ConsoleMessenger(out).send(build_message(due(7)))
    text = out.getvalue()
    assert "--- <3.7.daily.2026-03-14@example.org> to r7@example.org" in text
    assert "Subject: Trending papers (edition 3)" in text
    assert "Hello Reader 7," in text


def test_the_registry_builds_each_messenger_by_name(tmp_path: Path) -> None:
    settings = from_mapping({"outbox_dir": "out", "smtp": {"host": "mail.example.org", "port": 587,
                                                          "security": "starttls", "pool_size": 3}},
                            {}, base_dir=tmp_path)
    built = {name: build_messenger(settings, name) for name in MESSENGERS}
    assert set(built) == {"smtp", "outbox", "console"}
    for name, m in built.items():
        assert isinstance(m, Messenger) and m.name == name
    assert isinstance(built["outbox"], OutboxMessenger) and built["outbox"].folder == tmp_path / "out"
    smtp = built["smtp"]
    assert isinstance(smtp, SmtpMessenger)
    assert (smtp.host, smtp.port, smtp.concurrency) == ("mail.example.org", 587, 3)
    assert smtp.local_hostname == "example.org"  # EHLO as the sender's domain, no DNS lookup
    assert isinstance(build_messenger(settings), OutboxMessenger)  # the configured default
    with pytest.raises(ConfigError, match="Unknown messenger 'fax'"):
        build_messenger(settings, "fax")
