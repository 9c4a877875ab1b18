"""The issue's story end to end, as a person and a mail server would live it: the web app under uvicorn on
127.0.0.1, a real SMTP server (aiosmtpd) on 127.0.0.1 catching every message, Debian's Chromium driven by
Playwright, and ``newsletter send`` run for real in a subprocess.

A person subscribes on the page choosing two topics, confirms from the email, gets a digest holding only those
topics, changes topics on the preferences page, and leaves with an RFC 8058 one-click POST; the next send
skips them. Screenshots of the subscribe, preferences and archive pages are compared with the committed ones
in ``tests/data/screenshots/``; ``UPDATE_SCREENSHOTS=1`` rewrites them (look at them before committing).

Chromium is required: without ``/usr/bin/chromium`` (or ``NEWSLETTER_CHROMIUM``) this test fails, unless
``NEWSLETTER_SKIP_BROWSER=1``. Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import screenshots
from support import PAGE_DAYS, PAGES, ROOT, write_config
from web_support import LiveServer, MailCatcher, free_port, link_in, text_of

from newsletter import config
from newsletter.store import Store
from newsletter.web import create_app

KEY = "e2e-signing-key-0123456789abcdef0123456789"
PERSON = "grace@example.org"


def screenshot(page: Any, name: str, tmp_path: Path, full_page: bool = True) -> Path:
    """Take the picture and compare it with the committed one (``screenshots.check``)."""
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=full_page)
    screenshots.check(out, name, tmp_path)
    return out


class Cli:
    """``newsletter`` in a subprocess, with only the environment the test gives it."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        self.env.update(NEWSLETTER_SIGNING_KEY=KEY, PYTHONPATH=str(ROOT))

    def __call__(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, check=False, env=self.env, timeout=300, cwd=self.config_path.parent)
        assert done.returncode == 0, f"newsletter {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


def toc_topics(digest: EmailMessage) -> list[tuple[str, int]]:
    """The sections the digest's text part lists under "In this issue", in order: (name, paper count), the count
    being what the email lists plus what only the web copy holds ("(10, + 2 on the web)")."""
    block = text_of(digest).split("In this issue", 1)[1].split("\n\n", 1)[0]
    found = [(m.group(1).strip(), int(m.group(2)) + int(m.group(3) or 0))
             for m in re.finditer(r"^\s+- (.+?) \((\d+)(?:, \+ (\d+) on the web)?\)$", block, re.MULTILINE)]
    return [(name, n) for name, n in found if name != "Top papers"]


def test_subscribe_confirm_receive_change_topics_unsubscribe(browser: Any, tmp_path: Path) -> None:
    with MailCatcher() as smtp:
        port = free_port()
        cfg = write_config(tmp_path, site_url=f"http://127.0.0.1:{port}", messenger="smtp",
                           smtp={"host": "127.0.0.1", "port": smtp.port, "security": "none", "pool_size": 1,
                                 "timeout": 10, "password": "${SMTP_PASSWORD}"},
                           signing_key="${NEWSLETTER_SIGNING_KEY}")
        cli = Cli(cfg)
        cli("import", str(PAGES["mar14"]), "--date", PAGE_DAYS["mar14"].isoformat())
        settings = config.load(cfg, {"NEWSLETTER_SIGNING_KEY": KEY})
        names = {t.slug: t.name for t in settings.topics}
        store = Store.open(settings.resolved_database_url)
        counts = collections.Counter(p.topic for p in store.papers() if p.topic and p.topic != "other")
        chosen = [slug for slug, _ in counts.most_common(2)]
        later = next(slug for slug, _ in counts.most_common() if slug not in chosen)

        with LiveServer(create_app(settings, store, production=True), port=port) as server:
            page = browser.new_page(viewport={"width": 1000, "height": 900})

            # 1. Subscribe on the page, with two topics.
            page.goto(f"{server.url}/subscribe")
            page.fill("#email", PERSON)
            for slug in settings.topic_slugs():
                page.set_checked(f'input[name="topics"][value="{slug}"]', slug in chosen)
            page.check('input[name="cadence"][value="daily"]')
            screenshot(page, "subscribe.png", tmp_path)
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "Check your email"
            assert store.subscriber(PERSON).status == "pending"

            # 2. The confirmation email reaches the SMTP server; the person follows its link.
            [confirmation] = smtp.wait_for(1)
            assert confirmation.rcpts == [PERSON]
            page.goto(link_in(confirmation.message, "/confirm"))
            assert store.subscriber(PERSON).status == "pending"  # opening the link alone confirms nothing
            page.click("text=Yes, subscribe me")
            assert page.locator("h1").inner_text() == "You are subscribed"
            assert set(store.subscriber(PERSON).topics or ()) == set(chosen)

            # 3. `newsletter send` delivers a digest with only the chosen topics.
            cli("send", "--cadence", "daily", "--date", PAGE_DAYS["mar14"].isoformat(), "--no-fetch")
            digest = smtp.wait_for(2)[1]
            assert digest.rcpts == [PERSON]
            sections = toc_topics(digest.message)
            assert {name for name, _ in sections} == {names[s] for s in chosen}  # only the chosen topics
            assert [n for _, n in sections] == sorted((n for _, n in sections), reverse=True)  # by size
            # A paper is in the digest when one of its topics is a chosen one; it sits in its main topic's
            # section when that was chosen, else in the chosen topic it carries: only chosen sections.
            slug_of = {name: slug for slug, name in names.items()}
            papers = store.papers()
            expected = collections.Counter(p.topic if p.topic in chosen else next(t for t in p.topics if t in chosen)
                                           for p in papers if set(p.topics or (p.topic,)) & set(chosen))
            assert set(expected) == set(chosen)
            assert {slug_of[name]: count for name, count in sections} == dict(expected)
            assert set(expected) != set(counts)  # some topics had papers and are not in the digest
            assert digest.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

            # 4. The digest's "manage preferences" link: the person swaps a topic.
            page.goto(link_in(digest.message, "/preferences"))
            page.uncheck(f'input[name="topics"][value="{chosen[1]}"]')
            page.check(f'input[name="topics"][value="{later}"]')
            page.click("text=Save preferences")
            assert "Saved" in page.locator(".notice.ok").inner_text()
            assert set(store.subscriber(PERSON).topics or ()) == {chosen[0], later}
            screenshot(page, "preferences.png", tmp_path)

            # 5. One-click unsubscribe: a POST to the List-Unsubscribe URL, as a mailbox provider sends it.
            header = str(digest.message["List-Unsubscribe"])
            url = re.search(r"<(https?://[^>]+/unsubscribe\?token=[^>]+)>", header).group(1)  # type: ignore[union-attr]
            with httpx.Client(follow_redirects=False) as provider:  # no cookies, no CSRF token
                answer = provider.post(url, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200 and "location" not in answer.headers
            assert store.subscriber(PERSON).status == "unsubscribed"

            # 6. The next send skips them (another reader still gets theirs).
            cli("subscribers", "add", "bob@example.org")
            cli("import", str(PAGES["mar25"]), "--date", PAGE_DAYS["mar25"].isoformat())
            report = json.loads(cli("send", "--cadence", "daily", "--date", PAGE_DAYS["mar25"].isoformat(),
                                    "--no-fetch", "--json"))
            assert report["delivery"]["sent"] == 1
            after = smtp.wait_for(3)
            assert [m.rcpts for m in after[2:]] == [["bob@example.org"]]
            assert all(PERSON not in m.rcpts for m in after[2:])

            # 7. The archive lists both editions; each has its web page.
            page.goto(f"{server.url}/editions")
            assert page.locator(".editions li").count() == 2
            screenshot(page, "archive.png", tmp_path)
            page.click(".editions li:last-child a.title")
            assert page.locator(f"#topic-{chosen[0]}").count() == 1
            screenshot(page, "edition.png", tmp_path, full_page=False)  # its first screen: 85 papers are long
            page.close()
        store.close()
