"""What the web tests share: settings for a test app, a fake clock, reading the outbox, a live server and a real
SMTP server on 127.0.0.1. Importable as ``web_support`` from the tests in this folder."""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Sequence

import uvicorn
from aiosmtpd.controller import Controller
from support import write_config

from newsletter import config
from newsletter.diff import period_for
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.store import Store

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(tmp_path: Path, db_url: str | None = None, **overrides: Any) -> config.Settings:
    """The shipped config.yaml with a SQLite file (or ``db_url``), the outbox in tmp_path, and overrides."""
    web = {"production": False, "form_version": "test-v1", "confirmation_window_minutes": 15,
           "rate_window_minutes": 60, "subscribe_per_ip": 1000, "subscribe_per_address": 1000}
    web.update(overrides.pop("web", {}))
    path = write_config(tmp_path, outbox_dir=str(tmp_path / "outbox"), messenger="outbox", web=web, **overrides)
    settings = config.load(path, {})
    if db_url:
        settings = settings.model_copy(update={"database_url": db_url})
    return settings


class Clock:
    """A wall clock and a monotonic clock that move only when a test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        self.now += step
        self.mono += step.total_seconds()


def outbox(settings: config.Settings) -> list[EmailMessage]:
    folder = settings.path(settings.outbox_dir)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]  # type: ignore[misc]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def link_in(message: EmailMessage, path: str) -> str:
    """The first URL in the text part whose path is ``path`` (e.g. /confirm)."""
    found = re.search(r"(https?://\S+?" + re.escape(path) + r"\?token=[A-Za-z0-9_-]+)", text_of(message))
    assert found, f"no {path} link in:\n{text_of(message)}"
    return found.group(1)


def token_of(url: str) -> str:
    return url.split("token=", 1)[1]


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def add_edition(store: Store, settings: config.Settings, day: date = date(2025, 3, 14), cadence: str = "daily",
                subject: str = "Trending papers, 14 Mar 2025: 3 new in 2 topics",
                titles: tuple[str, ...] = ("Fast KV caches", "Speculative decoding at scale", "Robot hands")) -> int:
    """An edition with papers in two topics, as `newsletter send` would record it."""
    slugs = settings.topic_slugs()
    batch = SourceBatch("test", day, [FetchedPaper(title=t, abstract=f"We study {t.lower()}.", arxiv_id=f"2503.{i:05d}",
                                                   authors=["Ada Lovelace", "Alan Turing"], upvotes=10 * (i + 1))
                                      for i, t in enumerate(titles)])
    store.ingest([batch])
    papers = {p.title: p.id for p in store.papers()}
    sections = [(papers[t], slugs[0] if i < 2 else slugs[1]) for i, t in enumerate(titles)]
    period = period_for(cadence, day)
    return store.create_edition(cadence, period, day, subject, sections, {}, now=datetime.combine(day, datetime.min.time(), timezone.utc))


# --- a live server and an SMTP server on 127.0.0.1 ------------------------------------------------------


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class Caught:
    mail_from: str
    rcpts: list[str]
    message: EmailMessage


@dataclass
class _Handler:
    caught: list[Caught] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.caught.append(Caught(envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 2.0.0 OK"


class MailCatcher:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "MailCatcher":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Caught]:
        with self.handler.lock:
            return list(self.handler.caught)

    def wait_for(self, count: int, timeout: float = 20) -> list[Caught]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, the SMTP server got {len(self.messages)}")
            time.sleep(0.05)
        return self.messages


def add_sent_edition(store: Store, settings: config.Settings, emails: tuple[str, ...], *, sent: int,
                     start: datetime = T0, step: timedelta = timedelta(seconds=30), day: date = date(2025, 3, 14),
                     failed: int = 0, offsets: Sequence[float] | None = None,
                     subject: str = "Trending papers, 14 Mar 2025: 3 new in 2 topics",
                     smtp_ms: Callable[[int, str], int] | None = None) -> int:
    """An edition of ``add_edition``'s papers queued for ``emails``: the first ``sent`` of them sent ``step``
    apart from ``start`` (or ``offsets`` seconds after it), with the SMTP time ``smtp_ms(i, email)`` when given,
    the next ``failed`` failed, the rest pending."""
    eid = add_edition(store, settings, day=day)
    papers = [pid for pid, _ in store.edition_papers(eid)]
    known = {s.email: s.id for s in store.subscribers()}
    new = [{"email": e, "cadence": "daily"} for e in emails if e not in known]
    for s in store.add_subscribers(new, now=start) if new else []:
        known[s.email] = s.id
    from newsletter.store.schema import DeliveryRow, DigestRow, EditionPaperRow, EditionRow  # noqa: F401
    from sqlalchemy import delete

    with store.session() as s, s.begin():  # add_edition made it without readers: start again with them
        s.execute(delete(EditionRow).where(EditionRow.id == eid))
    eid = store.create_edition("daily", period_for("daily", day), day, subject,
                               [(p, settings.topic_slugs()[0]) for p in papers],
                               {known[e]: papers for e in emails}, now=start)
    for i, email in enumerate(emails[:sent]):
        at = start + (timedelta(seconds=offsets[i]) if offsets is not None else step * (i + 1))
        store.set_delivery_state(eid, known[email], "sent", now=at)
        if smtp_ms is not None:
            from sqlalchemy import update

            with store.session() as s, s.begin():
                s.execute(update(DeliveryRow).where(DeliveryRow.edition_id == eid,
                                                    DeliveryRow.subscriber_id == known[email])
                          .values(smtp_ms=smtp_ms(i, email)))
    for email in emails[sent:sent + failed]:
        store.set_delivery_state(eid, known[email], "failed", error="550 no such user", now=start)
    return eid
