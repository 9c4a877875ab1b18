"""Template checks: mjml-python validates nothing and silently drops what it does not know, so a template
mistake would only show in a mail client. Tests and ``newsletter preview`` run these instead."""

from __future__ import annotations

from html.parser import HTMLParser

from ..config import Settings
from ..models import DigestContent
from . import (
    HTML_TEMPLATE,
    TEXT_TEMPLATE,
    _context,
    _markers,
    compile_mjml,
    email_counts,
    format_subject,
    preheader_for,
    templates_for,
)


# --- template checks ------------------------------------------------------------------------------------------

# Where each MJML element may appear. mjml-python validates nothing and silently drops what it does not know,
# so a template mistake would only show in a client; tests and `newsletter preview` run this instead.
_BODY_CONTAINERS = {"mj-column", "mj-hero"}
_PARENTS: dict[str, set[str | None]] = {
    "mjml": {None},
    "mj-head": {"mjml"}, "mj-body": {"mjml"},
    "mj-attributes": {"mj-head"}, "mj-breakpoint": {"mj-head"}, "mj-preview": {"mj-head"},
    "mj-style": {"mj-head"}, "mj-title": {"mj-head"},
    "mj-raw": {"mj-head", "mj-body", "mj-wrapper", "mj-section", "mj-column", "mj-hero"},
    "mj-wrapper": {"mj-body"}, "mj-section": {"mj-body", "mj-wrapper"}, "mj-group": {"mj-section"},
    "mj-column": {"mj-section", "mj-group"}, "mj-hero": {"mj-body", "mj-wrapper"},
    **{tag: set(_BODY_CONTAINERS) for tag in ("mj-text", "mj-button", "mj-image", "mj-divider", "mj-spacer",
                                               "mj-table", "mj-social", "mj-navbar", "mj-accordion", "mj-carousel")},
    "mj-social-element": {"mj-social"}, "mj-navbar-link": {"mj-navbar"},
    "mj-accordion-element": {"mj-accordion"}, "mj-accordion-title": {"mj-accordion-element"},
    "mj-accordion-text": {"mj-accordion-element"}, "mj-carousel-image": {"mj-carousel"},
}
_FORBIDDEN = {
    "mj-html-attributes": "mjml-python raises on it",
    "mj-selector": "mjml-python raises on it",
    "mj-font": "it adds a Google Fonts link; use the system font stack",
    "mj-include": "mjml-python resolves no includes here; use Jinja's {% include %}",
}
# Elements whose content is HTML or text, not MJML.
_OPAQUE = {"mj-text", "mj-button", "mj-raw", "mj-style", "mj-title", "mj-preview", "mj-table",
           "mj-navbar-link", "mj-social-element", "mj-accordion-title", "mj-accordion-text"}


class _MjmlChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.opaque_depth = 0

    def _where(self) -> str:
        line, _ = self.getpos()
        return f"line {line}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, closes=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, closes=True)

    def _open(self, tag: str, attrs: list[tuple[str, str | None]], closes: bool) -> None:
        if self.opaque_depth:
            if tag == self.stack[-1] and not closes:
                self.opaque_depth += 1
            return
        parent = self.stack[-1] if self.stack else None
        if tag in _FORBIDDEN:
            self.problems.append(f"{self._where()}: <{tag}> is not allowed: {_FORBIDDEN[tag]}")
        elif parent == "mj-attributes":
            pass  # mj-all, mj-class and per-element defaults
        elif tag.startswith("mj-") or tag == "mjml":
            allowed = _PARENTS.get(tag)
            if allowed is None:
                self.problems.append(f"{self._where()}: unknown MJML element <{tag}>")
            elif parent not in allowed:
                self.problems.append(f"{self._where()}: <{tag}> cannot be inside <{parent or 'the document'}>")
            if tag == "mj-style" and any(k == "inline" for k, _ in attrs):
                self.problems.append(f"{self._where()}: mjml-python ignores <mj-style inline>; put the styles in "
                                     "attributes")
        else:
            self.problems.append(f"{self._where()}: HTML <{tag}> directly inside <{parent or 'the document'}>; "
                                 "put HTML inside <mj-text> or <mj-raw>")
        if not closes:
            self.stack.append(tag)
            if tag in _OPAQUE:
                self.opaque_depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.opaque_depth:
            if tag != self.stack[-1]:
                return
            self.opaque_depth -= 1
            if self.opaque_depth:
                return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"{self._where()}: </{tag}> does not close <{self.stack[-1] if self.stack else ''}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.opaque_depth and data.strip() and self.stack and self.stack[-1] != "mj-attributes":
            self.problems.append(f"{self._where()}: text {data.strip()[:30]!r} directly inside <{self.stack[-1]}>")


def check_mjml(source: str) -> list[str]:
    """Problems of an MJML document (after Jinja): unknown or misplaced elements, features mjml-python
    ignores or rejects, stray text. An empty list means it is well-formed as far as MJML goes."""
    checker = _MjmlChecker()
    checker.feed(source)
    checker.close()
    if checker.stack:
        checker.problems.append(f"unclosed: {', '.join('<' + t + '>' for t in checker.stack)}")
    return checker.problems


def check_templates(settings: Settings, content: DigestContent, edition_url: str = "https://example.invalid/e/1"
                    ) -> list[str]:
    """Render ``content`` with the configured templates and list every problem found (empty: all good)."""
    templates = templates_for(settings)
    slots = _markers(content, edition_url)
    counts = email_counts(content)
    subject = format_subject(settings.digest.subject, content, counts)
    ctx = _context(content, settings, {s.slug: len(s.papers) for s in content.sections}, slots,
                   subject, preheader_for(content, counts), counts)
    source = templates.render(templates.html, HTML_TEMPLATE, ctx)
    problems = check_mjml(source)
    html = compile_mjml(source)
    if "<mj-" in html:
        problems.append("the compiled HTML still holds <mj-...> tags: an element mjml-python did not know")
    if "fonts.googleapis" in html:
        problems.append("the compiled HTML links Google Fonts")
    text = templates.render(templates.text, TEXT_TEMPLATE, ctx)
    for name, marker in slots.items():
        if marker not in html:
            problems.append(f"the HTML has no {name} (the footer must link the web copy, preferences and "
                            "unsubscribe)")
        if name != "greeting" and marker not in text:
            problems.append(f"the text part has no {name}")
    return problems
