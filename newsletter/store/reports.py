"""The report of one edition, aggregated in SQL: a fixed number of statements (each a GROUP BY or one
aggregate row), whatever the number of deliveries; no delivery row is ever fetched into Python.

What each figure counts (``newsletter report``, ``GET /api/admin/editions/{id}/report``, ``/admin``):

- ``readers``: deliveries of the edition (one per reader it was made for); ``deliveries``: those by state.
- ``sent``: accepted by the mail server (250); ``failed``: refused for good (5xx, or temporary failures past
  ``delivery.retry_window_hours``); ``waiting``: pending, in a sender's hands or waiting for a retry.
- ``deferred``: temporary failures (4xx, a dropped connection) met on the way, each attempt counted.
- ``bounced``: deliveries a bounce report came back for later (hard or soft, by mail or webhook, matched to the
  delivery by VERP or Message-ID); ``hard_bounced`` the hard ones; ``complaints``: deliveries a spam
  complaint (feedback report) came back for.
- ``unsubscribes``: readers sent this edition who unsubscribed (any way: the one-click link, the preferences
  page, mail to the unsubscribe address, a complaint) within 7 days after it was sent to them.
- ``first_sent``/``last_sent``/``send_seconds``: the time to send, from the first message accepted to the last.
- ``domains``: per recipient domain, the readers (one message each), sent, failed, deferred, bounced, and the
  median and 95th percentile of the SMTP time of its sent messages (``deliveries.smtp_ms``: from the
  connection, or MAIL FROM on a reused one, to the server's final reply; ``timed``: how many of them have one,
  messages sent before it was recorded and by other transports have none); the failing ones first, then the
  slowest by that p95. ``slowest_domains``: the domains with the highest p95 SMTP time, whatever failed.
  The percentiles are ``percentile_cont`` (linear between the two nearest values), on PostgreSQL its own, on
  SQLite the same from window functions (``ROW_NUMBER``, ``COUNT`` over each domain).
- ``top_papers``: the papers most readers received (their email listed it and it was sent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, cast, distinct, func, literal, select
from sqlalchemy import Integer as SqlInteger

from ..errors import NotFound
from ..models import DELIVERY_CLAIMED, DELIVERY_FAILED, DELIVERY_PENDING, DELIVERY_RETRY, DELIVERY_SENT
from .deliveries import as_utc
from .schema import ConsentRow, DeliveryRow, DigestRow, EditionRow, InboundEventRow, PaperRow, SubscriberRow

D, E, S, C, I = DeliveryRow, EditionRow, SubscriberRow, ConsentRow, InboundEventRow
UNSUBSCRIBE_DAYS = 7
WAITING = (DELIVERY_PENDING, DELIVERY_CLAIMED, DELIVERY_RETRY)


@dataclass(frozen=True)
class DomainStats:
    domain: str
    readers: int
    sent: int
    failed: int
    deferred: int  # temporary failures met (attempts that ended neither sent nor failed)
    bounced: int
    timed: int  # sent messages with an SMTP time
    smtp_median_ms: float | None  # SMTP time (connect or MAIL FROM to the final reply) of the sent ones
    smtp_p95_ms: float | None


@dataclass(frozen=True)
class PaperStats:
    paper_id: int
    title: str
    arxiv_id: str | None
    readers: int


@dataclass
class EditionReport:
    edition_id: int
    cadence: str
    period: str
    day: Any
    subject: str
    state: str
    created_at: datetime | None
    readers: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    deferred: int = 0
    bounced: int = 0
    hard_bounced: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    first_sent: datetime | None = None
    last_sent: datetime | None = None
    send_seconds: float | None = None
    domains: list[DomainStats] = field(default_factory=list)
    slowest_domains: list[DomainStats] = field(default_factory=list)
    top_papers: list[PaperStats] = field(default_factory=list)


@dataclass(frozen=True)
class SendsOverTime:
    """Messages accepted per interval, from the first to the last sent (the /admin report's plot)."""

    start: datetime | None
    bucket_seconds: int
    counts: list[int]
    end: datetime | None = None  # the last message sent


# Every attempt of a delivery but the one that ended it sent or failed was a temporary failure.
_DEFERRED = case((and_(D.state.in_((DELIVERY_SENT, DELIVERY_FAILED)), D.attempts > 0), D.attempts - 1),
                 else_=D.attempts)


def _seconds(later: Any, earlier: Any, dialect: str) -> Any:
    """``later - earlier`` in seconds, as SQL."""
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _domain(dialect: str) -> Any:
    if dialect == "sqlite":
        return func.lower(func.substr(S.email, func.instr(S.email, "@") + 1))
    return func.lower(func.split_part(S.email, "@", 2))


def latest_edition_id(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(E.id).order_by(E.created_at.desc(), E.id.desc()).limit(1)).scalar()


def edition_report(engine: Engine, edition_id: int | None = None, *, domains: int = 10,
                   papers: int = 10) -> EditionReport:
    """The report of one edition (None: the latest). Raises NotFound without such an edition.

    Example: ``edition_report(store.engine, 12).sent``
    """
    dialect = engine.dialect.name
    with engine.connect() as conn:
        q = select(E.id, E.cadence, E.period, E.day, E.subject, E.state, E.created_at)
        q = q.where(E.id == edition_id) if edition_id is not None else q.order_by(E.created_at.desc(),
                                                                                 E.id.desc()).limit(1)
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"No edition {edition_id}." if edition_id is not None else "No editions yet.",
                           hint="see `newsletter edition list`" if edition_id is not None
                           else "`newsletter send` makes one")
        eid = row.id
        report = EditionReport(eid, row.cadence, row.period, row.day, row.subject or "", row.state,
                               as_utc(row.created_at))

        # 1. Deliveries by state, with the temporary failures met on the way.
        for state, n, deferred in conn.execute(
                select(D.state, func.count(), func.coalesce(func.sum(_DEFERRED), 0))
                .where(D.edition_id == eid).group_by(D.state)):
            report.deliveries[state] = int(n)
            report.deferred += int(deferred)
        report.readers = sum(report.deliveries.values())
        report.sent = report.deliveries.get(DELIVERY_SENT, 0)
        report.failed = report.deliveries.get(DELIVERY_FAILED, 0)
        report.waiting = sum(report.deliveries.get(s, 0) for s in WAITING)

        # 2. The time to send.
        first, last = conn.execute(select(func.min(D.sent_at), func.max(D.sent_at))
                                   .where(D.edition_id == eid, D.state == DELIVERY_SENT)).one()
        report.first_sent, report.last_sent = as_utc(first), as_utc(last)
        if first is not None:
            report.send_seconds = (report.last_sent - report.first_sent).total_seconds()  # type: ignore[operator]

        # 3. Bounces and complaints that came back for this edition's deliveries (one aggregate row).
        bounced, hard, complaints = conn.execute(
            select(func.count(distinct(case((I.kind.in_(("hard", "soft")), I.delivery_id)))),
                   func.count(distinct(case((I.kind == "hard", I.delivery_id)))),
                   func.count(distinct(case((I.kind == "complaint", I.delivery_id)))))
            .select_from(I).join(D, D.id == I.delivery_id).where(D.edition_id == eid)).one()
        report.bounced, report.hard_bounced, report.complaints = int(bounced), int(hard), int(complaints)

        # 4. Readers sent this edition who unsubscribed within 7 days after it was sent to them.
        after = _seconds(C.requested_at, D.sent_at, dialect)
        report.unsubscribes = int(conn.execute(
            select(func.count(distinct(D.subscriber_id))).select_from(D)
            .join(C, and_(C.subscriber_id == D.subscriber_id, C.action == "unsubscribe"))
            .where(D.edition_id == eid, D.state == DELIVERY_SENT, D.sent_at.is_not(None),
                   after >= 0, after <= UNSUBSCRIBE_DAYS * 86400)).scalar_one())

        # 5. Per recipient domain, failing first, then slowest; and the slowest alone.
        report.domains = _domains(conn, eid, dialect, domains)
        report.slowest_domains = [d for d in _domains(conn, eid, dialect, domains, slowest=True) if d.timed]

        # 6. The papers most readers received: sent deliveries counted per digest, then the digests' lists.
        report.top_papers = _top_papers(conn, eid, papers)
    return report


def _domains(conn: Any, eid: int, dialect: str, limit: int, *, slowest: bool = False) -> list[DomainStats]:
    """One statement: the counts per domain (a GROUP BY) joined to its SMTP times' percentiles (another)."""
    domain = _domain(dialect).label("domain")
    sent = D.state == DELIVERY_SENT
    bounced = (select(I.delivery_id.label("did")).where(I.kind.in_(("hard", "soft")), I.delivery_id.is_not(None))
               .group_by(I.delivery_id).subquery())
    counts = (select(domain, func.count().label("readers"), func.sum(case((sent, 1), else_=0)).label("sent"),
                     func.sum(case((D.state == DELIVERY_FAILED, 1), else_=0)).label("failed"),
                     func.coalesce(func.sum(_DEFERRED), 0).label("deferred"),
                     func.count(bounced.c.did).label("bounced"))
              .select_from(D).join(S, S.id == D.subscriber_id).outerjoin(bounced, bounced.c.did == D.id)
              .where(D.edition_id == eid).group_by(domain).subquery())
    times = _smtp_percentiles(eid, dialect)
    p95 = func.coalesce(times.c.p95, -1.0)  # untimed last (NULLS LAST, on both databases)
    order = ([p95.desc(), func.coalesce(times.c.median, -1.0).desc()] if slowest else
             [(counts.c.failed + counts.c.bounced).desc(), counts.c.deferred.desc(), p95.desc()])
    q = (select(counts, func.coalesce(times.c.timed, 0).label("timed"), times.c.median, times.c.p95)
         .outerjoin(times, times.c.domain == counts.c.domain).order_by(*order, counts.c.domain).limit(limit))
    return [DomainStats(r.domain, int(r.readers), int(r.sent), int(r.failed), int(r.deferred), int(r.bounced),
                        int(r.timed), _num(r.median, 1), _num(r.p95, 1)) for r in conn.execute(q)]


def _smtp_percentiles(eid: int, dialect: str) -> Any:
    """Per domain, over the edition's sent messages with an SMTP time: how many, and the median and p95 of
    ``smtp_ms`` as ``percentile_cont`` gives them (sorted values v0..v(n-1); at p, position (n-1)p, linear
    between the values either side)."""
    domain = _domain(dialect).label("domain")
    timed = and_(D.edition_id == eid, D.state == DELIVERY_SENT, D.smtp_ms.is_not(None))
    if dialect == "postgresql":
        return (select(domain, func.count().label("timed"),
                       func.percentile_cont(0.5).within_group(D.smtp_ms).label("median"),
                       func.percentile_cont(0.95).within_group(D.smtp_ms).label("p95"))
                .select_from(D).join(S, S.id == D.subscriber_id).where(timed).group_by(domain).subquery())
    ranked = (select(domain, D.smtp_ms.label("v"),
                     (func.row_number().over(partition_by=domain, order_by=D.smtp_ms) - 1).label("i"),
                     func.count().over(partition_by=domain).label("n"))
              .select_from(D).join(S, S.id == D.subscriber_id).where(timed).subquery())

    def cont(p: float) -> Any:
        pos = (ranked.c.n - 1) * p
        lo = cast(pos, SqlInteger)  # pos >= 0: truncation is floor
        frac = pos - lo
        return func.sum(case((ranked.c.i == lo, ranked.c.v * (1 - frac)), (ranked.c.i == lo + 1, ranked.c.v * frac),
                             else_=0.0))

    return (select(ranked.c.domain, func.count().label("timed"), cont(0.5).label("median"), cont(0.95).label("p95"))
            .group_by(ranked.c.domain).subquery())


def _num(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _top_papers(conn: Any, eid: int, limit: int) -> list[PaperStats]:
    per_digest = (select(D.digest_id, func.count().label("n")).where(D.edition_id == eid, D.state == DELIVERY_SENT)
                  .group_by(D.digest_id).subquery())
    totals: dict[int, int] = {}
    # One row per distinct digest of the edition (a few), never per delivery.
    for listed, paper_ids, n in conn.execute(select(DigestRow.listed_ids, DigestRow.paper_ids, per_digest.c.n)
                                             .join(per_digest, per_digest.c.digest_id == DigestRow.id)):
        for pid in (listed if listed is not None else paper_ids) or ():
            totals[int(pid)] = totals.get(int(pid), 0) + int(n)
    if not totals:
        return []
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    titles = {r.id: (r.title, r.arxiv_id) for r in conn.execute(
        select(PaperRow.id, PaperRow.title, PaperRow.arxiv_id).where(PaperRow.id.in_([p for p, _ in top])))}
    return [PaperStats(pid, *titles.get(pid, ("(paper removed)", None)), n) for pid, n in top]


def sends_over_time(engine: Engine, edition_id: int, *, buckets: int = 48) -> SendsOverTime:
    """Sent messages counted per interval (at most ``buckets`` of them, whole seconds each), one GROUP BY."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(D.sent_at), func.max(D.sent_at))
                                   .where(D.edition_id == edition_id, D.state == DELIVERY_SENT)).one()
        if first is None:
            return SendsOverTime(None, 0, [])
        start, end = as_utc(first), as_utc(last)
        span = (end - start).total_seconds()  # type: ignore[operator]
        width = max(1, math.ceil(span / buckets)) if span > 0 else 1
        # Rounded to the millisecond first: SQLite's julianday arithmetic puts 40 s at 39.99999 s.
        offset = func.round(_seconds(D.sent_at, literal(first, D.sent_at.type), dialect), 3) / width
        index = cast(offset, SqlInteger) if dialect == "sqlite" else cast(func.floor(offset), SqlInteger)
        index = index.label("i")
        rows = conn.execute(select(index, func.count()).where(D.edition_id == edition_id, D.state == DELIVERY_SENT)
                            .group_by(index)).all()
    size = min(buckets, int(span // width) + 1)
    counts = [0] * size
    for i, n in rows:
        counts[min(max(int(i), 0), size - 1)] += int(n)
    return SendsOverTime(start, width, counts, end)


def bucket_times(series: SendsOverTime) -> list[datetime]:
    if series.start is None:
        return []
    return [series.start + timedelta(seconds=i * series.bucket_seconds) for i in range(len(series.counts))]


__all__ = ["DomainStats", "EditionReport", "PaperStats", "SendsOverTime", "edition_report", "latest_edition_id",
           "sends_over_time"]
