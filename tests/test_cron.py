"""Cron expressions mean what crontab(5) says, whatever APScheduler 3 numbers its weekdays from."""

from __future__ import annotations

import doctest
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter import config, cron, schedule

from support import write_config

BERLIN = ZoneInfo("Europe/Berlin")


def weekdays_fired(expr: str) -> list[str]:
    """The weekday names the trigger fires on in one week (Mon 2025-03-10 to Sun 2025-03-16)."""
    trigger = cron.trigger(expr, BERLIN)
    start, end = datetime(2025, 3, 10, 0, 0, tzinfo=BERLIN), datetime(2025, 3, 16, 23, 59, tzinfo=BERLIN)
    return [t.strftime("%a") for t in schedule.fire_times(trigger, start, end)]


@pytest.mark.parametrize(("expr", "days"), [
    ("0 8 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),   # APScheduler alone: Tue-Sat
    ("0 8 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 9 * * 1", ["Mon"]),                                  # APScheduler alone: Tuesday
    ("0 9 * * 0", ["Sun"]),                                  # APScheduler alone: Monday
    ("0 9 * * 7", ["Sun"]),                                  # APScheduler alone: refused
    ("0 9 * * 6,0", ["Sat", "Sun"]),
    ("0 9 * * 5-7", ["Fri", "Sat", "Sun"]),
    ("0 9 * * */2", ["Tue", "Thu", "Sat", "Sun"]),           # crontab: 0,2,4,6
    ("0 9 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
])
def test_numeric_weekdays_count_from_sunday_as_in_crontab(expr: str, days: list[str]) -> None:
    assert weekdays_fired(expr) == days


def test_the_scheduler_and_config_check_read_weekdays_alike(tmp_path) -> None:  # noqa: ANN001
    settings = config.load(write_config(tmp_path, schedule={"daily": "0 8 * * 1-5", "weekly": "0 9 * * 1",
                                                             "timezone": "Europe/Berlin"}))
    trigger = schedule.trigger_for(settings, "weekly")
    assert trigger.get_next_fire_time(None, datetime(2025, 3, 11, tzinfo=BERLIN)).strftime("%a %d") == "Mon 17"


@pytest.mark.parametrize(("field", "why"), [("8", "out of range"), ("5-1", "backwards"), ("*/0", "positive")])
def test_a_weekday_crontab_refuses_is_refused_with_the_reason(tmp_path, field: str, why: str) -> None:  # noqa: ANN001
    with pytest.raises(Exception) as caught:
        config.load(write_config(tmp_path, schedule={"daily": f"0 8 * * {field}"}))
    assert "schedule.daily" in str(caught.value) and why in str(caught.value)


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(cron).failed == 0
