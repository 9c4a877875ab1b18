"""The digest as an email message: multipart/alternative (text first, HTML last, RFC 2046 5.1.4: the last part
is the preferred one), UTF-8, quoted-printable, CRLF line endings (policy SMTP), with the headers a bulk
sender needs: List-Id (RFC 2919), List-Unsubscribe with an https and a mailto URL (RFC 2369) and
List-Unsubscribe-Post for one-click unsubscribe (RFC 8058).

Two ways to the same bytes:

- ``build_message(rendered, recipient, settings, date)``: the straightforward path, the ``email`` package end
  to end for every reader (about 15 ms for a large digest: encoding 100 KB of HTML as quoted-printable in
  Python dominates).
- ``MessageFactory(settings).prepare(rendered)`` gives a ``PreparedDigest`` whose ``message(recipient, date)``
  reuses everything that is the same for every reader of that digest: the encoded bodies and the header
  lines. Per reader it encodes only the header lines that differ (To, Date, Message-ID, List-Unsubscribe)
  and the few body lines that hold the reader's greeting and links. Quoted-printable encodes line by line,
  so the pieces concatenate to exactly what the email package writes; the tests compare both byte for byte.

Untrusted text in headers (the subject, display names) goes through ``sanitize_header_text`` first.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any, Mapping, Sequence

from ..config import Settings
from ..errors import DeliveryError
from .dkim import DkimSigner, SharedBody, signer_from_settings
from .cards import MAX_LINE, _CardLine, qp_encode_lines  # noqa: F401 - qp_encode_lines re-exported
from .links import PREVIEW_CARD_TOKEN, ReaderLinks
from . import CARD_SLOT, SLOTS, RenderedDigest, reader_values

MAX_HEADER_LINE = 998  # RFC 5322 2.1.1
SUBJECT_CHARS = 200
NAME_CHARS = 64


# --- headers --------------------------------------------------------------------------------------------------


def fold_url_list(name: str, urls: Sequence[str], linesep: str = "\r\n") -> str:
    """``Name: <url>, <url>`` on one line when it fits, else one URL per line (folded after each comma)."""
    items = [u if u.startswith("<") else f"<{u}>" for u in urls]
    line = f"{name}: " + ", ".join(items)
    folded = line if len(line) <= MAX_LINE else f"{name}: " + ("," + linesep + " ").join(items)
    if any(len(part) > MAX_HEADER_LINE for part in folded.split(linesep)):
        raise ValueError(f"{name}: a URL longer than a header line may be")
    return folded + linesep


_URL_ITEM = re.compile(r"<[\x21-\x2b\x2d-\x3b\x3d\x3f-\x7e]+>")  # printable ASCII except ',', '<', '>'


class UrlListHeader(UnstructuredHeader):
    """RFC 2369 ``List-Unsubscribe``: ``<url>, <url>``, folded only between URLs.

    The email package treats it as unstructured text and turns a URL longer than a line into encoded words
    (``=?utf-8?q?=3Chttps=3A//...?=``), which no mail client or mailbox provider reads as a link.
    """

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        items = [item.strip() for item in str(value).split(",")]
        if not items or not all(_URL_ITEM.fullmatch(i) for i in items):
            raise ValueError(f"not a list of <URL>s: {value!r}")
        super().parse(", ".join(items), kwds)

    def fold(self, *, policy: Any) -> str:
        name: str = getattr(self, "name")  # noqa: B009 - set by BaseHeader, which the registry mixes in
        return fold_url_list(name, str(self).split(", "), policy.linesep)


def _policy() -> Any:
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", UrlListHeader)  # type: ignore[arg-type]  # BaseHeader is mixed in
    return SMTP.clone(max_line_length=MAX_LINE, header_factory=registry)


POLICY = _policy()

_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                            r"\ufff9-\ufffb\U000e0000-\U000e007f]")


def sanitize_header_text(value: object, max_length: int = SUBJECT_CHARS) -> str:
    """Untrusted text made safe for a header: one line, no control or invisible characters, no RFC 2047
    encoded words, at most ``max_length`` characters.

    Encoded words matter because the email package decodes them when it parses a header value and may write
    the decoded text back raw: on Python 3.11.7 a subject of ``x =?UTF-8?Q?=0A?=Bcc: y@example.org`` puts a
    line ``Bcc: y@example.org`` in the message. Every ``=?`` is therefore broken up (``= ?``).

    >>> sanitize_header_text("Hi\\r\\nBcc: x@example.org =?UTF-8?Q?=0A?=")
    'Hi Bcc: x@example.org = ?UTF-8?Q?=0A?='
    """
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value)[:max_length * 4])
    text = " ".join(_HEADER_UNSAFE.sub(" ", text).split())
    while "=?" in text:
        text = text.replace("=?", "= ?")
    if len(text) > max_length:
        cut = text[:max_length - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > max_length // 2 else cut).rstrip() + "…"
    return text


_SIMPLE_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*"
                             r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
# Display names the email package writes as they are: words of RFC 5322 atext (without '=' and '?', which
# could start an encoded word) separated by single spaces.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
_SIMPLE_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>")


def check_address(email: str) -> str:
    """The address if it can go in a header as it is (ASCII, no spaces or control characters)."""
    if not email or not email.isascii() or len(email) > 320 or not re.fullmatch(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+", email):
        raise DeliveryError(f"Cannot send to {email!r}: not a plain ASCII email address.",
                            hint="fix or remove the subscriber; internationalised addresses (SMTPUTF8) are not supported")
    return email


def address(name: str | None, email: str) -> Address:
    display = sanitize_header_text(name, NAME_CHARS) if name else ""
    try:
        return Address(display_name=display, addr_spec=check_address(email))
    except (ValueError, IndexError) as exc:  # the email package's own parse of the address
        raise DeliveryError(f"Cannot send to {email!r}: {exc}") from None


def list_id(settings: Settings) -> str:
    """``Trending Papers <trending-papers.example.org>`` (RFC 2919: a label under the sender's domain)."""
    label = re.sub(r"[^a-z0-9]+", "-", settings.list_name.lower()).strip("-") or "newsletter"
    domain = settings.sender.email.rpartition("@")[2].lower()
    phrase = re.sub(r"[<>\"\\]", "", sanitize_header_text(settings.list_name, 100))
    return f"{phrase} <{label}.{domain}>" if phrase else f"<{label}.{domain}>"


def _utc(date: datetime) -> datetime:
    return date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date


def _fold(name: str, value: Any) -> bytes:
    """One header field exactly as the generator writes it with POLICY."""
    return POLICY.fold(name, POLICY.header_factory(name, value)).encode("ascii")


# The header fields that differ between readers of one digest, and how each is made without the email
# package when the value is simple (the tests check these shortcuts give the email package's bytes).


@functools.lru_cache(maxsize=8192)
def _to_prefix(display: str) -> str | None:
    """``To: <display name as the email package writes it> `` (quoted, or as encoded words), when the name
    and a short address fit on one line. The folder writes the name before it looks at the address, so with
    any address that still fits on the line the name comes out the same."""
    stand_in = "<a@b.c>\r\n"
    folded = _fold("To", Address(display_name=display, addr_spec="a@b.c")).decode("ascii")
    if not folded.endswith(" " + stand_in) or "\r\n" in folded[:-2]:
        return None
    return folded[:-len(stand_in)]


def to_field(name: str | None, email: str) -> bytes:
    display = sanitize_header_text(name, NAME_CHARS) if name else ""
    if _SIMPLE_ADDRESS.fullmatch(email):
        if not display or _PLAIN_NAME.fullmatch(display):
            line = f"To: {display} <{email}>" if display else f"To: {email}"
            if len(line) <= MAX_LINE:
                return (line + "\r\n").encode("ascii")
        else:
            prefix = _to_prefix(display)
            if prefix is not None and len(prefix) + len(email) + 2 <= MAX_LINE:
                return f"{prefix}<{email}>\r\n".encode("ascii")
    return _fold("To", address(name, email))


def date_field(date: datetime) -> bytes:
    return f"Date: {format_datetime(_utc(date))}\r\n".encode("ascii")


def message_id_field(message_id: str) -> bytes:
    if _SIMPLE_MESSAGE_ID.fullmatch(message_id) and len(message_id) <= MAX_LINE - 12:
        return f"Message-ID: {message_id}\r\n".encode("ascii")
    return _fold("Message-ID", message_id)


def list_unsubscribe_field(links: ReaderLinks) -> bytes:
    return fold_url_list("List-Unsubscribe", [links.unsubscribe, links.unsubscribe_mailto]).encode("ascii")


# --- the straightforward path -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One reader of one edition: where the message goes and what is personal in it."""

    email: str
    message_id: str  # deliveries.message_id: fixed per (edition, subscriber), the same on every retry
    links: ReaderLinks
    name: str | None = None


def boundary_for(rendered: RenderedDigest) -> str:
    """The MIME boundary of a digest. It starts with ``=_``, which quoted-printable text can never contain."""
    digest = hashlib.sha256((rendered.html + "\x00" + rendered.text).encode("utf-8", "surrogatepass")).hexdigest()
    return f"=_nl_{digest[:32]}"


def _compose(subject: str, boundary: str, settings: Settings, *, to: Address, date: datetime, message_id: str,
             links: ReaderLinks, html: str, text: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = address(settings.sender.name, settings.sender.email)
    msg["To"] = to
    msg["Subject"] = sanitize_header_text(subject, SUBJECT_CHARS)
    msg["Date"] = format_datetime(_utc(date))
    msg["Message-ID"] = message_id
    if settings.sender.reply_to:
        msg["Reply-To"] = address(None, settings.sender.reply_to)
    msg["List-Id"] = list_id(settings)
    msg["List-Unsubscribe"] = f"<{links.unsubscribe}>, <{links.unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg.set_boundary(boundary)
    return msg


def _personal(rendered: RenderedDigest, recipient: Recipient) -> dict[str, str]:
    values = reader_values(recipient.name, recipient.links.preferences, recipient.links.unsubscribe,
                           recipient.links.web_copy)
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"{key} must be one line")
    return values


def build_message(rendered: RenderedDigest, recipient: Recipient, settings: Settings, date: datetime,
                  signer: DkimSigner | None = None) -> bytes:
    """The whole message for one reader, built with the email package (the reference for the fast path);
    DKIM-signed by ``signer`` when given."""
    html, text = rendered.fill(_personal(rendered, recipient), recipient.links.card)
    msg = _compose(rendered.subject, boundary_for(rendered), settings, to=address(recipient.name, recipient.email),
                   date=date, message_id=recipient.message_id, links=recipient.links, html=html, text=text)
    data = msg.as_bytes(policy=POLICY)
    return signer.sign(data, date) if signer is not None else data


# --- the fast path ------------------------------------------------------------------------------------------------


class LineCache:
    """Quoted-printable encodings of lines seen before. Distinct digests share most of their lines (the same
    paper's card, the same frame), so preparing the hundredth digest of a send encodes little that is new."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lines: dict[bytes, bytes] = {}
        self.layouts: dict[bytes, Any] = {}  # card lines with stand-in tokens -> their encoded layout
        self.max_entries = max_entries

    def encode(self, lines: Sequence[bytes]) -> bytes:
        cache = self._lines
        if len(cache) > self.max_entries:
            cache.clear()
        if len(self.layouts) > self.max_entries // 4:
            self.layouts.clear()
        out = []
        for line in lines:
            encoded = cache.get(line)
            if encoded is None:
                encoded = cache[line] = qp_encode_lines((line,))
            out.append(encoded)
        return b"".join(out)


@dataclass(frozen=True)
class _SlotLine:
    """A body line holding slot markers; encoded per reader once the markers are replaced."""

    template: str
    html: bool  # values are HTML-escaped in the HTML part


def _encode_part(text: str, markers: Sequence[str], html: bool, cache: LineCache,
                 card_prefix: str | None = None) -> list[bytes | _SlotLine | _CardLine]:
    pieces: list[bytes | _SlotLine | _CardLine] = []
    run: list[bytes] = []
    card_marker = re.compile(re.escape(card_prefix) + r"(\d+)%%") if card_prefix else None
    card_bytes = card_prefix.encode() if card_prefix else None
    marker_bytes = [m.encode() for m in markers]
    for line in text.encode("utf-8").splitlines():  # the split email.contentmanager makes
        if b"%%nl-" in line:
            slot = any(m in line for m in marker_bytes)
            if slot or (card_bytes and card_bytes in line):
                if run:
                    pieces.append(cache.encode(run))
                    run = []
                piece: _SlotLine | _CardLine | None = None
                if card_marker is not None and not slot:
                    piece = _CardLine.make(line.decode("utf-8"), card_marker, cache)
                pieces.append(piece or _SlotLine(line.decode("utf-8"), html))
                continue
        run.append(line)
    if run:
        pieces.append(cache.encode(run))
    return pieces


_PER_READER = ("To", "Date", "Message-ID", "List-Unsubscribe")


_BOUNDARY_STAND_IN = "=_nl_" + "0" * 32  # as long as boundary_for's, so headers fold the same


@dataclass(frozen=True)
class _Frame:
    """Every header and MIME line of a message, from the email package itself, composed once per settings with
    stand-ins for the subject, the boundary, the per-reader headers and the two bodies."""

    headers: tuple[bytes | str, ...]  # str: a field filled per digest ("Subject") or per reader (_PER_READER)
    before_text: bytes
    between: bytes
    after_html: bytes

    @classmethod
    def compose(cls, settings: Settings) -> "_Frame":
        text_mark, html_mark = "TEXT-BODY-STAND-IN", "HTML-BODY-STAND-IN"
        stand_in = Recipient("stand-in@example.invalid", "<stand-in@example.invalid>",
                             ReaderLinks("https://example.invalid/p", "https://example.invalid/u",
                                         "mailto:u@example.invalid?subject=u"))
        sample_date = datetime(2000, 1, 1, tzinfo=timezone.utc)
        raw = _compose("stand-in", _BOUNDARY_STAND_IN, settings, to=address(None, stand_in.email), date=sample_date,
                       message_id=stand_in.message_id, links=stand_in.links, html=html_mark + "\n",
                       text=text_mark + "\n").as_bytes(policy=POLICY)
        head, _, body = raw.partition(b"\r\n\r\n")
        expected = {"To": to_field(None, stand_in.email), "Date": date_field(sample_date),
                    "Message-ID": message_id_field(stand_in.message_id),
                    "List-Unsubscribe": list_unsubscribe_field(stand_in.links)}
        headers: list[bytes | str] = []
        for field_bytes in _header_fields(head + b"\r\n"):
            name = field_bytes.split(b":", 1)[0].decode("ascii")
            if name in _PER_READER:
                if field_bytes != expected[name]:  # the shortcuts must write what the email package writes
                    raise AssertionError(f"{name}: {field_bytes!r} != {expected[name]!r}")
                headers.append(name)
            elif name == "Subject":
                headers.append(name)
            else:
                headers.append(field_bytes)
        headers.append(b"\r\n")
        before_text, _, rest = body.partition(text_mark.encode() + b"\r\n")
        between, _, after_html = rest.partition(html_mark.encode() + b"\r\n")
        if not after_html:
            raise AssertionError("the message frame does not have the expected shape")
        return cls(tuple(headers), before_text, between, after_html)


class PreparedDigest:
    """One digest encoded once; ``message()`` gives each reader's bytes, identical to ``build_message``."""

    def __init__(self, rendered: RenderedDigest, settings: Settings, cache: LineCache | None = None,
                 frame: _Frame | None = None, signer: DkimSigner | None = None) -> None:
        cache = cache or LineCache()
        self.signer = signer
        frame = frame or _Frame.compose(settings)
        self.rendered = rendered
        self.settings = settings
        markers = [rendered.slots[k] for k in SLOTS]
        card_prefix = rendered.slots.get(CARD_SLOT)
        boundary = boundary_for(rendered).encode("ascii")
        stand_in = _BOUNDARY_STAND_IN.encode("ascii")
        subject = _fold("Subject", sanitize_header_text(rendered.subject, SUBJECT_CHARS))
        pieces: list[bytes | str | _SlotLine | _CardLine] = []
        for field in frame.headers:
            if field == "Subject":
                pieces.append(subject)
            elif isinstance(field, bytes):
                pieces.append(field.replace(stand_in, boundary))
            else:
                pieces.append(field)
        pieces.append(frame.before_text.replace(stand_in, boundary))
        pieces.extend(_encode_part(rendered.text, markers, html=False, cache=cache, card_prefix=card_prefix))
        pieces.append(frame.between.replace(stand_in, boundary))
        pieces.extend(_encode_part(rendered.html, markers, html=True, cache=cache, card_prefix=card_prefix))
        pieces.append(frame.after_html.replace(stand_in, boundary))
        head_count = len(frame.headers)
        self._pieces = _merged(pieces)
        blocks = [p for p in self._pieces if isinstance(p, _CardLine)]
        self._card_papers = tuple(dict.fromkeys(pid for p in blocks for pid in p.papers))
        self._card_keys = tuple(b"%d" % pid for pid in self._card_papers)
        self._card_cuts = {k: v for p in blocks for k, v in p.cuts.items()}
        # DKIM (newsletter/render/dkim.py): the body's canonical form is made once here; per reader only the
        # personal lines are canonicalized and the hash goes on from the state before the first of them.
        self._head = _merged(pieces[:head_count])
        self._body = _merged(pieces[head_count:])
        self._shared_body: SharedBody | None = None
        if signer is not None:
            try:
                self._shared_body = SharedBody([p if isinstance(p, bytes) else None for p in self._body])
            except ValueError:  # not line-aligned (a template of unusual shape): hash each body whole
                self._shared_body = None

    @property
    def body_bytes(self) -> int:
        return sum(len(p) for p in self._pieces if isinstance(p, bytes))

    def message(self, recipient: Recipient, date: datetime) -> bytes:
        values = _personal(self.rendered, recipient)
        slot_values = (self.rendered.html_values(values), self.rendered.text_values(values))
        if self.signer is None:
            return b"".join(self._fill(self._pieces, recipient, date, slot_values))
        head = b"".join(self._fill(self._head, recipient, date, slot_values))
        body_parts = self._fill(self._body, recipient, date, slot_values)
        if self._shared_body is not None:
            personal = [part for piece, part in zip(self._body, body_parts) if type(piece) is not bytes]
            body_hash = self._shared_body.hash(personal)
        else:
            body_hash = self.signer.body_hash(b"".join(body_parts))
        return b"".join([self.signer.signature(head, body_hash, date), head, *body_parts])

    def _fill(self, pieces: Sequence[bytes | str | _SlotLine | _CardLine], recipient: Recipient, date: datetime,
              slot_values: tuple[Mapping[str, str], Mapping[str, str]]) -> list[bytes]:
        html_values, text_values = slot_values
        headers: dict[str, bytes | None] = {"To": None, "Date": None, "Message-ID": None, "List-Unsubscribe": None}
        out: list[bytes] = []
        card = recipient.links.card
        tokens = self._tokens(card)
        for piece in pieces:
            if type(piece) is bytes:
                out.append(piece)
            elif type(piece) is _CardLine:
                out.append(piece.fill(tokens))
            elif type(piece) is str:
                field_bytes = headers[piece]
                if field_bytes is None:
                    field_bytes = headers[piece] = self._header(piece, recipient, date)
                out.append(field_bytes)
            else:
                assert isinstance(piece, _SlotLine)
                line = piece.template
                for marker, value in (html_values if piece.html else text_values).items():
                    if marker in line:
                        line = line.replace(marker, value)
                line = self.rendered.fill_cards(line, card)
                out.append(qp_encode_lines([line.encode("utf-8")]))
        return out

    def _tokens(self, card: Any) -> dict[bytes, bytes]:
        """Each card's token for this reader (the ``_CardLine`` template keys), signed once per message."""
        if card is None:
            preview = PREVIEW_CARD_TOKEN.encode("ascii")
            tokens = dict.fromkeys(self._card_keys, preview)
        else:
            raw = getattr(card, "raw", None) or (lambda pid: card(pid).encode("ascii"))
            tokens = {key: raw(pid) for key, pid in zip(self._card_keys, self._card_papers)}
        for key, (pid, start, end) in self._card_cuts.items():
            tokens[key] = tokens[b"%d" % pid][start:end]
        return tokens

    @staticmethod
    def _header(name: str, recipient: Recipient, date: datetime) -> bytes:
        if name == "To":
            return to_field(recipient.name, recipient.email)
        if name == "Date":
            return date_field(date)
        if name == "Message-ID":
            return message_id_field(recipient.message_id)
        return list_unsubscribe_field(recipient.links)


def _merged(pieces: Sequence[bytes | str | _SlotLine | _CardLine]) -> list[bytes | str | _SlotLine | _CardLine]:
    """Neighbouring constant pieces joined, and joined with the card blocks beside them: fewer, larger pieces
    join faster."""
    merged: list[bytes | str | _SlotLine | _CardLine] = []
    group: list[bytes | _CardLine] = []

    def flush() -> None:
        if not group:
            return
        if any(isinstance(g, _CardLine) for g in group):
            parts: list[tuple[bytes, int, int, int] | bytes] = []
            for g in group:
                parts.extend(g.parts if isinstance(g, _CardLine) else [g])
            merged.append(_CardLine(parts))
        else:
            merged.append(b"".join(group))  # type: ignore[arg-type]
        group.clear()

    for piece in pieces:
        if isinstance(piece, (bytes, _CardLine)):
            group.append(piece)
        else:
            flush()
            merged.append(piece)
    flush()
    return merged


def _header_fields(head: bytes) -> list[bytes]:
    """Header fields of a serialised header block, each with its continuation lines and final CRLF."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


class MessageFactory:
    """Builds the messages of one send: ``prepare`` each distinct digest once, then ``message`` per reader.

    Example::

        factory = MessageFactory(settings)
        prepared = factory.prepare(render_digest(content, settings, edition_url))
        raw = prepared.message(Recipient("ada@example.org", "<7.1.daily.2026-03-14@example.org>", links), now)
    """

    def __init__(self, settings: Settings, signer: DkimSigner | None = None) -> None:
        self.settings = settings
        self.signer = signer  # DKIM: every message signed (newsletter/render/dkim.py)
        self.lines = LineCache()
        self.frame = _Frame.compose(settings)

    def prepare(self, rendered: RenderedDigest) -> PreparedDigest:
        return PreparedDigest(rendered, self.settings, self.lines, self.frame, self.signer)

    def build(self, rendered: RenderedDigest, recipient: Recipient, date: datetime) -> bytes:
        """The straightforward path (the email package end to end) for one reader."""
        return build_message(rendered, recipient, self.settings, date, self.signer)


def personal_values(rendered: RenderedDigest, recipient: Recipient) -> Mapping[str, str]:
    """The per-reader values filled into ``rendered`` for ``recipient`` (greeting and links)."""
    return _personal(rendered, recipient)


# --- the send loop's prepare(delivery) -------------------------------------------------------------------------


class _Lru(OrderedDict):  # type: ignore[type-arg]
    """A dict that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class DeliveryMessages:
    """``prepare(delivery) -> OutgoingMessage`` for ``Newsletter.deliver``: renders and encodes each distinct
    digest once, then fills in each reader's part.

    Readers who share a digest row but follow different topics get different content; readers whose content
    is the same share one ``PreparedDigest`` whatever their digest row. Links are signed as of the moment the
    delivery was queued, so every retry of a message carries the same links (and the same Message-ID).

    Nothing here grows with readers: the reader's topics come with the claimed delivery (no subscriber is
    loaded), and the caches are bounded, most recently used first (``PREPARED_CACHE`` encoded digests, each
    held once whatever the number of reader kinds that share it). A digest pushed out is prepared again from
    its saved render when a reader needs it again.
    """

    PREPARED_CACHE = 128  # encoded digests (each its bodies' bytes once: about 100-250 KB)
    KIND_CACHE = 8192  # (digest, reader kind) -> which encoded digest: small keys

    def __init__(self, newsletter: Any, clock: Any = None) -> None:
        self.nl = newsletter
        self.settings: Settings = newsletter.settings
        # DKIM (dkim.domain): built here, so a key that cannot be used stops the send before any message goes.
        self.factory = MessageFactory(self.settings, signer_from_settings(self.settings))
        self.links = newsletter.link_maker()
        # VERP (inbound.verp): the envelope sender names the delivery, so a bounce that quotes nothing else
        # still says whose message it was (newsletter/inbound/verp.py).
        self.verp = None
        if self.settings.inbound.verp:
            from ..inbound.verp import Verp
            from ..tokens import signing_key

            key = signing_key(self.settings.signing_key, newsletter.store.get_state, newsletter.store.add_state)
            self.verp = Verp(key, self.settings.sender.email)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._papers = _Lru(32)  # (edition, digest) -> (record, papers), while its renders are made
        self._kinds = _Lru(self.KIND_CACHE)  # (edition, digest, topics, keywords) -> (content key, stored kind)
        self._prepared = _Lru(self.PREPARED_CACHE)  # content key -> PreparedDigest
        self._personal: Any = None  # relevance.personal.SendPersonal, once a reader with signals comes

    def prepared_for(self, edition_id: int, digest_id: int, reader: Any) -> PreparedDigest:
        """The encoded digest for a reader (anything with ``topics`` and ``excluded_keywords``)."""
        from ..store.editions import reader_kind

        kind = (edition_id, digest_id, reader.topics, tuple(reader.excluded_keywords))
        known = self._kinds.get(kind)
        if known is not None:
            prepared = self._prepared.get(known[0])
            if prepared is not None:
                return prepared  # type: ignore[no-any-return]
        stored_kind = known[1] if known else reader_kind(reader.topics, reader.excluded_keywords)
        fields = self._render_fields(edition_id, digest_id, reader, stored_kind)
        key = hashlib.sha256("\x00".join((fields["subject"], fields["html"], fields["text"]))
                             .encode("utf-8", "surrogatepass")).digest()
        self._kinds.put(kind, (key, stored_kind))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared.put(key, self.factory.prepare(RenderedDigest(**fields)))
        return prepared  # type: ignore[no-any-return]

    def _render_fields(self, edition_id: int, digest_id: int, reader: Any, stored_kind: str) -> dict[str, Any]:
        """The first render of a digest for a kind of reader is kept: every retry (and `preview --edition`)
        then carries exactly the same content, whatever upvotes or topics changed in between."""
        from ..models import Subscriber
        from ..store.editions import save_render, saved_render

        engine = self.nl.store.engine
        fields = saved_render(engine, digest_id, stored_kind)
        if fields is not None:
            return fields
        key = (edition_id, digest_id)
        found = self._papers.get(key)
        if found is None:
            found = self._papers.put(key, self.nl.edition_papers_for(edition_id, digest_id))
        record, papers = found
        who = Subscriber(0, "", "active", record.cadence, reader.topics, tuple(reader.excluded_keywords))
        content = self.nl.digest_content(papers, who, record.cadence, record.period, record.day)
        rendered = self.nl.render_for(content, edition_id)
        return save_render(engine, edition_id, digest_id, stored_kind, {  # type: ignore[no-any-return]
            "subject": rendered.subject, "html": rendered.html, "text": rendered.text,
            "preheader": rendered.preheader, "slots": dict(rendered.slots), "shown": dict(rendered.shown),
            "shortened": rendered.shortened}, self.clock())

    def __call__(self, delivery: Any) -> Any:
        from ..deliver import OutgoingMessage

        prepared = self.prepared_for(delivery.edition_id, delivery.digest_id, delivery)
        links = self.links.for_reader(delivery.subscriber_id, delivery.created_at, delivery.edition_id)
        recipient = Recipient(delivery.email, delivery.message_id, links, delivery.name)
        data = None
        if getattr(delivery, "model", None):  # a reader with signals: the shared digest in their order (issue 15)
            if self._personal is None:
                from ..relevance.personal import SendPersonal

                self._personal = SendPersonal(self)
            data = self._personal.message(delivery, prepared, recipient, self.clock())
        if data is None:
            data = prepared.message(recipient, self.clock())
        envelope = self.verp.address(delivery.id) if self.verp else self.settings.sender.email
        return OutgoingMessage(envelope_from=envelope, recipient=delivery.email,
                               message_id=delivery.message_id, data=data)


def preparer(newsletter: Any) -> DeliveryMessages:
    """What ``Newsletter.message_preparer`` hands the send loop."""
    return DeliveryMessages(newsletter)
