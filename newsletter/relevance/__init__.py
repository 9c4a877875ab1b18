"""Per-reader relevance: paper vectors, a small model per reader from their signals, and the blended order.

Pure code (no database, HTTP or file access; the shipped vocabulary is read once). The API:

- ``vectorize(title, abstract, keywords) -> Vector``: unit TF-IDF vector over the shipped vocabulary;
  ``Vector.to_bytes()`` / ``Vector.from_bytes()``.
- ``Signal(paper_id, vector, kind, at)``: kind "more" (+1), "fewer" (-1), "click" (+0.3), "seed" (+1).
- ``train(signals, previous=None) -> ReaderModel``: centroid below 5 signals, regularised linear model above;
  ``ReaderModel.to_bytes()`` / ``from_bytes()`` (< 4 KB), ``.signal_count``.
- ``rank(model, candidates, liked=()) -> list[Ranked]``: ``Candidate(paper_id, vector, upvotes, feed_rank)``
  in, ``Ranked(paper_id, score, reason_paper_id)`` out; no model or no signals gives today's order exactly.
  Pass a ``CandidateSet(candidates)`` built once per digest to share its index across readers (cheaper).
- ``for_you(ranked, k=5, min_signals=3)``: the "For you" block, empty below ``min_signals``.
"""

from .features import Vector, vectorize
from .model import KIND_WEIGHT, ReaderModel, Signal, train
from .ranking import Candidate, CandidateSet, Ranked, RankedList, for_you, rank, today_key

_FROM_VOCAB = ("Vocabulary", "is_test_day", "split_days")


def __getattr__(name: str) -> object:
    # Not imported eagerly, so that ``python -m newsletter.relevance.vocab`` runs the module once, cleanly.
    if name in _FROM_VOCAB:
        from . import vocab

        return getattr(vocab, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KIND_WEIGHT", "Candidate", "CandidateSet", "Ranked", "RankedList", "ReaderModel", "Signal", "Vector", "Vocabulary",
           "for_you", "is_test_day", "rank", "split_days", "today_key", "train", "vectorize"]
