"""An edition with known outcomes, made for real: readers on several domains, sent through a real SMTP server on
127.0.0.1 (one address refused for good, one deferred), bounce and complaint reports read through the inbound
code (classify -> InboundProcessor), and unsubscribes inside and outside the 7 days. Importable as
``report_world`` from the tests in this folder; ``expected`` is worked out from what the SMTP server received,
independently of the report's queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailkit import MailServer, build_message
from support import write_config

from newsletter import config
from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.inbound import classify
from newsletter.inbound.process import InboundProcessor, message_key
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryQueue
from newsletter.store.subscriptions import RequestMeta, unsubscribe

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=timezone.utc)
STEP = 10  # seconds between accepted messages
GOOD = [f"ok{i}@example.org" for i in range(6)] + ["ann@mail.example.net", "bob@mail.example.net",
                                                   "cy@slow.example.com"]
REFUSED = "nobody@dead.example.com"  # 550 to RCPT TO: failed
DEFERRED = "later@slow.example.com"  # 451 to RCPT TO: waits for a retry
HARD = "ok1@example.org"  # hard bounce report, later
SOFT = "ann@mail.example.net"  # soft bounce report (mailbox full)
COMPLAINER = "ok2@example.org"  # spam complaint (which unsubscribes them)
UNSUB_IN = "ok3@example.org"  # unsubscribes 2 days after it was sent: counted
UNSUB_OUT = "ok4@example.org"  # 8 days after: not counted


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    edition_id: int
    papers: dict[str, int]
    received: list[str]  # accepted recipients, in order
    expected: dict[str, Any] = field(default_factory=dict)


def dsn(message_id: str, rcpt: str, status: str, diagnostic: str) -> bytes:
    """An RFC 3464 delivery status notification for the message, as a receiving MTA would send it."""
    return f"""From: MAILER-DAEMON@mx.example.net
To: papers@example.org
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(T0 + timedelta(hours=1))}
Message-ID: <dsn-{rcpt.split("@")[0]}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mx.example.net.

<{rcpt}>: host said: {diagnostic}

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--b1
Content-Type: text/rfc822-headers

From: Trending Papers <papers@example.org>
To: {rcpt}
Subject: Trending papers
Message-ID: {message_id}

--b1--
""".replace("\n", "\r\n").encode()


def arf(message_id: str, rcpt: str) -> bytes:
    """An RFC 5965 abuse report (a reader pressed "spam"), quoting the original message's headers."""
    return f"""From: fbl@mail.example.org
To: papers@example.org
Subject: Abuse report
Date: {format_datetime(T0 + timedelta(days=1))}
Message-ID: <arf-1@mail.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b2"

--b2
Content-Type: text/plain

This is an email abuse report for an email message received from IP 127.0.0.1.

--b2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: test-fbl/1.0
Version: 1
Original-Rcpt-To: {rcpt}

--b2
Content-Type: text/rfc822-headers

From: papers@example.org
To: {rcpt}
Subject: Trending papers
Message-ID: {message_id}

--b2--
""".replace("\n", "\r\n").encode()


def build(store: Store, server: MailServer, tmp_path: Path) -> World:
    day = date(2026, 3, 14)
    titles = {"a": "Alpha: the paper everyone got", "b": "Beta: the second paper", "c": "Gamma: only on the web"}
    store.ingest([SourceBatch("test", day, [FetchedPaper(title=t, arxiv_id=f"2603.0000{i}")
                                            for i, t in enumerate(titles.values(), 1)])])
    pid = {k: store.paper(f"2603.0000{i}").id for i, k in enumerate(titles, 1)}
    everyone = GOOD + [REFUSED, DEFERRED]
    subs = {s.email: s.id for s in store.add_subscribers([{"email": e, "cadence": "daily"} for e in everyone])}
    # Readers on example.org get all three papers, their email listing a and b (c only in the web copy);
    # the others get a digest of paper a alone.
    digests = {sid: ([pid["a"], pid["b"], pid["c"]] if e.endswith("@example.org") else [pid["a"]])
               for e, sid in subs.items()}
    listed = {sid: ([pid["a"], pid["b"]] if e.endswith("@example.org") else [pid["a"]]) for e, sid in subs.items()}
    eid = store.create_edition("daily", "2026-03-14", day, "Alpha and more", [(p, None) for p in pid.values()],
                               digests, message_id_domain="example.org", now=T0, listed=listed)

    clock = Clock()
    accepted: list[str] = []

    def on_message(n: int) -> None:  # the n-th accepted message is recorded sent at T0 + n * STEP
        accepted.append(server.handler.received[n - 1].rcpt)
        clock.now = T0 + timedelta(seconds=n * STEP)

    server.handler.rcpt_replies = {REFUSED: "550 5.1.1 no such user", DEFERRED: "451 4.3.0 try again later"}
    server.handler.on_message = on_message
    messenger = SmtpMessenger("127.0.0.1", server.port, pool_size=1, timeout=10)
    try:
        Sender(DeliveryQueue(store.engine), messenger, build_message, DeliveryPolicy(batch_size=200),
               clock=clock).run()
    finally:
        server.handler.on_message = None
        messenger.close()

    settings = config.load(write_config(tmp_path, database_url=str(store.engine.url.render_as_string(False))), {})
    message_ids = {r.rcpt: r.message_id for r in server.handler.received}
    reports = [dsn(message_ids[HARD], HARD, "5.1.1", "550 5.1.1 <ok1@example.org>: user unknown"),
               dsn(message_ids[SOFT], SOFT, "4.2.2", "552 4.2.2 mailbox full, over quota"),
               arf(message_ids[COMPLAINER], COMPLAINER)]
    processor = InboundProcessor(settings, store, clock=lambda: T0 + timedelta(days=1))
    kinds = []
    for raw in reports:
        event = classify(raw)
        kinds.append(event.kind)
        processor.handle(event, key=message_key(raw), source="mailbox")
    assert kinds == ["hard", "soft", "complaint"], kinds
    unsubscribe(store, subs[UNSUB_IN], RequestMeta(ip="192.0.2.1"), now=T0 + timedelta(days=2))
    unsubscribe(store, subs[UNSUB_OUT], RequestMeta(ip="192.0.2.1"), now=T0 + timedelta(days=8))
    unsubscribe(store, subs[REFUSED], RequestMeta(ip="192.0.2.1"), now=T0 + timedelta(days=1))  # never sent it

    world = World(eid, pid, accepted)
    world.expected = expected(accepted, pid)
    return world


def expected(accepted: list[str], pid: dict[str, int]) -> dict[str, Any]:
    """Every figure of the report, from what the SMTP server accepted."""
    sent_at = {rcpt: T0 + timedelta(seconds=(i + 1) * STEP) for i, rcpt in enumerate(accepted)}
    domains: dict[str, dict[str, Any]] = {}
    for rcpt in GOOD + [REFUSED, DEFERRED]:
        d = domains.setdefault(rcpt.split("@")[1], {"readers": 0, "sent": 0, "failed": 0, "deferred": 0,
                                                    "bounced": 0, "waits": []})
        d["readers"] += 1
        if rcpt in sent_at:
            d["sent"] += 1
            d["waits"].append((sent_at[rcpt] - T0).total_seconds())
        d["failed"] += rcpt == REFUSED
        d["deferred"] += rcpt == DEFERRED
        d["bounced"] += rcpt in (HARD, SOFT)
    on_org = [r for r in accepted if r.endswith("@example.org")]
    return {
        "readers": len(GOOD) + 2, "sent": len(accepted), "failed": 1, "waiting": 1, "deferred": 1,
        "bounced": 2, "hard_bounced": 1, "complaints": 1, "unsubscribes": 2,
        "first_sent": min(sent_at.values()), "last_sent": max(sent_at.values()),
        "send_seconds": (max(sent_at.values()) - min(sent_at.values())).total_seconds(),
        # Every sent message has its SMTP time (their medians and p95s: ``smtp_times`` and ``percentile``).
        "domains": {name: {**{k: v for k, v in d.items() if k != "waits"}, "timed": d["sent"]}
                    for name, d in domains.items()},
        "top_papers": [(pid["a"], len(accepted)), (pid["b"], len(on_org))],
        "sent_at": sent_at,
    }


def percentile(values: list[int], p: float) -> float | None:
    """``percentile_cont``: sorted values v0..v(n-1), at position (n-1)p, linear between the two either side."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * p
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def smtp_times(store: Store, edition_id: int) -> dict[str, list[int]]:
    """Each domain's stored SMTP times of the edition's sent messages, read row by row (the test's own count)."""
    from sqlalchemy import select

    from newsletter.store.schema import DeliveryRow, SubscriberRow

    out: dict[str, list[int]] = {}
    with store.engine.connect() as conn:
        for email, ms in conn.execute(select(SubscriberRow.email, DeliveryRow.smtp_ms)
                                      .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
                                      .where(DeliveryRow.edition_id == edition_id, DeliveryRow.state == "sent")):
            assert ms is not None, email
            out.setdefault(email.split("@")[1], []).append(ms)
    return out
