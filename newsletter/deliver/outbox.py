"""The file outbox: one ``.eml`` file per message, for local runs and the embedded default.

Each file is written to a temporary name and moved into place with ``os.replace``, so a reader of the
folder never sees half a message. The file is named after the Message-ID, which is fixed per delivery: a
message sent again after a crash overwrites its first copy instead of adding a second.

When the folder is a Maildir (it holds ``cur``, ``new`` and ``tmp``), messages are written the Maildir way
(into ``tmp/``, then moved to ``new/``) so a mail client pointed at it shows them; a message already moved to
``cur/`` by a client is not delivered again.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import FatalTransportError, OutgoingMessage

if TYPE_CHECKING:
    from ..config import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


def file_stem(message_id: str) -> str:
    """A file name for a Message-ID: safe on every file system and in a Maildir (no ``/`` or ``:``).

    >>> file_stem("<12.7.daily.2026-03-14@example.org>")
    '12.7.daily.2026-03-14@example.org'
    """
    stem = _UNSAFE.sub("_", message_id.strip().strip("<>")).lstrip(".") or "message"
    if len(stem) > 180 or stem != message_id.strip().strip("<>"):
        # Two ids that differ only in replaced characters must not share a file.
        stem = f"{stem[:160]}-{hashlib.sha256(message_id.encode()).hexdigest()[:12]}"
    return stem


def is_maildir(folder: Path) -> bool:
    return all((folder / sub).is_dir() for sub in ("cur", "new", "tmp"))


class OutboxMessenger:
    """Example: ``OutboxMessenger(Path("outbox")).send(message)`` writes ``outbox/<message-id>.eml``."""

    name = "outbox"
    concurrency = 1

    def __init__(self, folder: Path, *, maildir: bool | None = None, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.maildir = is_maildir(self.folder) if maildir is None else maildir
        self.fsync = fsync
        try:
            if self.maildir:
                for sub in ("cur", "new", "tmp"):
                    (self.folder / sub).mkdir(parents=True, exist_ok=True)
            else:
                self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FatalTransportError(f"Cannot create the outbox folder {self.folder}: {exc.strerror}",
                                      hint="check outbox_dir and the folder's permissions") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxMessenger:
        return cls(settings.path(settings.outbox_dir))

    def path_for(self, message_id: str) -> Path:
        stem = file_stem(message_id)
        return self.folder / "new" / stem if self.maildir else self.folder / f"{stem}.eml"

    def send(self, message: OutgoingMessage, ready: Callable[[], None] | None = None) -> None:
        """Write the message; ``ready`` (see ``SmtpMessenger.send``) is called just before."""
        final = self.path_for(message.message_id)
        if ready is not None:
            ready()
        if self.maildir and any((self.folder / "cur").glob(f"{final.name}:*")):
            return  # a mail client already took it from new/ (and flagged it): it was delivered
        tmp = (self.folder / "tmp" / final.name) if self.maildir else final.with_name(f".{final.name}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(message.data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            # A full disk or a read-only folder fails every message alike: stop the run, mark nothing.
            raise FatalTransportError(f"Cannot write {final}: {exc.strerror or exc}",
                                      hint="free space or fix permissions of outbox_dir, then run "
                                      "`newsletter retry`") from None

    def close(self) -> None:
        pass
