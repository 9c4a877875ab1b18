"""Reading MIME messages for the classifier: header values, decoded text, report parts, attached headers.
Pure functions over ``email.message.Message`` (compat32)."""

from __future__ import annotations

import email
import email.header
import re
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses, parseaddr

REASON_CHARS = 2000  # the raw reason kept with each event


def header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except (LookupError, ValueError, UnicodeError):
            pass
    return " ".join(text.split())


def decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        inner = part.get_payload()
        return inner if isinstance(inner, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)


def body_text(msg: Message) -> str:
    """The message's human-readable text: its text/plain parts (text/html with tags removed when there is
    no plain part), not descending into attached messages."""
    plain: list[str] = []
    html: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if part.is_multipart():
            if ctype.startswith("message/"):
                continue
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))  # type: ignore[union-attr]
        elif ctype == "text/plain":
            plain.append(decoded(part))
        elif ctype == "text/html":
            html.append(_TAGS.sub(" ", decoded(part)))
    if plain:
        return "\n".join(plain)
    return re.sub(r"&nbsp;|&#160;", " ", "\n".join(html))


def recipient_headers(msg: Message) -> list[str]:
    return [str(v) for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To",
                                 "X-Failed-Recipients") for v in (msg.get_all(name) or [])]


def attached_headers(msg: Message) -> list[str]:
    out: list[str] = []
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                out.extend(f"{k}: {v}" for k, v in inner[0].items())
        elif part.get_content_type() in ("text/rfc822-headers", "text/rfc822-header"):
            out.append(decoded(part))
    return out


def clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def field_address(value: str) -> str | None:
    """``rfc822; user@example.org`` → ``user@example.org``."""
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    addr = parseaddr(value.strip())[1] or value.strip().strip("<>")
    return addr.lower() if "@" in addr else None


def report_part(msg: Message, *ctypes: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() in ctypes:
            return part
    return None


def fields_of(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = decoded(part)
    return [email.message_from_string(block.strip() + "\n", policy=email_policy.compat32)
            for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def reported_to(msg: Message) -> str | None:
    """The To address of the reported message attached to a complaint."""
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                to = header(inner[0], "To")
            else:
                m = re.search(r"^To:\s*(.+)$", decoded(part), re.IGNORECASE | re.MULTILINE)
                to = m.group(1) if m else ""
            addrs = [a.lower() for _, a in getaddresses([to]) if "@" in a]
            if addrs:
                return addrs[0]
    return None
