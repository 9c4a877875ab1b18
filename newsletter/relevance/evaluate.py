"""Offline evaluation of the per-reader ranking on replayed days. Pure: the caller reads the days and labels.

Simulated readers each have a hidden interest:

- ``topic``: a hand-labelled topic (the paper's label or one of its acceptable labels, from tests/data);
- ``phrase``: a sub-field, a phrase found in the title, keywords or abstract ("speculative decoding");
- ``line``: a research line: the reader first pastes the arXiv ids of the first three papers of a narrow
  phrase (seed signals), then clicks like the others.

The days are replayed in order. Over the first third of them (the signal days) the reader looks at their
digest as ranked for them so far and clicks "more like this" on the first ``MORE_PER_DAY`` matching papers
and, every other day, "fewer like this" on the first non-matching paper of their top five, until they have
given ``n`` signals; readers who cannot give ``n`` signals by then are left out of that row (counted). On every
later day that has a matching paper the reader's model (frozen) ranks the day's papers and we measure:

- P@5: the share of matching papers among the first five they see: the "For you" block when it shows
  (>= 3 signals), else the top of the digest;
- nDCG@10 of the whole digest (binary gains);
- the share of the "For you" picks that come with a "because you liked" reason;

each against the same measure of today's upvote order, averaged per reader, then over readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping, Sequence

from ..classify.text import joined
from .features import Vector
from .model import Signal, train
from .ranking import Candidate, CandidateSet, for_you, rank, today_key

MORE_PER_DAY = 2
SIGNAL_SHARE = 1 / 3
MIN_MATCHES = 3  # an interest needs this many matching papers among the signal days and among the later days
MAX_PREVALENCE = 0.4  # and must not match more than this share of all papers (that is not an interest)
LINE_SEEDS = 3

# Sub-fields chosen before looking at any day (not tuned): a reader's interest is one of these phrases.
PHRASES = (
    "speculative decoding", "mixture of experts", "gaussian splatting", "reinforcement learning",
    "video generation", "image editing", "diffusion", "retrieval augmented", "kv cache", "reward model",
    "world model", "vision language action", "text to speech", "code generation", "multi agent", "long context",
    "quantization", "hallucination", "math reasoning", "gui agent", "jailbreak", "embodied", "tokenizer",
    "autonomous driving", "medical", "chain of thought", "test time scaling", "agentic", "3d generation",
    "knowledge distillation",
)
LINES = ("speculative decoding", "gaussian splatting", "vision language action", "text to speech", "kv cache",
         "image editing", "world model", "gui agent", "jailbreak", "autonomous driving")


@dataclass(frozen=True)
class EvalPaper:
    paper_id: int
    day: str
    vector: Vector
    upvotes: int | None
    feed_rank: int | None
    text: str  # joined tokens of title, keywords and abstract (padded with spaces)
    topics: frozenset[str] = frozenset()

    __hash__ = None  # type: ignore[assignment]

    def candidate(self) -> Candidate:
        return Candidate(self.paper_id, self.vector, self.upvotes, self.feed_rank)


def text_of(title: str, abstract: str, keywords: Sequence[str]) -> str:
    return joined(" . ".join([title, *keywords, abstract]))


@dataclass(frozen=True)
class Interest:
    name: str
    kind: str  # topic, phrase or line
    match: Callable[[EvalPaper], bool] = field(compare=False)


def interests(topics: Iterable[str] = (), phrases: Sequence[str] = PHRASES, lines: Sequence[str] = LINES
              ) -> list[Interest]:
    out = [Interest(t, "topic", lambda p, t=t: t in p.topics) for t in topics]
    for kind, group in (("phrase", phrases), ("line", lines)):
        for ph in group:
            needle = joined(ph)
            out.append(Interest(ph, kind, lambda p, n=needle: n in p.text))
    return out


@dataclass
class ReaderResult:
    interest: Interest
    signals: int
    p5: float
    p5_base: float
    ndcg: float
    ndcg_base: float
    days: int
    reasons: float = 0.0  # share of the For you picks that came with "because you liked"


def _p_at(ids: Sequence[int], relevant: set[int], k: int = 5) -> float:
    return sum(1 for i in ids[:k] if i in relevant) / k


def _ndcg(ids: Sequence[int], relevant: set[int], k: int = 10) -> float:
    dcg = sum(1 / math.log2(n + 2) for n, i in enumerate(ids[:k]) if i in relevant)
    ideal = sum(1 / math.log2(n + 2) for n in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def split_replay(days: Sequence[tuple[str, Sequence[EvalPaper]]]) -> int:
    """How many of the days are signal days (the first third, at least one)."""
    return max(1, math.ceil(len(days) * SIGNAL_SHARE))


def eligible(interest: Interest, days: Sequence[tuple[str, Sequence[EvalPaper]]]) -> bool:
    cut = split_replay(days)
    early = sum(interest.match(p) for _, ps in days[:cut] for p in ps)
    late = sum(interest.match(p) for _, ps in days[cut:] for p in ps)
    total = sum(len(ps) for _, ps in days)
    return early >= MIN_MATCHES and late >= MIN_MATCHES and (early + late) <= MAX_PREVALENCE * total


def simulate(interest: Interest, days: Sequence[tuple[str, Sequence[EvalPaper]]], n: int,
             trainer: Callable = train, ranker: Callable = rank) -> ReaderResult | None:
    """One reader giving ``n`` signals over the signal days, measured on the later days (None: could not)."""
    cut = split_replay(days)
    at = datetime(2000, 1, 1)
    signals: list[Signal] = []
    if interest.kind == "line" and n:
        seeds = [p for _, ps in days[:cut] for p in ps if interest.match(p)][:min(LINE_SEEDS, n)]
        signals += [Signal(p.paper_id, p.vector, "seed", at) for p in seeds]
    for d, (_, papers) in enumerate(days[:cut]):
        if len(signals) >= n:
            break
        model = trainer(signals) if signals else None
        shown = [r.paper_id for r in ranker(model, [p.candidate() for p in papers])]
        by_id = {p.paper_id: p for p in papers}
        done = {s.paper_id for s in signals}
        mores = [i for i in shown if interest.match(by_id[i]) and i not in done][:MORE_PER_DAY]
        for i in mores:
            if len(signals) < n:
                at += timedelta(minutes=1)
                signals.append(Signal(i, by_id[i].vector, "more", at))
        if d % 2 == 1 and len(signals) < n:
            fewer = [i for i in shown[:5] if not interest.match(by_id[i]) and i not in done][:1]
            for i in fewer:
                at += timedelta(minutes=1)
                signals.append(Signal(i, by_id[i].vector, "fewer", at))
    if len(signals) < n:
        return None
    model = trainer(signals)
    liked = [(s.paper_id, "", s.vector) for s in signals if s.kind != "fewer"]
    p5 = p5b = nd = ndb = 0.0
    count = picks = reasons = 0
    for _, papers in days[cut:]:
        relevant = {p.paper_id for p in papers if interest.match(p)}
        if not relevant:
            continue
        base = [p.paper_id for p in sorted(papers, key=lambda p: today_key(p.candidate()))]
        ranked = ranker(model, CandidateSet([p.candidate() for p in papers]), liked=liked)
        ids = [r.paper_id for r in ranked]
        shown = for_you(ranked)
        picks += len(shown)
        reasons += sum(r.reason_paper_id is not None for r in shown)
        block = [r.paper_id for r in shown] or ids
        p5 += _p_at(block, relevant)
        p5b += _p_at(base, relevant)
        nd += _ndcg(ids, relevant)
        ndb += _ndcg(base, relevant)
        count += 1
    if not count:
        return None
    return ReaderResult(interest, n, p5 / count, p5b / count, nd / count, ndb / count, count,
                        reasons / picks if picks else 0.0)


@dataclass
class Row:
    signals: int
    kind: str
    readers: int
    skipped: int
    p5: float
    p5_base: float
    ndcg: float
    ndcg_base: float
    reasons: float = 0.0

    @property
    def p5_ratio(self) -> float:
        return self.p5 / self.p5_base if self.p5_base else math.inf

    @property
    def ndcg_ratio(self) -> float:
        return self.ndcg / self.ndcg_base if self.ndcg_base else math.inf

    def as_dict(self) -> dict[str, object]:
        if not self.readers:
            return {"signals": self.signals, "kind": self.kind, "readers": 0, "skipped": self.skipped}
        return {"signals": self.signals, "kind": self.kind, "readers": self.readers, "skipped": self.skipped,
                "p5": round(self.p5, 4), "p5_upvotes": round(self.p5_base, 4), "p5_ratio": round(self.p5_ratio, 3),
                "ndcg10": round(self.ndcg, 4), "ndcg10_upvotes": round(self.ndcg_base, 4),
                "ndcg10_ratio": round(self.ndcg_ratio, 3), "with_reason": round(self.reasons, 3)}


def evaluate(days: Sequence[tuple[str, Sequence[EvalPaper]]], pool: Sequence[Interest],
             signal_counts: Sequence[int] = (0, 1, 3, 5, 10), trainer: Callable = train,
             ranker: Callable = rank) -> list[Row]:
    """Rows per signal count: one per interest kind and one for all readers together."""
    readers = [i for i in pool if eligible(i, days)]
    rows = []
    for n in signal_counts:
        results = [simulate(i, days, n, trainer, ranker) for i in readers]
        for kind in sorted({i.kind for i in readers}) + ["all"]:
            mine = [(i, r) for i, r in zip(readers, results) if kind in ("all", i.kind)]
            done = [r for _, r in mine if r is not None]
            if not done:
                rows.append(Row(n, kind, 0, len(mine), 0.0, 0.0, 0.0, 0.0, 0.0))
                continue
            rows.append(Row(n, kind, len(done), len(mine) - len(done),
                            *(sum(getattr(r, a) for r in done) / len(done)
                              for a in ("p5", "p5_base", "ndcg", "ndcg_base", "reasons"))))
    return rows


def by_day(papers: Iterable[EvalPaper]) -> list[tuple[str, list[EvalPaper]]]:
    days: dict[str, list[EvalPaper]] = {}
    for p in papers:
        days.setdefault(p.day, []).append(p)
    return sorted(days.items())


def label_topics(rows: Iterable[Mapping[str, str]]) -> dict[str, frozenset[str]]:
    """arXiv id -> the labelled topic and its acceptable alternatives (the CSVs in tests/data)."""
    out: dict[str, frozenset[str]] = {}
    for r in rows:
        extra = {t.strip() for t in (r.get("acceptable") or "").replace(";", "|").split("|") if t.strip()}
        out[r["arxiv_id"]] = frozenset({r["topic"], *extra} - {"other"})
    return out
