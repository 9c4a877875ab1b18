"""Planning and recording at a size where a bound list of readers would break (issue 12), on SQLite and
PostgreSQL: no statement binds more than a fixed number of parameters (counted on every statement; on SQLite
the database itself is held to a lower ``SQLITE_LIMIT_VARIABLE_NUMBER`` than there are readers), and the
streamed, grouped diff gives each reader exactly what the reader-by-reader diff gives."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import event, func, select, text

from newsletter import config
from newsletter.diff import unsent_papers
from newsletter.models import SUBSCRIBER_ACTIVE
from newsletter.pipeline import Newsletter
from newsletter.sources.hf_page import SavedPageSource
from newsletter.store import Store
from newsletter.store.schema import DeliveryRow, DigestRow
from newsletter.store.sent import reader_batches

from support import PAGES

READERS = 1500
LIMIT = 600  # bound parameters per statement: fewer than there are readers
DAY = date(2025, 3, 14)
TOPICS = [None, ["llm-inference"], ["vision", "3d"], ["agents", "code", "reasoning"], ["3d", "vision"], []]


class Bound:
    """The most parameters any statement bound (per row of an executemany)."""

    def __init__(self) -> None:
        self.most = 0
        self.statement = ""

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        rows = parameters if many else [parameters]
        for row in rows or ():
            n = len(row) if row is not None else 0
            if n > self.most:
                self.most, self.statement = n, statement[:200]


def _limit(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, LIMIT)


@pytest.fixture
def counted(db_url: str, tmp_path: Path) -> Iterator[tuple[Newsletter, Bound]]:
    store = Store.open(db_url)
    bound = Bound()
    event.listen(store.engine, "connect", _limit)
    event.listen(store.engine, "before_cursor_execute", bound)
    store.engine.dispose()  # every connection from now on has the lower limit
    settings = config.from_mapping({"database_url": db_url, "sources": [{"type": "hf-page", "path": str(PAGES["mar14"])}],
                                    "digest": {"max_papers": 12, "max_per_topic": 4}}, environ={}, base_dir=tmp_path)
    nl = Newsletter(settings, store)
    yield nl, bound
    store.close()


def _readers(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"email": f"r{i:05d}@example.org", "cadence": "weekly" if i % 9 == 0 else "daily",
               "topics": TOPICS[i % len(TOPICS)], "excluded_keywords": ["benchmark"] if i % 13 == 0 else [],
               "name": f"Reader {i}" if i % 2 else None, "status": "pending" if i % 31 == 0 else SUBSCRIBER_ACTIVE}


def _page(name: str, day: date) -> Any:
    return SavedPageSource("hf-page", SavedPageSource.options_model(path=str(PAGES[name]))).fetch(day)


def _reference(nl: Newsletter, plan: Any) -> dict[int, tuple[int, ...]]:
    """The reader-by-reader diff of before issue 12 (``diff.unsent_papers``), over the chunked sent record."""
    readers = nl.store.subscribers(status=SUBSCRIBER_ACTIVE, cadence=plan.cadence)
    start = plan.window_start
    earliest = min((p.first_trending for p in plan.candidates if p.first_trending), default=start)
    since = min(earliest, start - timedelta(days=nl.settings.window_days(plan.cadence)))
    taken, returned = nl.store.taken_and_returned(since, [r.id for r in readers])
    by_id = {p.id: p for p in nl.store.papers(ids={pid for ids in returned.values() for pid in ids})}
    carried = {sid: [by_id[pid] for pid in sorted(ids) if pid in by_id] for sid, ids in returned.items()}
    return {d.subscriber.id: tuple(p.id for p in d.papers)
            for d in unsent_papers(plan.candidates, readers, taken, carried)}


def test_plan_and_record_bind_no_list_of_readers_and_match_the_reader_by_reader_diff(
        counted: tuple[Newsletter, Bound]) -> None:
    nl, bound = counted
    assert nl.store.import_subscribers(_readers(READERS)).added == READERS
    nl.ingest([_page("mar14", DAY)])
    first = nl.plan("daily", DAY)
    active_daily = nl.store.subscriber_count(status=SUBSCRIBER_ACTIVE, cadence="daily")
    assert first.reader_count == active_daily > LIMIT
    assert len(first.groups) < 40  # readers share groups: a handful of choices
    planned = nl.planned_digests(first)
    edition = nl.record_edition(first, planned=planned)
    with nl.store.engine.begin() as conn:
        deliveries = conn.execute(select(func.count()).select_from(DeliveryRow)
                                  .where(DeliveryRow.edition_id == edition)).scalar()
        assert deliveries == sum(d.reader_count for d in planned) > LIMIT
        # Recorded = listed: each reader's delivery carries the digest whose listed papers their email lists.
        listed_of = {sid: tuple(d.listed) for d in planned for sid in d.reader_ids}
        for sid, listed in conn.execute(select(DeliveryRow.subscriber_id, DigestRow.listed_ids)
                                        .join(DigestRow, DigestRow.id == DeliveryRow.digest_id)
                                        .where(DeliveryRow.edition_id == edition)):
            assert tuple(listed) == listed_of[sid]
        # Some sends failed (their papers come back), some are still queued (theirs stay taken).
        conn.execute(text("UPDATE deliveries SET state = 'sent'"))
        conn.execute(text("UPDATE deliveries SET state = 'failed' WHERE subscriber_id % 5 = 0"))
        conn.execute(text("UPDATE deliveries SET state = 'pending' WHERE subscriber_id % 7 = 0"))
    nl.ingest([_page("mar25", DAY + timedelta(days=1))])
    second = nl.plan("daily", DAY + timedelta(days=1))
    assert {r.subscriber.id: tuple(p.id for p in r.papers) for r in second.readers} == _reference(nl, second)
    failed = {sid for sid in listed_of if sid % 5 == 0 and sid % 7}
    resent = [r for r in second.readers if r.subscriber.id in failed]
    assert resent and all(set(listed_of[r.subscriber.id]) <= {p.id for p in r.papers} for r in resent)
    edition = nl.record_edition(second)
    with nl.store.engine.begin() as conn:
        conn.execute(text(f"UPDATE deliveries SET state = 'failed' WHERE edition_id = {edition} AND subscriber_id % 5 = 0"))
    # A week on, the first days are out of the window: what failed deliveries gave back carries over.
    later = nl.plan("daily", DAY + timedelta(days=8))
    assert {r.subscriber.id: tuple(p.id for p in r.papers) for r in later.readers} == _reference(nl, later)
    window = {p.id for p in later.candidates}
    assert any(p.id not in window for g in later.groups for p in g.papers)
    weekly = nl.plan("weekly", DAY + timedelta(days=1))
    assert {r.subscriber.id: tuple(p.id for p in r.papers) for r in weekly.readers} == _reference(nl, weekly)
    assert bound.most <= LIMIT, bound.statement


def test_keyset_batches_cover_every_reader_once(counted: tuple[Newsletter, Bound]) -> None:
    nl, _ = counted
    nl.store.import_subscribers(_readers(300))
    seen = [row[0] for batch in reader_batches(nl.store.engine, "daily", DAY, batch=7) for row in batch]
    active = [s.id for s in nl.store.subscribers(status=SUBSCRIBER_ACTIVE, cadence="daily")]
    assert seen == active and len(set(seen)) == len(seen)
    some = active[::3]
    assert [r[0] for b in reader_batches(nl.store.engine, "daily", DAY, some) for r in b] == some


def test_import_of_many_readers_is_all_or_nothing_and_update_changes_them(counted: tuple[Newsletter, Bound]) -> None:
    from newsletter.errors import StoreError

    nl, bound = counted
    store = nl.store
    assert store.import_subscribers(_readers(READERS)).added == READERS
    again = list(_readers(READERS + 10))  # 1500 there already, 10 new
    with pytest.raises(StoreError, match="already a subscriber"):
        store.import_subscribers(again)
    assert store.subscriber_count() == READERS  # nothing stored
    for spec in again:
        spec["cadence"], spec["topics"] = "weekly", ["audio"]
    result = store.import_subscribers(again, update_existing=True)
    assert (result.added, result.updated) == (10, READERS)
    assert store.subscriber_count(cadence="weekly") == READERS + 10
    reader = store.subscriber("r00003@example.org")
    assert (reader.topics, reader.name, reader.cadence) == (("audio",), "Reader 3", "weekly")
    with pytest.raises(StoreError, match="twice"):
        store.import_subscribers([{"email": "x@example.org"}, {"email": " X@example.org"}])
    with pytest.raises(StoreError, match="cadence"):
        store.import_subscribers([{"email": "y@example.org", "cadence": "hourly"}])
    assert store.subscriber_count() == READERS + 10
    assert bound.most <= LIMIT, bound.statement


def test_the_lowered_limit_is_in_force_on_sqlite(counted: tuple[Newsletter, Bound], db_url: str) -> None:
    """The proof above means something: on SQLite a statement binding more than LIMIT ids fails."""
    from sqlalchemy.exc import OperationalError

    from newsletter.store.schema import SubscriberRow

    nl, _ = counted
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's own limit; on PostgreSQL the parameters are counted")
    with nl.store.engine.connect() as conn, pytest.raises(OperationalError, match="too many SQL variables"):
        conn.execute(select(SubscriberRow.id).where(SubscriberRow.id.in_(list(range(LIMIT + 1)))))


def test_a_large_import_leaves_postgresql_statistics_fresh(counted: tuple[Newsletter, Bound], db_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Without statistics PostgreSQL guesses that few readers are active and sorts the whole table for each
    keyset batch of the plan (145 s instead of 17 s at a million readers): a large import analyzes."""
    from newsletter.store import subscribers_bulk

    nl, _ = counted
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's planner statistics")
    monkeypatch.setattr(subscribers_bulk, "ANALYZE_AFTER", 1000)  # a smaller threshold than the shipped 10,000
    reltuples = text("SELECT reltuples FROM pg_class WHERE relname = 'subscribers'")
    with nl.store.engine.connect() as conn:
        assert conn.execute(reltuples).scalar() < 0  # never analyzed
    nl.store.import_subscribers(_readers(999))
    with nl.store.engine.connect() as conn:
        assert conn.execute(reltuples).scalar() < 0  # a small import leaves it to autovacuum
    nl.store.import_subscribers({**spec, "email": "b" + spec["email"]} for spec in _readers(1000))
    with nl.store.engine.connect() as conn:
        assert conn.execute(reltuples).scalar() == 1999


def test_purging_many_unconfirmed_sign_ups_binds_no_list_of_them(counted: tuple[Newsletter, Bound]) -> None:
    """`run` forgets expired sign-ups every cycle: more of them than a statement can bind go in one delete
    (a subquery, not their ids), with their consent records, and the confirmed and the fresh stay."""
    from datetime import datetime, timezone

    from newsletter.store.schema import ConsentRow, SubscriberRow

    nl, bound = counted
    now = datetime(2026, 3, 20, 12, tzinfo=timezone.utc)
    old = [{"email": f"old{i:05d}@example.org", "status": "pending"} for i in range(LIMIT + 150)]
    assert nl.store.import_subscribers(old, now=now - timedelta(days=9)).added == LIMIT + 150
    nl.store.import_subscribers([{"email": "fresh@example.org", "status": "pending"},
                                 {"email": "reader@example.org"}], now=now - timedelta(days=1))
    with nl.store.engine.begin() as conn:  # each expired sign-up has a consent record (as a sign-up makes)
        conn.execute(text("INSERT INTO consents (subscriber_id, action, requested_at) "
                          "SELECT id, 'subscribe', created_at FROM subscribers"))
    bound.most = 0
    assert nl.purge_unconfirmed(now) == LIMIT + 150
    assert sorted(s.email for s in nl.store.subscribers()) == ["fresh@example.org", "reader@example.org"]
    with nl.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ConsentRow)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(SubscriberRow)).scalar() == 2
    assert bound.most <= LIMIT, bound.statement


def test_an_editions_readers_merged_from_several_arrays_are_streamed_not_copied(
        counted: tuple[Newsletter, Bound], monkeypatch: pytest.MonkeyPatch) -> None:
    """Planned digests of the same papers (readers of two kinds) become one digest row: their readers' arrays
    are merged as the deliveries are written, in chunks, so recording holds no merged copy of them (at a
    million readers those copies were 7 MB of the peak). Python's allocations while writing stay well under
    the size of one merged array, and every reader gets exactly one delivery."""
    import tracemalloc
    from array import array
    from datetime import datetime, timezone

    from newsletter.store import record
    from newsletter.store.record import EditionDigest, write_edition
    from newsletter.store.schema import SubscriberRow

    nl, bound = counted
    readers = 160_000  # a merged array of them: 1.28 MB
    nl.store.import_subscribers({"email": f"k{i:06d}@example.org"} for i in range(readers))
    nl.ingest([_page("mar14", DAY)])
    papers = [p.id for p in nl.store.papers()[:3]]
    with nl.store.engine.connect() as conn:
        ids = conn.execute(select(SubscriberRow.id).order_by(SubscriberRow.id)).scalars().all()
    parts = [array("q", ids[0::2]), array("q", ids[1::2]), array("q", ids[5:9])]  # the last: some given twice
    merged_bytes = len(ids) * 8
    monkeypatch.setattr(record, "CHUNK", 500)
    del ids
    tracemalloc.start()
    try:
        edition = write_edition(nl.store.engine, "daily", "2025-03-14", DAY, "s", [(p, None) for p in papers],
                                [EditionDigest(papers, papers, part) for part in parts],
                                now=datetime(2025, 3, 14, 6, tzinfo=timezone.utc))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < merged_bytes / 2, (peak, merged_bytes)
    with nl.store.engine.connect() as conn:
        got = conn.execute(select(func.count(), func.count(func.distinct(DeliveryRow.subscriber_id)))
                           .where(DeliveryRow.edition_id == edition)).one()
        assert tuple(got) == (readers, readers)
        assert conn.execute(select(func.count()).select_from(DigestRow)).scalar() == 1
    assert bound.most <= LIMIT, bound.statement
