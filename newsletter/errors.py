"""One error hierarchy. The CLI prints ``str(error)`` and exits non-zero; ``-v`` adds the traceback.

Every message says what went wrong *and* how to fix it, so an operator never has to read a traceback.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(NewsletterError):
    """config.yaml (or an environment variable it refers to) is missing, malformed or invalid."""

    exit_code = 2


class SourceError(NewsletterError):
    """An upstream could not be read: network failure, HTTP error, or a response we cannot trust."""


class NetworkUnavailable(SourceError):
    """The upstream could not be reached at all (no route, DNS failure, connection refused)."""


class ParseError(SourceError):
    """A page, feed or JSON document is malformed; nothing from it was stored."""


class StoreError(NewsletterError):
    """The database is unreachable, locked, or its schema is not what this version expects."""


class NotFound(NewsletterError):
    """A paper, subscriber or edition the command names does not exist."""


class DeliveryError(NewsletterError):
    """Mail could not be handed to the transport in a way that retrying would fix."""


class InboundError(NewsletterError):
    """The bounce mailbox could not be read (unreachable, login refused, TLS failure)."""
