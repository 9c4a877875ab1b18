"""The console messenger: prints each message's headers and plain-text part, for a quick look."""

from __future__ import annotations

import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import TYPE_CHECKING, Callable, TextIO

from . import OutgoingMessage

if TYPE_CHECKING:
    from ..config import Settings

SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")


class ConsoleMessenger:
    """Example: ``ConsoleMessenger().send(message)`` prints it to standard output."""

    name = "console"
    concurrency = 1

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleMessenger:
        return cls()

    def send(self, message: OutgoingMessage, ready: Callable[[], None] | None = None) -> None:
        if ready is not None:
            ready()
        out = self.stream or sys.stdout
        parsed = message_from_bytes(message.data, policy=policy.default)
        out.write(f"--- {message.message_id} to {message.recipient} ({len(message.data)} bytes)\n")
        for name in SHOWN_HEADERS:
            if parsed[name] is not None:
                out.write(f"{name}: {parsed[name]}\n")
        out.write("\n")
        body = parsed.get_body(("plain",)) if isinstance(parsed, EmailMessage) else None
        if body is not None:
            text = body.get_content()
            out.write(text if text.endswith("\n") else text + "\n")
        else:
            out.write(f"(no text/plain part; {parsed.get_content_type()})\n")
        out.flush()

    def close(self) -> None:
        pass
