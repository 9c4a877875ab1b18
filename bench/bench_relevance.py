"""The per-reader ranking measured offline on the real Daily Papers days, and what it costs per reader.

    python bench/bench_relevance.py [--split dev|test|both] [--signals 0,1,3,5,10] [--json]
    python bench/bench_relevance.py --cost [--readers 2000] [--candidates 100]

Evaluation (see ``newsletter.relevance.evaluate`` for the simulated readers): the real days
(``$NEWSLETTER_REAL_DATA/hf-api-days``, else ``../shared/data/real/hf-api-days``) are split as for the topic
labels: every fourth day from the first is a test day. Dev and test are replayed separately, each in day
order, each paper on the first day it trended; topic interests come from tests/data/topic_labels_real_*.csv.
Tuning happens on dev only; test is reported beside it. The table gives, per number of signals and kind of
interest, P@5 of what the reader sees first ("For you" from 3 signals) and nDCG@10 of the whole digest, and
both for today's upvote order on the same reader-days, with the ratio; "why" is the share of For you picks
that come with a "because you liked" reason.

Cost: ``--cost`` times ``train`` and ``rank`` per reader (this process's CPU time, time.process_time) for
readers with 5, 20 and 50 signals over the real papers, ranking ``--candidates`` papers each, and prints µs
per reader: with one ``CandidateSet`` shared by the readers (built once per digest) and with a plain list per
reader; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.relevance import CandidateSet, Signal, for_you, rank, split_days, train, vectorize  # noqa: E402
from newsletter.labelled import real_data_folder  # noqa: E402
from newsletter.relevance import evaluate as ev  # noqa: E402
from newsletter.relevance.vocab import day_papers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"dev": ROOT / "tests" / "data" / "topic_labels_real_dev.csv",
          "test": ROOT / "tests" / "data" / "topic_labels_real_test.csv"}


def days_folder() -> Path:
    return real_data_folder(ROOT) / "hf-api-days"


def load(split: str, folder: Path | None = None) -> tuple[list[tuple[str, list[ev.EvalPaper]]], list[str]]:
    """(days of EvalPapers, the labelled topics) of one split."""
    folder = folder or days_folder()
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SystemExit(f"error: {folder}: no day files (set NEWSLETTER_REAL_DATA to the folder holding "
                         "hf-api-days/)")
    dev, test = split_days(files)
    labels = ev.label_topics(csv.DictReader(LABELS[split].open(encoding="utf-8")))
    papers = []
    pid = 0
    for day, ps in day_papers(dev if split == "dev" else test):
        for n, p in enumerate(ps, 1):
            pid += 1
            papers.append(ev.EvalPaper(pid, day, vectorize(p.title, p.abstract, p.ai_keywords), p.upvotes, n,
                                       ev.text_of(p.title, p.abstract, p.ai_keywords),
                                       labels.get(p.arxiv_id or "", frozenset())))
    topics = sorted({t for ts in labels.values() for t in ts})
    return ev.by_day(papers), topics


def run_eval(split: str, counts: list[int]) -> list[ev.Row]:
    days, topics = load(split)
    return ev.evaluate(days, ev.interests(topics), counts)


def print_table(split: str, rows: list[ev.Row]) -> None:
    print(f"\n{split}: readers by kind of hidden interest; P@5 and nDCG@10, per-reader model vs upvote order")
    print(f"{'signals':>7} {'kind':<7} {'readers':>7} {'skip':>4} {'P@5':>6} {'upv':>6} {'ratio':>6} "
          f"{'nDCG10':>7} {'upv':>6} {'ratio':>6} {'why':>5}")
    for r in rows:
        if not r.readers:
            print(f"{r.signals:>7} {r.kind:<7} {0:>7} {r.skipped:>4}   (no reader could give {r.signals} signals "
                  "over the signal days)")
            continue
        print(f"{r.signals:>7} {r.kind:<7} {r.readers:>7} {r.skipped:>4} {r.p5:>6.3f} {r.p5_base:>6.3f} "
              f"{r.p5_ratio:>6.2f} {r.ndcg:>7.3f} {r.ndcg_base:>6.3f} {r.ndcg_ratio:>6.2f} {r.reasons:>5.2f}")


def cost(readers: int, candidates: int, seed: int = 1) -> dict[str, object]:
    """CPU time per reader of train and of rank + for_you (one CandidateSet per digest, shared by its readers,
    as the pipeline builds it), for readers with 5, 20 and 50 signals."""
    days, _ = load("dev")
    papers = [p for _, ps in days for p in ps]
    rnd = random.Random(seed)
    pool = [p.candidate() for p in papers]
    cands = rnd.sample(pool, min(candidates, len(pool)))
    t0 = datetime(2025, 1, 1)
    start = time.process_time()
    prepared = CandidateSet(cands)
    prepare_us = (time.process_time() - start) * 1e6
    out: dict[str, object] = {"readers": readers, "candidates": len(cands), "candidate_set_us": prepare_us,
                              "by_signals": []}
    for n in (5, 20, 50):
        people = []
        for _ in range(readers):
            picked = rnd.sample(papers, n)
            people.append([Signal(p.paper_id, p.vector, rnd.choice(("more", "more", "fewer", "click")),
                                  t0 + timedelta(minutes=k)) for k, p in enumerate(picked)])
        start = time.process_time()
        models = [train(s) for s in people]
        trained = time.process_time() - start
        liked = [[(s.paper_id, "", s.vector) for s in ss if s.kind != "fewer"] for ss in people]
        start = time.process_time()
        for m, lk in zip(models, liked):
            for_you(rank(m, prepared, liked=lk))
        ranked = time.process_time() - start
        start = time.process_time()
        for m, lk in zip(models, liked):
            for_you(rank(m, cands, liked=lk))
        plain = time.process_time() - start
        out["by_signals"].append({  # type: ignore[union-attr]
            "rank_plain_list_us_per_reader": round(plain / readers * 1e6),
            "signals": n, "train_us_per_reader": round(trained / readers * 1e6),
            "rank_us_per_reader": round(ranked / readers * 1e6),
            "model_bytes_mean": round(sum(len(m.to_bytes()) for m in models) / len(models))})
    start = time.process_time()
    for p in papers[:200]:
        vectorize("A title about speculative decoding", p.text, ())
    out["vectorize_us_per_paper"] = round((time.process_time() - start) / 200 * 1e6)
    out["load"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure the per-reader ranking on the real days, or its cost.

    Example: python bench/bench_relevance.py --split both --json
    """
    parser = argparse.ArgumentParser(description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test", "both"), default="both")
    parser.add_argument("--signals", default="0,1,3,5,10", help="signal counts, comma-separated")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--cost", action="store_true", help="time train and rank per reader instead")
    parser.add_argument("--readers", type=int, default=500, help="readers per row of --cost")
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args(argv)
    if args.cost:
        out = cost(args.readers, args.candidates)
        if args.json:
            print(json.dumps(out))
        else:
            print(f"{out['readers']} readers per row, {out['candidates']} candidates each, CPU time "
                  f"(load average {out['load']:.2f}); CandidateSet built once: {out['candidate_set_us']:.0f} µs")
            print(f"{'signals':>7} {'train µs/reader':>16} {'rank+for_you µs/reader':>23} {'(plain list)':>13} "
                  f"{'model bytes':>12}")
            for row in out["by_signals"]:
                print(f"{row['signals']:>7} {row['train_us_per_reader']:>16} {row['rank_us_per_reader']:>23} "
                      f"{row['rank_plain_list_us_per_reader']:>13} {row['model_bytes_mean']:>12}")
            print(f"vectorize: {out['vectorize_us_per_paper']} µs per paper")
        return 0
    try:
        counts = [int(x) for x in args.signals.split(",") if x.strip()]
    except ValueError:
        parser.error("--signals takes comma-separated integers, e.g. 0,1,3,5,10")
    splits = ["dev", "test"] if args.split == "both" else [args.split]
    result = {s: run_eval(s, counts) for s in splits}
    if args.json:
        print(json.dumps({s: [r.as_dict() for r in rows] for s, rows in result.items()}, indent=1))
    else:
        for s, rows in result.items():
            print_table(s, rows)
        print(f"\nload average {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
