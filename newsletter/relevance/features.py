"""Paper vectors for the per-reader model: compact, L2-normalised TF-IDF over a shipped vocabulary. Pure.

A paper's terms are its words and adjacent word pairs (the same tokeniser and stop words as the topic model),
from the title (counted twice: a title says what a paper is about), the feed's ``ai_keywords`` and the
abstract. Term frequencies are sublinear (1 + log tf), weighted by the idf of the shipped vocabulary
(``vocab.json.gz``, built from the dev days only: ``python -m newsletter.relevance.vocab``); terms the
vocabulary does not know are dropped. Only the ``MAX_TERMS`` heaviest terms are kept, so a vector is small
and a dot product cheap, then the vector is scaled to unit length.

A :class:`Vector` is two parallel arrays (sorted term ids, float32 weights) with ``to_bytes``/``from_bytes``.
"""

from __future__ import annotations

import math
import struct
from array import array
from typing import Iterable, Sequence

from ..classify.learned import STOPWORDS
from ..classify.text import tokens
from ..errors import ParseError

MAX_TERMS = 128
TITLE_REPEAT = 2
KEYWORD_REPEAT = 1
HEAD_TERMS = 24
VECTOR_VERSION = 1
_HEADER = struct.Struct("<BH")  # version, number of terms


class Sparse:
    """Sparse weights: ``ids`` (sorted term ids, array('I')) and ``weights`` (array('f')), with the cached
    {id: weight} map and id set that dot products use. The base of ``Vector`` and of ``model.ReaderModel``."""

    __slots__ = ("ids", "weights", "_map", "_keys")

    def __init__(self, ids: Iterable[int], weights: Iterable[float], what: str) -> None:
        self.ids = array("I", ids)
        self.weights = array("f", weights)
        if len(self.ids) != len(self.weights):
            raise ValueError(f"a {what} needs one weight per term id")
        self._map: dict[int, float] | None = None
        self._keys: frozenset[int] | None = None

    def as_map(self) -> dict[int, float]:
        if self._map is None:
            self._map = dict(zip(self.ids, self.weights))
        return self._map

    def keys(self) -> frozenset[int]:
        if self._keys is None:
            self._keys = frozenset(self.ids)
        return self._keys


class Vector(Sparse):
    """A sparse unit vector: ``ids`` (sorted term ids, array('I')) and ``weights`` (array('f')).

    Not hashable (it is data, compared by value). ``as_map()`` gives a cached {id: weight} dict for dot
    products.
    """

    __slots__ = ("_head",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, ids: Iterable[int] = (), weights: Iterable[float] = ()) -> None:
        super().__init__(ids, weights, "vector")
        self._head: dict[int, tuple[frozenset[int], dict[int, float]]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __bool__(self) -> bool:
        return len(self.ids) > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vector) and self.ids == other.ids and self.weights == other.weights

    def __repr__(self) -> str:
        return f"Vector({len(self.ids)} terms)"

    def head(self, n: int = 0) -> tuple[frozenset[int], dict[int, float]]:
        """The ``n`` (default ``HEAD_TERMS``) heaviest terms: ids, and id -> weight (cached)."""
        n = n or HEAD_TERMS
        if self._head is None:
            self._head = {}
        got = self._head.get(n)
        if got is None:
            top = sorted(zip(self.weights, self.ids), reverse=True)[:n]
            got = self._head[n] = (frozenset(i for _, i in top), {i: w for w, i in top})
        return got

    def dot(self, other: "Vector") -> float:
        a, b = self.as_map(), other.as_map()
        return sum(a[i] * b[i] for i in self.keys().intersection(other.keys()))

    def to_bytes(self) -> bytes:
        return _HEADER.pack(VECTOR_VERSION, len(self.ids)) + self.ids.tobytes() + self.weights.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Vector":
        if len(raw) < _HEADER.size:
            raise ParseError(f"A paper vector needs at least {_HEADER.size} bytes, got {len(raw)}.")
        version, n = _HEADER.unpack_from(raw)
        if version != VECTOR_VERSION:
            raise ParseError(f"Paper vector version {version} is not known (this code reads {VECTOR_VERSION}).")
        if len(raw) != _HEADER.size + 8 * n:
            raise ParseError(f"A paper vector of {n} terms needs {_HEADER.size + 8 * n} bytes, got {len(raw)}.")
        v = cls()
        v.ids.frombytes(raw[_HEADER.size:_HEADER.size + 4 * n])
        v.weights.frombytes(raw[_HEADER.size + 4 * n:])
        return v


def _content(words: Sequence[str]) -> list[str]:
    return [t for t in words if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


def terms(title: str, abstract: str = "", keywords: Sequence[str] = ()) -> dict[str, int]:
    """Term counts of one paper (words and adjacent pairs; the vocabulary builder uses the same function)."""
    counts: dict[str, int] = {}

    def add(words: Sequence[str], times: int = 1) -> None:
        for w in words:
            counts[w] = counts.get(w, 0) + times
        for a, b in zip(words, words[1:]):
            pair = f"{a} {b}"
            counts[pair] = counts.get(pair, 0) + times

    add(_content(tokens(title or "")), TITLE_REPEAT)
    for k in keywords or ():
        add(_content(tokens(k or "")), KEYWORD_REPEAT)
    add(_content(tokens(abstract or "")))
    return counts


def vectorize(title: str, abstract: str = "", keywords: Sequence[str] = (), *, vocabulary: "object | None" = None
              ) -> Vector:
    """The unit TF-IDF vector of a paper. Never raises on empty or odd text: it gives an empty vector."""
    from .vocab import Vocabulary, shipped

    vocab: Vocabulary = vocabulary if vocabulary is not None else shipped()  # type: ignore[assignment]
    weighted: list[tuple[float, int]] = []
    for term, tf in terms(title, abstract, keywords).items():
        tid = vocab.ids.get(term)
        if tid is not None:
            weighted.append(((1.0 + math.log(tf)) * vocab.idf[tid], tid))
    if len(weighted) > MAX_TERMS:
        weighted.sort(key=lambda t: (-t[0], t[1]))
        del weighted[MAX_TERMS:]
    norm = math.sqrt(sum(w * w for w, _ in weighted))
    if not norm:
        return Vector()
    weighted.sort(key=lambda t: t[1])
    return Vector((t for _, t in weighted), (w / norm for w, _ in weighted))
