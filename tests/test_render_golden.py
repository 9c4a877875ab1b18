"""Golden files: the sample digest (and a hostile one) as HTML, text and a whole message, compared with
``tests/data/golden/``. Volatile parts (tokens, MIME boundary, Date, Message-ID) are normalised first, and the
HTML is split into one tag per line so a change shows as a readable diff.

After a deliberate change to the templates: ``UPDATE_GOLDEN=1 python -m pytest tests/test_render_golden.py``,
then look at the diff (``git diff tests/data/golden``) before committing it.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import datetime, timezone

import pytest
from render_sample import sample_digest, settings
from support import DATA
from test_render import hostile_digest

from newsletter.render.links import LinkMaker
from newsletter.render.message import Recipient, build_message
from newsletter.render import reader_values, render_digest
from newsletter.tokens import Signer

GOLDEN = DATA / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
EDITION = "https://papers.example.org/editions/7"
WHEN = datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)


def normalise(text: str) -> str:
    text = re.sub(r"token=[A-Za-z0-9_-]+", "token=TOKEN", text)
    text = re.sub(r"unsubscribe%20[A-Za-z0-9_-]+", "unsubscribe%20TOKEN", text)
    text = re.sub(r"=_nl_[0-9a-f]+", "=_nl_BOUNDARY", text)
    text = re.sub(r"(?m)^Date: .*$", "Date: DATE", text)
    text = re.sub(r"(?m)^Message-ID: .*$", "Message-ID: <MESSAGE-ID>", text)
    return text


def one_tag_per_line(html: str) -> str:
    return re.sub(r">(?=<)", ">\n", html)


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), f"golden/{name}",
                                            "rendered", n=2))
        pytest.fail(f"{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it):\n{diff[:6000]}")


def reader() -> Recipient:
    links = LinkMaker("https://papers.example.org", "papers@example.org", Signer(b"golden-key" * 4)).for_reader(1, 1_741_939_200,
                                                                                                      edition_id=7)
    return Recipient("ada@example.org", "<7.1.daily.2025-03-14@example.org>", links, "Ada Lovelace")


@pytest.mark.parametrize("case", ["digest", "hostile", "one-topic"])
def test_html_and_text_match_the_golden_files(case: str) -> None:
    content = {"digest": sample_digest, "hostile": hostile_digest,
               "one-topic": lambda: sample_digest(topics=["video-generation"])}[case]()
    rendered = render_digest(content, settings(), EDITION)
    r = reader()
    html, text = rendered.fill(reader_values(r.name, r.links.preferences, r.links.unsubscribe, r.links.web_copy),
                               r.links.card)
    check(f"{case}.html", normalise(one_tag_per_line(html)))
    check(f"{case}.txt", normalise(text))
    check(f"{case}.subject.txt", rendered.subject + "\n")


def test_the_message_matches_the_golden_file() -> None:
    rendered = render_digest(sample_digest(topics=["video-generation"]), settings(), EDITION)
    raw = build_message(rendered, reader(), settings(), WHEN)
    check("one-topic.eml", normalise(raw.decode("ascii")).replace("\r\n", "\n"))


def test_golden_files_hold_no_leftover_slots() -> None:
    for path in GOLDEN.glob("*"):
        body = path.read_text(encoding="utf-8")
        assert "%%nl-" not in body, path
