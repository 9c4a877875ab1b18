"""A reader's model: what they asked for more and fewer of, as a sparse weight vector over paper terms. Pure.

- Below ``LINEAR_FROM`` signals: a centroid (Rocchio) of the positives minus a share of the negatives, each
  term weighted by the share of the positives that hold it (what all the liked papers share is the interest).
- From ``LINEAR_FROM`` signals on: an L2-regularised logistic model, a few epochs of full-batch gradient
  descent started from and pulled toward that centroid (so a handful of signals cannot swing it far), the
  negatives being the reader's "fewer" and a pseudo-negative: an average paper, from the shipped vocabulary's
  document frequencies (terms every paper has are not an interest).

Each paper counts once: its latest "more"/"fewer"/"seed", or a click when there is nothing else; signals
whose paper has an empty vector count for nothing (``signal_count`` counts the ones used).

Either way the weights are cut to the ``TOP_K`` largest and scaled to unit length: the score of a paper is then
a cosine-like number in [-1, 1], comparable across readers and models. ``to_bytes`` stores the ids as uint32
and the weights as float16, then the ids of the ``LIKED_MAX`` most recent positives (what "Because you liked …"
names, so the send needs nothing but the model): under 4 KB. Version 1 models (without them) still load.
"""

from __future__ import annotations

import math
import struct
from array import array
from operator import mul
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from ..errors import ParseError
from .features import Sparse, Vector

MODEL_VERSION = 2
LIKED_MAX = 20  # the most recent positives kept with the model, for the reasons
_LIKED = struct.Struct("<H")
KIND_WEIGHT = {"more": 1.0, "fewer": -1.0, "click": 0.3, "seed": 1.0}
LINEAR_FROM = 5
TOP_K = 400
NEGATIVE_SHARE = 0.25
CONSISTENCY = 1.0  # weight of a term times (share of the positives holding it) ** CONSISTENCY
_HEADER = struct.Struct("<BBIH")  # version, kind (0 centroid, 1 linear), signal count, number of weights
KINDS = ("centroid", "linear")
EPOCHS = 15
LEARNING_RATE = 2.0
L2 = 0.3
PRIOR_SCALE = 4.0
BACKGROUND_WEIGHT = 0.3
BACKGROUND_TERMS = 128
LINEAR_TERMS = 600  # the linear model learns over the prior's heaviest terms
MAX_SIGNALS = 200  # the most recent this many count


@dataclass(frozen=True)
class Signal:
    """One thing a reader said about a paper: ``kind`` is "more", "fewer", "click" or "seed"."""

    paper_id: int
    vector: Vector
    kind: str
    at: datetime

    def __post_init__(self) -> None:
        if self.kind not in KIND_WEIGHT:
            raise ValueError(f"Unknown signal kind {self.kind!r}: use one of {', '.join(KIND_WEIGHT)}.")

    __hash__ = None  # type: ignore[assignment]


class ReaderModel(Sparse):
    """Sparse unit weights (``ids`` sorted uint32, ``weights`` float), how many signals made them, and the
    reader's most recent positives (``liked``: paper ids, oldest first)."""

    __slots__ = ("signal_count", "kind", "liked")

    def __init__(self, ids: Sequence[int] = (), weights: Sequence[float] = (), signal_count: int = 0,
                 kind: str = "centroid", liked: Sequence[int] = ()) -> None:
        super().__init__(ids, weights, "model")
        if kind not in KINDS:
            raise ValueError(f"Unknown model kind {kind!r}.")
        self.signal_count = int(signal_count)
        self.kind = kind
        self.liked = tuple(int(i) for i in liked)[-LIKED_MAX:]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ReaderModel) and self.ids == other.ids and self.weights == other.weights
                and self.signal_count == other.signal_count and self.kind == other.kind
                and self.liked == other.liked)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReaderModel({self.kind}, {self.signal_count} signals, {len(self.ids)} weights)"

    def score(self, vector: Vector) -> float:
        w, x = self.as_map(), vector.as_map()
        return sum(w[i] * x[i] for i in vector.keys().intersection(self.keys()))

    def score_head(self, head: tuple[frozenset[int], dict[int, float]], least: float = 0.0) -> float:
        """The score over some of a vector's terms (``Vector.head``), those weighing at least ``least``."""
        w, x = self.as_map(), head[1]
        return sum(w[i] * x[i] for i in head[0].intersection(self.keys()) if x[i] >= least)

    def to_bytes(self) -> bytes:
        n = len(self.ids)
        return (_HEADER.pack(MODEL_VERSION, KINDS.index(self.kind), self.signal_count, n) + self.ids.tobytes()
                + struct.pack(f"<{n}e", *self.weights) + _LIKED.pack(len(self.liked))
                + array("I", self.liked).tobytes())

    @classmethod
    def from_bytes(cls, raw: bytes) -> "ReaderModel":
        if len(raw) < _HEADER.size:
            raise ParseError(f"A reader model needs at least {_HEADER.size} bytes, got {len(raw)}.")
        version, kind, count, n = _HEADER.unpack_from(raw)
        if version not in (1, MODEL_VERSION):
            raise ParseError(f"Reader model version {version} is not known (this code reads 1 and {MODEL_VERSION}).")
        end = _HEADER.size + 6 * n
        liked = array("I")
        if version >= 2 and kind < len(KINDS) and len(raw) >= end + _LIKED.size:
            (m,) = _LIKED.unpack_from(raw, end)
            if len(raw) == end + _LIKED.size + 4 * m:
                liked.frombytes(raw[end + _LIKED.size:])
                end = len(raw)
        if kind >= len(KINDS) or len(raw) != end:
            raise ParseError(f"A reader model of {n} weights needs {end} bytes, got {len(raw)}.")
        ids = array("I")
        ids.frombytes(raw[_HEADER.size:_HEADER.size + 4 * n])
        return cls(ids, struct.unpack_from(f"<{n}e", raw, _HEADER.size + 4 * n), count, KINDS[kind], liked)


def current(signals: Sequence[Signal]) -> list[tuple[Vector, float]]:
    """One (vector, weight) per paper: the latest "more"/"fewer"/"seed" wins; a click counts only alone."""
    return [(s.vector, KIND_WEIGHT[s.kind]) for s in _current(signals)]


def liked_ids(signals: Sequence[Signal]) -> list[int]:
    """The papers the reader's current signals count as positive, oldest first (the last ``LIKED_MAX``)."""
    return [s.paper_id for s in _current(signals) if KIND_WEIGHT[s.kind] > 0][-LIKED_MAX:]


def _current(signals: Sequence[Signal]) -> list[Signal]:
    explicit: dict[int, Signal] = {}
    clicks: dict[int, Signal] = {}
    for s in sorted(signals, key=lambda s: s.at):
        (clicks if s.kind == "click" else explicit)[s.paper_id] = s
    chosen = list(explicit.values()) + [s for pid, s in clicks.items() if pid not in explicit]
    chosen.sort(key=lambda s: s.at)
    return [s for s in chosen if s.vector][-MAX_SIGNALS:]


def _centroid(pairs: Sequence[tuple[Vector, float]]) -> dict[int, float]:
    pos = [(v, w) for v, w in pairs if w > 0]
    neg = [(v, -w) for v, w in pairs if w < 0]
    out: dict[int, float] = {}
    held: dict[int, float] = {}
    for group, scale in ((pos, 1.0), (neg, -NEGATIVE_SHARE)):
        total = sum(w for _, w in group)
        for v, w in group:
            for i, x in zip(v.ids, v.weights):
                out[i] = out.get(i, 0.0) + scale * w * x / total
                if scale > 0:
                    held[i] = held.get(i, 0.0) + w / total
    if CONSISTENCY and pos:
        for i, share in held.items():
            out[i] *= share ** CONSISTENCY
    return out


def _background() -> Vector:
    """What an average paper looks like over the shipped vocabulary (df-weighted idf, its top terms): the
    pseudo-negative of the linear model, so that terms every paper has do not count as the reader's interest."""
    global _BACKGROUND
    if _BACKGROUND is None:
        from .vocab import shipped

        vocab = shipped()
        top = sorted(((d / vocab.docs * idf, n) for n, (d, idf) in enumerate(zip(vocab.df, vocab.idf))),
                     reverse=True)[:BACKGROUND_TERMS]
        norm = math.sqrt(sum(w * w for w, _ in top)) or 1.0
        top.sort(key=lambda t: t[1])
        _BACKGROUND = Vector((n for _, n in top), (w / norm for w, _ in top))
    return _BACKGROUND


_BACKGROUND: Vector | None = None


def _linear(pairs: Sequence[tuple[Vector, float]], prior: dict[int, float]) -> dict[int, float]:
    """L2-regularised logistic regression (full-batch gradient descent), from and toward the scaled prior.

    It works over the ``LINEAR_TERMS`` heaviest terms of the prior only (the model keeps ``TOP_K`` anyway),
    with the weights in a list and each example's terms as positions in it, so an epoch is one pass over the
    examples' terms."""
    space = sorted(prior, key=lambda i: -abs(prior[i]))[:LINEAR_TERMS]
    where = {t: n for n, t in enumerate(space)}
    norm = math.sqrt(sum(prior[t] ** 2 for t in space)) or 1.0
    w0 = [PRIOR_SCALE * prior[t] / norm for t in space]
    examples = []
    vectors = [(v, 1.0 if wt > 0 else 0.0, abs(wt)) for v, wt in pairs]
    positives = sum(sw for _, y, sw in vectors if y)
    if BACKGROUND_WEIGHT and positives:
        vectors.append((_background(), 0.0, BACKGROUND_WEIGHT * positives))
    total = sum(sw for _, _, sw in vectors)
    for v, y, sw in vectors:
        kept = [(where[i], x) for i, x in zip(v.ids, v.weights) if i in where]
        if kept:
            examples.append(([n for n, _ in kept], [x for _, x in kept], y, sw / total))
    w = list(w0)
    get = w.__getitem__
    step, pull = LEARNING_RATE, LEARNING_RATE * L2
    for _ in range(EPOCHS):
        grad = [0.0] * len(w)
        for idx, xs, y, sw in examples:
            z = sum(map(mul, map(get, idx), xs))
            g = sw * (y - 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))))
            for n, x in zip(idx, xs):
                grad[n] += g * x
        w[:] = [wi + step * gi - pull * (wi - w0i) for wi, gi, w0i in zip(w, grad, w0)]
    return dict(zip(space, w))


def _top_unit(weights: dict[int, float], signal_count: int, kind: str, liked: Sequence[int] = ()) -> ReaderModel:
    top = sorted((kv for kv in weights.items() if kv[1]), key=lambda kv: -abs(kv[1]))[:TOP_K]
    norm = math.sqrt(sum(w * w for _, w in top))
    if not norm:
        return ReaderModel((), (), signal_count, kind, liked)
    top.sort()
    return ReaderModel([i for i, _ in top], [w / norm for _, w in top], signal_count, kind, liked)


def train(signals: Sequence[Signal], previous: ReaderModel | None = None) -> ReaderModel:
    """The reader's model from their signals (the ``MAX_SIGNALS`` most recent papers).

    Training is from the signals alone, deterministic and cheap (a few ms: ``bench_relevance.py --cost``), so
    the caller retrains a reader only when their signals change; ``previous`` (their stored model) is kept as
    it is when there is nothing to learn from."""
    pairs = current(signals)
    count = len(pairs)
    if previous is not None and previous.signal_count == count == 0:
        return previous
    weights = _centroid(pairs)
    liked = liked_ids(signals)
    if count < LINEAR_FROM:
        return _top_unit(weights, count, "centroid", liked)
    return _top_unit(_linear(pairs, weights), count, "linear", liked)
