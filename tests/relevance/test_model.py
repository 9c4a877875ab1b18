"""The reader model: trained from signals, compact bytes; ranking keeps today's order without signals."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from newsletter.errors import ParseError
from newsletter.relevance import Candidate, ReaderModel, Signal, for_you, rank, train, vectorize
from newsletter.relevance import model as model_mod

T0 = datetime(2025, 6, 1, 8, 0)
DECODING = [vectorize(f"Speculative decoding variant {n}", "A draft model proposes tokens; the target model "
                      "verifies them, speeding up LLM inference.", ["speculative decoding"]) for n in range(6)]
VIDEO = [vectorize(f"Video diffusion model {n}", "We generate long videos with a diffusion transformer.",
                   ["video generation"]) for n in range(6)]


def sig(pid: int, vec, kind: str, minutes: int = 0) -> Signal:
    return Signal(pid, vec, kind, T0 + timedelta(minutes=minutes))


def candidates() -> list[Candidate]:
    rnd = random.Random(7)
    out = []
    for n in range(40):
        vec = (DECODING if n % 4 == 0 else VIDEO)[n % 6]
        out.append(Candidate(100 + n, vec, rnd.choice([None, 0, 3, 3, 10, 50]), rnd.choice([None, 1, 2, 5])))
    return out


def today(cands: list[Candidate]) -> list[int]:
    return [c.paper_id for c in sorted(cands, key=lambda c: (-(c.upvotes or 0), c.feed_rank or 10**9))]


def test_without_a_model_or_signals_the_order_is_exactly_todays() -> None:
    cands = candidates()
    expected = today(cands)
    assert [r.paper_id for r in rank(None, cands)] == expected
    assert [r.paper_id for r in rank(train([]), cands)] == expected
    assert [r.paper_id for r in rank(ReaderModel(), cands, liked=[(1, "x", DECODING[0])])] == expected
    assert all(r.reason_paper_id is None for r in rank(None, cands))
    assert rank(None, []) == [] and for_you(rank(None, cands)) == []
    odd = [Candidate(1, DECODING[0], -3, None), Candidate(2, VIDEO[0], None, -1), Candidate(3, VIDEO[1], 0, 0)]
    assert [r.paper_id for r in rank(None, odd)] == [2, 3, 1]  # as topics.rank_key orders them
    assert {r.paper_id for r in rank(train([sig(9, DECODING[1], "more")]), odd)} == {1, 2, 3}


def test_ties_keep_the_order_given_so_todays_full_key_survives() -> None:
    v = DECODING[0]
    cands = [Candidate(5, v, 10, 2), Candidate(3, v, 10, 2), Candidate(9, v, 10, 2)]
    assert [r.paper_id for r in rank(None, cands)] == [5, 3, 9]
    m = train([sig(1, v, "more")])
    assert [r.paper_id for r in rank(m, cands)] == [5, 3, 9]


def test_signals_lift_matching_papers_above_more_upvoted_ones_and_say_why() -> None:
    signals = [sig(n, DECODING[n], "more", n) for n in range(3)] + [sig(10, VIDEO[0], "fewer", 5)]
    m = train(signals)
    assert m.signal_count == 4 and m.kind == "centroid"
    ranked = rank(m, candidates(), liked=[(n, f"Liked {n}", DECODING[n]) for n in range(3)])
    top = for_you(ranked)
    assert len(top) == 5 and sum(r.paper_id % 4 == 0 for r in top) >= 4
    assert top[0].reason_paper_id in {0, 1, 2}
    video = [r for r in ranked[:10] if r.paper_id % 4]
    assert all(r.reason_paper_id is None for r in video)


def test_the_linear_model_takes_over_from_five_signals() -> None:
    signals = [sig(n, DECODING[n], "more", n) for n in range(4)] + [sig(10 + n, VIDEO[n], "fewer", 9 + n)
                                                                    for n in range(3)]
    m = train(signals)
    assert m.kind == "linear" and m.signal_count == 7
    assert m.score(DECODING[5]) > 0 > m.score(VIDEO[5])


def test_the_latest_explicit_signal_per_paper_wins_and_clicks_count_alone() -> None:
    v = DECODING[0]
    assert train([sig(1, v, "more", 0), sig(1, v, "fewer", 1)]).score(v) < 0
    assert train([sig(1, v, "fewer", 0), sig(1, v, "click", 1)]).score(v) < 0
    m = train([sig(1, v, "click")])
    assert m.signal_count == 1 and m.score(v) > 0
    with pytest.raises(ValueError):
        Signal(1, v, "love", T0)


def test_model_bytes_round_trip_and_stay_small() -> None:
    rnd = random.Random(3)
    words = "attention diffusion agent reasoning retrieval quantization kernel robot speech video graph".split()
    signals = [sig(n, vectorize(" ".join(rnd.sample(words, 4)), " ".join(rnd.choices(words, k=80)) + f" w{n}"),
                   rnd.choice(["more", "fewer", "click", "seed"]), n) for n in range(200)]
    m = train(signals)
    raw = m.to_bytes()
    assert len(raw) < 4096 and len(m.ids) <= model_mod.TOP_K
    back = ReaderModel.from_bytes(raw)
    assert back.signal_count == m.signal_count == 200 and back.kind == m.kind and back.ids == m.ids
    assert max(abs(a - b) for a, b in zip(back.weights, m.weights)) < 2e-3
    assert ReaderModel.from_bytes(train([]).to_bytes()).signal_count == 0
    for bad in (b"", b"\x09" + raw[1:], raw[:-2], b"\x01\x07" + raw[2:]):
        with pytest.raises(ParseError):
            ReaderModel.from_bytes(bad)


def test_signals_with_empty_vectors_count_for_nothing_and_never_raise() -> None:
    empty = vectorize("", "")
    m = train([sig(1, empty, "more"), sig(2, empty, "fewer")])
    assert m.signal_count == 0
    assert [r.paper_id for r in rank(m, candidates())] == today(candidates())


def test_for_you_needs_the_minimum_signals() -> None:
    signals = [sig(n, DECODING[n], "more", n) for n in range(2)]
    ranked = rank(train(signals), candidates())
    assert for_you(ranked) == [] and len(for_you(ranked, min_signals=2)) == 5
    assert for_you(ranked, k=3, signal_count=9) == ranked[:3]


def test_a_shared_candidate_set_ranks_like_the_plain_list() -> None:
    from newsletter.relevance import CandidateSet
    cands = candidates()
    prepared = CandidateSet(cands)
    assert len(prepared) == len(cands) and prepared[0] in cands
    liked = [(n, f"Liked {n}", DECODING[n]) for n in range(3)]
    for signals in ([], [sig(1, DECODING[0], "more")], [sig(n, DECODING[n], "more", n) for n in range(6)]
                    + [sig(9, VIDEO[1], "fewer", 9)]):
        m = train(signals)
        assert [r.paper_id for r in rank(m, prepared, liked=liked)] == [r.paper_id for r in rank(m, cands, liked=liked)]


def test_a_reason_is_a_similar_liked_paper_never_the_paper_itself() -> None:
    protein = vectorize("Protein folding with graph networks", "We predict protein structures from sequences.")
    m = train([sig(1, DECODING[0], "more"), sig(2, protein, "more")])
    cands = [Candidate(1, DECODING[0], 5, 1), Candidate(7, DECODING[1], 5, 2), Candidate(8, VIDEO[1], 5, 3)]
    liked = [(1, "Decoding", DECODING[0]), (2, "Protein", protein)]
    assert {r.paper_id: r.reason_paper_id for r in rank(m, cands, liked=liked)} == {1: None, 7: 1, 8: None}
