"""The reader actions: subscribe (double opt-in), confirm, change preferences, unsubscribe, resubscribe.

The web pages, the JSON API (and a CLI, if one wants) are thin shells over ``Subscriptions``. Every link a
reader follows carries a signed token from ``newsletter.tokens`` with its own purpose; whatever is wrong with
a token (forged, expired, for another purpose, for a reader who no longer exists) raises the one
``InvalidLink`` error, so a page can give one answer for all of them.

Subscribing never reveals whether an address is known: a new address becomes a *pending* reader, an existing
reader is left untouched, and in both cases a confirmation email goes out, at most one per address per
``web.confirmation_window_minutes``. The reader's choices wait in the consent record and take effect only
when the link in that email is followed.

Example::

    subs = Subscriptions(settings, store)
    subs.subscribe("ada@example.org", subs.choices("weekly", ["quantization"], "survey"), RequestMeta("203.0.113.9"))
    reader = subs.confirm(token_from_the_email, RequestMeta("203.0.113.9"))
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import jinja2
from email_validator import EmailNotValidError, validate_email

from .config import Settings
from .errors import ConfigError, NewsletterError
from .models import CADENCES, SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED, Subscriber
from .readers import InvalidReader, normalize_email, split_list
from .store import Store
from .store import subscriptions as queries
from .store.subscriptions import Choices, RequestMeta
from .tokens import DAY, MAX_AGE_SECONDS, InvalidToken, Signer, TokenClaims, signing_key

if TYPE_CHECKING:
    from .deliver import OutgoingMessage

log = logging.getLogger(__name__)

ENV_MODE = "NEWSLETTER_ENV"
MAX_KEYWORDS = 20
MAX_KEYWORD_CHARS = 60
CONFIRM_TEMPLATES = ("confirm.txt", "confirm.html")

__all__ = ["Choices", "InvalidLink", "RequestMeta", "SendFailed", "Subscriptions", "is_production"]


class InvalidLink(NewsletterError):
    """The one answer to every bad link: malformed, forged, expired, for another purpose, or for nobody."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__("This link is invalid or has expired.",
                         hint="use the link in your most recent email, or subscribe again")


class SendFailed(NewsletterError):
    """The confirmation email could not be handed to the mail transport; nothing was recorded."""


@dataclass(frozen=True)
class SubscribeOutcome:
    """For logs and tests only: a page shows the same answer whatever happened."""

    emailed: bool  # a confirmation email went out now
    subscriber_id: int | None


def is_production(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """Production mode: ``web.production``, ``NEWSLETTER_ENV=production``, or a site served over https."""
    environ = os.environ if environ is None else environ
    return (settings.web.production or environ.get(ENV_MODE, "").strip().lower() == "production"
            or settings.site_url.startswith("https://"))


def resolve_signing_key(settings: Settings, store: Store, *, production: bool) -> bytes:
    """The key of every link's signature. In production the key must come from the environment (signing_key:
    ${NEWSLETTER_SIGNING_KEY}); locally a key generated once and kept in the database will do."""
    if production and not settings.signing_key:
        raise ConfigError("Production mode needs a signing key from the environment, and none is set.",
                          hint="set `signing_key: ${NEWSLETTER_SIGNING_KEY}` in config.yaml and export "
                          "NEWSLETTER_SIGNING_KEY=$(openssl rand -hex 32)")
    return signing_key(settings.signing_key, store.get_state, store.add_state)


def shipped_email_templates() -> Path:
    packaged = Path(__file__).resolve().parent / "templates" / "email"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates" / "email"


class Subscriptions:
    def __init__(self, settings: Settings, store: Store, *,
                 messenger_factory: Callable[[], object] | None = None,
                 clock: Callable[[], datetime] | None = None, production: bool | None = None) -> None:
        self.settings = settings
        self.store = store
        self.production = is_production(settings) if production is None else production
        self.key = resolve_signing_key(settings, store, production=self.production)  # also keys the CSRF tokens
        self.signer = Signer(self.key)
        self._messenger_factory = messenger_factory
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        search = [settings.path(settings.templates_dir)] if settings.templates_dir else []
        self._mail_templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in search] + [str(shipped_email_templates())]),
            autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

    # --- input -------------------------------------------------------------------------------------------

    @staticmethod
    def normalize(address: str) -> str:
        """A deliverable-looking mailbox address, lower-cased; raises InvalidReader otherwise (no DNS lookup)."""
        value = (address or "").strip()
        if len(value) > 254:
            raise InvalidReader("That email address is too long.")
        try:
            checked = validate_email(value, check_deliverability=False, allow_smtputf8=False).normalized
        except EmailNotValidError as exc:
            raise InvalidReader(f"That is not a valid email address: {exc}", hint="use the form name@example.org") from None
        return normalize_email(checked)

    def choices(self, cadence: str | None, topics: Sequence[str] | None,
                excluded_keywords: str | Sequence[str] | None) -> Choices:
        """Validated choices. Every topic chosen (or none listed) means every topic, including future ones."""
        cadence = cadence or "daily"
        if cadence not in CADENCES:
            raise InvalidReader(f"Cadence must be daily or weekly, not {cadence!r}.")
        known = self.settings.topic_slugs()
        picked = list(dict.fromkeys(t for t in (topics or ()) if t))
        unknown = [t for t in picked if t not in known]
        if unknown:
            raise InvalidReader(f"Unknown topic {unknown[0][:64]!r}.", hint="topics: " + ", ".join(known))
        if topics is not None and not picked:
            raise InvalidReader("Choose at least one topic.")
        picked = sorted(picked, key=known.index)  # stored in the digest's section order
        chosen: tuple[str, ...] | None = tuple(picked) if picked and set(picked) != set(known) else None
        words = split_list(excluded_keywords)
        if len(words) > MAX_KEYWORDS:
            raise InvalidReader(f"At most {MAX_KEYWORDS} excluded keywords, please.")
        if any(len(w) > MAX_KEYWORD_CHARS for w in words):
            raise InvalidReader(f"An excluded keyword may have at most {MAX_KEYWORD_CHARS} characters.")
        return Choices(cadence, chosen, tuple(dict.fromkeys(" ".join(w.split()) for w in words)))

    # --- actions -------------------------------------------------------------------------------------------

    def subscribe(self, address: str, choices: Choices, meta: RequestMeta) -> SubscribeOutcome:
        """Record the request and send a confirmation email unless one went to this address within the window.

        The caller answers the same whatever this returns. Raises InvalidReader for a malformed address and
        SendFailed when the mail transport refused (the request is then forgotten, so a retry may send)."""
        email = self.normalize(address)
        now = self.clock()
        window = timedelta(minutes=self.settings.web.confirmation_window_minutes)
        request = queries.request_subscription(self.store, email, choices, meta,
                                               form_version=self.settings.web.form_version, window=window, now=now)
        if request.consent_id is None:
            log.info("subscribe: confirmation to subscriber %s already sent within %s; not sent again",
                     request.subscriber.id, window)
            return SubscribeOutcome(False, request.subscriber.id)
        token = self.signer.sign("confirm", request.subscriber.id, int(request.requested_at.timestamp()))
        try:
            # Only the mailbox's owner reads the email, so it may say they are subscribed already.
            active = request.subscriber.status == SUBSCRIBER_ACTIVE
            self._send(self.confirmation_message(email, f"{self.settings.site_url}/confirm?token={token}", now,
                                                 already_subscribed=active))
        except Exception as exc:
            queries.release_confirmation(self.store, request)
            log.error("subscribe: the confirmation email to subscriber %s was not sent: %s", request.subscriber.id, exc)
            raise SendFailed("The confirmation email could not be sent just now.",
                             hint="please try again in a few minutes") from exc
        return SubscribeOutcome(True, request.subscriber.id)

    def confirm(self, token: str, meta: RequestMeta) -> Subscriber:
        claims = self._claims(token, ("confirm",))
        reader = queries.confirm_subscription(self.store, claims.subscriber_id, claims.issued_at, meta, now=self.clock())
        if reader is None:
            raise InvalidLink()
        return reader

    def confirmation(self, token: str) -> tuple[Subscriber, bool]:
        """Who a confirm token is for, and whether its request was confirmed already (the link used before);
        changes nothing. A used link of a reader who has unsubscribed since must not say they are subscribed."""
        claims = self._claims(token, ("confirm",))
        reader = queries.subscriber_by_id(self.store, claims.subscriber_id)
        if reader is None:
            raise InvalidLink()
        return reader, queries.request_confirmed(self.store, claims.subscriber_id, claims.issued_at)

    def reader(self, token: str, purposes: Sequence[str]) -> Subscriber:
        """Who a token belongs to; changes nothing (a GET of any link, including a link scanner's)."""
        claims = self._claims(token, purposes)
        reader = queries.subscriber_by_id(self.store, claims.subscriber_id)
        if reader is None:
            raise InvalidLink()
        return reader

    def update_preferences(self, token: str, choices: Choices) -> Subscriber:
        claims = self._claims(token, ("preferences",))
        reader = queries.update_preferences(self.store, claims.subscriber_id, choices, now=self.clock())
        if reader is None:
            raise InvalidLink()
        return reader

    def unsubscribe(self, token: str, meta: RequestMeta) -> tuple[Subscriber, bool]:
        """Unsubscribe the token's reader at once; (reader, whether this call changed anything)."""
        claims = self._claims(token, ("unsubscribe", "preferences"))
        reader, changed = queries.unsubscribe(self.store, claims.subscriber_id, meta, now=self.clock())
        if reader is None:
            raise InvalidLink()
        return reader, changed

    def resubscribe(self, token: str, meta: RequestMeta) -> Subscriber:
        claims = self._claims(token, ("unsubscribe", "preferences"))
        reader = queries.resubscribe(self.store, claims.subscriber_id, meta,
                                     form_version=self.settings.web.form_version, now=self.clock())
        if reader is None:
            raise InvalidLink()
        return reader

    def fresh_link(self, address: str, meta: RequestMeta) -> bool:
        """For a reader whose link expired or broke: a pending sign-up gets its confirmation email again (at
        most once per confirmation window, as on subscribing), an active or unsubscribed reader an email with
        fresh preferences and unsubscribe links. An unknown or bounced address gets nothing. The caller answers
        the same whatever this returns (whether an email went out). Raises InvalidReader, SendFailed."""
        email = self.normalize(address)
        try:
            reader = self.store.subscriber(email)
        except NewsletterError:  # no such reader
            return False
        if reader.status == SUBSCRIBER_PENDING:
            choices = Choices(reader.cadence, reader.topics, reader.excluded_keywords)
            return self.subscribe(email, choices, meta).emailed
        if reader.status not in (SUBSCRIBER_ACTIVE, SUBSCRIBER_UNSUBSCRIBED):
            return False
        links = {p: f"{self.settings.site_url}/{p}?token={t}" for p, t in self.tokens_for(reader.id).items()}
        context = {"email": email, "subscribed": reader.status == SUBSCRIBER_ACTIVE, "links": links,
                   "valid_days": MAX_AGE_SECONDS["preferences"] // DAY}
        try:
            self._send(self._message(email, f"Your links for {self.settings.list_name}", "fresh_link", context,
                                     self.clock(), kind="links"))
        except NewsletterError:
            raise
        except Exception as exc:
            log.error("fresh link: the email to subscriber %s was not sent: %s", reader.id, exc)
            raise SendFailed("The email could not be sent just now.", hint="please try again in a few minutes") from exc
        log.info("fresh link: preferences and unsubscribe links sent to subscriber %s", reader.id)
        return True

    def tokens_for(self, subscriber_id: int) -> dict[str, str]:
        """Fresh preferences and unsubscribe tokens, for the forms of a page reached with another one."""
        now = int(self.clock().timestamp())
        return {p: self.signer.sign(p, subscriber_id, now) for p in ("preferences", "unsubscribe")}

    def _claims(self, token: str | None, purposes: Sequence[str]) -> TokenClaims:
        now = int(self.clock().timestamp())
        for purpose in purposes:
            try:
                return self.signer.verify(token or "", purpose, now=now)
            except InvalidToken:
                continue
        raise InvalidLink()

    # --- the confirmation email -----------------------------------------------------------------------------

    def confirmation_message(self, email: str, confirm_url: str, now: datetime, *,
                             already_subscribed: bool = False) -> "OutgoingMessage":
        """The confirmation email as an ``OutgoingMessage`` (text, plus HTML when the template exists)."""
        context = {"confirm_url": confirm_url, "email": email, "valid_days": MAX_AGE_SECONDS["confirm"] // DAY,
                   "window_minutes": int(self.settings.web.confirmation_window_minutes),
                   "already_subscribed": already_subscribed}
        return self._message(email, f"Confirm your subscription to {self.settings.list_name}", "confirm", context,
                             now, kind="confirm")

    def _message(self, email: str, subject: str, template: str, values: Mapping[str, object], now: datetime, *,
                 kind: str) -> "OutgoingMessage":
        """A one-off email to ``email`` from ``template``.txt (and .html when it exists)."""
        from .deliver import OutgoingMessage
        from .render.message import POLICY, address, sanitize_header_text

        s = self.settings
        context = {"list_name": s.list_name, "site_url": s.site_url, "postal_address": s.postal_address, **values}
        msg = EmailMessage(policy=POLICY)
        domain = s.sender.email.rpartition("@")[2]
        # The message module's header rules: display names and the subject cleaned of line breaks, control
        # characters and encoded words; addresses plain ASCII; so no value can start a header of its own.
        msg["From"] = address(s.sender.name, s.sender.email)
        msg["To"] = address(None, email)
        if s.sender.reply_to:
            msg["Reply-To"] = address(None, s.sender.reply_to)
        msg["Subject"] = sanitize_header_text(subject)
        msg["Date"] = format_datetime(now)
        message_id = make_msgid(kind, domain=domain or "newsletter.invalid")
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        try:
            msg.set_content(self._mail_templates.get_template(f"{template}.txt").render(context))
            try:
                html = self._mail_templates.get_template(f"{template}.html").render(context)
            except jinja2.TemplateNotFound:
                html = None
            if html:
                msg.add_alternative(html, subtype="html")
        except jinja2.TemplateError as exc:
            raise NewsletterError(f"The {template} email template is broken: {exc}",
                                  hint=f"check {template}.txt / {template}.html in templates_dir") from None
        return OutgoingMessage(envelope_from=s.sender.email, recipient=email, message_id=message_id,
                               data=msg.as_bytes())

    def _send(self, message: "OutgoingMessage") -> None:
        from .deliver import build_messenger

        messenger = self._messenger_factory() if self._messenger_factory else build_messenger(self.settings)
        try:
            messenger.send(message)  # type: ignore[attr-defined]  # a Messenger (or a test's stand-in)
        finally:
            messenger.close()  # type: ignore[attr-defined]

