"""``GET /healthz``: is the database reachable, is a scheduler alive, and how did the last fetch and send go.

``scheduler`` says both what this process knows (``in_process``: this web process runs one) and what the
database knows: the heartbeat a scheduler in any process writes every ``HEARTBEAT_SECONDS`` (``newsletter
schedule`` and ``newsletter serve --no-scheduler`` are a common pair). ``status`` is ``running`` (a
heartbeat within three intervals), ``stale`` (older: that scheduler died without stopping), ``stopped`` (it
stopped cleanly) or ``none`` (no scheduler ever ran on this database).

The answer is 503 only when the database cannot be queried, with the driver's reason; a stale scheduler or
a failed fetch is reported in the body with 200, for a monitor to alert on as it sees fit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine

from ..store.monitor import ping, read_json_states
from . import HEARTBEAT_SECONDS, LAST_FETCH, LAST_SEND, SCHEDULER


def _age(value: Any, now: datetime) -> float | None:
    try:
        return round((now - datetime.fromisoformat(str(value))).total_seconds(), 1)
    except (TypeError, ValueError):
        return None


def scheduler_status(record: dict[str, Any] | None, in_process: bool, now: datetime) -> dict[str, Any]:
    if not record:
        return {"status": "none", "in_process": in_process, "heartbeat": None}
    age = _age(record.get("heartbeat"), now)
    interval = float(record.get("interval_seconds") or HEARTBEAT_SECONDS)
    if record.get("stopped"):
        status = "stopped"
    elif age is not None and age <= 3 * interval:
        status = "running"
    else:
        status = "stale"
    return {"status": status, "in_process": in_process, "heartbeat": record.get("heartbeat"),
            "heartbeat_age_seconds": age, "pid": record.get("pid"), "host": record.get("host"),
            "started": record.get("started"), "next_runs": record.get("next_runs") or {}}


def health(engine: Engine, *, scheduler_in_process: bool, now: datetime | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/healthz``."""
    now = now or datetime.now(timezone.utc)
    try:
        ping(engine)
        records = read_json_states(engine, (LAST_FETCH, LAST_SEND, SCHEDULER))
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises is the reason
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300] or type(exc).__name__
        return 503, {"database": f"error: {reason}",
                     "scheduler": {"status": "unknown", "in_process": scheduler_in_process},
                     "last_fetch": None, "last_send": None}
    return 200, {"database": "ok",
                 "scheduler": scheduler_status(records.get(SCHEDULER), scheduler_in_process, now),
                 "last_fetch": records.get(LAST_FETCH), "last_send": records.get(LAST_SEND)}


__all__ = ["health", "scheduler_status"]
