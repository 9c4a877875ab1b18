"""The web pages and the confirmation email pass axe-core's WCAG 2.1 AA rules in Debian's Chromium (headless,
through Playwright), served by uvicorn on 127.0.0.1: subscribe, the confirmation email, confirm, preferences,
unsubscribe, the archive, an edition's page (85 papers, as `newsletter send` records them), a reader's web
copy, the expired-link page, and a 404. Light and dark mode. (The digest email: tests/test_email_accessibility.py.)

Chromium is required (see tests/test_preview_browser.py), unless ``NEWSLETTER_SKIP_BROWSER=1``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from axe_check import axe_version, report, violations
from support import PAGES
from web_support import LiveServer, outbox

from newsletter.pipeline import Newsletter


@pytest.fixture
def site(web: Any) -> Any:
    """The test app with the Mar 14 sample sent to two readers (one of every topic, one of one topic)."""
    nl = Newsletter(web.settings, web.store)
    nl.import_file(PAGES["mar14"], date(2025, 3, 14))
    web.ada = web.store.add_subscriber("ada@example.org")
    web.bob = web.store.add_subscriber("bob@example.org", topics=["quantization"])
    web.edition = nl.send("daily", date(2025, 3, 14), fetch=False).edition_id
    nl.close()
    return web


def check(browser: Any, url: str, dark: bool = False) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 900}, color_scheme="dark" if dark else "light")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("http://127.0.0.1", "file:"))
                  else route.abort())
    page = context.new_page()
    page.goto(url)
    found = violations(page)
    context.close()
    assert found == [], f"axe-core {axe_version()} on {url}{' (dark)' if dark else ''}:\n{report(found)}"


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_page_passes_axe_wcag21_aa(browser: Any, site: Any, tmp_path: Path, dark: bool) -> None:
    copy = site.token("web-copy", site.bob.id)
    paths = ["/subscribe", f"/preferences?token={site.token('preferences', site.ada.id)}",
             f"/unsubscribe?token={site.token('unsubscribe', site.ada.id)}", "/editions",
             f"/editions/{site.edition}", f"/editions/{site.edition}/yours?token={copy}",
             "/preferences?token=expired-or-forged", "/editions/999"]
    with LiveServer(site.app) as server:
        for path in paths:
            check(browser, server.url + path, dark)


def test_the_confirmation_email_and_confirm_page_pass_axe(browser: Any, web: Any, tmp_path: Path) -> None:
    assert web.client().post("/api/subscriptions", json={"email": "cy@example.org"}).status_code == 202
    [mail] = outbox(web.settings)
    html = mail.get_body(("html",))
    assert html is not None
    path = tmp_path / "confirm.html"
    path.write_text(html.get_content(), encoding="utf-8")
    check(browser, path.as_uri())
    cy = web.store.subscriber("cy@example.org")
    with LiveServer(web.app) as server:
        check(browser, f"{server.url}/confirm?token={web.token('confirm', cy.id)}")
