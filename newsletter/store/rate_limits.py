"""The web app's rate limits as token buckets in the database, so every worker process (and every machine
on the same database) spends from the same buckets.

``take`` is one conditional UPDATE (atomic on SQLite and PostgreSQL alike: no lost update between two
processes), an INSERT for a key not seen yet, and a read only when a request is refused.

Example::

    wait = take(store, "ip:198.51.100.7", capacity=20, period=3600, now=time.time())
    if wait: ...  # refused; a token is free again in ``wait`` seconds
"""

from __future__ import annotations

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import Store
from .schema import RateBucketRow

T = RateBucketRow.__table__


def take(store: Store, key: str, *, capacity: int, period: float, now: float) -> float:
    """Spend a token of bucket ``key`` and return 0, or return the seconds until one is free (nothing spent).
    The bucket holds ``capacity`` tokens and refills at ``capacity`` per ``period`` seconds."""
    rate = capacity / period
    # Another process's clock may be a little behind: time never runs backwards for a bucket.
    refilled = T.c.tokens + case((T.c.at < now, (now - T.c.at) * rate), else_=0.0)
    level = case((refilled > capacity, float(capacity)), else_=refilled)
    for _ in range(3):  # a race on a new key: the other process inserted it first; update it then
        with store.session() as s, s.begin():
            spent = s.execute(update(T).where(T.c.key == key, level >= 1.0)
                              .values(tokens=level - 1.0, at=case((T.c.at > now, T.c.at), else_=now))).rowcount
            if spent:
                return 0.0
            row = s.execute(select(T.c.tokens, T.c.at).where(T.c.key == key)).first()
            if row is not None:
                tokens = min(float(capacity), row.tokens + max(0.0, now - row.at) * rate)
                return max((1.0 - tokens) / rate, 0.001)
        try:
            with store.session() as s, s.begin():
                s.execute(insert(T).values(key=key, tokens=float(capacity) - 1.0, at=now))
            return 0.0
        except IntegrityError:
            continue
    return 1.0  # contended beyond reason: refuse this one


def prune(store: Store, *, older_than: float) -> int:
    """Forget buckets untouched since ``older_than`` (they are full again); returns how many."""
    with store.session() as s, s.begin():
        return int(s.execute(delete(T).where(T.c.at < older_than)).rowcount or 0)
