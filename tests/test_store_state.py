"""Stored state on first use: senders that start together agree on one value, and a stored value stays."""

from __future__ import annotations

import multiprocessing

from newsletter.store import Store
from newsletter.tokens import STATE_KEY, signing_key


def _first_key(url: str, barrier: "multiprocessing.synchronize.Barrier") -> str:
    store = Store.open(url, migrate=False)
    try:
        barrier.wait(timeout=60)  # all four read "no key yet" and write at the same moment
        return signing_key(None, store.get_state, store.add_state).decode()
    finally:
        store.close()


def test_senders_starting_together_on_a_fresh_database_share_one_signing_key(db_url: str) -> None:
    Store.open(db_url).close()  # migrated, with no key stored
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            keys = pool.starmap(_first_key, [(db_url, barrier)] * 4)  # an IntegrityError here would raise
    store = Store.open(db_url)
    try:
        assert len(set(keys)) == 1 and keys[0] == store.get_state(STATE_KEY)
    finally:
        store.close()


def test_add_state_never_replaces_what_is_stored(store: Store) -> None:
    assert store.add_state("k", "first") == "first"
    assert store.add_state("k", "second") == "first"  # a late writer reads the first value back
    assert store.get_state("k") == "first"
    key = signing_key(None, store.get_state, store.add_state)
    assert signing_key(None, store.get_state, store.add_state) == key
