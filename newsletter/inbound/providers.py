"""What the sending services' bounce and complaint notifications say, as ``InboundEvent``s. Pure: parsed JSON
in, events out. Verification of the requests is in ``webhooks.py``.

Shapes, as each provider documents them:

- SES (through SNS, or mailed as SNS JSON): ``notificationType`` (or ``eventType``) Bounce / Complaint;
  ``bounce.bounceType`` Permanent (hard), Transient or Undetermined (soft), ``bouncedRecipients`` with
  ``status`` and ``diagnosticCode``; ``complaint.complainedRecipients``; ``mail.source`` (our VERP return
  path) and ``mail.commonHeaders.messageId``.
- Postmark: one record, ``RecordType`` Bounce (``Type`` HardBounce, SoftBounce, ...), SpamComplaint or
  SubscriptionChange; ``Email``, ``Details``, ``Description``.
- SendGrid Event Webhook: a list of events, ``event`` bounce (``type`` bounce or blocked), deferred,
  dropped, spamreport, unsubscribe, group_unsubscribe; ``status``, ``reason``, ``smtp-id``.
- Mailgun: ``event-data.event`` failed (``severity`` permanent or temporary), complained, unsubscribed;
  ``delivery-status`` with ``code``, ``enhanced-code``, ``message``, ``description``.
"""

from __future__ import annotations

import json
from typing import Any

from .classify import (
    AUTOREPLY, COMPLAINT, DELAY, HARD, REPORT, SOFT, UNKNOWN, UNSUBSCRIBE, VERP_RE, InboundEvent,
)
from .mime import clip as _clip

_SES_SOFT_PERMANENT = ("OnAccountSuppressionList",)  # SES refused to send: not a new mailbox failure


def _verp(*values: Any) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    for value in values:
        for m in VERP_RE.finditer(str(value or "")):
            out.append((int(m.group(1)), m.group(2).lower()))
    return tuple(out)


def _mid(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    return text if text.startswith("<") else f"<{text}>"


def ses_events(data: dict[str, Any]) -> list[InboundEvent]:
    """The events of one SES notification (the ``Message`` of an SNS notification, parsed)."""
    kind_name = str(data.get("notificationType") or data.get("eventType") or "")
    mail = data.get("mail") or {}
    common = mail.get("commonHeaders") or {}
    message_id = _mid(common.get("messageId"))
    if not message_id:
        for header in mail.get("headers") or ():
            if str(header.get("name", "")).lower() == "message-id":
                message_id = _mid(header.get("value"))
    verp = _verp(mail.get("source"), *(h.get("value") for h in mail.get("headers") or ()
                                     if str(h.get("name", "")).lower() == "return-path"))
    out: list[InboundEvent] = []
    if kind_name == "Bounce":
        bounce = data.get("bounce") or {}
        btype, sub = str(bounce.get("bounceType", "")), str(bounce.get("bounceSubType", ""))
        kind = HARD if btype == "Permanent" and sub not in _SES_SOFT_PERMANENT else SOFT
        for r in bounce.get("bouncedRecipients") or ():
            reason = r.get("diagnosticCode") or f"{btype}/{sub}"
            out.append(InboundEvent(kind, recipient=str(r.get("emailAddress", "")).lower() or None,
                                    status=r.get("status"), reason=_clip(f"{btype}/{sub}: {reason}"),
                                    original_message_id=message_id, verp=verp))
    elif kind_name == "Complaint":
        complaint = data.get("complaint") or {}
        feedback = complaint.get("complaintFeedbackType") or "abuse"
        kind = REPORT if feedback == "not-spam" else COMPLAINT
        for r in complaint.get("complainedRecipients") or ():
            out.append(InboundEvent(kind, recipient=str(r.get("emailAddress", "")).lower() or None,
                                    feedback_type=feedback,
                                    reason=_clip(f"SES complaint: {feedback}; {complaint.get('userAgent') or ''}".strip("; ")),
                                    original_message_id=message_id, verp=verp))
    elif kind_name == "DeliveryDelay":
        delay = data.get("deliveryDelay") or {}
        for r in delay.get("delayedRecipients") or ():
            out.append(InboundEvent(DELAY, recipient=str(r.get("emailAddress", "")).lower() or None,
                                    status=r.get("status"), reason=_clip(str(r.get("diagnosticCode") or delay.get("delayType"))),
                                    original_message_id=message_id, verp=verp))
    return out


_POSTMARK_KINDS = {
    "HardBounce": HARD, "BadEmailAddress": HARD, "SoftBounce": SOFT, "Transient": SOFT, "DnsError": SOFT,
    "SpamComplaint": COMPLAINT, "SpamNotification": COMPLAINT, "Unsubscribe": UNSUBSCRIBE,
    "AutoResponder": AUTOREPLY, "ManuallyDeactivated": REPORT, "Blocked": SOFT, "DMARCPolicy": SOFT,
}


def postmark_events(data: dict[str, Any]) -> list[InboundEvent]:
    record = str(data.get("RecordType", ""))
    email = str(data.get("Email") or data.get("Recipient") or "").lower() or None
    mid = _mid(data.get("MessageID"))
    if record == "SpamComplaint":
        return [InboundEvent(COMPLAINT, recipient=email, feedback_type="abuse",
                             reason=_clip(f"Postmark SpamComplaint: {data.get('Details') or data.get('Description') or ''}"),
                             original_message_id=mid)]
    if record == "Bounce":
        btype = str(data.get("Type", ""))
        kind = _POSTMARK_KINDS.get(btype, UNKNOWN)
        return [InboundEvent(kind, recipient=email,
                             reason=_clip(f"Postmark {btype}: {data.get('Details') or data.get('Description') or ''}"),
                             original_message_id=mid,
                             feedback_type="abuse" if kind == COMPLAINT else None)]
    if record == "SubscriptionChange" and data.get("SuppressSending"):
        why = str(data.get("SuppressionReason", ""))
        kind = {"HardBounce": HARD, "SpamComplaint": COMPLAINT, "ManualSuppression": UNSUBSCRIBE}.get(why, REPORT)
        return [InboundEvent(kind, recipient=email, reason=_clip(f"Postmark suppression: {why}"),
                             original_message_id=mid)]
    return []


def sendgrid_events(data: Any) -> list[tuple[str | None, InboundEvent]]:
    """(SendGrid's event id, event) for each event of one webhook POST."""
    out: list[tuple[str | None, InboundEvent]] = []
    for item in data if isinstance(data, list) else ():
        if not isinstance(item, dict):
            continue
        name = str(item.get("event", ""))
        email = str(item.get("email", "")).lower() or None
        mid = _mid(item.get("smtp-id"))
        reason = str(item.get("reason") or item.get("response") or "")
        status = item.get("status")
        if name == "bounce":
            kind = SOFT if item.get("type") == "blocked" else HARD
            if status and str(status).startswith("4"):
                kind = SOFT
        elif name == "deferred":
            kind = DELAY
        elif name == "dropped":
            kind = REPORT
        elif name == "spamreport":
            kind = COMPLAINT
        elif name in ("unsubscribe", "group_unsubscribe"):
            kind = COMPLAINT  # the reader pressed SendGrid's own unsubscribe: honour it at once
        else:
            continue
        text = f"SendGrid {name}{'/' + str(item['type']) if item.get('type') else ''}: {reason}".rstrip(": ")
        out.append((item.get("sg_event_id"), InboundEvent(
            kind, recipient=email, status=str(status) if status else None, reason=_clip(text),
            original_message_id=mid, feedback_type="abuse" if name == "spamreport" else
            ("opt-out" if kind == COMPLAINT else None))))
    return out


def mailgun_events(data: dict[str, Any]) -> list[InboundEvent]:
    ev = data.get("event-data") or {}
    name = str(ev.get("event", ""))
    email = str(ev.get("recipient", "")).lower() or None
    headers = (ev.get("message") or {}).get("headers") or {}
    mid = _mid(headers.get("message-id"))
    verp = _verp(ev.get("envelope", {}).get("sender") if isinstance(ev.get("envelope"), dict) else None)
    status = ev.get("delivery-status") or {}
    if name == "failed":
        permanent = ev.get("severity") == "permanent"
        code = status.get("enhanced-code") or status.get("code")
        text = status.get("description") or status.get("message") or ev.get("reason") or ""
        kind = HARD if permanent else SOFT
        if permanent and str(code or "").startswith("5.2.2"):
            kind = SOFT
        return [InboundEvent(kind, recipient=email, status=str(code) if code else None,
                             reason=_clip(f"Mailgun failed ({ev.get('severity')}, {ev.get('reason')}): {text}"),
                             original_message_id=mid, verp=verp)]
    if name == "complained":
        return [InboundEvent(COMPLAINT, recipient=email, feedback_type="abuse", reason="Mailgun complained",
                             original_message_id=mid, verp=verp)]
    if name == "unsubscribed":
        return [InboundEvent(COMPLAINT, recipient=email, feedback_type="opt-out", reason="Mailgun unsubscribed",
                             original_message_id=mid, verp=verp)]
    return []


def loads_json_text(text: str) -> Any:
    """JSON from a mail body, where a long line may have been folded (a newline and a space inserted)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object")
    body = text[start:end + 1]
    try:
        return json.loads(body)
    except ValueError:
        return json.loads(body.replace("\r\n", "\n").replace("\n ", "").replace("\n", ""))
