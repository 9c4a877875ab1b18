"""Listing days of the sources that take a date: which were read, and which are known complete.

A day's list on the Daily Papers site keeps growing after it opens, so a day read once, early, misses
what is added later. A day counts as complete once a read at least one day after its end (UTC) saw it;
until then every fetch reads it again (issue 10).

Example::

    done = complete_days(store.engine, "huggingface", date(2025, 11, 1), date(2025, 11, 14))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .schema import ListingDayRow

SETTLED_AFTER = timedelta(days=2)  # from a day's start: its end (one day) and one more day


@dataclass(frozen=True)
class ListingRead:
    """One read of one listing day: what it held, and whether the read came late enough to be final."""

    day: date
    papers: int
    complete: bool


def is_settled(day: date, today: date) -> bool:
    """Whether a read made on ``today`` (UTC) comes at least a day after ``day`` ended."""
    return today - day >= SETTLED_AFTER


def complete_days(engine: Engine, source: str, since: date, until: date) -> set[date]:
    """The days in [since, until] of ``source`` known complete."""
    with Session(engine) as s:
        rows = s.scalars(select(ListingDayRow.day).where(
            ListingDayRow.source == source, ListingDayRow.complete.is_(True),
            ListingDayRow.day >= since, ListingDayRow.day <= until))
        return set(rows)


def record_reads(s: Session, source: str, reads: Sequence[ListingRead], now: datetime) -> None:
    """Record reads of ``source``'s days in the session ``s`` (the ingest's transaction). A day once
    complete stays complete."""
    for read in reads:
        row = s.get(ListingDayRow, (source, read.day))
        if row is None:
            s.add(ListingDayRow(source=source, day=read.day, complete=read.complete, papers=read.papers,
                                read_at=now))
        else:
            row.complete = row.complete or read.complete
            row.papers = max(row.papers, read.papers)
            row.read_at = now
