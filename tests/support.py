"""Paths and constants the tests share (importable as ``support`` from any test folder)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "newsletter" / "sample"
PAGES = {name: SAMPLE / f"daily-papers-{name}.txt" for name in ("mar14", "mar25", "oct28")}
# The pages carry no year; the tests pin them to one so that dates are stable whatever today is.
PAGE_DAYS = {"mar14": date(2025, 3, 14), "mar25": date(2025, 3, 25), "oct28": date(2025, 10, 28)}
