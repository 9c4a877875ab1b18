"""The learned topic model: what ships (weights, never texts), and how it scores."""

from __future__ import annotations

import pytest
import yaml

from newsletter import topics
from newsletter.classify import learned

from support import ROOT


def test_the_shipped_model_knows_the_shipped_topics_and_holds_words_not_texts() -> None:
    model = learned.shipped()
    assert model is not None and model.version
    slugs = [t["slug"] for t in yaml.safe_load((ROOT / "config.yaml").read_text())["topics"]]
    assert list(model.topics) == slugs
    assert all(f[:2] in ("t:", "k:", "a:", "o:", "g:") for f in model.weights)
    # features are single words or adjacent pairs (and organisation names): no sentence of a training text
    assert max(len(f[2:].split()) for f in model.weights if f[:2] in ("t:", "k:", "a:")) <= 2
    packaged = (ROOT / "newsletter" / "classify" / learned.MODEL_FILE).stat().st_size
    assert packaged < 400_000


def test_encode_and_decode_round_trip_and_drop_tiny_weights() -> None:
    blob = learned.encode(["a", "b"], [0.1, -0.1], {"t:x": [0.5, -0.5], "t:y": [0.001, 0.0]}, "v1")
    model = learned.decode(blob)
    assert model.topics == ("a", "b") and model.version == "v1" and "t:y" not in model.weights
    logits = model.logits({"t:x", "t:unknown"})
    assert logits == pytest.approx({"a": 0.6, "b": -0.6})
    assert sum(model.probabilities({"t:x"}).values()) == pytest.approx(1.0)


def test_features_tag_each_field_and_skip_stopwords() -> None:
    feats = learned.features("KV cache eviction", "We propose a method.", ["speculative decoding"],
                             "Faster serving.", "Acme Labs", True)
    assert {"t:kv cache", "a:kv cache", "k:speculative decoding", "a:serving", "o:acme labs", "g:code"} <= feats
    assert "a:we" not in feats and "a:propose" not in feats


def test_the_model_places_what_the_rules_alone_would_miss() -> None:
    shipped = tuple(topics.Topic(**t) for t in yaml.safe_load((ROOT / "config.yaml").read_text())["topics"])
    paper = topics.Paper(id=1, key="k", title="HaluMem: Evaluating Hallucinations in Memory Systems of Agents",
                         abstract="", ai_keywords=("memory systems", "agents", "hallucination"))
    assert topics.classify([paper], shipped)[1].primary in ("agents", "retrieval", "evaluation")


def test_training_fits_a_separable_toy_set() -> None:
    pytest.importorskip("numpy")
    from newsletter.classify import train

    examples = [train.Example(frozenset({"t:robot", f"t:n{i}"}), "robotics", (), "d1") for i in range(5)]
    examples += [train.Example(frozenset({"t:speech", f"t:m{i}"}), "audio", (), "d2") for i in range(5)]
    bias, weights = train.fit(examples, ["robotics", "audio"], iterations=200)
    model = train.model_from(["robotics", "audio"], bias, weights, "toy")
    assert max(model.logits({"t:robot"}).items(), key=lambda kv: kv[1])[0] == "robotics"
    assert max(model.logits({"t:speech"}).items(), key=lambda kv: kv[1])[0] == "audio"


def test_cross_validation_holds_days_out_and_scores_the_whole_classifier() -> None:
    pytest.importorskip("numpy")
    from newsletter.classify import train

    shipped = tuple(topics.Topic(**t) for t in yaml.safe_load((ROOT / "config.yaml").read_text())["topics"])
    slugs = [t.slug for t in shipped]
    examples = []
    for n in range(8):
        for topic, title in (("robotics", f"Robot arm grasping policy {n}"), ("audio", f"Speech synthesis voice {n}")):
            p = topics.Paper(id=-(len(examples) + 1), key=f"k{len(examples)}", title=title, abstract="")
            examples.append(train.Example(frozenset(train.paper_features(p)), topic, (), f"2026-01-0{n % 4 + 1}",
                                          paper=p, by_day=True))
    sample = topics.Paper(id=-100, key="s", title="Robot speech", abstract="")
    examples.append(train.Example(frozenset(train.paper_features(sample)), "robotics", ("audio",), "sample.csv",
                                  paper=sample))
    cv = train.cross_validate(examples, slugs, 4, shipped, iterations=100)
    assert cv.papers == 16  # the undated sample example is never held out
    assert cv.learned_alone == 1.0 and cv.classifier == 1.0 and cv.other_share == 0.0
    assert train.cross_validate(examples, slugs, 2, iterations=50).classifier is None  # no topics: model alone


def test_the_fallback_wins_a_near_tie_by_its_offset_and_nothing_more() -> None:
    chosen = (topics.Topic(slug="agents", name="Agents", description="LLM agents", keywords=["zzqx"]),
              topics.Topic(slug="other", name="Other", description="None of the above"))
    paper = topics.Paper(id=1, key="k", title="Plain words here", abstract="")
    feats = topics.paper_features(paper)
    assert "t:plain" in feats

    def placed(gap: float) -> str:  # the model's "other" logit is ``gap`` below the agents logit
        model = learned.LearnedModel(("agents", "other"), (0.0, 0.0), {"t:plain": ((0, gap / 2), (1, -gap / 2))})
        return topics.classify([paper], chosen, trained=model)[1].primary

    assert 0 < topics.FALLBACK_LOGIT < 1
    assert placed(topics.FALLBACK_LOGIT / 2) == "other"  # closer than the offset: the fallback
    assert placed(topics.FALLBACK_LOGIT * 2) == "agents"  # further: the topic
