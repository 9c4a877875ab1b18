"""One pass over the bounce mailbox, and the effects of any inbound event (mail or webhook).

For each message: classify it, find the delivery or reader it is about (VERP tag, Message-ID, signed
unsubscribe token, recipient), store the event with its effect (``store/inbound.py``), then tell the
mailbox: ``done`` for what was understood, ``keep`` for what was not (it stays for a person to read and is
reported once). The event is committed before the mailbox is told, and its key is a hash of the message, so
a crash in between repeats nothing: the next pass sees the key and only files the message away.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from ..store import inbound as inbound_store
from ..tokens import InvalidToken, Signer, signing_key
from .classify import UNKNOWN, InboundEvent, classify
from .mailbox import Mailbox, open_mailbox
from .verp import Verp

if TYPE_CHECKING:
    from ..config import Settings
    from ..store import Store

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    """What one pass did (``newsletter inbound`` prints it)."""

    mailbox: str = ""
    read: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    already: int = 0  # recorded by an earlier pass (crash between commit and flag): only filed away now
    kept: list[dict[str, str]] = field(default_factory=list)  # not understood: left in the mailbox


class InboundProcessor:
    """Applies inbound events to the store. Example::

        InboundProcessor(settings, store).handle(classify(raw), key="mail:…", source="mailbox")
    """

    def __init__(self, settings: "Settings", store: "Store", clock: Callable[[], datetime] | None = None) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        key = signing_key(settings.signing_key, store.get_state, store.add_state)
        self.signer = Signer(key)
        self.verp = Verp(key, settings.sender.email)

    def token_reader(self, token: str | None) -> int | None:
        if not token:
            return None
        try:
            return self.signer.verify(token, "unsubscribe").subscriber_id
        except InvalidToken:
            return None

    def handle(self, event: InboundEvent, *, key: str, source: str) -> inbound_store.Recorded:
        rec = inbound_store.EventRecord(
            event_key=key, source=source, kind=event.kind, reason=event.reason or "", recipient=event.recipient,
            status=event.status, feedback_type=event.feedback_type, subject=event.subject or None,
            original_message_id=event.original_message_id, verp_delivery_id=self.verp.delivery_id(event.verp),
            token_subscriber_id=self.token_reader(event.token))
        done = inbound_store.record_event(self.store, rec, bounce_limit=self.settings.delivery.bounce_limit,
                                          now=self.clock() if self.clock else None)
        if done.effect not in (inbound_store.RECORDED, inbound_store.DUPLICATE):
            log.info("inbound %s from %s: %s (%s, matched by %s)", event.kind, source, done.effect,
                     done.email or event.recipient, done.matched_by)
        return done


def message_key(raw: bytes) -> str:
    """The same message gives the same key whether it came as a file, over IMAP (CRLF) or over POP3."""
    return "mail:" + hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip(b"\n")).hexdigest()


def read_mailbox(processor: InboundProcessor, box: Mailbox, *, limit: int,
                 progress: Callable[[int], None] | None = None) -> PassReport:
    report = PassReport(mailbox=box.name)
    for uid, raw in box.messages(limit):
        report.read += 1
        key = message_key(raw)
        try:
            event = classify(raw)
        except Exception as exc:  # noqa: BLE001 - a message no parser copes with is kept, not fatal
            event = InboundEvent(UNKNOWN, reason=f"could not be parsed: {type(exc).__name__}: {exc}"[:500])
        report.kinds[event.kind] += 1
        done = processor.handle(event, key=key, source="mailbox")
        if done.effect == inbound_store.DUPLICATE and done.id is None:
            report.already += 1
        else:
            report.effects[done.effect] += 1
        if event.kind == UNKNOWN:
            if done.id is not None:  # first time: report it
                report.kept.append({"uid": uid, "subject": event.subject, "from": event.sender or "",
                                    "reason": event.reason})
            box.keep(uid)
        else:
            box.done(uid)
        if progress:
            progress(1)
    box.flush()
    return report


def run_pass(settings: "Settings", store: "Store", *, progress: Callable[[int], None] | None = None,
             clock: Callable[[], datetime] | None = None) -> PassReport:
    """``newsletter inbound`` and the scheduler's ``inbound`` job: one pass over the configured mailbox."""
    processor = InboundProcessor(settings, store, clock)
    with open_mailbox(settings) as box:
        report = read_mailbox(processor, box, limit=settings.inbound.max_messages, progress=progress)
    for kept in report.kept:
        log.warning("inbound: kept a message that is not a bounce, complaint or unsubscribe (from %s, "
                    "subject %r): %s", kept["from"], kept["subject"], kept["reason"])
    return report
