"""Settings, declared once (name, type, default, help), loaded from config.yaml with secrets from the environment.

``load(path, environ)`` is the only entry point; it takes the environment as a parameter so tests pass a
dict. Every error names the key path (``smtp.port``) and says what is allowed.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
ENV_CONFIG = "NEWSLETTER_CONFIG"
ENV_DATABASE_URL = "NEWSLETTER_DATABASE_URL"
SECRET_KEYS = ("smtp.password", "signing_key", "inbound.password", "webhooks.postmark_password",
               "webhooks.mailgun_signing_key", "dkim.private_key", "metrics.token", "admin.api_token",
               "admin.password_hash")
# The variable each secret's "write ${...}" hint suggests.
_SECRET_VARS = {"smtp.password": "SMTP_PASSWORD", "signing_key": "NEWSLETTER_SIGNING_KEY",
                "inbound.password": "INBOUND_PASSWORD", "webhooks.postmark_password": "POSTMARK_WEBHOOK_PASSWORD",
                "webhooks.mailgun_signing_key": "MAILGUN_SIGNING_KEY", "dkim.private_key": "DKIM_PRIVATE_KEY",
                "metrics.token": "METRICS_TOKEN", "admin.api_token": "NEWSLETTER_ADMIN_TOKEN",
                "admin.password_hash": "NEWSLETTER_ADMIN_PASSWORD_HASH"}

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLUG = r"^[a-z0-9][a-z0-9-]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(_Section):
    name: str = Field("Trending Papers", description="Display name in the From header.")
    email: str = Field("papers@example.org", description="Address in the From header and the envelope sender.")
    reply_to: str | None = Field(None, description="Optional Reply-To address.")

    @field_validator("email", "reply_to")
    @classmethod
    def _looks_like_address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
            raise ValueError("must be an email address like papers@example.org")
        local, domain = value.rsplit("@", 1)
        if not local.isascii():
            # A non-ASCII local part needs SMTPUTF8 from every server on the way, and cannot go in a
            # Message-ID: refused here rather than at the first send.
            raise ValueError(f"{value!r} has non-ASCII characters before the @; use an ASCII address")
        if not domain.isascii():  # an internationalised domain is written in its ASCII (IDNA) form
            try:
                domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"{value!r}: the domain {domain!r} is not a valid internationalised domain "
                                 "name") from None
        return f"{local}@{domain}"


class Smtp(_Section):
    host: str = Field("127.0.0.1", description="SMTP server host name.")
    port: int = Field(25, ge=1, le=65535, description="SMTP server port (587 for STARTTLS, 465 for implicit TLS).")
    security: Literal["none", "starttls", "tls"] = Field("none", description="Transport security: none, starttls or tls.")
    username: str | None = Field(None, description="Login name; leave empty for no authentication.")
    password: str | None = Field(None, description="Login password; must be an environment reference like ${SMTP_PASSWORD}.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the server before a temporary failure.")
    pool_size: int = Field(2, ge=1, le=32, description="Connections kept open and used side by side.")
    rate_limit: float = Field(0.0, ge=0, description="Messages per second at most; 0 for no limit.")


class SourceSpec(BaseModel):
    """One configured source. ``type`` picks the implementation from the registry; the rest are its options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = Field(description="Registered source type: huggingface, hf-page, hf-json, arxiv or rss.")
    name: str | None = Field(None, description="A label for this source (defaults to its type).")
    enabled: bool = Field(True, description="Set false to keep a source configured but unused.")

    @property
    def label(self) -> str:
        return self.name or self.type

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Topic(_Section):
    slug: str = Field(pattern=_SLUG, description="Stable identifier used in subscriptions and URLs.")
    name: str = Field(description="Section heading in the digest.")
    description: str = Field("", description="One line describing what belongs here (used by the classifier).")
    keywords: tuple[str, ...] = Field((), description="Phrases that are strong evidence for this topic.")
    exclude: tuple[str, ...] = Field((), description="Phrases that rule this topic out.")


DEFAULT_TOPICS_FILE = "default_topics.yaml"


@functools.lru_cache(maxsize=1)
def default_topics() -> tuple[Topic, ...]:
    """The built-in topics, shipped as package data: what a config without ``topics:`` gets."""
    text = resources.files("newsletter").joinpath(DEFAULT_TOPICS_FILE).read_text(encoding="utf-8")
    return tuple(Topic.model_validate(entry) for entry in yaml.safe_load(text))


class Windows(_Section):
    daily: int = Field(7, ge=1, le=365, description="Days a paper stays eligible for daily digests after it trended.")
    weekly: int = Field(14, ge=1, le=365, description="Days a paper stays eligible for weekly digests after it trended.")


class Schedule(_Section):
    timezone: str = Field("UTC", description="IANA time zone for the cron expressions, e.g. Europe/Berlin.")
    daily: str = Field("0 8 * * mon-fri", description="Cron expression (minute hour day month weekday; weekdays 0 and 7 are Sunday, as in crontab) of the daily send.")
    weekly: str = Field("0 9 * * mon", description="Cron expression of the weekly send.")
    fetch: str = Field("0 * * * *", description="Cron expression of the fetch job, apart from the sends (which fetch first too).")
    misfire_grace_hours: float = Field(6.0, gt=0, description="A send missed while the process was down still runs within this many hours.")
    inbound: str = Field("*/10 * * * *", description="Cron expression of the inbound-mail job (bounces, complaints, "
                         "mailto unsubscribes); it runs only when inbound.host is set.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin or UTC") from None
        return value

    @field_validator("daily", "weekly", "inbound")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"{value!r} is not a 5-field cron expression like '0 8 * * mon-fri'")
        _check_cron(value, fields)
        return value


# The five crontab fields as APScheduler 3 names them, with the values its CronTrigger accepts.
_CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day", "1-31 or last"), ("month", "1-12 or jan-dec"),
                ("day_of_week", "0-7 (0 and 7 are Sunday, as in crontab) or sun-sat"))


def _check_cron(value: str, fields: list[str]) -> None:
    """Refuse what the scheduler would refuse when it starts, naming the field: APScheduler's own parser
    decides, through the very function the scheduler builds its triggers with (``cron.trigger``), so the
    check cannot drift from what actually runs."""
    from apscheduler.triggers.cron import CronTrigger

    from .cron import crontab_day_of_week, trigger

    try:
        trigger(value, "UTC")
        return
    except ValueError as exc:
        problem = str(exc)
    for (name, allowed), text in zip(_CRON_FIELDS, fields):
        try:
            CronTrigger(**{name: crontab_day_of_week(text) if name == "day_of_week" else text}, timezone="UTC")
        except ValueError as exc:
            why = re.sub(r"^Error validating expression '[^']*': ", "", str(exc))
            raise ValueError(f"{value!r} is not a valid cron expression: the {name.replace('_', '-')} field "
                             f"{text!r} is refused ({why}); it takes {allowed}") from None
    raise ValueError(f"{value!r} is not a valid cron expression: {problem}")


class Digest(_Section):
    max_papers: int = Field(60, ge=1, description="Most papers one email lists; the rest stay in the reader's web "
                            "copy and are not recorded as sent.")
    max_per_topic: int = Field(12, ge=1, description="Most papers one topic section lists; the rest stay in the "
                               "reader's web copy and are not recorded as sent.")
    top_papers: int = Field(3, ge=0, description="Papers in the 'Top papers' highlight that opens each digest.")
    for_you: int = Field(5, ge=0, le=20, description="Papers in the 'For you' block that opens the digest of a reader "
                         "with at least 3 signals (more/fewer like this, seeds), ranked by their own model; 0: no block.")
    subject: str = Field(
        "{top_title} · {count} new in {topics} topics, {date}",
        description="Subject line template; fields: {top_title} (the first top paper), {count} (papers the email "
        "lists), {topics}, {more} (papers only in the web copy), {date}, {cadence}, {period}.",
    )


class Tracking(_Section):
    clicks: bool = Field(False, description="Card title links go through /r/TOKEN, which records the click as a weak "
                         "positive signal for that reader and redirects to the paper's own stored link.")


class Delivery(_Section):
    retry_window_hours: float = Field(
        48.0, gt=0, description="Temporary failures (4xx, dropped connection, timeout) are retried for this many hours "
        "after the digest was queued; then the delivery is marked failed with the last error.")
    backoff_base_seconds: float = Field(
        300.0, gt=0, description="Wait before the first retry; doubled after each further temporary failure (at most 6 hours).")
    lease_seconds: float = Field(
        300.0, ge=10, description="How long a sender's claim on a batch of deliveries lasts; a crashed sender's claims "
        "are taken over after this (at once on SQLite, or when its PostgreSQL session is gone).")
    bounce_limit: int = Field(
        3, ge=1, description="Permanent failures (5xx to RCPT TO in a row, or hard bounces reported later by mail "
        "or webhook, once per delivery) after which an address is marked bounced and no longer sent to.")
    batch_size: int = Field(200, ge=1, le=10000, description="Deliveries a sender claims at a time.")


class Web(_Section):
    production: bool = Field(
        False, description="Production mode: the web app refuses to start without signing_key from the environment "
        "and marks its cookies Secure. Also on when NEWSLETTER_ENV=production or site_url is https.")
    form_version: str = Field(
        "2026-11-v1", min_length=1, max_length=40, description="Version of the subscribe form's wording, stored "
        "with each consent record; change it whenever the form's text changes.")
    confirmation_window_minutes: float = Field(
        15.0, gt=0, description="At most one confirmation email per address in this many minutes, however often "
        "the form is sent (persistent, in the database).")
    rate_window_minutes: float = Field(
        60.0, gt=0, description="The period of the subscribe rate limits below (kept in the database, shared by every worker).")
    subscribe_per_ip: int = Field(
        20, ge=1, description="Subscribe requests one IP address may make per rate window (a token bucket).")
    subscribe_per_address: int = Field(
        3, ge=1, description="Subscribe requests for one email address per rate window, from any IP.")
    max_body_bytes: int = Field(
        65536, ge=1024, le=100_000_000, description="Largest request body accepted (forms, the API, webhooks); "
        "a larger one is refused with 413 before it is read.")
    trusted_hosts: tuple[str, ...] = Field(
        (), description="Host names the pages answer to besides site_url's host and the loopback names; any other "
        "Host header gets 400. '*' allows any.")
    page_cache_mb: float = Field(
        64.0, ge=0, le=100_000, description="Memory each server process keeps for rendered public pages (edition "
        "pages, the archive, the feeds; plain and gzipped); 0 renders every request.")
    cache_max_age: int = Field(
        300, ge=0, le=31_536_000, description="Seconds browsers and shared caches may keep a public page (edition, "
        "archive, feeds) before asking again; they revalidate with its ETag.")


class Inbound(_Section):
    """The mailbox that receives bounces, complaints and mail to the unsubscribe address (read by
    ``newsletter inbound`` and the ``inbound`` job)."""

    protocol: Literal["imap", "pop3"] = Field("imap", description="How the mailbox is read: imap or pop3.")
    host: str | None = Field(None, description="Mailbox server host name; empty: inbound mail is not read.")
    port: int | None = Field(None, ge=1, le=65535, description="Server port; default 993 (IMAP over TLS), 143 "
                             "(IMAP, STARTTLS), 995 (POP3 over TLS) or 110 (POP3, STARTTLS).")
    security: Literal["tls", "starttls", "none"] = Field("tls", description="Transport security: tls, starttls or "
                                                         "none (none only for a server on this machine).")
    username: str | None = Field(None, description="Mailbox login name.")
    password: str | None = Field(None, description="Mailbox password; must be an environment reference like "
                                 "${INBOUND_PASSWORD}.")
    mailbox: str = Field("INBOX", min_length=1, description="IMAP folder to read.")
    processed_folder: str | None = Field(None, description="IMAP folder that processed mail is moved to; empty: "
                                         "it stays, flagged $NewsletterDone and seen. POP3 deletes it.")
    ca_file: str | None = Field(None, description="CA certificates (PEM) to trust for the mailbox server instead of "
                                "the system's; relative to config.yaml.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the mailbox server.")
    max_messages: int = Field(5000, ge=1, description="Most messages read in one pass; the rest wait for the next.")
    verp: bool = Field(True, description="Send each digest with a VERP return path (sender+b-ID-TAG@domain), so a "
                       "bounce names its delivery; the mailbox must receive sender+anything@domain.")

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        if self.protocol == "imap":
            return 993 if self.security == "tls" else 143
        return 995 if self.security == "tls" else 110


class Webhooks(_Section):
    """Bounce and complaint webhooks of sending services (``POST /webhooks/{ses,postmark,sendgrid,mailgun}``).
    An endpoint whose setting is empty answers 404."""

    ses_topic_arns: tuple[str, ...] = Field((), description="SNS topic ARNs accepted at /webhooks/ses; empty: the "
                                            "endpoint is off.")
    sns_cert_url: str = Field(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^?#]*\.pem$",
                              description="Regular expression a SigningCertURL must match (the certificate's host).")
    postmark_username: str | None = Field(None, description="Basic-auth user Postmark sends to /webhooks/postmark.")
    postmark_password: str | None = Field(None, description="Its password; must be an environment reference like "
                                          "${POSTMARK_WEBHOOK_PASSWORD}.")
    sendgrid_public_key: str | None = Field(None, description="SendGrid's Event Webhook verification key (base64, "
                                            "from its settings page).")
    mailgun_signing_key: str | None = Field(None, description="Mailgun's webhook signing key; must be an environment "
                                            "reference like ${MAILGUN_SIGNING_KEY}.")
    max_age_seconds: int = Field(900, ge=30, description="Signed webhooks (SendGrid, Mailgun, SNS) older than this "
                                 "are refused, so a captured request cannot be replayed later.")


class Dkim(_Section):
    """DKIM signing of every digest (``newsletter/render/dkim.py``); off while ``domain`` is empty."""

    domain: str | None = Field(None, description="Signing domain (d=), normally the sender's domain; empty: "
                               "messages are not signed.")
    selector: str | None = Field(None, description="Selector (s=): the public key is the TXT record "
                                 "<selector>._domainkey.<domain>.")
    private_key: str | None = Field(None, description="The RSA private key (PEM); must be an environment "
                                    "reference like ${DKIM_PRIVATE_KEY}.")
    private_key_file: str | None = Field(None, description="Or a file holding the PEM key; relative to "
                                         "config.yaml.")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip().rstrip(".").lower()
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{value!r} is not a domain name") from None
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+", value):
            raise ValueError(f"{value!r} is not a domain name like example.org")
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
                                      r"[A-Za-z0-9])?)*", value):
            raise ValueError(f"{value!r} is not a selector (letters, digits, '-' and '.')")
        return value or None

    @model_validator(mode="after")
    def _complete(self) -> "Dkim":
        if self.domain:
            if not self.selector:
                raise ValueError("dkim.selector is not set; signing with dkim.domain needs the selector the "
                                 "public key is published under")
            if not self.private_key and not self.private_key_file:
                raise ValueError("dkim.private_key (an environment reference like ${DKIM_PRIVATE_KEY}) or "
                                 "dkim.private_key_file is needed to sign with dkim.domain")
            if self.private_key and self.private_key_file:
                raise ValueError("dkim.private_key and dkim.private_key_file are both set; keep one")
        return self


class Log(_Section):
    format: Literal["text", "json"] = Field("text", description="Log lines as text, or as one JSON object per "
                                             "line (with edition, delivery and source where they apply).")
    level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="Least severe level logged (-v makes it info, -vv debug).")


class Metrics(_Section):
    token: str | None = Field(None, description="Bearer token /metrics requires; must be an environment reference "
                              "like ${METRICS_TOKEN}. Empty: /metrics answers loopback clients only.")
class Admin(_Section):
    """The operator's API (``/api/admin/...``, a bearer token) and pages (``/admin``, a password). Each is off,
    answering 404, until its secret is set."""

    api_token: str | None = Field(None, description="Bearer token of the operator API (/api/admin/...); must be an "
                                  "environment reference like ${NEWSLETTER_ADMIN_TOKEN}; empty: the API is off (404).")
    password_hash: str | None = Field(None, description="argon2 hash of the /admin pages' password (make one with "
                                      "`newsletter admin hash-password`); must be an environment reference like "
                                      "${NEWSLETTER_ADMIN_PASSWORD_HASH}; empty: the pages are off (404).")
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="How long an operator stays logged in to "
                                 "/admin without logging in again.")
    login_attempts: int = Field(5, ge=1, description="Login attempts one IP address may make per "
                                "admin.login_window_minutes (a token bucket kept in the database).")
    login_window_minutes: float = Field(15.0, gt=0, description="The period of admin.login_attempts.")

    @field_validator("api_token")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("the operator token is too short; use at least 16 characters (`openssl rand -hex 32`)")
        return value

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("$argon2"):
            raise ValueError("must be an argon2 hash ($argon2id$...); make one with `newsletter admin hash-password`")
        return value


class Settings(_Section):
    database_url: str = Field("sqlite:///newsletter.db", description="SQLAlchemy URL; a relative SQLite path is next to config.yaml.")
    site_url: str = Field("http://127.0.0.1:8000", description="Public base URL of the web pages (links in every email).")
    postal_address: str = Field("", description="Sender's postal address, printed in every digest footer (required by law in many places).")
    list_name: str = Field("Trending Papers", description="Newsletter name, used in List-Id and page titles.")
    sender: Sender = Field(default_factory=Sender, description="Who the digest is from.")
    messenger: Literal["outbox", "smtp", "console"] = Field("outbox", description="Transport: smtp, outbox (.eml files) or console.")
    outbox_dir: str = Field("outbox", description="Folder for the outbox messenger and previews; relative to config.yaml.")
    templates_dir: str | None = Field(
        None, description="Folder of your own email templates; a file there replaces the shipped one of the same name "
        "(templates/email/). Relative to config.yaml.",
    )
    smtp: Smtp = Field(default_factory=Smtp, description="SMTP transport settings.")
    signing_key: str | None = Field(None, description="Key for signed links; must be an environment reference like ${NEWSLETTER_SIGNING_KEY}.")
    test_recipients: tuple[str, ...] = Field((), description="Addresses `newsletter send --to` may send a test "
                                             "issue to; empty: any address.")
    sample_fallback: bool = Field(True, description="When every source fails (no network), fetch the bundled sample pages instead.")
    sources: tuple[SourceSpec, ...] = Field(
        (SourceSpec(type="huggingface"),), description="Where trending papers come from, tried in order."
    )
    topics: tuple[Topic, ...] = Field(
        default_factory=lambda: default_topics(),
        description="Topic sections of the digest; without this key, the built-in set (newsletter/default_topics.yaml, "
        "the same as the shipped config.yaml's).")
    windows: Windows = Field(default_factory=Windows, description="How long a trending paper stays eligible.")
    schedule: Schedule = Field(default_factory=Schedule, description="When digests go out.")
    digest: Digest = Field(default_factory=Digest, description="Shape of each digest.")
    tracking: Tracking = Field(default_factory=Tracking, description="Optional click tracking of card links.")
    web: Web = Field(default_factory=Web, description="The subscribe, preferences and archive pages (`newsletter serve`).")
    delivery: Delivery = Field(default_factory=Delivery, description="Retries, leases and bounces of the send loop.")
    inbound: Inbound = Field(default_factory=Inbound, description="The bounce and unsubscribe mailbox.")
    webhooks: Webhooks = Field(default_factory=Webhooks, description="Bounce and complaint webhooks.")
    dkim: Dkim = Field(default_factory=Dkim, description="DKIM signing of the digests.")
    log: Log = Field(default_factory=Log, description="Log output.")
    metrics: Metrics = Field(default_factory=Metrics, description="The /metrics endpoint.")
    admin: Admin = Field(default_factory=Admin, description="The operator API and the /admin pages.")

    # Where the file was loaded from; relative paths are resolved against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True, description="(internal) folder of config.yaml.")
    # Settings written as a lone ${VAR} whose variable was unset (dotted key -> variable), so a check can say
    # which variable to export when the setting turns out to be needed.
    unset_references: dict[str, str] = Field(
        default_factory=dict, exclude=True, description="(internal) settings whose ${VAR} was not set.")

    @field_validator("site_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL like https://papers.example.org")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _unique(self) -> "Settings":
        if not self.topics:
            raise ValueError("topics: the list is empty; list at least one topic, or remove the `topics:` key "
                             "to get the built-in ones")
        slugs = [t.slug for t in self.topics]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"topics: slug {dupes[0]!r} appears more than once; each topic needs its own slug")
        labels = [s.label for s in self.sources]
        dupes = sorted({s for s in labels if labels.count(s) > 1})
        if dupes:
            raise ValueError(f"sources: two sources are named {dupes[0]!r}; give each a distinct 'name'")
        return self

    # --- derived values -----------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return resolve_sqlite_path(self.database_url, self.base_dir)

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def window_days(self, cadence: str) -> int:
        return int(getattr(self.windows, cadence))

    def topic_slugs(self) -> list[str]:
        return [t.slug for t in self.topics]


def resolve_sqlite_path(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file path absolute against the config's folder (other URLs pass through)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rest = url[len(prefix):]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:":
            return f"{prefix}{(base_dir / path).resolve()}{sep}{query}"
    return url


# --- loading ------------------------------------------------------------------------------------------


def config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """The config file to use: ``--config``, else ``$NEWSLETTER_CONFIG``, else ``./config.yaml``."""
    return Path(explicit or environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, substitute ``${VAR}`` references, validate. Raises ConfigError naming the bad key.

    Example: ``settings = load("config.yaml", {"SMTP_PASSWORD": "s3cret"})``
    """
    environ = os.environ if environ is None else environ
    file = config_path(path, environ)
    if not file.is_file():
        raise ConfigError(
            f"No config file at {file}.",
            hint="pass --config PATH, set NEWSLETTER_CONFIG, or run from the folder holding config.yaml",
        )
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {file}: {exc.strerror}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of settings (key: value), not {type(raw).__name__}")
    return from_mapping(raw, environ, base_dir=file.resolve().parent, origin=str(file))


def from_mapping(
    raw: Mapping[str, Any], environ: Mapping[str, str], base_dir: Path | None = None, origin: str = "config"
) -> Settings:
    """Validate an already-parsed mapping (what ``load`` does after reading YAML)."""
    _refuse_literal_secrets(raw, origin)
    unset: dict[str, str] = {}
    data = _substitute(dict(raw), environ, origin, (), unset)
    if environ.get(ENV_DATABASE_URL):
        data["database_url"] = environ[ENV_DATABASE_URL]
    data["base_dir"] = base_dir or Path.cwd()
    data["unset_references"] = unset
    if data.get("topics") is None:  # no key, or a `topics:` with every entry commented out: the built-in set
        data.pop("topics", None)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: " + _describe(exc, unset)) from None
    from .sources import validate_source_specs  # the registry knows each source's options

    validate_source_specs(settings.sources, origin)
    return settings


def _refuse_literal_secrets(raw: Mapping[str, Any], origin: str) -> None:
    for dotted in SECRET_KEYS:
        node: Any = raw
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, "") and not (isinstance(node, str) and _ENV_REF.fullmatch(node.strip())):
            var = _SECRET_VARS[dotted]
            raise ConfigError(
                f"{origin}: {dotted} holds a literal secret; secrets are never stored in the config file.",
                hint=f"write `{dotted.split('.')[-1]}: ${{{var}}}` and export {var} in the environment",
            )


def _substitute(node: Any, environ: Mapping[str, str], origin: str, path: tuple[str | int, ...],
                unset: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, environ, origin, path + (str(k),), unset) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, environ, origin, path + (i,), unset) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        whole = _ENV_REF.fullmatch(node.strip())
        if whole:  # a value that is only a reference: unset means "not configured" (checked where it is needed)
            value = environ.get(whole.group(1)) or None
            if value is None:
                unset[_dotted(path)] = whole.group(1)
            return value
        missing = [m.group(1) for m in _ENV_REF.finditer(node) if m.group(1) not in environ]
        if missing:
            raise ConfigError(
                f"{origin}: {_dotted(path)} refers to ${{{missing[0]}}}, which is not set in the environment.",
                hint=f"export {missing[0]}=... before running",
            )
        return _ENV_REF.sub(lambda m: environ[m.group(1)], node)
    return node


def _describe(exc: ValidationError, unset: Mapping[str, str] | None = None) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = _dotted(err["loc"])
        msg = err["msg"]
        if unset and loc in unset:  # a required setting written as ${VAR}, with VAR unset
            lines.append(f"{loc} refers to ${{{unset[loc]}}}, which is not set in the environment; "
                         f"export {unset[loc]}=...")
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown setting; check the spelling (`newsletter config settings` lists every setting)"
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be")
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more")
    return "\n  ".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def needed_but_unset(settings: Settings, *, production: bool) -> list[str]:
    """Settings that are empty although what is configured needs them, each as a message naming the key and
    the variable to export. A lone ``${VAR}`` with VAR unset loads as "not configured", which is right until
    the setting is needed: the SMTP password of a login (``messenger: smtp`` with ``smtp.username``), and
    ``signing_key`` in production (the web app refuses to start without it)."""
    problems: list[str] = []

    def missing(key: str, var: str, why: str) -> None:
        if key in settings.unset_references:
            ref = settings.unset_references[key]
            problems.append(f"{key} refers to ${{{ref}}}, which is not set in the environment; {why}. "
                            f"Export {ref}=... before running.")
        else:
            problems.append(f"{key} is not set; {why}. Write `{key.split('.')[-1]}: ${{{var}}}` in the "
                            f"config and export {var}=...")

    if settings.messenger == "smtp" and settings.smtp.username and not settings.smtp.password:
        missing("smtp.password", "SMTP_PASSWORD",
                f"messenger: smtp logs in as {settings.smtp.username!r} and needs the password")
    if production and not settings.signing_key:
        missing("signing_key", "NEWSLETTER_SIGNING_KEY", "production mode needs it to sign links "
                "(make one with `openssl rand -hex 32`)")
    return problems


def documented_settings() -> list[tuple[str, Any, str]]:
    """Every setting as (dotted name, default, help): the single declaration docs and tests read."""
    rows: list[tuple[str, Any, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            if info.exclude:
                continue
            dotted = f"{prefix}{name}"
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, _Section) and ann is not Topic:
                walk(ann, dotted + ".")
                continue
            default = info.get_default(call_default_factory=True) if not info.is_required() else None
            if isinstance(default, tuple) and any(isinstance(d, BaseModel) for d in default):
                default = [d.model_dump(mode="json", exclude_defaults=True) if isinstance(d, BaseModel) else d
                           for d in default]  # plain data, so `config settings --json` can print it
            rows.append((dotted, default, info.description or ""))

    walk(Settings, "")
    return rows


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with secrets replaced by '***' (or null when unset)."""
    data = settings.model_dump(mode="json")
    data["database_url"] = _mask_url(settings.resolved_database_url)
    for dotted in SECRET_KEYS:
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            node = node[part]
        if node.get(parts[-1]):
            node[parts[-1]] = "***"
    return data


def _mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
