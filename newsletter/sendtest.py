"""A test send: the next issue, rendered as one reader (or a reader of every topic) would get it, sent to one
address through the configured messenger, with nothing recorded.

No edition is made, no delivery is queued, nothing is marked sent: the papers stay eligible for the real
send. The subject starts with ``[test]``. The links in it (and its List-Unsubscribe header) are signed for no
reader in particular, so a colleague who presses "unsubscribe" in a forwarded test does not unsubscribe the
reader it was rendered for. When ``test_recipients`` is set, an address outside it is refused.

Example::

    report = nl.send_test("me@example.org", subscriber="ada@example.org")
    print(report.subject, report.papers)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from .errors import ConfigError
from .readers import normalize_email
from .render.links import edition_url
from .render.message import Recipient, build_message

if TYPE_CHECKING:
    from .deliver import Messenger
    from .pipeline import Newsletter

TEST_PREFIX = "[test] "


@dataclass(frozen=True)
class TestSendReport:
    """What a test send sent: to whom, as which reader, which issue, and the papers its email lists."""

    __test__ = False  # not a pytest test class

    to: str
    rendered_for: str | None  # the reader's address; None: a reader of every topic
    cadence: str
    period: str
    subject: str
    message_id: str
    papers: int  # papers the email lists
    messenger: str


def check_recipient(to: str, test_recipients: tuple[str, ...]) -> str:
    """``to``, normalised, when it may get a test send: ``test_recipients`` is empty or holds it (in any case);
    else a ConfigError naming the setting."""
    address = normalize_email(to)
    if test_recipients and address not in {a.strip().lower() for a in test_recipients}:
        raise ConfigError(f"{address} is not in test_recipients, so no test send goes to it.",
                          hint="add it to test_recipients in config.yaml, or send to one of: "
                               + ", ".join(test_recipients))
    return address


def send_test(nl: "Newsletter", to: str, subscriber: str | int | None = None, cadence: str | None = None,
              day: date | None = None, *, messenger: "Messenger | None" = None,
              now: datetime | None = None) -> TestSendReport:
    """Send the next issue to ``to`` only; see the module docstring. Raises what the messenger raises."""
    from .deliver import OutgoingMessage, build_messenger

    address = check_recipient(to, nl.settings.test_recipients)
    now = now or datetime.now(timezone.utc)
    shown = nl.preview(cadence, subscriber, day, now=now)  # reads only: what `send` would send now
    reader = shown.subscriber
    rendered = replace(shown.rendered, subject=TEST_PREFIX + shown.rendered.subject)
    links = nl.link_maker().for_reader(0, now, None)  # signed for no reader: see the module docstring
    links = replace(links, web_copy=links.web_copy or edition_url(nl.settings.site_url, shown.edition_id))
    domain = nl.settings.sender.email.rpartition("@")[2] or "newsletter.invalid"
    message_id = f"<test.{shown.cadence}.{shown.period}.{secrets.token_hex(6)}@{domain}>"
    from .render.dkim import signer_from_settings

    data = build_message(rendered, Recipient(address, message_id, links, reader.name if reader else None),
                         nl.settings, now, signer_from_settings(nl.settings))  # signed like the real send
    outgoing = OutgoingMessage(envelope_from=nl.settings.sender.email, recipient=address,
                               message_id=message_id, data=data)
    own = messenger is None
    messenger = messenger or build_messenger(nl.settings)
    try:
        messenger.send(outgoing)
    finally:
        if own:
            messenger.close()
    listed = len(shown.rendered.listed) if shown.rendered.listed else shown.content.paper_count
    return TestSendReport(address, reader.email if reader else None, shown.cadence, shown.period,
                          rendered.subject, message_id, listed, messenger.name)


__all__ = ["TEST_PREFIX", "TestSendReport", "check_recipient", "send_test"]
