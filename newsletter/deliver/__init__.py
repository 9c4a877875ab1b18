"""Messengers: the transports a digest leaves by. The send loop (``sender.py``) depends on this protocol only.

Like listmonk's messengers, a transport is small: a ``name``, ``send(message, ready)`` that hands one
prepared message over and raises to say how it went, and ``close()``. ``ready`` (optional) is called just
before the content is handed over; the send loop uses it to finish committing the previous outcome while
this message's envelope is exchanged. A new transport is one module plus one entry in ``MESSENGERS``.

How ``send`` reports failure decides what the loop does with the delivery:

- returns: the server accepted the message (SMTP 250 after DATA); the delivery is marked sent. What it
  returns is the SMTP exchange's time in whole milliseconds (``SmtpMessenger``: from the connection, or MAIL
  FROM on a reused one, to the final reply), stored with the "sent" mark for the report; ``None`` for a
  transport that has no such exchange.
- ``TemporaryFailure``: 4xx, dropped connection, timeout; retried later with backoff.
- ``PermanentFailure``: 5xx; the delivery fails. With ``bounce=True`` (5xx to RCPT TO) the address counts
  a bounce.
- ``FatalTransportError``: nothing can be sent this run (login refused, 5xx to MAIL FROM, TLS failure, a
  full disk); the run stops and the message in hand is not marked. ``TransportUnavailable`` (the server
  cannot be reached) is the same, with a hint to try again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from ..errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for the wire: RFC 5322 bytes with CRLF line endings, and its envelope."""

    envelope_from: str
    recipient: str
    message_id: str  # the Message-ID header's value, fixed per delivery so a repeat can be recognised
    data: bytes


class MessageFailure(DeliveryError):
    """This one message was not accepted; the others may still go."""

    def __init__(self, message: str, hint: str | None = None, *, code: int | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


class TemporaryFailure(MessageFailure):
    """Try again later: a 4xx reply, a dropped connection or a timeout."""


class PermanentFailure(MessageFailure):
    """Do not try again. ``bounce`` when the address itself was refused (5xx to RCPT TO)."""

    def __init__(self, message: str, hint: str | None = None, *, code: int | None = None,
                 bounce: bool = False) -> None:
        super().__init__(message, hint, code=code)
        self.bounce = bounce


class FatalTransportError(DeliveryError):
    """Nothing can be sent this run; fix the configuration (or the server) and run ``newsletter retry``."""

    exit_code = 3


class TransportUnavailable(FatalTransportError):
    """The transport cannot be reached right now; deliveries stay queued for the next run."""


@runtime_checkable
class Messenger(Protocol):
    name: str
    concurrency: int  # messages the send loop may have in flight at once (the SMTP pool size)

    def send(self, message: OutgoingMessage, ready: Callable[[], None] | None = None) -> int | None:
        """Hand ``message`` over; call ``ready()`` (when given) just before its content goes, and let what it
        raises through without delivering anything: the send loop records the previous message meanwhile.
        Returns the SMTP exchange's time in milliseconds, or None."""

    def close(self) -> None: ...


# name -> "module:Class"; each class has ``from_settings(settings)``. Imported on use, so an unused
# transport costs nothing.
MESSENGERS: dict[str, str] = {
    "smtp": "newsletter.deliver.smtp:SmtpMessenger",
    "outbox": "newsletter.deliver.outbox:OutboxMessenger",
    "console": "newsletter.deliver.console:ConsoleMessenger",
}


def build_messenger(settings: Settings, name: str | None = None) -> Messenger:
    """The configured messenger (``settings.messenger``), or the one named.

    Example: ``messenger = build_messenger(settings, "outbox")``
    """
    name = name or settings.messenger
    target = MESSENGERS.get(name)
    if target is None:
        raise ConfigError(f"Unknown messenger {name!r}.", hint="use one of: " + ", ".join(sorted(MESSENGERS)))
    module, _, cls = target.partition(":")
    messenger: Messenger = getattr(import_module(module), cls).from_settings(settings)
    return messenger


__all__ = [
    "MESSENGERS",
    "FatalTransportError",
    "MessageFailure",
    "Messenger",
    "OutgoingMessage",
    "PermanentFailure",
    "TemporaryFailure",
    "TransportUnavailable",
    "build_messenger",
]
