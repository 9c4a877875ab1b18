"""axe-core's WCAG 2.1 AA rules run on a page in the browser tests' Chromium.

axe-core comes from PyPI: ``axe-playwright-python`` bundles ``axe.min.js`` (the test extra bounds it). Only the
rules tagged wcag2a, wcag2aa, wcag21a and wcag21aa run, in light mode (the caller's context).
"""

from __future__ import annotations

from typing import Any

WCAG21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of the WCAG 2.1 A and AA rules on ``page`` (a Playwright page, loaded)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG21_AA},
                                       "resultTypes": ["violations"]})
    return list(results.response["violations"])


def report(found: list[dict[str, Any]]) -> str:
    """The violations as lines a failing assertion shows: rule, impact, how many, the first element."""
    lines = []
    for v in found:
        first = v["nodes"][0] if v["nodes"] else {}
        lines.append(f"{v['id']} ({v['impact']}, {len(v['nodes'])}x): {v['help']}\n"
                     f"    {first.get('html', '')[:200]}\n    {first.get('failureSummary', '')[:300]}")
    return "\n".join(lines)


def axe_version() -> str:
    from importlib.resources import files

    head = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")[:40]
    return head.split("axe v", 1)[1].split()[0] if "axe v" in head else "?"
