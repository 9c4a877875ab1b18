"""The pure diff: unsent papers per reader, carry-over, periods and windows."""

from __future__ import annotations

from datetime import date

from newsletter.diff import period_for, unsent_papers, window_start
from newsletter.models import Paper, Subscriber


def paper(i: int) -> Paper:
    return Paper(id=i, key=f"k{i}", title=f"Paper {i}", abstract="")


def reader(i: int, status: str = "active") -> Subscriber:
    return Subscriber(id=i, email=f"r{i}@example.org", status=status, cadence="daily")


def test_each_reader_gets_only_what_they_were_not_sent() -> None:
    candidates = [paper(i) for i in range(1, 6)]
    result = unsent_papers(candidates, [reader(1), reader(2)], taken={1: {1, 2}, 2: set()})
    assert [[p.id for p in r.papers] for r in result] == [[3, 4, 5], [1, 2, 3, 4, 5]]


def test_inactive_readers_are_skipped() -> None:
    result = unsent_papers([paper(1)], [reader(1, "unsubscribed"), reader(2, "pending"), reader(3)], taken={})
    assert [r.subscriber.id for r in result] == [3]


def test_papers_of_a_failed_send_carry_over_once() -> None:
    old = paper(9)  # outside the window now, given back by a failed delivery
    result = unsent_papers([paper(1), paper(2)], [reader(1)], taken={1: {2}}, carried_over={1: [old, paper(1)]})
    assert [p.id for p in result[0].papers] == [1, 9]


def test_carried_over_papers_already_taken_are_not_repeated() -> None:
    result = unsent_papers([], [reader(1)], taken={1: {9}}, carried_over={1: [paper(9)]})
    assert result[0].papers == ()


def test_periods_and_windows() -> None:
    assert period_for("daily", date(2025, 3, 14)) == "2025-03-14"
    assert period_for("weekly", date(2025, 3, 14)) == "2025-W11"
    assert period_for("weekly", date(2024, 12, 30)) == "2025-W01"  # ISO week-year, not calendar year
    assert window_start(date(2025, 3, 14), 7) == date(2025, 3, 8)
    assert window_start(date(2025, 3, 14), 1) == date(2025, 3, 14)


def test_cost_is_linear_in_readers_and_papers() -> None:
    # Structural check: one membership test per (reader, candidate) pair; 2,000 x 500 finishes instantly.
    candidates = [paper(i) for i in range(500)]
    readers = [reader(i) for i in range(2000)]
    taken = {r.id: set(range(r.id % 500)) for r in readers}
    result = unsent_papers(candidates, readers, taken)
    assert sum(len(r.papers) for r in result) == sum(500 - (i % 500) for i in range(2000))
