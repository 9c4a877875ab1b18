"""A lean SMTP sink for the benchmarks: accepts every message and keeps nothing, in another process.

``serve_fast(port, ready, latency)`` is a drop-in for ``bench_deliver.serve``: the same replies an accept-all
aiosmtpd server gives (EHLO with 8BITMIME, SMTPUTF8 and HELP; 250 to MAIL, RCPT, RSET, NOOP; 354 then 250 to
DATA; 221 to QUIT), but the message data is not split into lines, decoded or handed to a handler: the server
only looks for the CRLF.CRLF that ends it (a byte search over what arrived, keeping the last four bytes). On
this 2-core machine aiosmtpd takes 100-150 messages of 75 KB per second, so at 100,000 readers it, not the
send loop, would set the pace of both loops; this one takes several thousand. Both loops of a run (the send
loop and the bare smtplib loop) always talk to the same server, so the ratio between them stays fair.

Example::

    ctx = multiprocessing.get_context("spawn"); ready = ctx.Event()
    ctx.Process(target=serve_fast, args=(port, ready, 0.0), daemon=True).start(); ready.wait(60)
"""

from __future__ import annotations

import asyncio
from typing import Any

_EHLO = b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP\r\n"
_END = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buf = bytearray()
        self.in_data = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while buf:
            if self.in_data:
                end = buf.find(_END)
                if end < 0:
                    if len(buf) > 4:
                        del buf[:-4]  # the end marker may straddle two reads
                    return
                del buf[:end + len(_END)]
                self.in_data = False
                if self.latency:
                    asyncio.get_running_loop().call_later(self.latency, self._write, b"250 2.0.0 OK\r\n")
                else:
                    self.transport.write(b"250 2.0.0 OK\r\n")
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                return
            verb = bytes(buf[:4]).upper()
            del buf[:eol + 2]
            if verb == b"EHLO":
                self.transport.write(_EHLO)
            elif verb == b"DATA":
                self.in_data = True
                buf[:0] = b"\r\n"  # so that an empty message (".\r\n" at once) ends too
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 Bye\r\n")
                self.transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.transport.write(b"250 OK\r\n")

    def _write(self, reply: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(reply)


def serve_fast(port: int, ready: Any, latency: float = 0.0) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _Session(latency), "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())
