"""The per-card lines of an encoded digest (issue 15): each card carries its reader's own token, so the lines
with card tokens are filled per message. ``_CardLine`` keeps them as a bytes ``%`` template (see its docstring);
``message.PreparedDigest`` builds and fills them. Also the quoted-printable line encoder both use.
"""

from __future__ import annotations

import re
from email import quoprimime
from typing import Any, Mapping, Sequence

from ..tokens import CARD_TOKEN_CHARS

MAX_LINE = 76  # RFC 2045 6.7: quoted-printable lines at most 76 characters; headers fold there too


def qp_encode_lines(lines: Sequence[bytes]) -> bytes:
    """Lines (UTF-8, without line ends) as the email package encodes a text part: quoted-printable, CRLF.

    The encoder works line by line (a soft line break never spans two lines), so this equals the
    concatenation of each line encoded alone: what lets ``LineCache`` reuse lines across digests.
    """
    return quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), MAX_LINE, "\r\n").encode("ascii")


class _CardLine:
    """Encoded body bytes holding card tokens and no other per-reader value, kept as a bytes ``%`` template:
    per reader ``template % tokens`` writes every token at once (C speed, whatever the number of cards).

    Card tokens have one length and only characters that quoted-printable leaves as they are, so a line keeps
    its encoded layout (soft breaks included) whatever the tokens. Where the tokens sit is found by encoding
    the line twice, with two different stand-ins: the bytes that differ are the tokens' characters, in order.
    A token cut by a soft line break is two stretches, each its own template key. That layout depends only on
    the line with its markers replaced (the same card in another digest has other markers, the same layout):
    ``LineCache`` keeps it. Neighbouring constant bytes join the block (``_merged``), so a digest's body is a
    few such blocks between the lines of the other slots."""

    __slots__ = ("parts", "papers", "template", "cuts")

    def __init__(self, parts: list[tuple[bytes, int, int, int] | bytes], build: bool = True) -> None:
        # parts: constant bytes, or (unused, paper id, start, end) of a stretch of that card's token
        self.parts = parts
        if build:  # a line on its way into a block (``_merged``) is built there, with its neighbours
            self._build()

    def _build(self) -> None:
        out: list[bytes] = []
        papers: dict[int, None] = {}
        cuts: dict[bytes, tuple[int, int, int]] = {}
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part.replace(b"%", b"%%"))
                continue
            _u, pid, start, end = part
            papers[pid] = None
            if start == 0 and end == CARD_TOKEN_CHARS:
                out.append(b"%%(%d)s" % pid)
            else:
                key = b"%d:%d:%d" % (pid, start, end)
                cuts[key] = (pid, start, end)
                out.append(b"%%(%s)s" % key)
        self.template = b"".join(out)
        self.papers = tuple(papers)
        self.cuts = cuts

    @classmethod
    def make(cls, line: str, card_marker: re.Pattern[str], cache: Any) -> "_CardLine | None":
        ids = [int(m) for m in card_marker.findall(line)]
        a_line = card_marker.sub("A" * CARD_TOKEN_CHARS, line).encode("utf-8")
        layout = cache.layouts.get(a_line)
        if layout is None:
            b_line = card_marker.sub("B" * CARD_TOKEN_CHARS, line).encode("utf-8")
            layout = cache.layouts[a_line] = _card_layout(a_line, b_line, len(ids))
        if layout is False:
            return None
        encoded, stretches = layout
        parts: list[tuple[bytes, int, int, int] | bytes] = []
        at = 0
        for k, start, end, offset in stretches:
            parts.append(encoded[at:start])
            parts.append((b"", ids[k], offset, offset + end - start))
            at = end
        parts.append(encoded[at:])
        return cls(parts, build=False)

    def fill(self, tokens: Mapping[bytes, bytes]) -> bytes:
        return self.template % tokens


def _card_layout(a_line: bytes, b_line: bytes, count: int) -> "tuple[bytes, list[tuple[int, int, int, int]]] | bool":
    a = qp_encode_lines([a_line])
    b = qp_encode_lines([b_line])
    if len(a) != len(b):
        return False
    where = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(where) != CARD_TOKEN_CHARS * count:
        return False
    stretches: list[tuple[int, int, int, int]] = []  # (card index, start, end, offset in token)
    for k in range(count):
        chars = where[k * CARD_TOKEN_CHARS:(k + 1) * CARD_TOKEN_CHARS]
        first = 0
        for j in range(1, len(chars) + 1):
            if j == len(chars) or chars[j] != chars[j - 1] + 1:
                stretches.append((k, chars[first], chars[j - 1] + 1, first))
                first = j
    return a, stretches


