"""The plan's side of the per-reader ranking (issue 15), on SQLite and PostgreSQL: models are retrained only
for readers whose signals changed and stored compactly; a reader with signals gets their own order and (from 3
signals) a For you block taken out of Top papers; a reader without keeps today's digest, shared."""

from __future__ import annotations

from datetime import date, datetime, timezone

from newsletter import config
from newsletter.pipeline import Newsletter
from newsletter.relevance import ReaderModel
from newsletter.relevance.personal import retrain
from newsletter.store import Store
from newsletter.store.signals import models_for, record_signal, record_signals, remove_signals

from support import PAGES

DAY = date(2025, 3, 14)
T0 = datetime(2025, 3, 14, 7, tzinfo=timezone.utc)


def newsletter(store: Store) -> Newsletter:
    settings = config.from_mapping({"database_url": str(store.engine.url.render_as_string(hide_password=False)),
                                    "sources": [{"type": "hf-page", "path": "unused.txt"}]}, environ={})
    nl = Newsletter(settings, store)
    nl.import_file(PAGES["mar14"], DAY)
    return nl


def test_models_are_retrained_only_when_signals_change_and_stay_small(store: Store) -> None:
    nl = newsletter(store)
    ada, bob = store.add_subscriber("ada@example.org").id, store.add_subscriber("bob@example.org").id
    ids = [p.id for p in store.papers() if p.topic == "3d"][:6]
    record_signals(store.engine, ada, ids[:5], "more", T0)
    record_signal(store.engine, bob, ids[5], "fewer", T0)
    assert retrain(store.engine, T0) == 2
    assert retrain(store.engine, T0) == 0  # nothing changed: nothing trained
    record_signal(store.engine, bob, ids[0], "more", T0)
    assert retrain(store.engine, T0) == 1  # only Bob's
    models = models_for(store.engine, [ada, bob])
    assert models[ada][1] == 5 and models[bob][1] == 2
    assert all(len(data) < 4096 and ReaderModel.from_bytes(data).signal_count == n for data, n in models.values())
    remove_signals(store.engine, bob)
    assert retrain(store.engine, T0) == 1 and bob not in models_for(store.engine, [ada, bob])
    nl.close()


def test_a_reader_with_signals_gets_their_own_order_and_for_you_and_the_others_keep_todays(store: Store) -> None:
    nl = newsletter(store)
    ada = store.add_subscriber("ada@example.org").id
    store.add_subscriber("bob@example.org")
    store.add_subscriber("cy@example.org")
    threed = [p.id for p in store.papers() if p.topic == "3d"][:4]
    record_signals(store.engine, ada, threed, "more", T0)
    plan = nl.plan("daily", DAY)
    planned = nl.planned_digests(plan)
    mine = [d for d in planned if ada in d.reader_ids]
    shared = [d for d in planned if ada not in d.reader_ids]
    assert len(mine) == 1 and list(mine[0].reader_ids) == [ada]
    assert len(shared) == 1 and shared[0].reader_count == 2 and not shared[0].content.for_you  # Bob and Cy share
    content = mine[0].content
    assert 1 <= len(content.for_you) <= 5 and all(f.reason for f in content.for_you)
    picks = {f.paper.id for f in content.for_you}
    assert not picks & {p.id for p in content.top}  # a For you paper is not a top paper too
    listed = mine[0].rendered.listed
    assert len(listed) == len(set(listed)) and picks <= set(listed)
    today = nl.digest_content(plan.groups[0].papers, None, "daily", plan.period, DAY)
    assert shared[0].content.sections == today.sections  # today's order, exactly
    nl.close()
