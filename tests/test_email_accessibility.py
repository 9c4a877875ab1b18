"""The digest email passes axe-core's WCAG 2.1 AA rules in Debian's Chromium (headless, through Playwright):
a reader of every topic and a reader of one topic, in light mode, with the per-reader links filled in.

Links in text are underlined, not told apart by colour alone (axe's ``link-in-text-block``, WCAG 1.4.1); the
styles live once, in ``templates/email/digest.mjml``. The last test shows the check bites: the same email with
its in-text links styled as before (colour only) fails it.

Chromium is required (see tests/test_preview_browser.py), unless ``NEWSLETTER_SKIP_BROWSER=1``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_check import axe_version, report, violations
from render_sample import sample_digest, settings

from newsletter.render import render_digest

EDITION = "https://papers.example.org/editions/7"
VALUES = {"greeting": "Hi Ada,", "preferences_url": "https://papers.example.org/preferences?token=PREF",
          "unsubscribe_url": "https://papers.example.org/unsubscribe?token=UNSUB"}
READERS = {"every-topic": {}, "one-topic": {"topics": ["quantization"]},
           "capped": {"topics": ["quantization", "llm-inference", "video-generation"], "max_per_topic": 2}}


def email_html(**choices: Any) -> str:
    html, _ = render_digest(sample_digest(**choices), settings(), EDITION).fill(VALUES)
    return html


def open_email(browser: Any, tmp_path: Path, html: str, name: str) -> Any:
    path = tmp_path / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    context = browser.new_context(viewport={"width": 800, "height": 900}, color_scheme="light")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page = context.new_page()
    page.goto(path.as_uri())
    return page


@pytest.mark.parametrize("reader", sorted(READERS))
def test_the_digest_passes_axe_wcag21_aa(browser: Any, tmp_path: Path, reader: str) -> None:
    html = email_html(**READERS[reader])
    page = open_email(browser, tmp_path, html, reader)
    assert page.locator("a.nl-link").count() > 5
    found = violations(page)
    assert found == [], f"axe-core {axe_version()} on the {reader} digest:\n{report(found)}"
    page.context.close()


def test_links_in_text_are_underlined_and_standalone_links_are_not(browser: Any, tmp_path: Path) -> None:
    """What the rule asks, read from the rendered page: every link inside a line of text is underlined."""
    page = open_email(browser, tmp_path, email_html(), "look")
    decorations = page.evaluate("""() => [...document.querySelectorAll('a.nl-link')].map(a => {
        const block = a.closest('p, div, td');
        const text = block ? block.textContent.replace(a.textContent, '').replace(/\\s+/g, '') : '';
        return [a.textContent.trim(), getComputedStyle(a).textDecorationLine, text.length > 0];
    })""")
    in_text = [(label, line) for label, line, has_text in decorations if has_text]
    assert in_text and all(line == "underline" for _, line in in_text), in_text
    assert {"PDF", "Unsubscribe", "Manage preferences"} <= {label for label, _ in in_text}
    page.context.close()


def test_the_check_fails_on_links_told_apart_by_colour_alone(browser: Any, tmp_path: Path) -> None:
    """The email as it was before (in-text links not underlined): axe-core flags link-in-text-block."""
    html = email_html()
    old = re.sub(r'(<a class="nl-link"[^>]*style=")color:#1d4ed8;(white-space:nowrap;)?"', r'\1color:#1d4ed8;text-decoration:none;\2"', html)
    assert old != html
    page = open_email(browser, tmp_path, old, "colour-only")
    found = violations(page)
    assert "link-in-text-block" in {v["id"] for v in found}, report(found)
    page.context.close()


def test_a_for_you_digest_passes_axe_wcag21_aa(browser: Any, tmp_path: Path) -> None:
    """A reader with signals (issue 15): their email as the send writes it (the shared digest's chunks in their
    order, ``render.foryou``), with the For you block (cards with a reason) and its references in the sections
    and their own more / fewer links, passes the same rules."""
    from datetime import datetime, timezone
    from email import message_from_bytes, policy

    from newsletter.relevance import Signal, train
    from newsletter.relevance.personal import Ranker
    from newsletter.render.foryou import PersonalKit
    from newsletter.render.links import ReaderLinks
    from newsletter.render.message import MessageFactory, Recipient

    content = sample_digest()
    shared = render_digest(content, settings(), EDITION, size_limit=200_000)
    factory = MessageFactory(settings())
    kit = PersonalKit.build(factory.prepare(shared), content, shared.listed, settings(), size_limit=200_000)
    assert kit is not None
    ranker = Ranker(None, 5)
    liked = [p for p in content.papers if p.topic == "3d"][:4]
    model = train([Signal(p.id, ranker.vector(p), "more", datetime(2025, 3, 14, tzinfo=timezone.utc)) for p in liked])
    order, picks = ranker.choose(model, kit.content)
    assert len(picks) == 5 and all(reason.startswith("Because you liked") for _pid, reason in picks)
    links = ReaderLinks(VALUES["preferences_url"], VALUES["unsubscribe_url"], "mailto:u@example.org",
                        card=lambda pid: f"T{pid:023d}")
    raw = kit.message(Recipient("ada@example.org", "<1@example.org>", links), datetime(2025, 3, 14, tzinfo=timezone.utc),
                      order, picks)
    message = message_from_bytes(raw, policy=policy.default)
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "\nFor you\n=======\n" in text and "Because you liked" in html and "%%nl" not in html + text
    page = open_email(browser, tmp_path, html, "for-you")
    assert page.locator("#for-you").count() == 1
    found = violations(page)
    assert found == [], f"axe-core {axe_version()} on a For you digest:\n{report(found)}"
    page.context.close()
