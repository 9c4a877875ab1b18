"""Pause, resume and cancel an edition: a running sender (real SMTP on 127.0.0.1; a real SQLite file and the
PostgreSQL server, each test running on both) notices within its batch, nothing is lost, a paused edition is
not resumed by the next run, and a cancelled edition's unsent papers stay eligible."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mailkit import MailServer, build_message, queue_edition, reader
from support import ROOT

from newsletter.cli import main
from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.errors import NewsletterError, NotFound
from newsletter.store import Store
from newsletter.store.control import change_state, edition_states
from newsletter.store.deliveries import DeliveryQueue

READERS = 30


def sender(store: Store, server: MailServer, pool: int = 1) -> Sender:
    messenger = SmtpMessenger("127.0.0.1", server.port, pool_size=pool, timeout=10)
    s = Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(batch_size=200))
    s.recheck_seconds = 0  # look at the batch's editions before every message: "within one batch" at its tightest
    return s


def states(store: Store, edition_id: int) -> Counter[str]:
    return Counter(next(e for e in edition_states(store.engine, limit=None) if e.id == edition_id).deliveries)


@pytest.mark.parametrize("pool", [1, 3])
def test_a_pause_stops_the_running_sender_within_its_batch_and_loses_nothing(
        store: Store, smtpd: MailServer, pool: int) -> None:
    eid = queue_edition(store, READERS)
    other = Store.open(store.engine.url.render_as_string(hide_password=False))  # the operator's command, on its own connection
    smtpd.handler.on_message = lambda n: change_state(other.engine, eid, "pause") if n == 5 else None
    try:
        report = sender(store, smtpd, pool).run()
    finally:
        smtpd.handler.on_message = None
        other.close()
    assert report.halted == {eid: "paused"}
    assert 5 <= report.sent <= 5 + pool  # the messages already on the wire finish; no more are handed over
    assert states(store, eid) == Counter({"sent": report.sent, "pending": READERS - report.sent})
    assert len(smtpd.handler.received) == report.sent

    # The next run (`retry`, a send, the scheduler's job) does not resume it.
    again = sender(store, smtpd, pool).run()
    assert (again.due, again.sent) == (0, 0) and len(smtpd.handler.received) == report.sent

    change_state(store.engine, eid, "resume")
    rest = sender(store, smtpd, pool).run()
    assert rest.sent == READERS - report.sent and not rest.halted
    assert Counter(r.rcpt for r in smtpd.handler.received) == Counter(reader(i) for i in range(READERS))


def test_a_cancel_stops_the_sender_and_the_unsent_papers_stay_eligible(store: Store,
                                                                       smtpd: MailServer) -> None:
    eid = queue_edition(store, READERS)
    smtpd.handler.on_message = lambda n: change_state(store.engine, eid, "cancel") if n == 4 else None
    try:
        report = sender(store, smtpd).run()
    finally:
        smtpd.handler.on_message = None
    assert report.halted == {eid: "cancelled"} and report.sent == 4
    # What the running sender held went back after the cancel; a second cancel calls it off too.
    assert change_state(store.engine, eid, "cancel").cancelled == READERS - 4
    assert states(store, eid) == Counter({"sent": 4, "cancelled": READERS - 4})
    with pytest.raises(NewsletterError, match="was cancelled"):
        change_state(store.engine, eid, "resume")
    assert sender(store, smtpd).run().sent == 0

    ids = {s.email: s.id for s in store.subscribers()}
    paper = store.edition_papers(eid)[0][0]
    since = store.papers()[0].first_trending
    taken, returned = store.taken_and_returned(since)
    sent_to = {r.rcpt for r in smtpd.handler.received}
    for email, sid in ids.items():
        if email in sent_to:
            assert paper in taken[sid] and sid not in returned
        else:  # eligible again, carried into the next edition
            assert paper in returned[sid] and sid not in taken


def test_cancel_does_not_count_a_delivery_held_by_a_sender_as_sent(store: Store) -> None:
    """A delivery claimed when the edition was cancelled, and never given back (the sender crashed), still gives
    its papers back."""
    eid = queue_edition(store, 2)
    held = store.subscriber(reader(0)).id
    store.set_delivery_state(eid, held, "claimed")  # in a sender's hands, its lease not run out
    assert change_state(store.engine, eid, "cancel").cancelled == 1  # the other one
    assert states(store, eid) == Counter({"claimed": 1, "cancelled": 1})
    _, returned = store.taken_and_returned(store.papers()[0].first_trending)
    assert set(returned) == {s.id for s in store.subscribers()} and held in returned


def write_config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(database_url="sqlite:///newsletter.db", messenger="outbox", sample_fallback=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_edition_commands(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")
    try:
        eid = queue_edition(store, 3)
    finally:
        store.close()
    runner = CliRunner(env={"NEWSLETTER_DATABASE_URL": ""})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(cfg), "edition", *args])
        assert result.exit_code == code, result.output
        return " ".join(result.output.split())

    assert "active" in run("list") and "pending" in run("list")
    assert f"edition {eid} paused" in run("pause", str(eid))
    assert "already paused" in run("pause", str(eid))
    listed = runner.invoke(main, ["--config", str(cfg), "edition", "list", "--state", "paused", "--json"]).output
    assert '"state": "paused"' in listed and '"pending": 3' in listed
    assert "Nothing was due" in " ".join(runner.invoke(main, ["--config", str(cfg), "retry", "--now"]).output.split())
    assert f"edition {eid} resumed" in run("resume", str(eid))
    assert "3 deliveries not sent are called off" in run("cancel", str(eid))
    assert "cannot be resumed" in run("resume", str(eid), code=1)
    assert "No edition 999" in run("pause", "999", code=1)
    with pytest.raises(NotFound):
        store = Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")
        try:
            change_state(store.engine, 999, "cancel")
        finally:
            store.close()
