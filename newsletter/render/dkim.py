"""DKIM signatures (RFC 6376), rsa-sha256 with relaxed/relaxed canonicalization, on ``cryptography`` alone.

The signature covers From, To, Subject, Date, Message-ID, Reply-To (when there is one), List-Id,
List-Unsubscribe, List-Unsubscribe-Post (RFC 8058 requires those two to be signed), MIME-Version and
Content-Type. The names a relay or a forwarder could add a second copy of to change what a reader sees
(From, To, Subject, Date, Message-ID, List-Id, List-Unsubscribe, List-Unsubscribe-Post) are listed once more
in ``h=`` ("over-signed", RFC 6376 8.15), so an added copy breaks the signature.

Two ways to the same signature:

- ``DkimSigner.sign(message)``: any message, canonicalized and hashed whole.
- The fast path (``message.PreparedDigest``): a digest's body is the same for all its readers except a few
  lines (greeting, links). ``SharedBody`` canonicalizes the constant chunks once per digest and keeps the
  SHA-256 state of everything before the first personal line; per reader it canonicalizes only the personal
  lines and feeds the rest of the precomputed canonical body to the hash (C speed). Headers are signed per
  message (they differ: To, Date, Message-ID, List-Unsubscribe). ``t=`` is the message's Date, so both paths
  give the same bytes, which the tests compare; dkimpy verifies them.

The key comes from ``dkim.private_key`` (an environment reference holding the PEM text) or
``dkim.private_key_file``. Publish the public key as a TXT record at ``<selector>._domainkey.<domain>``:
``dkim_txt_record(key)`` gives its text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from ..errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from ..config import Settings

SIGNED = ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
          "List-Unsubscribe-Post", "MIME-Version", "Content-Type")
OVERSIGNED = ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")
MIN_KEY_BITS = 1024  # RFC 8301: verifiers refuse shorter keys; 2048 is what to generate

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_TO_FIX = re.compile(rb"\t[ \t]*| [ \t]+")  # the runs relaxed canonicalization changes: not a lone space
_FOLD = re.compile(rb"\r\n(?=[ \t])")


# --- canonicalization (RFC 6376 3.4.2 and 3.4.4) -------------------------------------------------------------


def relaxed_chunk(chunk: bytes) -> bytes:
    """Relaxed body canonicalization of whole lines (each ending in CRLF), without the end-of-body rule:
    runs of spaces and tabs become one space, and spaces at the end of a line go."""
    if b"  " in chunk or b"\t" in chunk:
        chunk = _WSP_TO_FIX.sub(b" ", chunk)
    return chunk.replace(b" \r\n", b"\r\n") if b" \r\n" in chunk else chunk


def relaxed_body(body: bytes) -> bytes:
    """The relaxed canonical form of a whole body: ``relaxed_chunk`` and no empty lines at the end."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    canon = relaxed_chunk(body)
    while canon.endswith(b"\r\n\r\n"):
        canon = canon[:-2]
    return b"" if canon == b"\r\n" else canon


@functools.lru_cache(maxsize=4096)  # the fields every reader of a digest shares are canonicalized once
def relaxed_header(field: bytes) -> bytes:
    """``name:value`` lower-cased name, unfolded, runs of spaces as one, trimmed; CRLF at the end."""
    name, _, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value.rstrip(b"\r\n"))).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def header_fields(head: bytes) -> list[bytes]:
    """The fields of a header block (without the blank line), each with its continuation lines and CRLF."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


class SharedBody:
    """The body hash of the bodies made of the same constant chunks with per-reader chunks in between.

    ``parts``: the body's chunks in order, ``None`` where a reader's own chunk goes. Every chunk is whole
    lines (ends in CRLF) and the last one is constant and not blank, so the canonical form is the chunks'
    canonical forms joined (``ValueError`` otherwise: use ``DkimSigner.body_hash`` on the whole body).
    """

    def __init__(self, parts: Sequence[bytes | None]) -> None:
        if not parts or parts[-1] is None:
            raise ValueError("the body does not end with a constant line")
        if any(p is not None and p and not p.endswith(b"\r\n") for p in parts):
            raise ValueError("a constant chunk is not whole lines")
        canon = [None if p is None else relaxed_chunk(p) for p in parts]  # each constant chunk once
        last = canon[-1]
        assert last is not None
        while last.endswith(b"\r\n\r\n"):
            last = last[:-2]
        if last in (b"", b"\r\n"):  # blank: the end-of-body rule would reach into a personal chunk
            raise ValueError("the body does not end with a constant line")
        canon[-1] = last
        first = next((i for i, p in enumerate(canon) if p is None), len(canon))
        self._prefix = hashlib.sha256(b"".join(p for p in canon[:first] if p is not None))
        # After the first personal chunk: constants merged between personal chunks.
        self._rest: list[bytes | None] = []
        for p in canon[first:]:
            if p is not None and self._rest and self._rest[-1] is not None:
                self._rest[-1] += p  # type: ignore[operator]
            else:
                self._rest.append(p)
        self.personal = sum(p is None for p in parts)

    def hash(self, personal: Sequence[bytes]) -> bytes:
        """The SHA-256 of the canonical body with ``personal`` (whole lines each) in the reader's places."""
        if len(personal) != self.personal:
            raise ValueError(f"{len(personal)} personal chunks for {self.personal} places")
        h = self._prefix.copy()
        mine = iter(personal)
        for piece in self._rest:
            h.update(relaxed_chunk(next(mine)) if piece is None else piece)
        return h.digest()


# --- signing -------------------------------------------------------------------------------------------------


class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``<selector>._domainkey.<domain>``.

    Example::

        signer = DkimSigner("example.org", "news", load_private_key(pem, "dkim.private_key"))
        signed = signer.sign(message_bytes)   # b"DKIM-Signature: v=1; a=rsa-sha256; ..." + message_bytes
    """

    def __init__(self, domain: str, selector: str, key: RSAPrivateKey, *,
                 signed: Sequence[str] = SIGNED, oversigned: Sequence[str] = OVERSIGNED) -> None:
        self.domain, self.selector, self.key = domain, selector, key
        self.signed = tuple(n.lower() for n in signed)
        self.oversigned = tuple(n.lower() for n in oversigned)
        self._tags_start = f"v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n\td={domain}; s={selector};"

    @staticmethod
    def body_hash(body: bytes) -> bytes:
        return hashlib.sha256(relaxed_body(body)).digest()

    def sign(self, message: bytes, timestamp: datetime | int | None = None) -> bytes:
        """``message`` with a DKIM-Signature field in front. ``timestamp`` (``t=``): default the Date field."""
        head, sep, body = message.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("not a message: no blank line after the header")
        return self.signature(head + b"\r\n", self.body_hash(body), timestamp) + message

    def signature(self, head: bytes, body_hash: bytes, timestamp: datetime | int | None = None) -> bytes:
        """The ``DKIM-Signature`` field (folded, with CRLF) for a header block and the body's hash."""
        fields = header_fields(head)
        by_name: dict[bytes, list[bytes]] = {}
        for f in fields:
            by_name.setdefault(f.split(b":", 1)[0].strip().lower(), []).append(f)
        names: list[str] = []
        hashed: list[bytes] = []
        used: dict[str, int] = {}
        for name in self.signed + self.oversigned:
            instances = by_name.get(name.encode("ascii"), [])
            if name in self.signed and name not in used and not instances:
                continue  # not in this message (Reply-To): not listed, except as an over-signed name
            k = used.get(name, 0)
            used[name] = k + 1
            names.append(name)
            if k < len(instances):  # RFC 6376 5.4.2: instances from the bottom up
                hashed.append(relaxed_header(instances[len(instances) - 1 - k]))
        if timestamp is None:
            date = by_name.get(b"date")
            timestamp = _date_timestamp(date[-1]) if date else None
        if isinstance(timestamp, datetime):
            timestamp = int(timestamp.timestamp())
        t = f" t={timestamp};" if timestamp is not None else ""
        bh = base64.b64encode(body_hash).decode("ascii")
        field = (f"DKIM-Signature: {self._tags_start}{t}\r\n\th={_fold_names(names)};\r\n\tbh={bh};\r\n\tb=")
        data = b"".join(hashed) + relaxed_header(field.encode("ascii"))[:-2]
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        b = base64.b64encode(self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")
        return (field + "\r\n\t ".join(b[i:i + 64] for i in range(0, len(b), 64)) + "\r\n").encode("ascii")


def _fold_names(names: Sequence[str]) -> str:
    lines, line = [], ""
    for name in names:
        piece = (":" if line else "") + name
        if len(line) + len(piece) > 66 and line:
            lines.append(line)
            line = ":" + name
        else:
            line += piece
    lines.append(line)
    return "\r\n\t".join(lines)


def _date_timestamp(field: bytes) -> int | None:
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(field.split(b":", 1)[1].decode("ascii").strip()).timestamp())
    except (ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None


# --- keys and settings ---------------------------------------------------------------------------------------


def load_private_key(pem: bytes | str, key_name: str) -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8, unencrypted). ``\\n`` written as two characters (as an
    environment variable on one line has it) counts as a line break. Errors name ``key_name``."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = pem.decode("utf-8", "replace") if isinstance(pem, bytes) else pem
    text = text.strip().replace("\\n", "\n")
    try:
        key = load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_name}: not an unencrypted PEM private key ({exc}).",
                          hint="make one with `openssl genrsa -out dkim.pem 2048`") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{key_name}: the key is not an RSA key; DKIM signing here uses rsa-sha256.",
                          hint="make one with `openssl genrsa -out dkim.pem 2048`")
    if key.key_size < MIN_KEY_BITS:
        raise ConfigError(f"{key_name}: a {key.key_size}-bit key is too short; receivers ignore DKIM keys "
                          f"under {MIN_KEY_BITS} bits.", hint="make a 2048-bit one: `openssl genrsa -out dkim.pem 2048`")
    return key


def dkim_txt_record(key: RSAPrivateKey) -> str:
    """The TXT record's text for ``<selector>._domainkey.<domain>``: ``v=DKIM1; k=rsa; p=<public key>``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The configured signer, or None when ``dkim.domain`` is not set. Raises ConfigError naming the key."""
    dkim = settings.dkim
    if not dkim.domain:
        return None
    if dkim.private_key:
        key = load_private_key(dkim.private_key, "dkim.private_key")
    else:
        assert dkim.private_key_file  # the settings model requires one of the two
        path = settings.path(dkim.private_key_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"dkim.private_key_file: cannot read {path}: {exc.strerror}.",
                              hint="check the path (relative to config.yaml) and that this user may read it") from None
        key = load_private_key(data, "dkim.private_key_file")
    assert dkim.selector
    return DkimSigner(dkim.domain, dkim.selector, key)


__all__ = ["DkimSigner", "SharedBody", "dkim_txt_record", "load_private_key", "relaxed_body", "relaxed_chunk",
           "relaxed_header", "signer_from_settings"]
