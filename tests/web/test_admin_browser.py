"""The operator pages in Chromium, as an operator would use them: the app under uvicorn on 127.0.0.1, Debian's
Chromium driven by Playwright. Log in, see the editions, pause one with its button, open a report with its plot,
search a reader. Screenshots of the editions, report and readers pages are compared with the committed ones in
``tests/data/screenshots/`` (shown in the README); ``UPDATE_SCREENSHOTS=1`` rewrites them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import screenshots
from web_support import T0, LiveServer, add_sent_edition, free_port, make_settings

from newsletter import config
from newsletter.store import Store
from newsletter.store.control import edition_states
from newsletter.web import create_app
from newsletter.web.admin_auth import hash_password

PASSWORD = "a long operator password"


def submit(page: Any, selector: str) -> None:
    """Click what loads a new page, and wait until it has."""
    with page.expect_navigation():
        page.click(selector)


def shot(page: Any, name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=True)
    screenshots.check(out, name, tmp_path)


def test_log_in_pause_an_edition_open_its_report_and_search_a_reader(browser: Any, tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, site_url=f"http://127.0.0.1:{port}")
    settings = settings.model_copy(update={"admin": config.Admin(password_hash=hash_password(PASSWORD))})
    store = Store.open(settings.resolved_database_url)
    readers = (tuple(f"reader{i:02d}@example.org" for i in range(30)) + ("ada@lab.example.net", "bob@mail.example.com")
               + tuple(f"r{i}@uni.example.edu" for i in range(8)))
    older = add_sent_edition(store, settings, readers, sent=40, start=T0 - timedelta(days=1), day=date(2025, 3, 13),
                             step=timedelta(seconds=7), subject="Trending papers, 13 Mar 2025: 5 new in 3 topics")
    # Today's: 34 sent in bursts over a few minutes, 2 refused, 4 still waiting; then paused from the page below.
    gaps = [1, 1, 2, 1, 6, 1, 1, 1, 2, 9, 1, 1, 1, 1, 3, 1, 2, 1, 12, 1, 1, 2, 1, 1, 4, 1, 1, 1, 2, 1, 8, 1, 1, 2]
    offsets = [float(sum(gaps[:i + 1])) for i in range(len(gaps))]
    # SMTP times: example.org answers in 40-88 ms, lab.example.net and mail.example.com in 310 ms, uni.example.edu
    # (two sent) in 1.2 s.
    eid = add_sent_edition(store, settings, readers, sent=34, failed=2, offsets=offsets,
                           smtp_ms=lambda i, e: 1200 + 40 * (i % 2) if "uni." in e else
                           310 if e.endswith((".net", ".com")) else 40 + 6 * (i % 9))
    try:
        with LiveServer(create_app(settings, store, production=False, environ={}), port=port) as server:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))

            page.goto(f"{server.url}/admin")
            assert page.url == f"{server.url}/admin/login"
            page.fill("#password", "wrong password")
            submit(page, "button[type=submit]")
            assert "not right" in page.locator(".notice.error").inner_text()
            page.fill("#password", PASSWORD)
            submit(page, "button[type=submit]")
            assert page.url == f"{server.url}/admin"
            assert page.locator("table.data tbody tr").count() == 2
            assert page.locator("h1").inner_text() == "Editions"

            submit(page, f'button[aria-label="Pause edition {eid}"]')
            assert f"Edition {eid} is now paused" in page.locator(".notice.ok").inner_text()
            states = {e.id: e.state for e in edition_states(store.engine)}
            assert states == {eid: "paused", older: "active"}
            assert page.locator(f'button[aria-label="Resume edition {eid}"]').count() == 1
            shot(page, "admin-editions.png", tmp_path)

            submit(page, f'a[href$="/admin/editions/{eid}"] >> nth=0')
            assert page.url == f"{server.url}/admin/editions/{eid}"
            figures = dict(zip(page.locator("dl.figures dt").all_inner_texts(),
                               page.locator("dl.figures dd").all_inner_texts()))
            assert figures["Readers"] == "40" and figures["Sent"] == "34" and figures["Failed"] == "2"
            assert figures["Waiting"] == "4" and figures["Time to send"] == "1 min 15 s"  # offsets 1 s to 76 s
            assert page.locator("svg.plot rect.bar").count() >= 5
            slowest = page.locator("#slowest table.data tbody tr")
            assert slowest.first.locator("td").all_inner_texts()[0] == "uni.example.edu"
            assert slowest.first.locator("td").all_inner_texts()[-2:] == ["1.22 s", "1.24 s"]
            assert page.locator("#slowest svg.plot rect.bar").count() == 4  # each timed domain
            shot(page, "admin-report.png", tmp_path)

            submit(page, "nav >> text=Readers")
            page.fill("#q", "example.net")
            submit(page, "form[role=search] button")
            rows = page.locator("table.data tbody tr")
            assert rows.count() == 1 and "ada@lab.example.net" in rows.first.inner_text()
            page.fill("#q", "uni.example")
            submit(page, "form[role=search] button")
            assert page.locator("table.data tbody tr").count() == 8
            page.fill("#q", "reader")
            page.select_option("#status", "active")
            submit(page, "form[role=search] button")
            assert page.locator("table.data tbody tr").count() == 30
            shot(page, "admin-readers.png", tmp_path)

            submit(page, "text=Log out")
            assert page.url == f"{server.url}/admin/login"
            page.goto(f"{server.url}/admin/readers")
            assert page.url == f"{server.url}/admin/login"
            # Nothing was loaded from anywhere but this server.
            assert requests and all(u.startswith(server.url) for u in requests), set(requests)
            page.close()
    finally:
        store.close()
