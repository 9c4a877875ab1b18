"""Paths and constants the tests share (importable as ``support`` from any test folder)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import os

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "newsletter" / "sample"
PAGES = {name: SAMPLE / f"daily-papers-{name}.txt" for name in ("mar14", "mar25", "oct28")}
# The pages carry no year; the tests pin them to one so that dates are stable whatever today is.
PAGE_DAYS = {"mar14": date(2025, 3, 14), "mar25": date(2025, 3, 25), "oct28": date(2025, 10, 28)}


def real_data_dir() -> Path:
    """What real upstreams sent (../shared/data/real beside the clone, or $NEWSLETTER_REAL_DATA).

    Read in place, never copied into the project; see its README.md for where each file came from.
    """
    override = os.environ.get("NEWSLETTER_REAL_DATA")
    return Path(override) if override else ROOT.parent / "shared" / "data" / "real"


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    """config.yaml in tmp_path: the shipped one, with a local source and a SQLite file, plus overrides."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["sources"] = [{"type": "hf-page", "path": str(PAGES["mar14"])}]
    data["database_url"] = "sqlite:///newsletter.db"
    data.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class GrowingDailyPapers:
    """A stand-in of the Daily Papers API whose day lists grow through the day, as the real one's do.

    ``lists`` maps a listing day to its items (the API's shape); at the stand-in's clock ``now`` (UTC) a
    day's list holds the items listed by then (``submittedOnDailyAt``, else the item's ``publishedAt``).
    Like the real API it answers 400 with a JSON error for a day later than today in UTC, ``[]`` for a day
    with nothing listed, and pages with ``p`` and ``limit``. ``asked`` records every date requested.
    """

    def __init__(self, lists: dict[date, list[dict[str, Any]]], now: Any = None) -> None:
        self.lists = lists
        self.now = now
        self.asked: list[date] = []

    @staticmethod
    def listed_at(item: dict[str, Any]) -> str:
        return str(item["paper"].get("submittedOnDailyAt") or item.get("publishedAt"))

    def handler(self, request: Any) -> Any:
        import json

        from werkzeug import Response

        day = date.fromisoformat(request.args["date"])
        self.asked.append(day)
        if day > self.now.date():
            return Response(json.dumps({"error": "Date cannot be in the future"}), status=400,
                            content_type="application/json")
        stamp = self.now.strftime("%Y-%m-%dT%H:%M:%S.999Z")
        visible = [i for i in self.lists.get(day, []) if self.listed_at(i) <= stamp]
        page, limit = int(request.args.get("p", 0)), int(request.args.get("limit", 50))
        return Response(json.dumps(visible[page * limit:(page + 1) * limit]), content_type="application/json")


def archived_days(real_data: Path) -> dict[date, list[dict[str, Any]]]:
    """The 48 archived raw ``/api/daily_papers?date=D`` responses (hf-api-days/), by listing day."""
    import json

    return {date.fromisoformat(p.stem): json.loads(p.read_text())
            for p in sorted((real_data / "hf-api-days").glob("*.json"))}


def replay_daily_sends(nl: Any, standin: GrowingDailyPapers, days: list[date], send_at: str = "08:00",
                       zone: str = "Europe/Berlin") -> dict[date, list[str]]:
    """Every weekday send of a daily digest on an archived day or the three days after it (Friday's late
    papers reach Monday), as the live run does it: fetch (catching up) as of the send's day, then plan,
    record the edition and mark it sent to its one reader. Returns the paper keys each send delivered."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    runs = sorted({d + timedelta(days=n) for d in days for n in range(4)})
    hour, minute = (int(x) for x in send_at.split(":"))
    sent: dict[date, list[str]] = {}
    for run in runs:
        if run.weekday() >= 5:  # schedule.daily is mon-fri
            continue
        standin.now = datetime.combine(run, time(hour, minute), ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))
        report = nl.fetch(standin.now.date())
        assert not [s.error for s in report.sources if s.error], report.sources
        plan = nl.plan("daily", run)
        [reader] = plan.readers
        if reader.papers:
            edition = nl.record_edition(plan, subject=f"daily {run}")
            nl.store.set_delivery_state(edition, reader.subscriber.id, "sent")
        sent[run] = [p.key for p in reader.papers]
    return sent


def wait_listening(proc: Any, port: int, timeout: float, what: str) -> None:
    """Wait until a child process listens on 127.0.0.1:``port``; RuntimeError(``what``) if it exits or times out."""
    import socket
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(what) from None
            time.sleep(0.1)
