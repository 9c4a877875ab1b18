"""Every real bounce, delay, auto-reply and complaint mail in ../shared/data/real/bounces is classified
right, read in place; delays and auto-replies are never bounces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.inbound.classify import AUTOREPLY, BOUNCES, COMPLAINT, DELAY, HARD, REPORT, SOFT, UNSUBSCRIBE, classify
from newsletter.inbound.verp import Verp

# What each file's category (its name's first part) must come out as. Two complaint-category files are
# told apart on purpose: Apple Mail's one-click unsubscribe mail is an unsubscribe (the same effect as a
# complaint: the reader leaves), and an ARF auth-failure report is a DMARC forensic report about the
# sender's domain, not a reader's complaint (the README says so too), so it unsubscribes nobody.
EXPECTED = {"hard": {HARD}, "soft": {SOFT}, "delay": {DELAY}, "autoreply": {AUTOREPLY}, "complaint": {COMPLAINT}}
SPECIAL = {"complaint__apple__mail-unsubscribe.eml": UNSUBSCRIBE,
           "complaint__other__arf-auth-failure-dmarc.eml": REPORT}


def readme_rows(folder: Path) -> dict[str, dict[str, str]]:
    """file → {category, status, recipient} from the README's list."""
    rows = {}
    for line in (folder / "README.md").read_text().splitlines():
        m = re.match(r"- `([^`]+\.eml)`: [^|]+\| (\w+), [^|]+\| ([^|]*)\| ([^|]*)\|", line)
        if m:
            rows[m.group(1)] = {"category": m.group(2), "status": m.group(3).strip(), "recipient": m.group(4).strip()}
    return rows


def test_the_readme_lists_every_file(bounces_dir: Path) -> None:
    rows = readme_rows(bounces_dir)
    files = sorted(p.name for p in bounces_dir.glob("*.eml"))
    assert len(files) == 73 and sorted(rows) == files
    assert all(rows[f]["category"] == f.split("__")[0] for f in files)


def test_every_real_message_is_classified_right(bounces_dir: Path) -> None:
    wrong = []
    for path in sorted(bounces_dir.glob("*.eml")):
        category = path.name.split("__")[0]
        event = classify(path.read_bytes())
        want = {SPECIAL[path.name]} if path.name in SPECIAL else EXPECTED[category]
        if event.kind not in want:
            wrong.append(f"{path.name}: {event.kind} ({event.reason[:80]})")
        if category in ("delay", "autoreply"):
            assert not event.is_bounce, path.name  # never a bounce, whatever else
    assert wrong == []


def test_bounces_name_the_recipient_and_status_the_readme_gives(bounces_dir: Path) -> None:
    rows = readme_rows(bounces_dir)
    checked = 0
    for name, row in rows.items():
        if row["category"] not in ("hard", "soft"):
            continue
        event = classify((bounces_dir / name).read_bytes())
        assert event.recipient == row["recipient"].lower(), name
        stated = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", row["status"])
        if stated and row["status"].startswith("Status"):
            assert event.status == stated.group(1), name
        assert event.reason, name  # the raw reason is kept
        checked += 1
    assert checked == 39


def test_complaints_name_the_reader_or_the_reported_message(bounces_dir: Path) -> None:
    for path in bounces_dir.glob("complaint__*.eml"):
        event = classify(path.read_bytes())
        assert event.recipient or event.original_message_id, path.name
        if event.kind == COMPLAINT:
            assert event.feedback_type


def test_a_bounce_sent_to_our_verp_address_names_the_delivery(bounces_dir: Path) -> None:
    from inbound_support import readdressed

    verp = Verp(b"k" * 32, "papers@example.org")
    for name in ("hard__qmail__user-unknown-5.5.0.eml", "hard__exchange2003__unknown-recipient.eml",
                 "hard__postfix__user-unknown-5.1.1.eml", "soft__yahoo__5.2.2-mailbox-full.eml"):
        raw = readdressed((bounces_dir / name).read_bytes(), to=verp.address(4711))
        event = classify(raw)
        assert event.kind in BOUNCES and verp.delivery_id(event.verp) == 4711, name


def test_a_forged_verp_tag_names_no_delivery() -> None:
    verp = Verp(b"k" * 32, "papers@example.org")
    other = Verp(b"another key, not ours" * 2, "papers@example.org")
    raw = (f"From: MAILER-DAEMON@mx.example.net\r\nTo: {other.address(4711)}\r\nSubject: Undelivered Mail\r\n\r\n"
           "550 5.1.1 <ada@example.org>: user unknown\r\n").encode()
    event = classify(raw)
    assert event.kind == HARD and event.verp and verp.delivery_id(event.verp) is None


def test_a_mail_to_the_unsubscribe_address_carries_its_token() -> None:
    token = "dW5zdWJzY3JpYmU6NDI6MTcwMDAwMDAwMA" + "x" * 20
    raw = (f"From: Ada <ada@example.org>\r\nTo: papers+unsubscribe@example.org\r\n"
           f"Subject: unsubscribe {token}\r\n\r\n\r\n").encode()
    event = classify(raw)
    assert event.kind == UNSUBSCRIBE and event.token == token and event.recipient == "ada@example.org"


@pytest.mark.parametrize("body", [b"", b"\x00\xff\xfe garbage", b"Subject: hello\r\n\r\nWhen is the next issue?"])
def test_anything_else_is_unknown_not_an_error(body: bytes) -> None:
    assert classify(body).kind == "unknown"
