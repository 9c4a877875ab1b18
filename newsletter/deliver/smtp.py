"""SMTP with smtplib: STARTTLS or implicit TLS, login, a small pool of reused connections, a rate limit.

Replies are classified by the step that gave them (RFC 5321 §4.2.1 and §4.5.4.1):

==========================  =================================================================
connect / greeting          unreachable or 4xx/5xx greeting: ``TransportUnavailable`` (run stops)
STARTTLS, TLS handshake     ``FatalTransportError`` (certificates or settings are wrong)
AUTH                        5xx (535): ``FatalTransportError``; 4xx (454): ``TransportUnavailable``
MAIL FROM                   5xx: ``FatalTransportError`` (every message would be refused); 4xx: temporary
RCPT TO                     5xx: ``PermanentFailure(bounce=True)``; 4xx: temporary
DATA (and the final reply)  5xx: ``PermanentFailure`` (the content, not the address); 4xx: temporary
disconnect, timeout         ``TemporaryFailure``
==========================  =================================================================

A connection that was idle in the pool may have been closed by the server (idle timeouts, or a limit of
messages per connection answered with 421): when that shows before the server accepted MAIL FROM, the
message is tried once more on a fresh connection. After DATA nothing is retried here, because the server
may have accepted the message (RFC 1047); the send loop retries later with the same Message-ID.

``send`` returns the message's SMTP time in milliseconds: from the connection (or, on a reused one, MAIL FROM)
to the moment the server's final reply came in, less the send loop's own work in between (``ready``: the
previous outcome's commit). The final reply's arrival is the kernel's receive time of its first bytes
(``SO_TIMESTAMP`` on Linux), so building the next message meanwhile (``waiting``) does not count, however long
it takes; elsewhere it is when the reply was seen, at most that build's time later.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable

from . import FatalTransportError, OutgoingMessage, PermanentFailure, TemporaryFailure, TransportUnavailable
from .arrival import arrival as _arrival
from .arrival import watch_arrivals as _watch_arrivals

if TYPE_CHECKING:
    from ..config import Settings

Connection = smtplib.SMTP


class _Stale(Exception):
    """A reused connection turned out to be closed before MAIL FROM was accepted."""


class _ConnectionLost(TemporaryFailure):
    """A temporary failure after which the connection cannot carry another message."""


class SmtpMessenger:
    """Example: ``SmtpMessenger("127.0.0.1", 587, security="starttls", username="bot", password=pw)``."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        pool_size: int = 1,
        rate_limit: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise FatalTransportError(f"smtp.security must be none, starttls or tls, not {security!r}.")
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.timeout = timeout
        self.concurrency = max(1, pool_size)
        self.rate_limit = rate_limit
        self._ssl_context = ssl_context
        # smtplib would ask socket.getfqdn() for the EHLO name, which can stall on a reverse DNS lookup.
        self.local_hostname = local_hostname or _hostname()
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._next_slot = 0.0
        self.connections_opened = 0  # for tests and the benchmark: how well connections are reused

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMessenger:
        smtp = settings.smtp
        domain = settings.sender.email.rpartition("@")[2]
        return cls(smtp.host, smtp.port, security=smtp.security, username=smtp.username,
                   password=smtp.password, timeout=smtp.timeout, pool_size=smtp.pool_size,
                   rate_limit=smtp.rate_limit, local_hostname=domain or None)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # --- the Messenger protocol ---------------------------------------------------------------------

    def send(self, message: OutgoingMessage, ready: Callable[[], None] | None = None,
             waiting: Callable[[], None] | None = None) -> int:
        """Hand one message to the server; returns once it answered 250 to the message data, with the SMTP
        exchange's time in milliseconds (see the module docstring).

        ``ready`` is called after the server accepted the recipient, just before the content goes: if it
        raises (a stop request), the transaction is abandoned and nothing is delivered. ``waiting`` is called
        once the content is out, while the server takes it, before its reply is read: the send loop builds
        the next message meanwhile. It must not raise.
        """
        self._throttle()
        with self._slots:  # at most pool_size connections in use at once
            start = time.time()  # the SMTP time counts from here: the connection, or MAIL FROM on a reused one
            conn, reused = self._checkout()
            try:
                return self._attempt(conn, message, reused, ready, waiting, start)
            except _Stale:
                start = time.time()
                return self._attempt(self._connect(), message, False, ready, waiting, start)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    # --- one message --------------------------------------------------------------------------------

    def _attempt(self, conn: Connection, message: OutgoingMessage, reused: bool,
                 ready: Callable[[], None] | None, waiting: Callable[[], None] | None = None,
                 start: float | None = None) -> int:
        """Send on ``conn``, then return it to the pool, or close it when it cannot carry another message."""
        try:
            took = self._transmit(conn, message, reused, ready, waiting, start)
        except (TemporaryFailure, PermanentFailure) as exc:
            if isinstance(exc, _ConnectionLost):
                self._discard(conn)
            else:
                self._checkin(conn)  # the transaction was reset; the connection carries the next message
            raise
        except BaseException:
            self._discard(conn)
            raise
        self._checkin(conn)
        return took

    def _transmit(self, conn: Connection, message: OutgoingMessage, reused: bool,
                  ready: Callable[[], None] | None = None, waiting: Callable[[], None] | None = None,
                  start: float | None = None) -> int:
        """One transaction; the milliseconds from ``start`` to the final reply's arrival, less ``ready``'s."""
        start = time.time() if start is None else start  # the kernel's receive stamps are on this clock
        rcpt, sender = message.recipient, message.envelope_from
        options: list[str] = []
        if not (sender.isascii() and rcpt.isascii()):
            if not conn.has_extn("smtputf8"):
                raise PermanentFailure(f"{rcpt}: the server does not support SMTPUTF8, needed for this "
                                       "address.")
            options.append("SMTPUTF8")
        if not message.data.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        stage = "MAIL FROM"
        reply: bytes | str
        try:
            code, reply = _mail(conn, sender, options)
            if code != 250:
                if reused and code == 421:
                    raise _Stale()
                self._reset(conn, code)
                text = _reply(code, reply)
                if 400 <= code < 500:
                    raise _temporary(f"{rcpt}: sender {sender} deferred: {text}", code, lost=code == 421)
                raise FatalTransportError(
                    f"The SMTP server {self.where} refused the sender {sender}: {text}",
                    hint="check sender.email: the server must allow sending from this address")
            stage = "RCPT TO"
            code, reply = _rcpt(conn, rcpt)
            if code not in (250, 251):
                self._reset(conn, code)
                text = _reply(code, reply)
                if 400 <= code < 500:
                    raise _temporary(f"{rcpt}: {text}", code, lost=code == 421)
                raise PermanentFailure(f"{rcpt}: {text}", code=code, bounce=True)
            if ready is not None:
                paused = time.perf_counter()
                ready()  # if it raises, the connection is closed mid-transaction: nothing is delivered
                start += time.perf_counter() - paused  # the send loop's own work is not the server's time
            stage = "DATA"
            replied = None
            try:
                code, reply, replied = _data(conn, message.data, waiting, self.timeout)
            except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
                code, reply = exc.smtp_code, exc.smtp_error
            if code != 250:
                self._reset(conn, code)
                text = _reply(code, reply)
                if 400 <= code < 500:
                    raise _temporary(f"{rcpt}: message deferred: {text}", code, lost=code == 421)
                raise PermanentFailure(f"{rcpt}: message refused: {text}", code=code)
            return max(0, round(((replied or time.time()) - start) * 1000))
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout as a disconnect
                raise _temporary(f"{rcpt}: {self.where} did not answer {stage} within {self.timeout:g}s",
                                 None, lost=True) from None
            if reused and stage == "MAIL FROM":
                raise _Stale() from None
            raise _temporary(f"{rcpt}: connection to {self.where} dropped during {stage}: {exc}", None,
                             lost=True) from None
        except TimeoutError:
            raise _temporary(f"{rcpt}: {self.where} did not answer {stage} within {self.timeout:g}s", None,
                             lost=True) from None
        except OSError as exc:
            if reused and stage == "MAIL FROM":
                raise _Stale() from None
            raise _temporary(f"{rcpt}: connection to {self.where} failed during {stage}: {exc}", None,
                             lost=True) from None

    @staticmethod
    def _reset(conn: Connection, code: int) -> None:
        """Abort the transaction so the connection carries the next message (not after 421: it is closing)."""
        if code == 421:
            return
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            pass  # the next use notices a dead connection and reconnects

    # --- connections ----------------------------------------------------------------------------------

    def _checkout(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _checkin(self, conn: Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    @staticmethod
    def _discard(conn: Connection) -> None:
        try:
            conn.close()
        except OSError:
            pass

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> Connection:
        conn: Connection | None = None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname,
                                        timeout=self.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout)
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            text = _reply(exc.smtp_code, exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                raise TransportUnavailable(f"The SMTP server {self.where} deferred the login: {text}",
                                           hint="run `newsletter retry` later") from None
            raise FatalTransportError(f"The SMTP server {self.where} refused the login as {self.username}: "
                                      f"{text}",
                                      hint="check smtp.username and the SMTP_PASSWORD environment variable"
                                      ) from None
        except smtplib.SMTPNotSupportedError as exc:
            _close(conn)
            what = "STARTTLS" if self.security == "starttls" and "STARTTLS" in str(exc) else "AUTH"
            raise FatalTransportError(f"The SMTP server {self.where} does not offer {what}: {exc}",
                                      hint="check smtp.security, smtp.port and smtp.username") from None
        except ssl.SSLError as exc:
            _close(conn)
            raise FatalTransportError(f"TLS with the SMTP server {self.where} failed: {exc}",
                                      hint="check smtp.security (starttls on 587, tls on 465) and the "
                                      "server's certificate") from None
        except smtplib.SMTPConnectError as exc:
            _close(conn)
            raise TransportUnavailable(f"The SMTP server {self.where} refused the connection: "
                                       f"{_reply(exc.smtp_code, exc.smtp_error)}",
                                       hint="run `newsletter retry` later") from None
        except (smtplib.SMTPException, OSError) as exc:
            _close(conn)
            raise TransportUnavailable(f"Cannot reach the SMTP server {self.where}: {exc}",
                                       hint="check smtp.host and smtp.port, and that the server is running, "
                                       "then run `newsletter retry`") from None
        _watch_arrivals(conn.sock)
        with self._lock:
            self.connections_opened += 1
        return conn

    # --- pacing -----------------------------------------------------------------------------------------

    def _throttle(self) -> None:
        """Space messages 1/rate_limit seconds apart, across every connection of the pool."""
        if self.rate_limit <= 0:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate_limit
        if slot > now:
            self._sleep(slot - now)


# An address smtplib's quoteaddr would give back as ``<address>`` unchanged: no spaces, quotes, comments,
# brackets or line breaks. For those, MAIL FROM and RCPT TO skip its parseaddr (a third of smtplib's CPU).
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\\",;:@]+@[^\s<>()\[\]\\\",;:@]+")


def _mail(conn: Connection, sender: str, options: list[str]) -> tuple[int, bytes]:
    """``conn.mail(sender, options)``; a plain address with no options goes without smtplib's parsing."""
    if options or not _PLAIN_ADDRESS.fullmatch(sender):
        return conn.mail(sender, options)
    conn.putcmd("mail", f"FROM:<{sender}>")
    return conn.getreply()


def _rcpt(conn: Connection, rcpt: str) -> tuple[int, bytes]:
    """``conn.rcpt(rcpt)``, the same way."""
    if not _PLAIN_ADDRESS.fullmatch(rcpt):
        return conn.rcpt(rcpt)
    conn.putcmd("rcpt", f"TO:<{rcpt}>")
    return conn.getreply()


def _data(conn: Connection, data: bytes, waiting: Callable[[], None] | None,
          timeout: float | None = None) -> tuple[int, bytes, float]:
    """``smtplib.SMTP.data`` for bytes (dot-stuffed, ended with CRLF.CRLF), with ``waiting()`` called between
    handing over the content and reading the server's reply to it; the reply, and when it came in
    (``_arrival``)."""
    conn.putcmd("data")
    code, reply = conn.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    # Dot-stuffing (RFC 5321 4.5.2): what ``(?m)^\.`` → ``..`` does, by a byte search ten times as fast as
    # the regex on a 70 KB message (where a quoted-printable line often starts with a dot, ".5em" in CSS).
    content = (b"." + data if data.startswith(b".") else data).replace(b"\n.", b"\n..")
    conn.send(content + (b".\r\n" if content.endswith(b"\r\n") else b"\r\n.\r\n"))
    if waiting is not None:
        waiting()
    arrived = _arrival(conn, timeout)
    code, reply = conn.getreply()
    return code, reply, arrived


def _temporary(message: str, code: int | None, *, lost: bool) -> TemporaryFailure:
    return (_ConnectionLost if lost else TemporaryFailure)(message, code=code)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}".strip()


def _close(conn: Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _hostname() -> str:
    name = socket.gethostname()
    return name if "." in name else "localhost.localdomain"
