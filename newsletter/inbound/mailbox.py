"""Reading the bounce mailbox: IMAP (TLS or STARTTLS) or POP3 (TLS or STLS), behind one small protocol.

A ``Mailbox`` lists the messages not handled yet, hands over each one's bytes, and is told what became of
it: ``done`` (processed: moved to ``inbound.processed_folder``, or flagged ``$NewsletterDone``; POP3
deletes it) or ``keep`` (not understood: left where it is for a person to read, flagged
``$NewsletterKept`` on IMAP so it is reported once). IMAP fetches with ``BODY.PEEK[]``, so reading never
marks a message seen for the people who also look at the mailbox.

Example::

    with open_mailbox(settings) as box:
        for uid, raw in box.messages(limit=100):
            box.done(uid)
"""

from __future__ import annotations

import imaplib
import logging
import poplib
import re
import socket
import ssl
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Protocol

from ..errors import ConfigError, InboundError

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

BATCH = 100  # messages fetched, and filed away, per IMAP command
DONE_FLAG = "$NewsletterDone"
KEPT_FLAG = "$NewsletterKept"


class Mailbox(Protocol):
    name: str

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]: ...
    def done(self, uid: str) -> None: ...
    def keep(self, uid: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _context(settings: "Settings") -> ssl.SSLContext:
    cafile = str(settings.path(settings.inbound.ca_file)) if settings.inbound.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"inbound.ca_file: cannot load {cafile}: {exc}",
                          hint="point it at a PEM file of CA certificates, or leave it empty") from None


def _where(settings: "Settings") -> str:
    s = settings.inbound
    return f"{s.protocol}://{s.host}:{s.effective_port} ({s.security})"


class ImapMailbox:
    def __init__(self, settings: "Settings") -> None:
        s = settings.inbound
        self.name = _where(settings)
        self.folder = s.mailbox
        self.processed = s.processed_folder
        try:
            if s.security == "tls":
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.host or "", s.effective_port,
                                                             ssl_context=_context(settings), timeout=s.timeout)
            else:
                self.conn = imaplib.IMAP4(s.host or "", s.effective_port, timeout=s.timeout)
                if s.security == "starttls":
                    self.conn.starttls(ssl_context=_context(settings))
            self.conn.login(s.username or "", s.password or "")
            typ, data = self.conn.select(_quote(self.folder))
            if typ != "OK":
                raise InboundError(f"The mailbox server {self.name} has no folder {self.folder!r}: {_text(data)}",
                                   hint="check inbound.mailbox")
            self._move = b"MOVE" in self._capabilities()
            self._done: list[str] = []
            self._kept: list[str] = []
            if self.processed:
                self.conn.create(_quote(self.processed))  # fails harmlessly when it exists
        except imaplib.IMAP4.error as exc:
            self._discard()
            raise InboundError(f"The mailbox server {self.name} refused: {exc}",
                               hint="check inbound.username and the password variable") from None
        except ssl.SSLError as exc:
            raise InboundError(f"TLS with the mailbox server {self.name} failed: {exc.reason or exc}",
                               hint="check inbound.security and inbound.ca_file") from None
        except OSError as exc:
            raise InboundError(f"Cannot reach the mailbox server {self.name}: {exc.strerror or exc}",
                               hint="check inbound.host and inbound.port; the next pass tries again") from None

    def _capabilities(self) -> bytes:
        typ, data = self.conn.capability()
        return b" ".join(d for d in data if isinstance(d, bytes)).upper()

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]:
        typ, data = self.conn.uid("SEARCH", None, "UNDELETED", "UNKEYWORD", DONE_FLAG, "UNKEYWORD", KEPT_FLAG)
        if typ != "OK":
            raise InboundError(f"{self.name}: SEARCH failed: {_text(data)}")
        uids = (data[0] or b"").split()[:limit]
        for i in range(0, len(uids), BATCH):  # one round trip per batch, not per message
            typ, parts = self.conn.uid("FETCH", b",".join(uids[i:i + BATCH]).decode("ascii"), "(BODY.PEEK[])")
            if typ != "OK":
                raise InboundError(f"{self.name}: FETCH failed: {_text(parts)}")
            for part in parts:
                if isinstance(part, tuple) and len(part) > 1 and isinstance(part[1], bytes):
                    found = re.search(rb"UID (\d+)", part[0])
                    if found:
                        yield found.group(1).decode("ascii"), part[1]

    def done(self, uid: str) -> None:
        """Filed away in batches: each message's event is already stored, so a pass that stops before a
        batch is filed repeats nothing (the next pass recognises those messages and only files them)."""
        self._done.append(uid)
        if len(self._done) >= BATCH:
            self.flush()

    def keep(self, uid: str) -> None:
        self._kept.append(uid)
        if len(self._kept) >= BATCH:
            self.flush()

    def flush(self) -> None:
        done, kept, self._done, self._kept = ",".join(self._done), ",".join(self._kept), [], []
        if kept:
            self._ok(self.conn.uid("STORE", kept, "+FLAGS", f"({KEPT_FLAG})"), "STORE")
        if not done:
            return
        if not self.processed:
            self._ok(self.conn.uid("STORE", done, "+FLAGS", f"({DONE_FLAG} \\Seen)"), "STORE")
        elif self._move:
            self._ok(self.conn.uid("MOVE", done, _quote(self.processed)), "MOVE")
        else:
            self._ok(self.conn.uid("COPY", done, _quote(self.processed)), "COPY")
            self._ok(self.conn.uid("STORE", done, "+FLAGS", f"({DONE_FLAG} \\Deleted)"), "STORE")
            self.conn.expunge()

    def _ok(self, answer: tuple[str, list[object]], what: str) -> None:
        if answer[0] != "OK":
            raise InboundError(f"{self.name}: {what} failed: {_text(answer[1])}",
                               hint="the messages stay in the mailbox; the next pass files them away")

    def _discard(self) -> None:
        try:
            self.conn.shutdown()
        except (OSError, AttributeError):
            pass

    def close(self) -> None:
        try:
            self.flush()
            self.conn.close()
            self.conn.logout()
        except (imaplib.IMAP4.error, InboundError, OSError) as exc:
            log.warning("%s: closing: %s", self.name, exc)
            self._discard()


class Pop3Mailbox:
    """POP3 has no flags: processed mail is deleted (at QUIT, so a failed pass deletes nothing); mail not
    understood stays on the server and is recognised by its content next time (the event is stored)."""

    def __init__(self, settings: "Settings") -> None:
        s = settings.inbound
        self.name = _where(settings)
        try:
            if s.security == "tls":
                self.conn: poplib.POP3 = poplib.POP3_SSL(s.host or "", s.effective_port,
                                                         context=_context(settings), timeout=s.timeout)
            else:
                self.conn = poplib.POP3(s.host or "", s.effective_port, timeout=s.timeout)
                if s.security == "starttls":
                    self.conn.stls(context=_context(settings))
            self.conn.user(s.username or "")
            self.conn.pass_(s.password or "")
        except poplib.error_proto as exc:
            raise InboundError(f"The mailbox server {self.name} refused: {_text([exc.args[0] if exc.args else exc])}",
                               hint="check inbound.username and the password variable") from None
        except ssl.SSLError as exc:
            raise InboundError(f"TLS with the mailbox server {self.name} failed: {exc.reason or exc}",
                               hint="check inbound.security and inbound.ca_file") from None
        except OSError as exc:
            raise InboundError(f"Cannot reach the mailbox server {self.name}: {exc.strerror or exc}",
                               hint="check inbound.host and inbound.port; the next pass tries again") from None
        self._numbers: dict[str, bytes] = {}

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]:
        _resp, listing, _octets = self.conn.uidl()
        for line in listing[:limit]:
            num, _, uid = line.partition(b" ")
            self._numbers[uid.decode("ascii", "replace")] = num
            _resp, lines, _octets = self.conn.retr(int(num))
            yield uid.decode("ascii", "replace"), b"\r\n".join(lines) + b"\r\n"

    def done(self, uid: str) -> None:
        self.conn.dele(int(self._numbers[uid]))

    def keep(self, uid: str) -> None:
        pass  # left on the server

    def flush(self) -> None:
        pass  # DELE takes effect at QUIT

    def close(self) -> None:
        try:
            self.conn.quit()
        except (poplib.error_proto, OSError):
            try:
                self.conn.close()
            except OSError:
                pass


@contextmanager
def open_mailbox(settings: "Settings") -> Iterator[Mailbox]:
    if not settings.inbound.host:
        raise ConfigError("inbound.host is not set, so there is no mailbox to read.",
                          hint="set inbound.host, inbound.username and inbound.password: ${INBOUND_PASSWORD}")
    box: Mailbox = ImapMailbox(settings) if settings.inbound.protocol == "imap" else Pop3Mailbox(settings)
    try:
        yield box
    except (imaplib.IMAP4.error, poplib.error_proto, socket.timeout, OSError) as exc:
        raise InboundError(f"The mailbox server {box.name} failed during the pass: {exc}",
                           hint="what was processed before is recorded; the next pass continues") from None
    finally:
        box.close()


def _quote(folder: str) -> str:
    return '"' + re.sub(r'(["\\])', r"\\\1", folder) + '"'


def _text(data: object) -> str:
    if isinstance(data, (list, tuple)):
        return " ".join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data)
    return str(data)
