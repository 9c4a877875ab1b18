"""The shared counters: a metered messenger counts each outcome with its reason, a flush that cannot be
written keeps its counts for the next one, and the outbox messenger (no SMTP) is counted the same way."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from test_cli_deliver import DAY, READERS, run
from sqlalchemy import create_engine
from test_metrics import ENV, configure

from newsletter.deliver import OutgoingMessage, PermanentFailure, TemporaryFailure
from newsletter.monitor import Counts, MeteredMessenger, failure_reason
from newsletter.pipeline import Newsletter
from newsletter.store import Store
from newsletter.store.monitor import counters


class Flaky:
    """A messenger whose answer per recipient is set by the test."""

    name, concurrency = "flaky", 1

    def __init__(self, answers: dict[str, Exception]) -> None:
        self.answers, self.sent = answers, []

    def send(self, message: OutgoingMessage) -> None:
        if message.recipient in self.answers:
            raise self.answers[message.recipient]
        self.sent.append(message.recipient)

    def close(self) -> None:
        pass


def stored(store: Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(n, tuple(sorted(labels.items()))): v for n, labels, v in counters(store.engine)}


def test_outcomes_are_counted_with_their_reason_and_kept_when_a_flush_fails(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        counts = Counts(store.engine)
        counts.engine = create_engine(
            f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")  # cannot be opened: the flush fails
        messenger = MeteredMessenger(Flaky({
            "b@example.org": TemporaryFailure("b@example.org: 451 4.3.0 later", code=451),
            "c@example.org": PermanentFailure("c@example.org: 550 5.1.1 unknown", code=550, bounce=True),
            "d@example.org": TemporaryFailure("d@example.org: 127.0.0.1:25 did not answer DATA within 30s")}),
            store.engine, counts=counts)
        for who in ("a", "b", "c", "d", "e"):
            message = OutgoingMessage("papers@example.org", f"{who}@example.org", f"<{who}@x>", b"x")
            try:
                messenger.send(message)
            except (TemporaryFailure, PermanentFailure):
                pass
        messenger.flush()  # fails: nothing stored, nothing lost
        assert stored(store) == {}
        counts.engine = store.engine
        messenger.close()
        found = stored(store)
        assert found[("messages_sent", ())] == 2
        assert found[("messages_retried", (("reason", "smtp_451"),))] == 1
        assert found[("messages_retried", (("reason", "timeout"),))] == 1
        assert found[("messages_failed", (("reason", "smtp_550"),))] == 1
        assert found[("send_duration_count", ())] == 5
    finally:
        store.close()


def test_failure_reasons_are_few_and_bounded() -> None:
    assert failure_reason(TemporaryFailure("x: 421 closing", code=421)) == "smtp_421"
    assert failure_reason(TemporaryFailure("x: connection to h:25 dropped during DATA: gone")) == "connection"
    assert failure_reason(PermanentFailure("x: the server does not support SMTPUTF8, needed")) == "smtputf8"
    assert failure_reason(PermanentFailure("something else")) == "other"


def test_a_send_through_the_outbox_messenger_is_counted(tmp_path: Path) -> None:
    cfg = configure(tmp_path, 25)
    data = yaml.safe_load(cfg.read_text())
    data["messenger"] = "outbox"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    for email in READERS:
        run(cfg, "subscribers", "add", email, env=ENV)
    nl = Newsletter.from_config(cfg, ENV)
    try:
        report = nl.send("daily", date.fromisoformat(DAY))
        assert report.delivery is not None and report.delivery.sent == 3
        found = stored(nl.store)
        assert found[("messages_sent", ())] == 3 and found[("send_duration_count", ())] == 3
    finally:
        nl.close()


def test_a_look_for_due_deliveries_that_finds_none_is_not_a_send(tmp_path: Path) -> None:
    cfg = configure(tmp_path, 25)
    nl = Newsletter.from_config(cfg, ENV)
    try:
        assert nl.deliver().done == 0
        from newsletter.monitor import LAST_SEND
        from newsletter.store.monitor import read_json_states

        assert read_json_states(nl.store.engine, (LAST_SEND,)) == {}
    finally:
        nl.close()


def test_a_metered_smtp_messenger_still_lets_the_next_message_be_built_while_the_server_takes_one(
        tmp_path: Path) -> None:
    """``newsletter send`` wraps the SMTP messenger in ``MeteredMessenger``: ``waiting()`` passes through it, so
    every message after the first is built while the server is still taking the one before (inside its DATA)."""
    import traceback
    from datetime import datetime, timezone

    from mailkit import MailServer, build_message, queue_edition

    from newsletter.deliver.sender import DeliveryPolicy, Sender
    from newsletter.deliver.smtp import SmtpMessenger
    from newsletter.store.deliveries import DeliveryQueue

    t0 = datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc)
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    queue_edition(store, 8, now=t0)
    during_data: list[bool] = []

    def prepare(d):  # noqa: ANN001, ANN202
        during_data.append(any(f.name == "_data" for f in traceback.extract_stack()))
        return build_message(d)

    with MailServer() as server:
        messenger = MeteredMessenger(SmtpMessenger("127.0.0.1", server.port), store.engine)
        try:
            report = Sender(DeliveryQueue(store.engine), messenger, prepare, DeliveryPolicy(batch_size=8),
                            clock=lambda: t0).run()
        finally:
            messenger.close()
        assert report.sent == 8 and len(server.handler.received) == 8
    assert during_data == [False] + [True] * 7
    assert stored(store)[("messages_sent", ())] == 8
    store.close()
