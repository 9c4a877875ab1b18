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
BLEND_MAX = 0.75
BLEND_HALF = 2.0  # signals at which the blend is half of BLEND_MAX
REASON_MIN = 0.12  # least cosine between a liked paper and a candidate for "because you liked"
REASONS = 10  # reasons are looked for in the top this many only (a cost bound; the email shows the top)
LIKED_MAX = 30  # the most recent liked papers considered for a reason


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


def rank(model: ReaderModel | None, candidates: Sequence[Candidate], *,
         liked: Sequence[tuple[int, str, Vector]] = ()) -> RankedList:
    """Candidates best first, with a score and, for the top ones, the liked paper they are most like."""
    ordered = sorted(candidates, key=today_key)
    out = RankedList()
    count = model.signal_count if model is not None else 0
    out.signal_count = count
    if not ordered:
        return out
    top_up = math.log1p(max(c[2] or 0 for c in ordered))
    ups = [math.log1p(c[2] or 0) / top_up if top_up else 0.0 for c in ordered]
    if model is None or count == 0 or not model.ids:
        out.extend(Ranked(c[0], round(u, 6), None) for c, u in zip(ordered, ups))
        return out
    raw = [model.score(c[1]) for c in ordered]
    lo, hi = min(raw), max(raw)
    span = hi - lo
    blend = blend_for(count)
    scores = [blend * ((r - lo) / span if span else 0.0) + (1 - blend) * u for r, u in zip(raw, ups)]
    order = sorted(range(len(ordered)), key=lambda n: -scores[n])  # stable: ties keep today's order
    recent = list(liked)[-LIKED_MAX:]
    for pos, n in enumerate(order):
        c = ordered[n]
        reason = _reason(c[0], c[1], recent) if pos < REASONS else None
        out.append(Ranked(c[0], round(scores[n], 6), reason))
    return out


def _reason(paper_id: int, vector: Vector, liked: Sequence[tuple[int, str, Vector]]) -> int | None:
    best, best_id = REASON_MIN, None
    for pid, _title, v in liked:
        s = vector.dot(v) if pid != paper_id else 0.0
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
