"""What inbound events do, on SQLite and PostgreSQL: hard bounces count toward bounce_limit (once per
delivery, not undone by a relay's later 250), soft bounces never count, complaints and mailto unsubscribes
unsubscribe at once, and a report read twice has one effect."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from newsletter.inbound import InboundProcessor, classify
from newsletter.inbound.process import message_key
from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_BOUNCED, SUBSCRIBER_UNSUBSCRIBED
from newsletter.store.deliveries import DeliveryQueue, utcnow
from newsletter.store.inbound import events

from inbound_support import make_world, readdressed

READERS = ("ada@example.org", "bob@example.org", "cy@example.org")


def _handle(world, raw: bytes) -> str:  # type: ignore[no-untyped-def]
    processor = InboundProcessor(world.nl.settings, world.nl.store)
    return processor.handle(classify(raw), key=message_key(raw), source="mailbox").effect


def _dsn(bounces_dir: Path, name: str, world, email: str, *, how: str = "verp") -> bytes:  # type: ignore[no-untyped-def]
    """A real DSN made to be about our delivery to ``email``: sent to its VERP address, or quoting its
    Message-ID or only its recipient."""
    sent = world.sent[email]
    raw = (bounces_dir / name).read_bytes()
    original = classify(raw)
    replace = {}
    if how in ("message-id", "recipient") and original.recipient:
        replace[original.recipient] = email
    if how == "message-id" and original.original_message_id:
        replace[original.original_message_id] = sent.message_id
    return readdressed(raw, to=sent.return_path if how == "verp" else "papers@example.org", replace=replace)


def test_hard_bounces_count_toward_the_limit_and_then_mark_the_reader_bounced(
        tmp_path: Path, db_url: str, bounces_dir: Path) -> None:
    world = make_world(tmp_path, db_url, READERS, delivery={"bounce_limit": 3})
    try:
        ada = world.sent["ada@example.org"]
        assert _handle(world, _dsn(bounces_dir, "hard__postfix__user-unknown-5.1.1.eml", world, ada.email)) == "counted"
        # The same delivery bouncing again (a second report of it) does not count twice.
        assert _handle(world, _dsn(bounces_dir, "hard__gmail__5.1.1-user-unknown.eml", world, ada.email)) == "duplicate"
        assert world.bounce_count(ada.email) == 1
        # Reports that quote only the Message-ID, or only the address, count too (no delivery named: each once).
        assert _handle(world, _dsn(bounces_dir, "hard__exim__user-unknown-5.1.1.eml", world, ada.email,
                                   how="recipient")) == "counted"
        assert world.subscriber(ada.email).status == SUBSCRIBER_ACTIVE
        assert _handle(world, _dsn(bounces_dir, "hard__qmail__user-unknown-5.5.0.eml", world, ada.email,
                                   how="recipient")) == "bounced"
        assert world.subscriber(ada.email).status == SUBSCRIBER_BOUNCED and world.bounce_count(ada.email) == 3
        shown = events(world.nl.store, email=ada.email)
        assert [e.effect for e in shown] == ["bounced", "counted", "duplicate", "counted"]
        assert shown[-1].delivery_id == ada.delivery_id and "5.1.1" in shown[-1].reason
    finally:
        world.nl.close()


def test_the_relays_250_for_a_later_message_does_not_reset_the_count(tmp_path: Path, db_url: str,
                                                                      bounces_dir: Path) -> None:
    world = make_world(tmp_path, db_url, READERS, delivery={"bounce_limit": 2})
    try:
        bob = world.sent["bob@example.org"]
        assert _handle(world, _dsn(bounces_dir, "hard__sendmail__user-unknown-5.1.1.eml", world, bob.email)) == "counted"
        # The next digest: the relay says 250, and the send loop marks it sent (which resets SMTP-time counts).
        queue = DeliveryQueue(world.nl.store.engine)
        with queue.running(lease_seconds=60):
            claim = queue.claim(10, lease_seconds=60, retry_window=timedelta(days=2), now=utcnow())
            for d in claim.deliveries:
                queue.mark_sent(d, utcnow())
        assert world.bounce_count(bob.email) == 0
        # Its bounce arrives later: the second hard-bounced delivery reaches the limit all the same.
        assert _handle(world, _dsn(bounces_dir, "hard__postfix__gmail-user-unknown-5.1.1.eml", world, bob.email,
                                   how="recipient")) == "bounced"
        assert world.subscriber(bob.email).status == SUBSCRIBER_BOUNCED
    finally:
        world.nl.close()


def test_soft_bounces_delays_and_auto_replies_are_recorded_and_never_count(tmp_path: Path, db_url: str,
                                                                           bounces_dir: Path) -> None:
    world = make_world(tmp_path, db_url, READERS, delivery={"bounce_limit": 1})
    try:
        cy = world.sent["cy@example.org"]
        for path in sorted(bounces_dir.glob("*.eml")):
            if path.name.split("__")[0] in ("soft", "delay", "autoreply"):
                assert _handle(world, readdressed(path.read_bytes(), to=cy.return_path)) == "recorded", path.name
        assert world.subscriber(cy.email).status == SUBSCRIBER_ACTIVE and world.bounce_count(cy.email) == 0
        kinds = {e.kind for e in events(world.nl.store, limit=1000)}
        assert kinds == {"soft", "delay", "autoreply"}
    finally:
        world.nl.close()


def test_a_complaint_unsubscribes_at_once(tmp_path: Path, db_url: str, bounces_dir: Path) -> None:
    world = make_world(tmp_path, db_url, READERS)
    try:
        ada, bob = world.sent["ada@example.org"], world.sent["bob@example.org"]
        arf = (bounces_dir / "complaint__yahoo__arf-abuse.eml").read_bytes()
        original = classify(arf)
        # Yahoo's report quotes our Message-ID (the recipient is redacted in many real reports).
        by_id = arf.replace(original.original_message_id.encode(), ada.message_id.encode()).replace(
            original.recipient.encode(), b"redacted@yahoo.com")
        assert _handle(world, by_id) == "unsubscribed"
        assert world.subscriber(ada.email).status == SUBSCRIBER_UNSUBSCRIBED
        # An AOL report naming only the address.
        aol = (bounces_dir / "complaint__aol__arf-abuse.eml").read_bytes()
        assert _handle(world, aol.replace(classify(aol).recipient.encode(), bob.email.encode())) == "unsubscribed"
        assert world.subscriber(bob.email).status == SUBSCRIBER_UNSUBSCRIBED
        # The same report read again changes nothing; a DMARC auth-failure report unsubscribes nobody.
        assert _handle(world, by_id) == "duplicate"
        dmarc = (bounces_dir / "complaint__other__arf-auth-failure-dmarc.eml").read_bytes()
        assert _handle(world, dmarc.replace(classify(dmarc).recipient.encode(), b"cy@example.org")) == "recorded"
        assert world.subscriber("cy@example.org").status == SUBSCRIBER_ACTIVE
    finally:
        world.nl.close()


def test_a_mail_to_the_unsubscribe_address_unsubscribes_the_reader_its_token_names(tmp_path: Path,
                                                                                    db_url: str) -> None:
    world = make_world(tmp_path, db_url, READERS)
    try:
        cy = world.sent["cy@example.org"]
        links = world.nl.link_maker().for_reader(cy.subscriber_id)
        # What a mail client sends for the digest's List-Unsubscribe mailto URL.
        address, _, query = links.unsubscribe_mailto.removeprefix("mailto:").partition("?subject=")
        subject = query.replace("%20", " ")
        forged = (f"From: cy@example.org\r\nTo: {address}\r\nSubject: unsubscribe not-a-real-token-at-all-xx\r\n\r\n"
                  ).encode()
        assert _handle(world, forged) == "unmatched"  # a From address alone names nobody: it is easily forged
        assert world.subscriber(cy.email).status == SUBSCRIBER_ACTIVE
        raw = f"From: someone.else@example.net\r\nTo: {address}\r\nSubject: {subject}\r\n\r\n".encode()
        assert _handle(world, raw) == "unsubscribed"
        assert world.subscriber(cy.email).status == SUBSCRIBER_UNSUBSCRIBED
    finally:
        world.nl.close()


def test_an_unmatched_bounce_is_stored_with_its_reason_and_changes_nothing(tmp_path: Path, db_url: str,
                                                                          bounces_dir: Path) -> None:
    world = make_world(tmp_path, db_url, READERS)
    try:
        raw = (bounces_dir / "hard__yahoo__5.1.1-user-unknown.eml").read_bytes()
        assert _handle(world, raw) == "unmatched"
        (event,) = events(world.nl.store)
        assert event.kind == "hard" and event.email == "kijitora@example.org" and "User Unknown" in event.reason
        assert all(world.bounce_count(e) == 0 for e in READERS)
        assert isinstance(event.received_at, datetime) and event.received_at.tzinfo == timezone.utc
    finally:
        world.nl.close()


def test_a_bounce_that_quotes_only_our_message_id_names_its_delivery(tmp_path: Path, db_url: str,
                                                                     bounces_dir: Path) -> None:
    # Found through (edition, reader), which our Message-IDs name, and the whole id must match: an id of our
    # shape with the right numbers but another tail names no delivery.
    world = make_world(tmp_path, db_url, READERS)
    try:
        name = next(p.name for p in sorted(bounces_dir.glob("hard__*.eml"))
                    if classify(p.read_bytes()).original_message_id and classify(p.read_bytes()).recipient)
        ada, bob = world.sent["ada@example.org"], world.sent["bob@example.org"]
        assert _handle(world, _dsn(bounces_dir, name, world, ada.email, how="message-id")) == "counted"
        (event,) = events(world.nl.store, email=ada.email)
        assert event.delivery_id == ada.delivery_id
        raw = (bounces_dir / name).read_bytes()
        original = classify(raw)
        forged = bob.message_id.replace("@", ".x@", 1)
        assert forged != bob.message_id
        stray = readdressed(raw, to="papers@example.org", replace={original.original_message_id: forged,
                                                                   original.recipient: "nobody@example.net"})
        assert _handle(world, stray) == "unmatched"
        assert world.bounce_count(bob.email) == 0
    finally:
        world.nl.close()
