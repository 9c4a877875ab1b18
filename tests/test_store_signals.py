"""Signals and reader models in the store (issue 15), on a real SQLite file and the real PostgreSQL server:
one current signal per (reader, paper), every change makes the reader's model stale, the stale readers stream
in batches with their signals, and migration 0013 goes down and up again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alembic import command
from sqlalchemy import inspect

from newsletter.store import Store
from newsletter.store.signals import (
    models_for,
    reader_signals,
    record_signal,
    record_signals,
    remove_signals,
    save_models,
    stale_readers,
)

from test_store import page_batch

T0 = datetime(2025, 3, 14, 9, tzinfo=timezone.utc)


def _setup(store: Store) -> tuple[int, int, list[int]]:
    store.ingest([page_batch("mar14")])
    ids = [p.id for p in store.papers()][:6]
    ada = store.add_subscriber("ada@example.org").id
    bob = store.add_subscriber("bob@example.org").id
    return ada, bob, ids


def test_one_current_signal_per_reader_and_paper_and_a_click_never_overrides(store: Store) -> None:
    ada, _bob, ids = _setup(store)
    assert record_signal(store.engine, ada, ids[0], "more", T0)
    assert not record_signal(store.engine, ada, ids[0], "more", T0)  # the same again changes nothing
    assert not record_signal(store.engine, ada, ids[0], "click", T0)  # a click is weaker than "more"
    assert record_signal(store.engine, ada, ids[0], "fewer", T0 + timedelta(minutes=1))
    assert record_signal(store.engine, ada, ids[1], "click", T0)
    assert record_signal(store.engine, ada, ids[1], "more", T0 + timedelta(minutes=2))  # "more" replaces a click
    assert record_signals(store.engine, ada, [ids[2], ids[3], 10**9], "seed", T0) == 2  # unknown paper skipped
    listed = reader_signals(store.engine, ada)
    assert [(s.paper_id, s.kind) for s in listed][:2] == [(ids[1], "more"), (ids[0], "fewer")]
    assert {s.kind for s in listed} == {"more", "fewer", "seed"} and len(listed) == 4
    assert remove_signals(store.engine, ada, [ids[2]]) == 1
    assert [s.paper_id for s in reader_signals(store.engine, ada)].count(ids[2]) == 0
    assert remove_signals(store.engine, ada) == 3
    assert reader_signals(store.engine, ada) == []


def test_only_readers_whose_signals_changed_are_stale_and_a_saved_model_is_kept(store: Store) -> None:
    ada, bob, ids = _setup(store)
    record_signals(store.engine, ada, ids[:3], "more", T0)
    record_signal(store.engine, bob, ids[4], "fewer", T0)
    batches = list(stale_readers(store.engine, batch=1))
    assert len(batches) == 2  # keyset pages of one reader each
    stale = {sid: (version, [(s.paper_id, s.kind) for s in rows]) for b in batches for sid, version, rows in b}
    assert stale[ada][1] == [(p, "more") for p in ids[:3]] and stale[bob][1] == [(ids[4], "fewer")]
    assert all(rows and rows[0].title for b in batches for _sid, _v, rows in b)
    save_models(store.engine, [(ada, b"model-a", 3, stale[ada][0]), (bob, b"model-b", 1, stale[bob][0])])
    assert list(stale_readers(store.engine)) == []
    assert models_for(store.engine, [ada, bob, 10**6]) == {ada: (b"model-a", 3), bob: (b"model-b", 1)}
    record_signal(store.engine, bob, ids[5], "more", T0)  # only bob changes
    again = [(sid, [s.paper_id for s in rows]) for b in stale_readers(store.engine) for sid, _v, rows in b]
    assert again == [(bob, [ids[4], ids[5]])]
    remove_signals(store.engine, bob)
    assert [(sid, rows) for b in stale_readers(store.engine) for sid, _v, rows in b] == [(bob, [])]


def test_a_model_trained_on_an_overtaken_version_stays_stale(store: Store) -> None:
    ada, _bob, ids = _setup(store)
    record_signal(store.engine, ada, ids[0], "more", T0)
    (sid, version, _rows), = next(stale_readers(store.engine))
    record_signal(store.engine, ada, ids[1], "more", T0)  # arrives while the model trains
    save_models(store.engine, [(sid, b"old", 1, version)])
    assert [s for b in stale_readers(store.engine) for s, _v, _r in b] == [ada]


def test_migration_0013_goes_down_and_up(store: Store) -> None:
    with store._connect() as conn, conn.begin():
        command.downgrade(store._alembic_config(conn), "0012_inbound_index")
    names = set(inspect(store.engine).get_table_names())
    assert "reader_signals" not in names and "reader_models" not in names
    assert store.upgrade() == ("0012_inbound_index", store.head_revision())  # through 0013 and what follows it
    ada, _bob, ids = _setup(store)
    assert record_signal(store.engine, ada, ids[0], "seed", T0)
