"""The plan's side of the per-reader ranking (issue 15), on SQLite and PostgreSQL: models are retrained only
for readers whose signals changed and stored compactly; a reader with signals gets their own order and (from 3
signals) a For you block among the papers outside Top papers, within the digest they share with readers without
signals, who keep today's order; diff and preview store no model and show the order send uses."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from email import message_from_bytes, policy

from sqlalchemy import select

from newsletter import config
from newsletter.pipeline import Newsletter
from newsletter.relevance import ReaderModel
from newsletter.relevance.personal import retrain
from newsletter.store import Store
from newsletter.render import listed_ids
from newsletter.store.signals import models_for, record_signal, record_signals, remove_signals
from newsletter.tokens import CardSigner, signing_key

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


def test_readers_with_signals_share_the_digest_and_get_their_own_order_within_it(store: Store) -> None:
    nl = newsletter(store)
    ada = store.add_subscriber("ada@example.org").id
    store.add_subscriber("bob@example.org")
    store.add_subscriber("cy@example.org")
    threed = [p.id for p in store.papers() if p.topic == "3d"][:4]
    record_signals(store.engine, ada, threed, "more", T0)
    plan = nl.plan("daily", DAY)
    planned = nl.planned_digests(plan)
    assert len(planned) == 1 and planned[0].reader_count == 3  # one digest row, one render, for all three
    d = planned[0]
    assert plan.personal.is_personal(ada) and not plan.personal.is_personal(d.reader_ids[1])
    today = nl.digest_content(plan.groups[0].papers, None, "daily", plan.period, DAY)
    assert d.content.sections == today.sections and not d.content.for_you  # the shared email: today's order
    mine = plan.personal.view(d.content, d.listed, ada, rendered=d.rendered, settings=nl.settings)
    assert 1 <= len(mine.for_you) <= 5 and all(f.reason for f in mine.for_you)
    picks = {f.paper.id for f in mine.for_you}
    assert not picks & {p.id for p in mine.top}  # Top papers stay everyone's; For you picks among the rest
    assert picks <= set(d.listed)
    assert sorted(listed_ids(mine)) == sorted(d.listed)  # the same papers listed: what is recorded as sent
    assert [s.slug for s in mine.sections] == [s.slug for s in d.content.sections]
    assert any(a.papers != b.papers for a, b in zip(mine.sections, d.content.sections))  # her own order
    assert plan.personal.view(d.content, d.listed, d.reader_ids[1]) is d.content  # Bob: the shared one
    nl.close()


def test_diff_and_preview_write_no_model_and_show_the_order_send_uses(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Signals changed since the last send: ``diff`` (``plan(save_models=False)``) and ``preview`` train Ada's
    model in memory and store nothing; the order diff shows is the order of the email send then delivers."""
    from newsletter.cli.papers import personal_order
    from newsletter.deliver.outbox import OutboxMessenger
    from newsletter.store.schema import ReaderModelRow

    nl = newsletter(store)
    ada = store.add_subscriber("ada@example.org").id
    store.add_subscriber("bob@example.org")
    threed = [p.id for p in store.papers() if p.topic == "3d"][:5]
    record_signals(store.engine, ada, threed, "more", T0)

    def models() -> list[tuple[object, ...]]:
        with store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(ReaderModelRow.subscriber_id, ReaderModelRow.trained_version,
                                                          ReaderModelRow.signals_version, ReaderModelRow.model))]

    before = models()
    assert before and before[0][3] is None  # stale: never trained
    plan = nl.plan("daily", DAY, save_models=False)
    planned = nl.planned_digests(plan)
    shown = personal_order(plan, planned[0], ada, nl.settings)
    preview = nl.preview("daily", "ada@example.org", DAY)
    assert models() == before  # nothing written
    assert shown["for_you"] and "\nFor you\n=======\n" in preview.text.replace("\r\n", "\n")

    plan = nl.plan("daily", DAY)  # as send plans: trains and stores
    assert models() != before
    nl.record_edition(plan)
    box = tmp_path / "outbox"
    nl.deliver(messenger=OutboxMessenger(box))
    texts = {}
    for eml in box.iterdir():
        parsed = message_from_bytes(eml.read_bytes(), policy=policy.default)
        texts[str(parsed["To"])] = parsed.get_body(("plain",)).get_content()
    key = signing_key(nl.settings.signing_key, store.get_state, store.add_state)
    signer = CardSigner(key)
    order = [signer.verify(u.rsplit("/", 1)[1]).paper_id for u in re.findall(r"More like this: (\S+)", texts["ada@example.org"])]
    assert order == shown["order"]  # the email lists what diff said, in the order it said
    assert order[:len(shown["for_you"])] == shown["for_you"]
    bob = [signer.verify(u.rsplit("/", 1)[1]).paper_id for u in re.findall(r"More like this: (\S+)", texts["bob@example.org"])]
    assert sorted(bob) == sorted(order) and bob != order  # the same papers; Bob in today's order
    nl.close()
