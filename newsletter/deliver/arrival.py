"""When a server's reply came in, for the SMTP time of each message (``SmtpMessenger.send``).

The kernel stamps each packet a socket receives once the socket asks for it (``SO_TIMESTAMP``, named
``SO_TIMESTAMP_OLD`` in Linux's <asm-generic/socket.h>; Python's socket module has no name for it). Peeking at
the first waiting byte with ``recvmsg`` gives its stamp without taking it, so the reply is still read as usual,
and the time the send loop spent meanwhile on its own work (building the next message) is not counted in the
server's time. Without the stamp (another system), the time the reply is seen is used instead.

The stamp is on the system clock (``time.time``), so the exchange is timed on that clock from its start: no
conversion to another clock, which a thread switch between reading the two would skew.
"""

from __future__ import annotations

import select
import smtplib
import socket
import ssl
import struct
import sys
import time

SO_TIMESTAMP = 29 if sys.platform == "linux" else None
_TIMEVAL = struct.Struct("@ll")  # struct timeval: seconds, microseconds
_PLAUSIBLE = 3600.0


def watch_arrivals(sock: socket.socket | None) -> None:
    """Ask the kernel to stamp what arrives on ``sock`` (kept through STARTTLS: the same descriptor)."""
    if SO_TIMESTAMP is not None and sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        except OSError:
            pass


def arrival(conn: smtplib.SMTP, timeout: float | None) -> float:
    """Wait (up to ``timeout`` seconds; ``TimeoutError`` after) for the server's next reply on ``conn``; when its
    first bytes came in, on ``time.time``'s clock: the kernel's receive stamp (TLS: the encrypted record's,
    peeked at through the plain socket's ``recvmsg``), or now when there is none."""
    sock = conn.sock
    if sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return time.time()  # already decrypted, so already in: now at the latest
    poller = select.poll()  # not select(): a descriptor above 1024 is fine
    poller.register(sock, select.POLLIN | select.POLLPRI)
    events = poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
    now = time.time()
    if not events:
        raise TimeoutError("timed out")
    if SO_TIMESTAMP is None:
        return now
    try:
        _, ancillary, _, _ = socket.socket.recvmsg(sock, 1, 64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # closed meanwhile: reading the reply says so
        return now
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(value) >= _TIMEVAL.size:
            seconds, micros = _TIMEVAL.unpack_from(value)
            stamp = seconds + micros / 1e6
            if now - _PLAUSIBLE <= stamp <= now:  # else not this reply's (a clock stepped): the time it was seen
                return stamp
    return now


__all__ = ["SO_TIMESTAMP", "arrival", "watch_arrivals"]
