"""Classify one inbound message: a bounce (hard or soft), a delay warning, an auto-reply, a complaint, an
unsubscribe request, or nothing we recognise. Pure: bytes in, an ``InboundEvent`` out; no I/O.

What is read, most reliable first:

- RFC 3464 delivery status notifications (``multipart/report; report-type=delivery-status``): the
  per-recipient ``Action``, ``Status``, ``Final-Recipient`` and ``Diagnostic-Code``. ``Action: delayed`` (or
  relayed, delivered, expanded) is never a bounce.
- RFC 5965 ARF complaints (``report-type=feedback-report``): ``Feedback-Type``, ``Original-Rcpt-To`` or
  ``Removal-Recipient``, and the reported message's headers (its Message-ID and the VERP return path).
  ``auth-failure`` (a DMARC forensic report) is about the sender's domain, not a reader's complaint.
- Non-standard reports: Hotmail JMRP (``X-HmXmrOriginalRecipient``), Apple Mail's one-click unsubscribe
  mail (``X-Apple-Unsubscribe``), SES notifications mailed as SNS JSON, and the plain-text bounces of qmail,
  Exim, Exchange, Gmail and Yahoo, recognised by their sender (MAILER-DAEMON, postmaster) or subject and
  read for the SMTP reply they quote.
- Auto-replies (RFC 3834 ``Auto-Submitted: auto-replied``, ``X-Autoreply``, Precedence bulk/junk with an
  out-of-office subject) are recorded and never counted as bounces.

Hard or soft: a 5.x.x status is hard, except 5.2.2 (mailbox full) and replies that say the mailbox is over
quota, which are soft as in most bounce processors; 4.x.x with ``Action: failed`` is soft.

Which delivery a report is about comes from, in order: our VERP return path (``papers+b-ID-TAG@…``, see
``verp.py``) wherever the report quotes it, the original Message-ID, then the failed recipient's address.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses, parseaddr

from .mime import (
    attached_headers,
    body_text,
    clip,
    decoded,
    field_address,
    fields_of,
    header,
    recipient_headers,
    report_part,
    reported_to,
)

HARD, SOFT, DELAY, AUTOREPLY, COMPLAINT, UNSUBSCRIBE, REPORT, UNKNOWN = (
    "hard", "soft", "delay", "autoreply", "complaint", "unsubscribe", "report", "unknown")
KINDS = (HARD, SOFT, DELAY, AUTOREPLY, COMPLAINT, UNSUBSCRIBE, REPORT, UNKNOWN)
BOUNCES = (HARD, SOFT)

VERP_RE = re.compile(r"\+b-(\d{1,18})-([0-9a-f]{16})@", re.IGNORECASE)
_UNSUB_LOCAL = re.compile(r"^[^@]*\+unsubscribe(?:-([A-Za-z0-9_-]{20,200}))?@", re.IGNORECASE)
_TOKEN_IN_SUBJECT = re.compile(r"unsubscribe\s+([A-Za-z0-9_-]{20,200})", re.IGNORECASE)
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")
_SMTP_REPLY = re.compile(r"(?<![\w.#-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)

_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|mdaemon|bounce[s]?|"
                     r"mail delivery (sub)?system|microsoftexchange[0-9a-f]*)\b", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|undelivered|delivery status notification|delivery (has )?failed|failure notice|"
    r"returned mail|mail delivery failed|delivery failure|non[- ]?delivery|could not be delivered|"
    r"mail system error|delivery notification|warning: could not send|delivery delayed|"
    r"delayed mail|message delayed|delivery incomplete|nondeliverable|notification d'[ée]tat)", re.IGNORECASE)
_DELAY_TEXT = re.compile(
    r"(this is a warning message only|will (be )?retr(y|ied)|still being retried|will keep trying|"
    r"delivery incomplete|has been delayed|message (has been )?delayed|delayed \d+ (hours|minutes|days)|"
    r"could not send message for past|not yet been delivered|delivery to the following recipients? "
    r"(has been )?delayed|will continue to try|temporarily deferred and will)", re.IGNORECASE)
_GIVEN_UP = re.compile(r"(given up|giving up|permanent(ly)? (error|fail)|failed permanently|"
                       r"could not be delivered to one or more|delivery has failed|undeliverable)",
                       re.IGNORECASE)
_MAILBOX_FULL = re.compile(r"(mailbox (is )?full|over ?quota|quota exceeded|exceeded (the |their )?"
                           r"(storage|quota)|insufficient (system )?storage|mailbox size limit|"
                           r"out of storage|user is over|mailbox has exceeded|full mailbox|disk quota)",
                           re.IGNORECASE)
_AUTO_SUBJECT = re.compile(r"^(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
                           r"away|vacation|abwesenheit|réponse automatique|\[automatyczna|"
                           r"thank you for (your|contacting)|autoreply|autoresponse)"
                           r"|\(automatic response\)|out of (the )?office", re.IGNORECASE)


@dataclass(frozen=True)
class InboundEvent:
    """What one inbound message says. ``reason`` is the raw text it gave (diagnostic, feedback type...)."""

    kind: str
    recipient: str | None = None  # the reader the report is about (lower-cased), when it names one
    status: str | None = None  # enhanced status code, e.g. 5.1.1
    reason: str = ""
    original_message_id: str | None = None  # Message-ID of the message we sent, when quoted
    verp: tuple[tuple[int, str], ...] = ()  # (delivery id, tag) pairs found in the message
    token: str | None = None  # the signed unsubscribe token of a mailto unsubscribe
    feedback_type: str | None = None
    message_id: str | None = None  # the inbound message's own Message-ID
    subject: str = ""
    sender: str | None = None  # From address of the inbound message
    details: dict[str, str] = field(default_factory=dict)

    @property
    def is_bounce(self) -> bool:
        return self.kind in BOUNCES


def parse_message(raw: bytes) -> Message:
    # compat32 is several times faster than the default policy and needs no header objects here.
    return email.message_from_bytes(raw, policy=email_policy.compat32)


def classify(raw: bytes | Message) -> InboundEvent:
    """Example: ``classify(Path("bounce.eml").read_bytes()).kind  # 'hard'``"""
    msg = parse_message(raw) if isinstance(raw, (bytes, bytearray)) else raw
    base = _Basics(msg)
    for reader in (_dsn, _arf, _sns_json, _jmrp, _apple_unsubscribe, _unsubscribe_request, _plain_bounce,
                   _autoreply):
        event = reader(msg, base)
        if event is not None:
            return event
    return base.event(UNKNOWN, reason=clip(base.subject))


# --- the common parts ------------------------------------------------------------------------------------


class _Basics:
    """Header values and decoded text every reader looks at, computed once."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        self.subject = header(msg, "Subject")
        self.sender = parseaddr(header(msg, "From"))[1].lower() or None
        self.message_id = header(msg, "Message-ID").strip() or None
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = body_text(self.msg)
        return self._text

    def verp(self, *extra: str) -> tuple[tuple[int, str], ...]:
        found: list[tuple[int, str]] = []
        for source in (*extra, *recipient_headers(self.msg), self.text, *attached_headers(self.msg)):
            for m in VERP_RE.finditer(source or ""):
                pair = (int(m.group(1)), m.group(2).lower())
                if pair not in found:
                    found.append(pair)
        return tuple(found)

    def original_message_id(self) -> str | None:
        for part in self.msg.walk():
            if part.get_content_type() in ("message/rfc822", "message/global", "text/rfc822-headers",
                                           "text/rfc822-header"):
                inner = part.get_payload()
                if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                    mid = header(inner[0], "Message-ID").strip()
                    if mid:
                        return mid
                elif isinstance(inner, str):
                    m = _MESSAGE_ID.search(decoded(part))
                    if m:
                        return m.group(1)
        # Plain-text bounces quote the original below a marker line: the first Message-ID in the body is the
        # original's (the bounce's own Message-ID is a header, not in the body).
        ids = _MESSAGE_ID.findall(self.text)
        return ids[0] if ids else None

    def event(self, kind: str, **values: object) -> InboundEvent:
        values.setdefault("verp", self.verp())
        values.setdefault("original_message_id", self.original_message_id())
        values.setdefault("message_id", self.message_id)
        values.setdefault("subject", self.subject[:300])
        values.setdefault("sender", self.sender)
        return InboundEvent(kind=kind, **values)  # type: ignore[arg-type]


def _status_of(text: str) -> str | None:
    m = _ENHANCED.search(text)
    return ".".join(m.groups()) if m else None


def _severity(status: str | None, diagnostic: str) -> str:
    """hard or soft, from an enhanced status (or a bare SMTP code) and the diagnostic text."""
    if _MAILBOX_FULL.search(diagnostic):
        return SOFT
    if status:
        if status.startswith("4"):
            return SOFT
        if status.startswith("5"):
            return SOFT if status in ("5.2.2",) else HARD
    code = _SMTP_REPLY.search(diagnostic)
    if code:
        return HARD if code.group(1).startswith("5") else SOFT
    return HARD


# --- the readers, tried in order ------------------------------------------------------------------------


def _dsn(msg: Message, base: _Basics) -> InboundEvent | None:
    part = report_part(msg, "message/delivery-status", "message/global-delivery-status")
    if part is None:
        return None
    groups = [g for g in fields_of(part) if g.get("Action") or g.get("Final-Recipient") or g.get("Status")]
    failed = [g for g in groups if header(g, "Action").lower() == "failed"]
    other = [g for g in groups if header(g, "Action").lower() in ("delayed", "delivered", "relayed", "expanded")]
    if not failed and other:
        g = other[0]
        return base.event(DELAY, recipient=_group_recipient(g), status=header(g, "Status") or None,
                          reason=clip(header(g, "Diagnostic-Code") or f"Action: {header(g, 'Action')}"))
    if not failed:
        failed = [g for g in groups if header(g, "Status")]
    if not failed:
        return None  # a report without usable fields: let the text readers look at it
    g = failed[0]
    status = _status_of(header(g, "Status")) or _status_of(header(g, "Diagnostic-Code"))
    diagnostic = header(g, "Diagnostic-Code")
    if status in (None, "5.0.0", "4.0.0") and not diagnostic:
        diagnostic = base.text[:2000]
    kind = _severity(status, diagnostic or "")
    reason = diagnostic or f"Status: {header(g, 'Status')}"
    return base.event(kind, recipient=_group_recipient(g), status=status, reason=clip(reason),
                      details={"action": header(g, "Action"), "reporting_mta": header(fields_of(part)[0], "Reporting-MTA")})


def _group_recipient(group: Message) -> str | None:
    for name in ("Final-Recipient", "Original-Recipient", "X-Actual-Recipient"):
        addr = field_address(header(group, name))
        if addr:
            return addr
    return None


def _arf(msg: Message, base: _Basics) -> InboundEvent | None:
    part = report_part(msg, "message/feedback-report")
    if part is None:
        return None
    blocks = fields_of(part)
    fields = blocks[0] if blocks else Message()
    feedback = header(fields, "Feedback-Type").lower() or "abuse"
    recipient = (field_address(header(fields, "Original-Rcpt-To")) or
                 field_address(header(fields, "Removal-Recipient")) or reported_to(msg))
    kind = REPORT if feedback == "auth-failure" else COMPLAINT
    reason = f"Feedback-Type: {feedback}"
    agent = header(fields, "User-Agent")
    if agent:
        reason += f"; User-Agent: {agent}"
    return base.event(kind, recipient=recipient, feedback_type=feedback, reason=clip(reason),
                      details={"source_ip": header(fields, "Source-IP")})


def _sns_json(msg: Message, base: _Basics) -> InboundEvent | None:
    """An SES notification delivered by SNS to an email subscription: a JSON body."""
    text = base.text.strip()
    if not text.startswith("{") or "notificationType" not in text:
        return None
    from .providers import loads_json_text, ses_events  # the same reading as the SES webhook

    try:
        data = loads_json_text(text)
    except ValueError:
        return None

    events = ses_events(data)
    if not events:
        return None
    first = events[0]
    return base.event(first.kind, recipient=first.recipient, status=first.status, reason=first.reason,
                      feedback_type=first.feedback_type, original_message_id=first.original_message_id)


def _jmrp(msg: Message, base: _Basics) -> InboundEvent | None:
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original = header(inner[0], "X-HmXmrOriginalRecipient")
                if original:
                    return base.event(COMPLAINT, recipient=original.lower(), feedback_type="abuse",
                                      reason=clip(f"Hotmail JMRP complaint: {base.subject}"))
    return None


def _apple_unsubscribe(msg: Message, base: _Basics) -> InboundEvent | None:
    if header(msg, "X-Apple-Unsubscribe").lower() != "true":
        return None
    to = [a.lower() for _, a in getaddresses([header(msg, "To")]) if a]
    token = _unsubscribe_token(msg, base)
    return base.event(UNSUBSCRIBE, recipient=base.sender, token=token, feedback_type="opt-out",
                      reason=clip(f"Apple Mail unsubscribe to {', '.join(to)}: {base.text.strip()[:200]}"))


def _unsubscribe_token(msg: Message, base: _Basics) -> str | None:
    m = _TOKEN_IN_SUBJECT.search(base.subject)
    if m:
        return m.group(1)
    for value in recipient_headers(msg):
        for _, addr in getaddresses([value]):
            found = _UNSUB_LOCAL.match(addr)
            if found and found.group(1):
                return found.group(1)
    return None


def _unsubscribe_request(msg: Message, base: _Basics) -> InboundEvent | None:
    """A reader's mail to the List-Unsubscribe mailto address (``papers+unsubscribe@…``)."""
    to_us = any(_UNSUB_LOCAL.match(addr) for value in recipient_headers(msg) for _, addr in getaddresses([value]))
    if not to_us:
        return None
    return base.event(UNSUBSCRIBE, recipient=base.sender, token=_unsubscribe_token(msg, base),
                      reason=clip(f"Subject: {base.subject}"))


def _is_daemon(base: _Basics, msg: Message) -> bool:
    display, addr = parseaddr(header(msg, "From"))
    local = addr.split("@")[0] if addr else ""
    if _DAEMON.match(local) or _DAEMON.match(display or ""):
        return True
    return header(msg, "Return-Path") == "<>" and bool(msg.get("X-Failed-Recipients"))


def _plain_bounce(msg: Message, base: _Basics) -> InboundEvent | None:
    """Bounces without a DSN part (qmail, Exim, old Exchange, Gmail and Yahoo text notices), and DSNs whose
    report part says nothing usable (some Exchange Online NDRs)."""
    has_report = report_part(msg, "message/delivery-status") is not None
    if not (has_report or _is_daemon(base, msg) or _BOUNCE_SUBJECT.search(base.subject)
            or msg.get("X-Failed-Recipients")):
        return None
    if _autoreply_headers(msg) and not (_is_daemon(base, msg) or has_report):
        return None
    text = base.text
    head = _before_original(text)
    delay_text = _DELAY_TEXT.search(head) or re.search(r"\b(delay|delayed|warning)\b", base.subject, re.I)
    if delay_text and not _GIVEN_UP.search(head):
        return base.event(DELAY, recipient=_failed_recipient(msg, head), status=_status_of(head),
                          reason=clip(_reason_lines(head) or base.subject))
    status = _status_of(head)
    recipient = _failed_recipient(msg, head)
    reason = _reason_lines(head)
    if status is None and not _SMTP_REPLY.search(head) and not re.search(
            r"(not (be )?recogni[sz]ed|unknown|does not exist|no such|not found|rejected|refused|failed)",
            head, re.IGNORECASE):
        return None
    return base.event(_severity(status, reason or head), recipient=recipient, status=status,
                      reason=clip(reason or base.subject))


_ORIGINAL_MARKERS = re.compile(
    r"^(-+ ?(below this line is a copy of the message|original message|this is a copy of the message|"
    r"the header of the original message)|-+\s*original message\s*-+|original message headers:)",
    re.IGNORECASE | re.MULTILINE)


def _before_original(text: str) -> str:
    m = _ORIGINAL_MARKERS.search(text)
    return text[: m.start()] if m else text


def _failed_recipient(msg: Message, text: str) -> str | None:
    failed = header(msg, "X-Failed-Recipients")
    if failed:
        addr = parseaddr(failed.split(",")[0])[1]
        if addr:
            return addr.lower()
    ours = {a.lower() for value in recipient_headers(msg) for _, a in getaddresses([value]) if a}
    for m in _ADDRESS.finditer(text):
        addr = m.group(0).lower().rstrip(".")
        local = addr.split("@")[0]
        if addr in ours or _DAEMON.match(local):
            continue
        return addr
    return None


def _reason_lines(text: str) -> str:
    """The lines quoting the remote server's reply (those with an SMTP code), else the first lines."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    quoted = [ln for ln in lines if _ENHANCED.search(ln) or _SMTP_REPLY.search(ln)]
    return " ".join(quoted[:4] or lines[:4])


def _autoreply_headers(msg: Message) -> bool:
    auto = header(msg, "Auto-Submitted").lower()
    if auto.startswith("auto-replied") or auto.startswith("auto-generated"):
        return True
    return any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Reply")) or \
        header(msg, "X-Autoreply").lower() == "yes"


def _autoreply(msg: Message, base: _Basics) -> InboundEvent | None:
    precedence = header(msg, "Precedence").lower()
    if (_autoreply_headers(msg) or _AUTO_SUBJECT.search(base.subject)
            or (precedence in ("bulk", "junk", "auto_reply", "list") and _AUTO_SUBJECT.search(base.subject))
            or (precedence in ("bulk", "junk", "auto_reply"))):
        return base.event(AUTOREPLY, recipient=base.sender, reason=clip(f"Subject: {base.subject}"))
    return None
