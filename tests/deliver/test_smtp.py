"""The SMTP messenger against a real SMTP server on 127.0.0.1: replies classified, connections reused and
pooled, STARTTLS and implicit TLS, login, timeouts, the rate limit."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mailkit import PASSWORD, SENDER, MailServer, build_message, free_port

from newsletter.deliver import (
    FatalTransportError,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
    TransportUnavailable,
)
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.store.deliveries import DueDelivery

# The plain-text login tests run AUTH without TLS on purpose (on loopback).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def message(i: int, email: str | None = None, body: str | None = None) -> OutgoingMessage:
    d = DueDelivery(id=i, edition_id=1, subscriber_id=i, digest_id=1, message_id=f"<1.{i}.daily@example.org>",
                    email=email or f"r{i}@example.org", name=None, attempts=0,
                    created_at=datetime(2026, 3, 14, tzinfo=timezone.utc), bounce_count=0)
    msg = build_message(d)
    if body is not None:
        from email import policy
        from email.message import EmailMessage

        m = EmailMessage(policy=policy.SMTP)
        m["From"], m["To"], m["Subject"], m["Message-ID"] = SENDER, d.email, "ünïcode", d.message_id
        m.set_content(body, cte="8bit")
        msg = OutgoingMessage(SENDER, d.email, d.message_id, m.as_bytes())
    return msg


def messenger(server: MailServer, **kw: object) -> SmtpMessenger:
    return SmtpMessenger("127.0.0.1", server.port, timeout=10, **kw)  # type: ignore[arg-type]


def test_messages_arrive_byte_for_byte_over_one_reused_connection(smtpd: MailServer) -> None:
    m = messenger(smtpd)
    sent = [message(i) for i in range(10)]
    for msg in sent:
        m.send(msg)
    m.close()
    got = smtpd.handler.received
    assert [r.message_id for r in got] == [s.message_id for s in sent]
    assert all(r.data.rstrip(b"\r\n") == s.data.rstrip(b"\r\n") for r, s in zip(got, sent, strict=True))
    assert b"\n" not in got[0].data.replace(b"\r\n", b"")  # CRLF only: no bare LF reached the server
    assert m.connections_opened == 1 and len(smtpd.handler.sessions) == 1


def test_eight_bit_bodies_are_declared(smtpd: MailServer) -> None:
    m = messenger(smtpd)
    m.send(message(1, body="Grüße aus Zürich\n"))
    assert "Grüße".encode() in smtpd.handler.received[0].data


@pytest.mark.parametrize("data", [
    b"Subject: dots\r\n\r\n.a line that starts with a dot\r\n..two\r\nmid . dot\r\n.\r\nend\r\n",
    b".X-First: a header line starting with a dot\r\n\r\nno CRLF at the end",
    b"Subject: no dots\r\n\r\nplain body\r\n",
])
def test_lines_starting_with_a_dot_arrive_as_they_were(smtpd: MailServer, data: bytes) -> None:
    """Dot-stuffing (RFC 5321 4.5.2): a line starting with a dot, even a lone dot, reaches the server as sent."""
    m = messenger(smtpd)
    m.send(OutgoingMessage(SENDER, "r1@example.org", "<1@example.org>", data))
    m.close()
    assert smtpd.handler.received[0].data.rstrip(b"\r\n") == data.rstrip(b"\r\n")


@pytest.mark.parametrize("rcpt", ["plain@example.org", "first.last+tag@sub.example.org", '"quoted name"@example.org'])
def test_plain_and_quoted_recipients_reach_the_server_as_given(smtpd: MailServer, rcpt: str) -> None:
    """Plain addresses skip smtplib's address parsing; anything else takes its own path: the same envelope."""
    m = messenger(smtpd)
    m.send(OutgoingMessage(SENDER, rcpt, "<2@example.org>", b"Subject: x\r\n\r\nbody\r\n"))
    m.close()
    got = smtpd.handler.received[0]
    assert (got.mail_from, got.rcpt) == (SENDER, rcpt)


def test_the_pool_opens_at_most_pool_size_connections_and_uses_them_side_by_side(smtpd: MailServer) -> None:
    smtpd.handler.hold = threading.Event()  # the server answers nothing until both connections have a message
    m = messenger(smtpd, pool_size=2)
    errors: list[BaseException] = []

    def send_some(start: int) -> None:
        try:
            for i in range(start, start + 5):
                m.send(message(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send_some, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    while smtpd.handler.data_count < 2:  # two messages on the wire at once, one per connection
        threading.Event().wait(0.01)
    smtpd.handler.hold.set()
    for t in threads:
        t.join()
    m.close()
    assert not errors
    assert len(smtpd.handler.received) == 20
    assert m.connections_opened == 2 and len(smtpd.handler.sessions) == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_failure(smtpd: MailServer) -> None:
    smtpd.handler.stale_after = 3  # the server closes each connection at the 4th MAIL FROM with a 421
    m = messenger(smtpd)
    for i in range(10):
        m.send(message(i))
    assert sorted(smtpd.handler.copies().values()) == [1] * 10
    assert m.connections_opened == 4


@pytest.mark.parametrize("where, reply, failure, bounce", [
    ("rcpt", "451 4.3.0 Mailbox temporarily unavailable", TemporaryFailure, False),
    ("rcpt", "550 5.1.1 No such user", PermanentFailure, True),
    ("data", "452 4.3.1 Insufficient storage", TemporaryFailure, False),
    ("data", "554 5.7.1 Message refused as spam", PermanentFailure, False),
])
def test_replies_to_one_recipient_are_classified_and_the_connection_goes_on(
        smtpd: MailServer, where: str, reply: str, failure: type[Exception], bounce: bool) -> None:
    bad = "bad@example.org"
    (smtpd.handler.rcpt_replies if where == "rcpt" else smtpd.handler.data_replies)[bad] = reply
    m = messenger(smtpd)
    m.send(message(1))
    with pytest.raises(failure) as info:
        m.send(message(2, bad))
    assert info.value.code == int(reply[:3])  # type: ignore[attr-defined]
    assert reply[4:] in str(info.value)
    if failure is PermanentFailure:
        assert info.value.bounce is bounce  # type: ignore[attr-defined]
    m.send(message(3))
    assert [r.rcpt for r in smtpd.handler.received] == ["r1@example.org", "r3@example.org"]
    assert m.connections_opened == 1  # the transaction was reset; the connection carried on


def test_a_5xx_to_mail_from_is_fatal(smtpd: MailServer) -> None:
    smtpd.handler.mail_reply = "550 5.7.1 Sender not allowed"
    with pytest.raises(FatalTransportError, match="refused the sender papers@example.org: 550 5.7.1") as info:
        messenger(smtpd).send(message(1))
    assert "sender.email" in str(info.value)
    assert smtpd.handler.received == []


def test_a_4xx_to_mail_from_is_temporary(smtpd: MailServer) -> None:
    smtpd.handler.mail_reply = "451 4.7.1 Greylisted, try later"
    with pytest.raises(TemporaryFailure, match="451 4.7.1 Greylisted"):
        messenger(smtpd).send(message(1))


def test_a_dropped_connection_is_temporary_and_the_next_message_reconnects(smtpd: MailServer) -> None:
    smtpd.handler.drop_every = 2
    m = messenger(smtpd)
    m.send(message(1))
    with pytest.raises(TemporaryFailure, match="dropped during DATA"):
        m.send(message(2))
    m.send(message(3))
    assert [r.rcpt for r in smtpd.handler.received] == ["r1@example.org", "r3@example.org"]
    assert m.connections_opened == 2


def test_a_silent_server_times_out_as_a_temporary_failure(smtpd: MailServer) -> None:
    smtpd.handler.data_delay["slow@example.org"] = 3
    m = SmtpMessenger("127.0.0.1", smtpd.port, timeout=0.5)
    with pytest.raises(TemporaryFailure, match="did not answer DATA within 0.5s"):
        m.send(message(1, "slow@example.org"))


def test_login_with_the_right_password(tmp_path: Path) -> None:
    with MailServer(auth=True) as server:
        m = messenger(server, username="bot", password=PASSWORD)
        m.send(message(1))
        m.send(message(2))
        assert len(server.handler.received) == 2 and server.handler.auth_attempts == 1


def test_a_refused_login_is_fatal_with_a_hint_and_sends_nothing() -> None:
    with MailServer(auth=True) as server:
        with pytest.raises(FatalTransportError) as info:
            messenger(server, username="bot", password="wrong").send(message(1))
        assert "refused the login as bot: 535 5.7.8" in str(info.value)
        assert "SMTP_PASSWORD" in str(info.value)
        assert server.handler.received == []


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    m = SmtpMessenger("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(TransportUnavailable, match="Cannot reach the SMTP server 127.0.0.1:"):
        m.send(message(1))


# --- TLS --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_login(certificate: tuple[Path, Path], security: str) -> None:
    context = server_context(certificate)
    with MailServer(auth=True, tls_context=context, implicit_tls=security == "tls") as server:
        trusted = ssl.create_default_context(cafile=str(certificate[0]))
        m = messenger(server, security=security, username="bot", password=PASSWORD, ssl_context=trusted)
        m.send(message(1))
        m.close()
        assert len(server.handler.received) == 1


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_the_smtp_time_is_the_servers_not_the_build_done_meanwhile(certificate: tuple[Path, Path],
                                                                    security: str) -> None:
    """``send`` returns the exchange's milliseconds; what ``waiting`` does while the server takes the data (here
    1.5 s of building the next message) is not in it, in the clear and through TLS (the kernel's receive stamp
    of the encrypted reply), while it holds at least the server's own 0.2 s over the data."""
    tls = security != "none"
    with MailServer(tls_context=server_context(certificate) if tls else None,
                    implicit_tls=security == "tls") as server:
        server.handler.data_delay = {"r1@example.org": 0.2}
        trusted = ssl.create_default_context(cafile=str(certificate[0])) if tls else None
        m = messenger(server, security=security, ssl_context=trusted)
        try:
            slow = m.send(message(1), lambda: None, waiting=lambda: time.sleep(1.5))
            again = m.send(message(2), lambda: None, waiting=lambda: time.sleep(1.5))
        finally:
            m.close()
        assert len(server.handler.received) == 2
        assert 200 <= slow < 1500 and 0 <= again < 1500, (slow, again)
        assert slow >= int(server.handler.spans["r1@example.org"] * 1000)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_is_fatal(certificate: tuple[Path, Path], security: str) -> None:
    with MailServer(tls_context=server_context(certificate), implicit_tls=security == "tls") as server:
        with pytest.raises(FatalTransportError, match="TLS with the SMTP server 127.0.0.1:.* failed"):
            messenger(server, security=security).send(message(1))
        assert server.handler.received == []


def test_starttls_demanded_of_a_server_without_it_is_fatal(smtpd: MailServer) -> None:
    with pytest.raises(FatalTransportError, match="does not offer STARTTLS"):
        messenger(smtpd, security="starttls").send(message(1))


# --- rate limit -------------------------------------------------------------------------------------------


def test_the_rate_limit_spaces_messages_across_the_pool(smtpd: MailServer) -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    m = messenger(smtpd, rate_limit=4, pool_size=2, clock=lambda: now[0], sleep=sleep)
    for i in range(5):
        m.send(message(i))
    assert sleeps == pytest.approx([0.25] * 4)
    now[0] += 10  # idle for a while: no catching up with a burst
    sleeps.clear()
    m.send(message(9))
    assert sleeps == []
