"""The tables, as SQLAlchemy 2.x typed models. Changes go through a migration in ``migrations/versions``.

The sent record is compact: a delivery row per (edition, subscriber) points at one of the edition's few
distinct *digests* (the ordered paper list shared by every reader who gets the same papers). What a reader
was sent is the union of the papers their deliveries' emails listed (``listed_ids``), so storage grows with subscribers × editions, never
subscribers × papers.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class PaperRow(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)  # arxiv:<id> or title:<normalised>
    arxiv_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    title_key: Mapped[str] = mapped_column(String(512), index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    author_count: Mapped[int | None] = mapped_column(Integer)
    organization: Mapped[str | None] = mapped_column(String(300))
    published: Mapped[date | None] = mapped_column(Date)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    num_comments: Mapped[int | None] = mapped_column(Integer)
    ai_summary: Mapped[str | None] = mapped_column(Text)
    ai_keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    github_repo: Mapped[str | None] = mapped_column(String(1000))
    github_stars: Mapped[int | None] = mapped_column(Integer)
    project_page: Mapped[str | None] = mapped_column(String(1000))
    thumbnail: Mapped[str | None] = mapped_column(String(1000))
    url: Mapped[str | None] = mapped_column(String(1000))
    topic: Mapped[str | None] = mapped_column(String(64), index=True)  # primary topic: the digest section
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)  # primary first, then secondary tags
    topic_scores: Mapped[dict[str, float] | None] = mapped_column(JSON)  # why (for `topics explain`)
    classified_with: Mapped[str | None] = mapped_column(String(64))  # fingerprint of the topic settings
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The source reported the paper withdrawn (Daily Papers' ``paper.withdrawnAt``): it is never sent.
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    sightings: Mapped[list["SightingRow"]] = relationship(back_populates="paper", cascade="all, delete-orphan")


class SightingRow(Base):
    """One day a paper trended at one source: when, where, at which rank, with how many upvotes."""

    __tablename__ = "sightings"
    __table_args__ = (
        UniqueConstraint("paper_id", "source", "trending_date", name="uq_sighting"),
        Index("ix_sightings_trending_date", "trending_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(100))
    trending_date: Mapped[date] = mapped_column(Date)
    rank: Mapped[int | None] = mapped_column(Integer)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    paper: Mapped[PaperRow] = relationship(back_populates="sightings")


class EmbeddingRow(Base):
    """A paper's text embedding, computed once per (paper, model) and reused by every classification."""

    __tablename__ = "paper_embeddings"

    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian


class SubscriberRow(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    cadence: Mapped[str] = mapped_column(String(10))
    topics: Mapped[list[str] | None] = mapped_column(JSON)  # null: every topic
    excluded_keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the last confirmation email went out: at most one per address per window (web.confirmation_window_minutes).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsentRow(Base):
    """A reader's consent, kept as evidence: what they asked for, when, from where, through which form; and
    when (and from where) they confirmed it. Also records withdrawals (action "unsubscribe")."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # subscribe | resubscribe | unsubscribe
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    form_version: Mapped[str | None] = mapped_column(String(40))
    cadence: Mapped[str | None] = mapped_column(String(10))  # the choices asked for, applied on confirmation
    topics: Mapped[list[str] | None] = mapped_column(JSON)
    excluded_keywords: Mapped[list[str] | None] = mapped_column(JSON)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirm_ip: Mapped[str | None] = mapped_column(String(64))
    confirm_user_agent: Mapped[str | None] = mapped_column(String(500))


class EditionRow(Base):
    """One issue of the newsletter: one per (cadence, period), so a restart can never make two."""

    __tablename__ = "editions"
    __table_args__ = (UniqueConstraint("cadence", "period", name="uq_edition_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cadence: Mapped[str] = mapped_column(String(10))
    period: Mapped[str] = mapped_column(String(20))  # 2026-03-14 (daily) or 2026-W11 (weekly)
    day: Mapped[date] = mapped_column(Date)  # the day the edition is for
    subject: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # active | paused | cancelled (models.EDITION_STATES): only an active edition's deliveries are claimed
    state: Mapped[str] = mapped_column(String(12), default="active", server_default="active")

    papers: Mapped[list["EditionPaperRow"]] = relationship(
        back_populates="edition", order_by="EditionPaperRow.position", cascade="all, delete-orphan"
    )


class EditionPaperRow(Base):
    """A paper in an edition, with its section (topic) and its order."""

    __tablename__ = "edition_papers"

    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    topic: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)

    edition: Mapped[EditionRow] = relationship(back_populates="papers")


class DigestRow(Base):
    """One distinct content of an edition: the ordered papers shared by every reader who gets exactly them."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("edition_id", "fingerprint", name="uq_digest_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the ordered paper ids (and the listed ones)
    paper_ids: Mapped[list[int]] = mapped_column(JSON)  # in digest order: the reader's web copy
    # The papers the email lists (Top papers and sections, after the caps and the size guard): the only ones
    # recorded as sent. The others stay eligible and come again in the next digest. Null: all (older rows).
    listed_ids: Mapped[list[int] | None] = mapped_column(JSON)


class DeliveryRow(Base):
    """One per (edition, subscriber): the state machine that makes sure each reader gets a digest once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id", name="uq_delivery"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_deliveries_subscriber", "subscriber_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(12))
    # Fixed per (edition, subscriber), reused on retry: <edition.subscriber.cadence.period@domain>. Not indexed:
    # a bounce that quotes it is matched through (edition_id, subscriber_id), which the id names.
    message_id: Mapped[str] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The sent message's SMTP exchange, connect (or MAIL FROM on a reused connection) to the final reply, in ms.
    smtp_ms: Mapped[int | None] = mapped_column(Integer)


class RenderBodyRow(Base):
    """A rendered email body (subject, HTML, text, preheader, slots, what it shows), stored once however many
    digests and reader kinds share it: zlib-compressed JSON, keyed by the SHA-256 of the JSON."""

    __tablename__ = "render_bodies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)  # bytes of ``data``


class RenderRow(Base):
    """A digest as it was rendered for sending (per-reader values still as slots), kept so that retries and
    ``newsletter preview --edition`` show exactly what went out, whatever changed in the papers since. The
    body itself is a ``RenderBodyRow``, shared by every render with the same content."""

    __tablename__ = "digest_renders"
    __table_args__ = (UniqueConstraint("digest_id", "reader_kind", name="uq_digest_render"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    reader_kind: Mapped[str] = mapped_column(String(64))  # hash of the reader's topics and excluded keywords
    body_id: Mapped[int] = mapped_column(ForeignKey("render_bodies.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StateRow(Base):
    """Small named values the app keeps between runs (e.g. the fingerprint of the topic settings)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ListingDayRow(Base):
    """A listing day of a source that takes a date (the Daily Papers API): when it was last read, and
    whether that read came late enough (a day after the listing day ended, UTC) for the list to be final."""

    __tablename__ = "listing_days"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    papers: Mapped[int] = mapped_column(Integer, default=0)  # papers on the list at the last read
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
class InboundEventRow(Base):
    """One bounce, delay, auto-reply, complaint or unsubscribe request, read from the mailbox or a webhook,
    with its raw reason and what it did. ``event_key`` (a hash of the raw message, or the provider's event
    id) is unique, so the same report read twice has no second effect."""

    __tablename__ = "inbound_events"
    __table_args__ = (Index("ix_inbound_events_subscriber", "subscriber_id", "kind"),
                      Index("ix_inbound_events_delivery", "delivery_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # mailbox | ses | postmark | sendgrid | mailgun
    kind: Mapped[str] = mapped_column(String(20), index=True)  # hard | soft | delay | autoreply | complaint | ...
    recipient: Mapped[str | None] = mapped_column(String(320))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("deliveries.id", ondelete="SET NULL"))
    status: Mapped[str | None] = mapped_column(String(20))
    feedback_type: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str | None] = mapped_column(String(300))
    original_message_id: Mapped[str | None] = mapped_column(String(300))
    effect: Mapped[str] = mapped_column(String(30))  # what it did: counted, bounced, unsubscribed, recorded, ...
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RateBucketRow(Base):
    """A token bucket of the web app's rate limits, shared by every worker process: ``tokens`` left at
    ``at`` (seconds since the epoch). Keyed by limit and client (an IP address, or a hash of an address)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float, index=True)


class MetricCounterRow(Base):
    """A counter of what senders and fetches did (``newsletter/monitor``), shared by every process: a sender
    adds to it, the web app's ``/metrics`` reads it. ``labels`` is the label set as sorted JSON."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class SignalRow(Base):
    """A reader's signal about one paper (issue 15): "more", "fewer", "click" (a weak positive, only with
    ``tracking.clicks``) or "seed" (from the preferences page). One current signal per (reader, paper)."""

    __tablename__ = "reader_signals"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id", name="uq_reader_signal"),
                      Index("ix_reader_signals_paper", "paper_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # more | fewer | click | seed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReaderModelRow(Base):
    """A reader's trained relevance model (``ReaderModel.to_bytes``), and which state of their signals it was
    trained on: ``signals_version`` goes up with every change of their signals, ``trained_version`` is the
    version the stored model saw, so the readers to retrain are ``trained_version < signals_version``."""

    __tablename__ = "reader_models"
    __table_args__ = (Index("ix_reader_models_stale", "trained_version", "signals_version"),)

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    signals_version: Mapped[int] = mapped_column(Integer, default=0)
    trained_version: Mapped[int] = mapped_column(Integer, default=0)
    signal_count: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
