"""The signal pages in a real browser (issue 15): Debian's Chromium through Playwright against uvicorn on
127.0.0.1. A reader opens a card's "More like this" link (one button; nothing recorded), presses it (recorded,
the page says what changes), sees the signal on the preferences page, seeds papers by pasting an id and by
uploading a BibTeX file, removes one signal and clears all; every page passes axe-core (WCAG 2.1 AA), light
and dark. Chromium is required unless ``NEWSLETTER_SKIP_BROWSER=1``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axe_check import axe_version, report, violations
from web_support import LiveServer, add_edition

from newsletter.store.signals import reader_signals
from newsletter.tokens import CardSigner


def _page(browser: Any, dark: bool = False) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 900}, color_scheme="dark" if dark else "light")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("http://127.0.0.1", "file:"))
                  else route.abort())
    return context, context.new_page()


def _axe(page: Any, what: str) -> None:
    found = violations(page)
    assert found == [], f"axe-core {axe_version()} on {what}:\n{report(found)}"


def test_a_reader_marks_seeds_removes_and_clears_signals_in_the_browser(browser: Any, web: Any, tmp_path: Path) -> None:
    add_edition(web.store, web.settings)
    reader = web.store.add_subscriber("ada@example.org")
    papers = {p.title: p.id for p in web.store.papers()}
    token = CardSigner(web.subs.key).sign(reader.id, papers["Fast KV caches"], web.clock.now)
    bib = tmp_path / "library.bib"
    bib.write_text("@article{k, title={Robot {H}ands}, author={Ada Lovelace}}\n", encoding="utf-8")
    with LiveServer(web.app) as server:
        context, page = _page(browser)
        page.goto(f"{server.url}/more/{token}")
        assert page.locator("h1").inner_text() == "More papers like this one?"
        _axe(page, "the one-button page")
        assert reader_signals(web.store.engine, reader.id) == []  # opening the link recorded nothing
        page.get_by_role("button", name="More like this").click()
        page.wait_for_selector("text=Noted: more like this")
        assert "rank higher" in page.inner_text("main") and "What is kept" in page.inner_text("main")
        _axe(page, "the done page")
        assert [s.kind for s in reader_signals(web.store.engine, reader.id)] == ["more"]

        page.get_by_role("link", name="See, remove or clear your signals").click()
        page.wait_for_selector("text=Your signals")
        assert "Fast KV caches" in page.inner_text("table.signals")
        _axe(page, "the preferences page with a signal")
        page.fill("#seed-ids", "2503.00001")
        page.get_by_role("button", name="Add seeds").click()
        page.wait_for_selector("text=Read 1 entries")
        page.set_input_files("#seed-file", str(bib))
        page.get_by_role("button", name="Add seeds").click()
        page.wait_for_selector("text=Read 1 entries: 1 are papers")
        rows = page.inner_text("table.signals")
        assert "Speculative decoding at scale" in rows and "Robot hands" in rows and rows.count("Seed") == 2
        page.get_by_role("button", name="Remove the signal on Fast KV caches").click()
        page.wait_for_selector("text=Removed. Your next digest no longer counts it.")
        assert "Fast KV caches" not in page.inner_text("table.signals")
        page.get_by_role("button", name="Clear all signals").click()
        page.wait_for_selector("text=No signals yet")
        assert reader_signals(web.store.engine, reader.id) == []
        context.close()
        dark, page = _page(browser, dark=True)
        page.goto(f"{server.url}/fewer/{token}")
        _axe(page, "the one-button page (dark)")
        dark.close()
