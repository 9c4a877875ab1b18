"""Order one reader's candidate papers: their model blended with upvotes; today's order when they have no model.

Today's order (``newsletter.topics.rank_key``) is most upvotes first, then best feed rank, then more recent,
then id. :func:`rank` sorts stably by (upvotes desc, feed rank): pass the candidates in today's order and,
without signals, the result is exactly today's order. With signals each candidate scores

    blend * model score (cosine-like, scaled to [0, 1] over the candidates) + (1 - blend) * upvote score

where the upvote score is log(1 + upvotes) / log(1 + most upvotes), and ``blend`` grows with the number of
signals (``blend_for``). Ties keep today's order.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from .features import Vector
from .model import ReaderModel

NO_RANK = 10**9
BLEND_MAX = 0.9
BLEND_HALF = 1.0  # signals at which the blend is half of BLEND_MAX
REASON_MIN = 0.04  # least shared weight for "because you liked": ~ the 99th percentile between papers of
# different labelled topics on the dev days (the median between papers of one topic is 0.007)
REASONS = 5  # reasons are looked for in the top this many only (a cost bound; the email shows the top)
SCORE_TERMS = 128  # a candidate is scored on its heaviest this many terms (the cost of a reader)
MIN_WEIGHT = 0.03  # and only on terms of at least this weight
LIKED_MAX = 20  # the most recent liked papers considered for a reason


class Candidate(NamedTuple):
    paper_id: int
    vector: Vector
    upvotes: int | None
    feed_rank: int | None


class Ranked(NamedTuple):
    paper_id: int
    score: float
    reason_paper_id: int | None


class RankedList(list):  # type: ignore[type-arg]
    """A list of :class:`Ranked` that remembers how many signals the reader's model had."""

    signal_count: int = 0


def today_key(c: Sequence[object]) -> tuple[int, int]:
    upvotes, feed_rank = c[2], c[3]
    return (-(upvotes or 0), feed_rank if feed_rank is not None else NO_RANK)  # type: ignore[operator]


def blend_for(signal_count: int) -> float:
    return BLEND_MAX * signal_count / (signal_count + BLEND_HALF) if signal_count > 0 else 0.0


class CandidateSet(Sequence[Candidate]):
    """Candidates prepared once for many readers: in today's order, with their upvote scores and an inverted
    index (term -> positions and weights), so that scoring one reader costs a pass over their model's terms
    (a few hundred) rather than over every candidate's terms. :func:`rank` builds one when given a plain
    sequence; build it yourself to share it across the readers of one digest."""

    __slots__ = ("ordered", "ups", "index")

    def __init__(self, candidates: Sequence[Candidate], *, indexed: bool = True) -> None:
        self.ordered: list[Candidate] = sorted(candidates, key=today_key)
        ups = [math.log1p(max(c[2] or 0, 0)) for c in self.ordered]  # a negative count is taken as none
        top_up = max(ups, default=0.0)
        self.ups = [u / top_up if top_up else 0.0 for u in ups]
        self.index: dict[int, list[tuple[int, float]]] | None = None
        if indexed:
            index: dict[int, list[tuple[int, float]]] = {}
            for n, c in enumerate(self.ordered):
                for i, x in c[1].head(SCORE_TERMS)[1].items():
                    if x >= MIN_WEIGHT:
                        index.setdefault(i, []).append((n, x))
            self.index = index

    def __len__(self) -> int:
        return len(self.ordered)

    def __getitem__(self, n):  # type: ignore[no-untyped-def, override]
        return self.ordered[n]

    def scores(self, model: ReaderModel) -> list[float]:
        if self.index is None:
            return [model.score_head(c[1].head(SCORE_TERMS), MIN_WEIGHT) for c in self.ordered]
        out = [0.0] * len(self.ordered)
        get = self.index.get
        for i, w in zip(model.ids, model.weights):
            postings = get(i)
            if postings:
                for n, x in postings:
                    out[n] += w * x
        return out


def rank(model: ReaderModel | None, candidates: Sequence[Candidate], *,
         liked: Sequence[tuple[int, str, Vector]] = ()) -> RankedList:
    """Candidates best first, with a score and, for the top ``REASONS``, the liked paper they are most like.

    ``candidates`` may be a :class:`CandidateSet` (prepared once for many readers) or any sequence."""
    prepared = candidates if isinstance(candidates, CandidateSet) else CandidateSet(candidates, indexed=False)
    ordered, ups = prepared.ordered, prepared.ups
    out = RankedList()
    count = model.signal_count if model is not None else 0
    out.signal_count = count
    if not ordered:
        return out
    if model is None or count == 0 or not model.ids:
        out.extend(Ranked(c[0], round(u, 6), None) for c, u in zip(ordered, ups))
        return out
    raw = prepared.scores(model)
    lo, hi = min(raw), max(raw)
    span = hi - lo
    blend = blend_for(count)
    scores = [blend * ((r - lo) / span if span else 0.0) + (1 - blend) * u for r, u in zip(raw, ups)]
    order = sorted(range(len(ordered)), key=lambda n: -scores[n])  # stable: ties keep today's order
    recent = [(pid, *v.head()) for pid, _title, v in list(liked)[-LIKED_MAX:] if v]
    for pos, n in enumerate(order):
        c = ordered[n]
        reason = _reason(c[0], c[1], recent) if pos < REASONS and recent else None
        out.append(Ranked(c[0], round(scores[n], 6), reason))
    return out


def _reason(paper_id: int, vector: Vector, liked: Sequence[tuple[int, frozenset[int], dict[int, float]]]
            ) -> int | None:
    """The liked paper most like this one, by their shared weight over the liked paper's heaviest terms."""
    best, best_id = REASON_MIN, None
    x = vector.as_map()
    keys = vector.keys()
    for pid, head, weights in liked:
        if pid == paper_id:
            continue
        shared = head.intersection(keys)
        if shared:
            s = sum(x[i] * weights[i] for i in shared)
            if s > best:
                best, best_id = s, pid
    return best_id


def for_you(ranked: Sequence[Ranked], k: int = 5, min_signals: int = 3, *, signal_count: int | None = None
            ) -> list[Ranked]:
    """The top ``k`` for the "For you" block; empty when the reader has fewer than ``min_signals`` signals
    (``signal_count``, by default the one :func:`rank` recorded on its result)."""
    count = signal_count if signal_count is not None else getattr(ranked, "signal_count", 0)
    if count < min_signals or k <= 0:
        return []
    return list(ranked[:k])
