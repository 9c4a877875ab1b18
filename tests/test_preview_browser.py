"""The digest and the preview page in a real browser: Debian's Chromium, headless, driven by Playwright.

Everything is asserted from the rendered page, not from the source: every section is visible, card links
resolve to the paper pages, nothing overflows at phone width, dark mode turns the colours, text keeps its
contrast. Each screenshot is compared with the committed one in ``tests/data/screenshots/`` (see
``screenshots.py`` for the tolerance); ``UPDATE_SCREENSHOTS=1`` rewrites them (look at them before committing).

Chromium is required: without ``/usr/bin/chromium`` (``apt-get install chromium``; ``NEWSLETTER_CHROMIUM``
names another binary) these tests fail, unless ``NEWSLETTER_SKIP_BROWSER=1`` says to skip them.
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import screenshots
from render_sample import sample_digest, settings

from newsletter import render
from newsletter.models import DigestContent
from newsletter.preview_server import PreviewServer, Rendering
from newsletter.render import render_digest

SHOTS = screenshots.SHOTS
EDITION = "https://papers.example.org/editions/7"
VALUES = {"greeting": "Hi Ada,", "preferences_url": "https://papers.example.org/preferences?token=PREF",
          "unsubscribe_url": "https://papers.example.org/unsubscribe?token=UNSUB"}
SCREENSHOT_TOPICS = ["quantization", "llm-inference", "video-generation", "3d"]


def write_email(tmp_path: Path, content: DigestContent, name: str = "email.html") -> tuple[Path, Any]:
    rendered = render_digest(content, settings(), EDITION)
    html, _ = rendered.fill(VALUES)
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path, rendered


def screenshot(page: Any, name: str, tmp_path: Path, full_page: bool = True) -> Path:
    """Take the picture and compare it with the committed one (``screenshots.check``)."""
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=full_page)
    screenshots.check(out, name, tmp_path)
    return out


def open_page(browser: Any, url: str, width: int, dark: bool = False, height: int = 900) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme="dark" if dark else "light", java_script_enabled=True)
    # The email makes no request of its own: block everything but the page under test.
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "http://127.0.0.1"))
                  else route.abort())
    page = context.new_page()
    page.goto(url)
    return page


def luminance(css: str) -> float:
    parts = [float(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]

    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


CARD_COLOURS = """() => {
  const td = document.querySelector('.nl-card > table > tbody > tr > td');
  const text = document.querySelector('.nl-paper div[dir=auto]:not(.nl-paper-title)');
  const title = document.querySelector('a.nl-title');
  const muted = document.querySelector('.nl-paper .nl-muted');
  const link = document.querySelector('.nl-paper a.nl-link');
  return {card: getComputedStyle(td).backgroundColor, text: getComputedStyle(text).color,
          title: getComputedStyle(title).color, muted: getComputedStyle(muted).color,
          link: getComputedStyle(link).color, body: getComputedStyle(document.body).backgroundColor};
}"""


def assert_readable(colours: dict[str, str]) -> None:
    for key in ("text", "title", "muted", "link"):
        assert contrast(colours[key], colours["card"]) >= 4.5, (key, colours)


# --- the digest --------------------------------------------------------------------------------------------------


def test_every_section_is_visible_and_cards_link_to_the_papers(browser: Any, tmp_path: Path) -> None:
    content = sample_digest()
    path, rendered = write_email(tmp_path, content)
    page = open_page(browser, path.as_uri(), 800)
    for anchor in ["top-papers"] + [f"topic-{s.slug}" for s in content.sections]:
        heading = page.locator(f"#{anchor}")
        assert heading.is_visible(), anchor
        assert page.locator(f'a[href="#{anchor}"]').first.is_visible(), anchor  # listed in the contents
    links = dict(page.eval_on_selector_all("a.nl-title", "els => els.map(a => [a.textContent, a.href])"))
    for section in content.sections:
        for p in section.papers[:rendered.shown[section.slug]]:
            assert links[p.title] == p.page_url
    footer = page.locator("a", has_text="Unsubscribe")
    assert footer.is_visible() and footer.get_attribute("href") == VALUES["unsubscribe_url"]
    assert page.locator("a", has_text="Manage preferences").get_attribute("href") == VALUES["preferences_url"]
    assert page.locator("text=1 Example Street").is_visible()
    # In-mail anchors work: the contents entry scrolls to its section.
    last = content.sections[-1].slug
    page.click(f'a[href="#topic-{last}"]')
    page.wait_for_function(f"document.getElementById('topic-{last}').getBoundingClientRect().top < 200")
    page.context.close()


@pytest.mark.parametrize("width", [375, 800])
def test_the_digest_at_phone_and_desktop_width(browser: Any, tmp_path: Path, width: int) -> None:
    content = sample_digest(topics=SCREENSHOT_TOPICS, max_per_topic=3)
    path, _ = write_email(tmp_path, content)
    page = open_page(browser, path.as_uri(), width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.body.scrollWidth") <= width
    wide = page.evaluate(f"""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > {width} + 0.5 && getComputedStyle(e).display !== 'none'
                     && e.getBoundingClientRect().width > 0)
        .map(e => e.tagName + '.' + e.className)""")
    assert not wide, wide
    for section in content.sections:
        assert page.locator(f"#topic-{section.slug}").is_visible()
    assert_readable(page.evaluate(CARD_COLOURS))
    screenshot(page, f"digest-{width}.png", tmp_path)
    page.context.close()


def test_dark_mode_turns_the_colours_and_keeps_them_readable(browser: Any, tmp_path: Path) -> None:
    content = sample_digest(topics=SCREENSHOT_TOPICS, max_per_topic=3)
    path, _ = write_email(tmp_path, content)
    light = open_page(browser, path.as_uri(), 375).evaluate(CARD_COLOURS)
    page = open_page(browser, path.as_uri(), 375, dark=True)
    dark = page.evaluate(CARD_COLOURS)
    assert luminance(light["card"]) > 0.8 and luminance(dark["card"]) < 0.05
    assert luminance(dark["body"]) < 0.05 and luminance(dark["title"]) > 0.7
    assert_readable(dark)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "digest-375-dark.png", tmp_path)
    page.context.close()


def test_long_unbroken_titles_and_hostile_text_do_not_overflow_a_phone(browser: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    from render_sample import hostile_paper

    from newsletter.models import TopicSection

    long_word = hostile_paper(9100, title="Supercalifragilistic" * 12, abstract="https://example.org/" + "a" * 300,
                              organization="O" * 120, url="https://huggingface.co/papers/2503.91000")
    section = TopicSection("other", "More papers", (hostile_paper(), long_word), 2)
    content = replace(sample_digest(topics=["3d"], max_per_topic=1), sections=(section,))
    path, _ = write_email(tmp_path, content)
    page = open_page(browser, path.as_uri(), 375)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.evaluate("typeof window.__hostile") == "undefined" and not page.locator("script").count()
    assert page.locator("a.nl-title", has_text="Supercalifragilistic").get_attribute("href") == long_word.url
    page.context.close()


# --- the preview page --------------------------------------------------------------------------------------------------


@pytest.fixture
def preview_server(tmp_path: Path) -> Iterator[tuple[PreviewServer, Path]]:
    own = tmp_path / "templates"
    shutil.copytree(render.shipped_templates_dir(), own)
    s = settings(templates_dir=str(own))
    content = sample_digest(topics=SCREENSHOT_TOPICS, max_per_topic=3)

    def rendering() -> Rendering:
        render.reset_template_cache()
        rendered = render_digest(content, s, EDITION)
        html, text = rendered.fill(VALUES)
        return Rendering(rendered.subject, html, text)

    server = PreviewServer(rendering, watch=lambda: render.template_files(render.template_search_path(s)))
    server.start()
    yield server, own
    server.close()
    render.reset_template_cache()


def frame_of(page: Any) -> Any:
    return page.frame_locator("#frame")


def test_the_preview_page_switches_views_and_reloads_on_template_changes(browser: Any, tmp_path: Path,
                                                                         preview_server: tuple[PreviewServer, Path]) -> None:
    server, own = preview_server
    page = open_page(browser, server.url, 1280)
    frame = page.locator("#frame")
    assert frame.get_attribute("width") == "800"
    assert frame_of(page).locator("#top-papers").is_visible()
    screenshot(page, "preview-page.png", tmp_path, full_page=False)

    page.click("button[data-view=phone]")
    assert frame.get_attribute("width") == "375"
    page.wait_for_function("document.getElementById('frame').getBoundingClientRect().width === 375")
    inner = page.frame_locator("#frame").locator("body")
    inner.wait_for()
    assert page.frames[1].evaluate("document.documentElement.scrollWidth") <= 375

    page.click("#dark")
    page.wait_for_function("document.getElementById('frame').getAttribute('src') === '/email.html?dark=1'")
    page.wait_for_function("""() => {
        const d = document.getElementById('frame').contentDocument;
        const td = d && d.querySelector('.nl-card > table > tbody > tr > td');
        return td && getComputedStyle(td).backgroundColor === 'rgb(27, 27, 31)';
    }""")
    screenshot(page, "preview-page-phone-dark.png", tmp_path, full_page=False)

    page.click("button[data-view=text]")
    page.wait_for_function("document.getElementById('frame').getAttribute('src') === '/email.txt'")
    page.wait_for_function("() => (document.getElementById('frame').contentDocument.body || {}).innerText"
                           "?.includes('TOP PAPERS')")

    # Edit a template: the page reloads the email by itself.
    page.click("button[data-view=desktop]")
    footer = own / "_footer.mjml"
    original = footer.read_text()
    time.sleep(0.05)
    footer.write_text(original.replace("You get the", "LIVE RELOAD WORKS. You get the"))
    page.wait_for_function("() => (document.getElementById('frame').contentDocument.body || {}).innerText"
                           "?.includes('LIVE RELOAD WORKS')", timeout=10_000)
    # A broken template shows its error and keeps the last good render.
    footer.write_text("{% if %}")
    page.wait_for_selector("#error", state="visible", timeout=10_000)
    assert "_footer.mjml" in page.inner_text("#error")
    footer.write_text(original)
    page.wait_for_selector("#error", state="hidden", timeout=10_000)
    page.context.close()


def test_reference_screenshots_are_committed() -> None:
    names = {"digest-375.png", "digest-800.png", "digest-375-dark.png", "preview-page.png", "preview-page-phone-dark.png"}
    missing = [n for n in sorted(names) if not (SHOTS / n).is_file()]
    assert not missing, f"run UPDATE_SCREENSHOTS=1 python -m pytest tests/test_preview_browser.py: {missing}"
