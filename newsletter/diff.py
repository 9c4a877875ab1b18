"""The diff: which papers each reader has not been sent yet. Pure: no I/O, no clock.

A paper is a candidate for a cadence when it was *seen trending* within that cadence's window (its
publication date can be years old and does not matter). A reader's unsent papers are the candidates
minus everything already taken for them (sent, or queued in a delivery not yet finished), plus the
papers a failed delivery gave back, which carry over to their next digest whatever their age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import AbstractSet, Iterable, Mapping, Sequence

from .models import SUBSCRIBER_ACTIVE, Paper, Subscriber


def period_for(cadence: str, day: date) -> str:
    """The period an edition covers: the day for daily (``2026-03-14``), the ISO week for weekly (``2026-W11``).

    >>> period_for("weekly", date(2026, 3, 14))
    '2026-W11'
    """
    if cadence == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def window_start(day: date, window_days: int) -> date:
    """First trending day inside a window of ``window_days`` days that ends with ``day``."""
    return day - timedelta(days=window_days - 1)


@dataclass(frozen=True)
class ReaderDiff:
    subscriber: Subscriber
    papers: tuple[Paper, ...]  # unsent, in candidate order


def unsent_papers(
    candidates: Sequence[Paper],
    subscribers: Iterable[Subscriber],
    taken: Mapping[int, AbstractSet[int]],
    carried_over: Mapping[int, Sequence[Paper]] | None = None,
) -> list[ReaderDiff]:
    """For each active subscriber, the papers they have not been sent.

    Linear in subscribers × candidates: one set lookup per pair.
    """
    carried_over = carried_over or {}
    result = []
    for sub in subscribers:
        if sub.status != SUBSCRIBER_ACTIVE:
            continue
        seen = taken.get(sub.id, frozenset())
        papers = [p for p in candidates if p.id not in seen]
        extra = carried_over.get(sub.id, ())
        if extra:
            have = {p.id for p in papers}
            papers.extend(p for p in extra if p.id not in seen and p.id not in have)
        result.append(ReaderDiff(sub, tuple(papers)))
    return result
