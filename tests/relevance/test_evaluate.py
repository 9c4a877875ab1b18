"""The offline evaluation: its measures on hand-made days, and a small run on the real days with a floor.

The real days are read in place (``$NEWSLETTER_REAL_DATA/hf-api-days``, else ``../shared/data/real``); that
test skips when they are absent. The model was tuned on the dev days only; the test days are checked with the
same floor.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from newsletter import labelled
from newsletter.relevance import evaluate as ev
from newsletter.relevance import train, vectorize

from support import ROOT

DAYS = labelled.real_data_folder(ROOT) / "hf-api-days"
needs_real = pytest.mark.skipif(not DAYS.is_dir(), reason=f"real data folder {DAYS} is absent "
                                "(set NEWSLETTER_REAL_DATA to the folder holding hf-api-days/)")

TEXTS = [("Speculative decoding with a draft model", "speculative decoding draft tokens verified by the target"),
         ("Video diffusion transformers", "long video generation with diffusion"),
         ("Robot manipulation policies", "a vision language action model for robots"),
         ("Math reasoning with RL", "reinforcement learning improves math reasoning"),
         ("Gaussian splatting scenes", "3d gaussian splatting reconstruction")]


def synthetic_days(n_days: int = 9) -> list[tuple[str, list[ev.EvalPaper]]]:
    papers = []
    pid = 0
    for d in range(n_days):
        for k, (title, abstract) in enumerate(TEXTS * 2):
            pid += 1
            # the speculative-decoding papers are the least upvoted: the upvote order puts them last
            upvotes = 1 if k % 5 == 0 else 50 + k
            papers.append(ev.EvalPaper(pid, f"2025-01-{d + 1:02d}", vectorize(f"{title} {pid}", abstract), upvotes,
                                       k + 1, ev.text_of(title, abstract, ())))
    return ev.by_day(papers)


def test_precision_and_ndcg_are_the_textbook_ones() -> None:
    assert ev._p_at([1, 2, 3, 4, 5, 6], {2, 6}) == 0.2
    assert ev._ndcg([2, 1], {2}) == 1.0
    assert math.isclose(ev._ndcg([1, 2], {2}), 1 / math.log2(3))
    assert ev._ndcg([1, 2], set()) == 0.0


def test_a_reader_who_signals_gets_their_papers_first_and_zero_signals_is_the_upvote_order() -> None:
    days = synthetic_days()
    interest = ev.interests(phrases=["speculative decoding"], lines=())[0]
    assert ev.eligible(interest, days)
    none = ev.simulate(interest, days, 0)
    assert none is not None and none.p5 == none.p5_base and none.ndcg == none.ndcg_base and none.days == 6
    five = ev.simulate(interest, days, 5)
    assert five is not None and math.isclose(five.p5, 0.4) and five.p5_base == 0.0 and math.isclose(five.ndcg, 1.0)
    assert ev.simulate(interest, days, 50) is None  # not enough matching papers in the signal days


def test_rows_come_per_kind_and_for_everyone_and_a_research_line_starts_from_seeds() -> None:
    days = synthetic_days()
    pool = ev.interests(phrases=["speculative decoding", "video generation"], lines=["gaussian splatting"])
    kinds: list[list[str]] = []

    def trainer(signals, previous=None):  # the real train, recording the signals it was given
        kinds.append([s.kind for s in signals])
        return train(signals, previous)

    rows = ev.evaluate(days, pool, (0, 5), trainer=trainer)
    assert [(r.signals, r.kind) for r in rows] == [(0, "line"), (0, "phrase"), (0, "all"), (5, "line"),
                                                    (5, "phrase"), (5, "all")]
    assert all(r.p5_ratio == 1.0 for r in rows[:3])
    assert rows[-1].readers == 3 and rows[-1].p5 > rows[-1].p5_base
    assert ["seed"] * 3 + ["more", "fewer"] in kinds  # the research-line reader pasted three arXiv ids first
    assert ["more"] * 4 + ["fewer"] in kinds  # two "more" a day, and a "fewer" every other day
    assert rows[3].readers == 1 and set(rows[3].as_dict()) >= {"p5", "p5_upvotes", "p5_ratio", "ndcg10"}


def test_topic_labels_take_the_label_and_its_alternatives_but_not_other() -> None:
    got = ev.label_topics([{"arxiv_id": "1", "topic": "agents", "acceptable": "code;reasoning"},
                           {"arxiv_id": "2", "topic": "other", "acceptable": ""}])
    assert got == {"1": frozenset({"agents", "code", "reasoning"}), "2": frozenset()}


@needs_real
def test_on_the_real_days_five_signals_at_least_double_the_upvote_order_on_dev_and_test() -> None:
    spec = importlib.util.spec_from_file_location("bench_relevance", ROOT / "bench" / "bench_relevance.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_relevance"] = bench
    spec.loader.exec_module(bench)
    for split in ("dev", "test"):
        rows = {(r.signals, r.kind): r for r in bench.run_eval(split, [0, 5])}
        zero, five = rows[(0, "all")], rows[(5, "all")]
        assert zero.readers >= 15 and zero.p5 == zero.p5_base and zero.ndcg == zero.ndcg_base, split
        assert five.readers >= 15, split
        # measured 2.29x (dev) and 2.63x (test) when this test was written; the goal is 2x
        assert five.p5_ratio >= 2.0 and five.ndcg_ratio >= 1.8, (split, five.as_dict())
