"""Cron expressions as crontab means them, turned into APScheduler 3 triggers.

APScheduler 3 numbers the days of the week from Monday (``0`` is Monday), while crontab(5) numbers them
from Sunday (``0`` and ``7`` are Sunday). An operator who writes ``0 8 * * 1-5`` means Monday to Friday; given
to ``CronTrigger.from_crontab`` as it is, it would run Tuesday to Saturday. So a day-of-week field with
numbers is read the crontab way and handed to APScheduler as day names, which both read alike.

Example::

    >>> crontab_day_of_week("1-5")
    'mon,tue,wed,thu,fri'
    >>> crontab_day_of_week("mon-fri")
    'mon-fri'
    >>> trigger("0 8 * * 1-5", "Europe/Berlin")  # doctest: +ELLIPSIS
    <CronTrigger (month='*', day='*', day_of_week='mon,tue,wed,thu,fri', hour='8', minute='0', ...)>
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["crontab_day_of_week", "trigger"]

# crontab's numbering: 0 (and 7) is Sunday.
_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMBER = {name: i for i, name in enumerate(_NAMES)}


def _day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        n = int(token)
        if not 0 <= n <= 7:
            raise ValueError(f"day of week {token!r} is out of range: it takes 0-7 (0 and 7 are Sunday) or sun-sat")
        return n % 7 if n == 7 else n
    if token[:3] in _NUMBER and len(token) == 3:
        return _NUMBER[token]
    raise ValueError(f"day of week {token!r} is not a day: it takes 0-7 (0 and 7 are Sunday) or sun-sat")


def crontab_day_of_week(field: str) -> str:
    """The crontab day-of-week ``field`` in APScheduler's terms: names, so no numbering can be misread.

    A field without digits (``*``, ``mon-fri``, ``sat,sun``) is passed through unchanged.
    """
    if not re.search(r"\d", field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        part = part.strip()
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"day of week step {step_text!r} is not a positive number")
            step = int(step_text)
        if part == "*":
            lo, hi = 0, 6
        elif "-" in part:
            a, _, b = part.partition("-")
            lo, hi = _day(a), int(b) if b.strip() == "7" else _day(b)
            if lo > hi:
                raise ValueError(f"day of week range {part!r} runs backwards; write it as two ranges")
        else:
            lo = hi = _day(part)
            if step != 1:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_NAMES[d] for d in sorted(days, key=lambda d: (d - 1) % 7))  # Monday first


def trigger(expr: str, timezone: Any) -> Any:
    """An APScheduler ``CronTrigger`` for a 5-field crontab expression, day-of-week read the crontab way."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r} is not a 5-field cron expression like '0 8 * * mon-fri'")
    minute, hour, day, month, dow = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_day_of_week(dow),
                       timezone=timezone)
