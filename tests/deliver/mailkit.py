"""What the delivery tests share: a real SMTP server (aiosmtpd on 127.0.0.1) whose replies can be injected,
simple real RFC 5322 messages, and a queued edition in a real database.

Importable as ``mailkit`` from the tests in this folder and from ``send_worker.py`` (a separate process).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Callable, Sequence

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.deliver import OutgoingMessage
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.store import Store
from newsletter.store.deliveries import DueDelivery

SENDER = "papers@example.org"
PASSWORD = "correct horse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt: str
    message_id: str
    data: bytes
    session: int  # which connection carried it


class Handler:
    """An SMTP server that stores what it accepts. Every reply it gives can be replaced by a test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rcpt_replies: dict[str, str] = {}  # address -> reply to RCPT TO, e.g. "451 4.3.0 try later"
        self.mail_reply: str | None = None  # reply to MAIL FROM
        self.data_replies: dict[str, str] = {}  # address -> reply after DATA
        self.drop_every = 0  # close the connection instead of answering every Nth message's data
        self.stale_after = 0  # answer 421 and close at the next MAIL FROM after N messages on a connection
        self.data_delay: dict[str, float] = {}  # address -> seconds to wait before answering its data
        self.hold: threading.Event | None = None  # when set up: answer DATA only once it is set
        self.on_message: Callable[[int], None] | None = None  # called with the count of messages received
        self.data_count = 0  # DATA commands seen, accepted or not
        self.sessions: set[int] = set()
        # recipient -> seconds this server took over its data, from having it all to the reply (a lower bound
        # of the client's SMTP time, which holds it and the rest of the exchange)
        self.spans: dict[str, float] = {}
        self.auth_attempts = 0
        self.password = PASSWORD
        self._per_session: dict[int, int] = {}

    # aiosmtpd hooks

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        sid = id(session)
        with self.lock:
            self.sessions.add(sid)
            stale = self.stale_after and self._per_session.get(sid, 0) >= self.stale_after
        if stale:
            server.transport.close()
            return "421 4.4.2 closing idle connection"
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        took_at = time.perf_counter()
        rcpt = envelope.rcpt_tos[0]
        with self.lock:
            self.data_count += 1
            count = self.data_count
        if self.hold is not None:
            hold = self.hold
            await asyncio.get_running_loop().run_in_executor(None, hold.wait, 30)
        if rcpt in self.data_delay:
            await asyncio.sleep(self.data_delay[rcpt])
        if self.drop_every and count % self.drop_every == 0:
            server.transport.close()  # no reply at all: the client cannot know whether we took it
            return "250 never heard"
        if rcpt in self.data_replies:
            return self.data_replies[rcpt]
        content: bytes = envelope.original_content or envelope.content
        parsed = message_from_bytes(content, policy=policy.SMTP)
        with self.lock:
            message_id = str(parsed["Message-ID"])
            self.received.append(Received(envelope.mail_from, rcpt, message_id, content, id(session)))
            n = len(self.received)
            self._per_session[id(session)] = self._per_session.get(id(session), 0) + 1
        if self.on_message is not None:
            self.on_message(n)
        self.spans[rcpt] = time.perf_counter() - took_at
        return "250 2.0.0 OK queued"

    # checks

    def copies(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.received:
            out[r.rcpt] = out.get(r.rcpt, 0) + 1
        return out

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.auth_attempts += 1
        ok = isinstance(auth_data, LoginPassword) and auth_data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)


class MailServer:
    """``with MailServer() as server: ... server.port ... server.handler.received``."""

    def __init__(self, handler: Handler | None = None, *, auth: bool = False, tls_context=None,
                 implicit_tls: bool = False) -> None:
        self.handler = handler or Handler()
        self.port = free_port()
        kwargs: dict[str, object] = {}
        if auth:
            # aiosmtpd counts only STARTTLS as TLS when deciding whether to offer AUTH.
            kwargs.update(authenticator=self.handler.authenticate, auth_required=True,
                          auth_require_tls=tls_context is not None and not implicit_tls)
        if tls_context is not None and implicit_tls:
            kwargs["ssl_context"] = tls_context
        elif tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# --- messages ---------------------------------------------------------------------------------------------


def build_message(d: DueDelivery, subject: str = "Trending papers") -> OutgoingMessage:
    """A small real message for a delivery, with CRLF line endings (policy=SMTP) as servers require."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"Trending Papers <{SENDER}>"
    msg["To"] = d.email
    msg["Subject"] = f"{subject} (edition {d.edition_id})"
    msg["Date"] = format_datetime(datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = d.message_id
    msg.set_content(f"Hello {d.name or 'reader'},\n\nthis is digest {d.digest_id}.\n")
    return OutgoingMessage(SENDER, d.email, d.message_id, msg.as_bytes(policy=policy.SMTP))


# --- data -----------------------------------------------------------------------------------------------


def reader(i: int) -> str:
    return f"reader{i:05d}@example.org"


def queue_edition(store: Store, n: int = 0, *, emails: Sequence[str] = (), period: str = "2026-03-14",
                  cadence: str = "daily", now: datetime | None = None) -> int:
    """An edition of one paper queued for ``n`` readers (reader00000@...) plus ``emails``; returns its id.
    Readers are created on first use and reused by later editions."""
    day = date.fromisoformat(period) if cadence == "daily" else date(2026, 3, 16)
    paper = FetchedPaper(title=f"A paper for {period}", arxiv_id=_arxiv(period))
    store.ingest([SourceBatch("test", day, [paper])])
    pid = store.paper(_arxiv(period)).id
    wanted = [reader(i) for i in range(n)] + list(emails)
    known = {s.email: s.id for s in store.subscribers()}
    new = [{"email": e, "cadence": cadence, "name": e.split("@")[0]} for e in wanted if e not in known]
    for s in store.add_subscribers(new) if new else []:
        known[s.email] = s.id
    return store.create_edition(cadence, period, day, "subject", [(pid, None)],
                                {known[e]: [pid] for e in wanted}, message_id_domain="example.org", now=now)


def _arxiv(period: str) -> str:
    return f"2603.{zlib.crc32(period.encode()) % 90000 + 10000:05d}"


def worker_env() -> dict[str, str]:
    """The environment for a worker process: this checkout and this folder importable."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, here, env.get("PYTHONPATH", "")])
    return env
