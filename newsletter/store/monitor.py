"""The queries behind ``/healthz`` and ``/metrics`` (``newsletter/monitor``): a few cheap aggregates, and the
shared counters every process adds to (``metric_counters``).

Counters are added with one ``INSERT … ON CONFLICT DO UPDATE SET value = value + excluded.value`` per
flush, so two senders adding at once both count (SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

from sqlalchemy import Engine, func, select, text

from ..models import DELIVERY_CLAIMED, DELIVERY_PENDING, DELIVERY_RETRY, EDITION_ACTIVE
from .schema import DeliveryRow, EditionRow, MetricCounterRow, StateRow, SubscriberRow

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs


def label_key(labels: Mapping[str, str] | Labels) -> str:
    pairs = sorted(labels.items()) if isinstance(labels, Mapping) else sorted(labels)
    return _label_key(tuple(pairs))


@lru_cache(maxsize=1024)  # the send loop counts a few label sets, once per message each
def _label_key(pairs: Labels) -> str:
    return json.dumps(dict(pairs), sort_keys=True, separators=(",", ":"))


def add_counts(engine: Engine, increments: Mapping[tuple[str, str], float]) -> None:
    """Add ``increments`` ({(name, label_key): amount}) to the stored counters, in one transaction."""
    if not increments:
        return
    table = MetricCounterRow.__table__
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.name, table.c.labels],
                                      set_={"value": table.c.value + stmt.excluded.value})
    rows = [{"name": name, "labels": labels, "value": float(value)}
            for (name, labels), value in sorted(increments.items())]  # sorted: the same lock order everywhere
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def counters(engine: Engine) -> list[tuple[str, dict[str, str], float]]:
    """Every stored counter as (name, labels, value)."""
    with engine.connect() as conn:
        rows = conn.execute(select(MetricCounterRow.name, MetricCounterRow.labels, MetricCounterRow.value)
                            .order_by(MetricCounterRow.name, MetricCounterRow.labels)).all()
    return [(r.name, json.loads(r.labels), float(r.value)) for r in rows]


def delivery_states(engine: Engine) -> dict[str, int]:
    """Deliveries by stored state, over every edition."""
    with engine.connect() as conn:
        rows = conn.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all()
    return {state: int(n) for state, n in rows}


def queue_depth(engine: Engine) -> dict[str, int]:
    """Deliveries still to go out (pending, retry, claimed) of active editions, by state: one aggregate."""
    waiting = (DELIVERY_PENDING, DELIVERY_RETRY, DELIVERY_CLAIMED)
    with engine.connect() as conn:
        rows = conn.execute(
            select(DeliveryRow.state, func.count())
            .join(EditionRow, EditionRow.id == DeliveryRow.edition_id)
            .where(DeliveryRow.state.in_(waiting), EditionRow.state == EDITION_ACTIVE)
            .group_by(DeliveryRow.state)).all()
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in waiting}


def subscriber_statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(SubscriberRow.status, func.count()).group_by(SubscriberRow.status)).all()
    return {status: int(n) for status, n in rows}


def ping(engine: Engine) -> None:
    """One round trip to the database; raises what the driver raises."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def read_json_states(engine: Engine, keys: tuple[str, ...]) -> dict[str, Any]:
    """The JSON values stored under ``keys`` in app_state (one query); a key not stored is left out."""
    with engine.connect() as conn:
        rows = conn.execute(select(StateRow.key, StateRow.value).where(StateRow.key.in_(keys))).all()
    out: dict[str, Any] = {}
    for key, value in rows:
        try:
            out[key] = json.loads(value)
        except ValueError:
            continue
    return out


def write_json_state(engine: Engine, key: str, value: Any) -> None:
    """Store ``value`` as JSON under ``key`` (replacing what was there)."""
    table = StateRow.__table__
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(table).values(key=key, value=json.dumps(value, sort_keys=True, default=str))
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.key], set_={"value": stmt.excluded.value})
    with engine.begin() as conn:
        conn.execute(stmt)
