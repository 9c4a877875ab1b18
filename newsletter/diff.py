"""The diff: which papers each reader has not been sent yet. Pure: no I/O, no clock.

A paper is a candidate for a cadence when it was *seen trending* within that cadence's window (its
publication date can be years old and does not matter). A reader's unsent papers are the candidates
minus everything already taken for them (sent, or queued in a delivery not yet finished), plus the
papers a failed delivery gave back, which carry over to their next digest whatever their age.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from datetime import date, timedelta
from typing import AbstractSet, Callable, Iterable, Mapping, Sequence

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


ID_TYPE = "i"  # readers' ids are 4-byte integers in the schema


@dataclass
class ReaderGroup:
    """Readers who get the same unsent papers and chose the same topics and excluded keywords: they share one
    digest. ``subscriber`` is one of them (the first by id) and carries the group's choices; ``ids`` holds
    every member's id, ascending (an ``array`` of 4-byte ints, as the ids are stored: a million readers take
    4 MB; 8-byte ints for a group once an id does not fit)."""

    subscriber: Subscriber
    papers: tuple[Paper, ...]  # unsent, in candidate order, then carried-over papers by id
    ids: "array[int]"

    @property
    def count(self) -> int:
        return len(self.ids)


class GroupBuilder:
    """Sorts readers into ``ReaderGroup``s as their rows stream in; pure (the caller reads the rows).

    A row is (id, topics JSON, excluded keywords JSON, history): the same strings give the same group, so a
    reader costs one dict lookup; each distinct topics or history string is decoded once.
    """

    def __init__(self, cadence: str, candidates: Sequence[Paper], history: Callable[[str | None], tuple[AbstractSet[int], AbstractSet[int]]],
                 papers_by_id: Mapping[int, Paper]) -> None:
        self.cadence = cadence
        self.candidates = tuple(candidates)
        self.history = history  # history string -> (taken, returned)
        self.papers_by_id = papers_by_id  # papers that may carry over (given back by failed deliveries)
        self._by_row: dict[tuple[str | None, str | None, str | None], ReaderGroup] = {}
        self._groups: dict[tuple[object, ...], ReaderGroup] = {}
        self._unsent: dict[str | None, tuple[Paper, ...]] = {}
        self._json: dict[str | None, object] = {}
        self.readers = 0

    def _decode(self, raw: str | None) -> object:
        if raw not in self._json:
            self._json[raw] = None if raw is None else json.loads(raw)
        return self._json[raw]

    def _papers_for(self, history: str | None) -> tuple[Paper, ...]:
        found = self._unsent.get(history)
        if found is None:
            taken, returned = self.history(history)
            papers = [p for p in self.candidates if p.id not in taken]
            if returned:
                have = {p.id for p in papers}
                papers.extend(self.papers_by_id[pid] for pid in sorted(returned)
                              if pid in self.papers_by_id and pid not in have)
            found = self._unsent[history] = tuple(papers)
        return found

    def add(self, rows: Iterable[tuple[int, str | None, str | None, str | None]]) -> None:
        by_row = self._by_row
        for row in rows:
            sid, topics, excluded, history = row
            group = by_row.get((topics, excluded, history))
            if group is None:
                group = self._group(sid, topics, excluded, history)
                by_row[(topics, excluded, history)] = group
            try:
                group.ids.append(sid)
            except OverflowError:  # an id past 2**31 (SQLite allows it): this group's ids go 8 bytes each
                group.ids = array("q", group.ids)
                group.ids.append(sid)
            self.readers += 1

    def _group(self, sid: int, topics: str | None, excluded: str | None, history: str | None) -> ReaderGroup:
        papers = self._papers_for(history)
        chosen = self._decode(topics)
        words = self._decode(excluded) or ()
        key = (topics, excluded, tuple(p.id for p in papers))
        group = self._groups.get(key)
        if group is None:
            sub = Subscriber(id=sid, email="", status=SUBSCRIBER_ACTIVE, cadence=self.cadence,
                             topics=tuple(chosen) if chosen is not None else None,  # type: ignore[arg-type]
                             excluded_keywords=tuple(words))  # type: ignore[arg-type]
            group = self._groups[key] = ReaderGroup(sub, papers, array(ID_TYPE))
        return group

    def groups(self) -> list[ReaderGroup]:
        """The groups, by their first reader's id."""
        return sorted(self._groups.values(), key=lambda g: g.ids[0])
