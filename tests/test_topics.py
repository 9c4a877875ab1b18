"""The topics stage as pure functions: rules, the lexical fallback, the digest's shape. No database."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date

import pytest
import yaml

from newsletter import embeddings, topics
from newsletter.classify import evaluate
from newsletter.classify.rules import compile_rules, rule_evidence
from newsletter.classify.text import compile_phrase, joined, tokens
from newsletter.config import Digest, Topic
from newsletter.models import Paper, Subscriber

from support import DATA, ROOT

SHIPPED = tuple(Topic(**t) for t in yaml.safe_load((ROOT / "config.yaml").read_text())["topics"])
DAY = date(2026, 3, 14)


def paper(pid: int, title: str, abstract: str = "", **kw: object) -> Paper:
    return Paper(id=pid, key=f"k{pid}", title=title, abstract=abstract, **kw)  # type: ignore[arg-type]


def primary(title: str, abstract: str = "", topic_set: tuple[Topic, ...] = SHIPPED, **kw: object) -> str:
    return topics.classify([paper(1, title, abstract, **kw)], topic_set)[1].primary


# --- text and rules -------------------------------------------------------------------------------------


def test_tokens_fold_case_hyphens_and_plurals() -> None:
    assert tokens("Text-to-Video KV Caches on GPUs, 1.58-bit, Auto-Regressive") == [
        "text",
        "to",
        "video",
        "kv",
        "cache",
        "on",
        "gpu",
        "1.58",
        "bit",
        "autoregressive",
    ]


def test_phrases_match_whole_words_and_wildcards() -> None:
    doc = joined("We quantize weights; the quantized model and its quantization error.")
    assert compile_phrase("quantiz*").count(doc) == 3  # type: ignore[union-attr]
    assert compile_phrase("kv cache").count(joined("KV-caches grow")) == 1  # type: ignore[union-attr]
    assert compile_phrase("rnn").count(joined("an unrelated word: rnnoise")) == 0  # type: ignore[union-attr]


def test_a_phrase_in_the_title_outweighs_the_same_phrase_in_the_abstract() -> None:
    rules = compile_rules("x", ("speculative decoding",), ())
    in_title = rule_evidence(rules, joined("Speculative Decoding at Scale"), joined(""), [])
    in_abstract = rule_evidence(rules, joined("A new method"), joined("We use speculative decoding."), [])
    assert in_title.score > in_abstract.score > 0


def test_the_feeds_own_keywords_count_as_evidence() -> None:
    rules = compile_rules("x", ("gaussian splatting",), ())
    with_kw = rule_evidence(
        rules, joined("Fast scenes"), joined("We render fast."), [joined("Gaussian Splatting")]
    )
    without = rule_evidence(rules, joined("Fast scenes"), joined("We render fast."), [])
    assert with_kw.score > 0 and without.score == 0
    assert (
        primary(
            "Fast scenes",
            "We render them fast.",
            ai_keywords=("gaussian splatting", "novel view synthesis", "radiance field"),
        )
        == "3d"
    )


def test_an_excluded_phrase_rules_a_topic_out() -> None:
    base = primary(
        "Speculative decoding for video generation models", "We accelerate text-to-video diffusion."
    )
    assert base == "video-generation"
    custom = tuple(
        t.model_copy(update={"exclude": ("diffusion",)}) if t.slug == "video-generation" else t
        for t in SHIPPED
    )
    result = topics.classify(
        [
            paper(
                1,
                "Speculative decoding for video generation models",
                "We accelerate text-to-video diffusion.",
            )
        ],
        custom,
    )[1]
    assert result.primary != "video-generation"
    assert result.details["video-generation"].excluded_by == "diffusion"
    # ruled out: it scores below every topic that is not
    others = [d.total for slug, d in result.details.items() if not d.excluded_by]
    assert result.details["video-generation"].total < min(others)


@pytest.mark.parametrize(
    "title, abstract, expected",
    [
        (
            "Faster LLM serving with a paged KV cache",
            "We raise throughput of an inference engine by batching requests.",
            "llm-inference",
        ),
        (
            "Outlier-aware 3-bit weight quantization of language models",
            "Post-training quantization to low bit-width.",
            "quantization",
        ),
        (
            "Pipeline and tensor parallelism for trillion-parameter pretraining",
            "A distributed training system on thousands of GPUs with activation checkpointing.",
            "training",
        ),
        (
            "A fused CUDA kernel for grouped GEMM on Hopper tensor cores",
            "We tile the matrix multiplication.",
            "hardware",
        ),
        (
            "Selective state space models as an alternative to attention",
            "A recurrent, linear-time sequence model.",
            "architectures",
        ),
        (
            "Camera-controlled text-to-video generation",
            "A video diffusion model with motion control.",
            "video-generation",
        ),
        (
            "Fewer sampling steps for text-to-image diffusion",
            "A distilled sampler keeps FID low.",
            "image-generation",
        ),
        (
            "Relightable avatars from monocular video",
            "We fit 3D Gaussian splatting to a parametric body model.",
            "3d",
        ),
        (
            "Open-vocabulary semantic segmentation with a ConvNet backbone",
            "Evaluated on ADE20K and COCO.",
            "vision",
        ),
        (
            "A vision-language model for long video question answering",
            "Visual tokens are compressed for the LLM.",
            "multimodal",
        ),
        (
            "Zero-shot text-to-speech with a neural audio codec",
            "The speaker's voice is cloned from three seconds.",
            "audio",
        ),
    ],
)
def test_the_shipped_topics_on_descriptions_an_expert_would_write(
    title: str, abstract: str, expected: str
) -> None:
    assert primary(title, abstract) == expected


def test_off_topic_text_goes_to_other() -> None:
    assert (
        primary(
            "A history of medieval bread baking in Flanders",
            "We study guild records of bakers and the price of rye between 1300 and 1450.",
        )
        == "other"
    )
    assert primary("", "") == "other"


def test_secondary_topics_are_kept_as_tags_primary_first() -> None:
    result = topics.classify(
        [
            paper(
                1,
                "Asymmetric 2-bit quantization of the KV cache",
                "Keys are quantized per channel and values per token, so LLM inference "
                "keeps a four times longer context in the same memory.",
            )
        ],
        SHIPPED,
    )[1]
    assert result.topics[0] == result.primary == "quantization"
    assert "llm-inference" in result.topics[1:]
    assert len(result.topics) <= 1 + topics.MAX_SECONDARY
    assert set(result.scores) == {t.slug for t in SHIPPED}


def test_a_paper_gets_no_unrelated_secondary_topics() -> None:
    result = topics.classify([paper(1, "Camera-controlled text-to-video generation",
                                    "A video diffusion model with motion control.")], SHIPPED)[1]
    assert result.primary == "video-generation"
    assert not set(result.topics[1:]) & {"safety", "code", "audio", "hardware", "retrieval", "science"}


def test_a_topic_configured_with_a_description_only_still_gets_papers() -> None:
    custom = (
        Topic(
            slug="astronomy", name="Astronomy", description="galaxies, telescopes, exoplanets and cosmology"
        ),
        Topic(slug="cooking", name="Cooking", description="recipes, baking, fermentation and kitchens"),
        Topic(slug="other", name="More", description="the rest"),
    )
    assert (
        primary("Exoplanets seen by a new telescope", "Transits of exoplanets in galaxies.", custom)
        == "astronomy"
    )
    assert (
        primary("Sourdough fermentation", "Baking recipes from home kitchens and their fermentation.", custom)
        == "cooking"
    )


def test_lexical_fallback_is_used_without_vectors_and_ranks_by_description() -> None:
    # Without the learned model (or for topics it does not know) the lexical similarity model is used;
    # with it, scoring every configured topic, the similarity term is left out ("none").
    assert topics.classify([paper(1, "A study", "speech music audio")], SHIPPED)[1].semantic_model == "none"
    result = topics.classify([paper(1, "A study", "speech music audio")], SHIPPED, trained=None)[1]
    assert result.semantic_model == topics.LEXICAL
    sims = {slug: d.similarity for slug, d in result.details.items()}
    assert max(sims, key=sims.get) == "audio"  # type: ignore[arg-type]


def test_vectors_drive_the_similarity_when_given() -> None:
    scored = [t for t in SHIPPED if t.slug != "other"]
    axis = {t.slug: [1.0 if i == j else 0.0 for j in range(len(scored))] for i, t in enumerate(scored)}
    vec = topics.Vectors("fake", axis, {1: axis["audio"]})
    result = topics.classify([paper(1, "A study", "")], SHIPPED, vec)[1]
    assert result.semantic_model == "fake"
    assert result.details["audio"].similarity == pytest.approx(1.0)
    assert result.details["audio"].semantic > 0 and result.details["vision"].semantic == 0
    # a paper without a vector falls back to the lexical model (none needed with the learned model)
    assert topics.classify([paper(2, "A study", "")], SHIPPED, vec, None)[2].semantic_model == topics.LEXICAL
    assert topics.classify([paper(2, "A study", "")], SHIPPED, vec)[2].semantic_model == topics.NO_SIMILARITY


def test_classification_is_deterministic() -> None:
    rows = list(csv.DictReader((DATA / "topic_labels_heldout.csv").open(encoding="utf-8")))
    papers = [paper(i, r["title"], r["abstract"]) for i, r in enumerate(rows)]
    first = topics.classify(papers, SHIPPED)
    again = topics.classify(list(reversed(papers)), SHIPPED)
    alone = {p.id: topics.classify([p], SHIPPED)[p.id] for p in papers[:10]}
    assert {k: (a.primary, a.topics, dict(a.scores)) for k, a in first.items()} == {
        k: (a.primary, a.topics, dict(a.scores)) for k, a in again.items()
    }
    assert all(alone[k].topics == first[k].topics for k in alone)


def test_the_fingerprint_changes_with_the_topic_settings_and_the_model() -> None:
    base = topics.settings_fingerprint(SHIPPED)
    assert base == topics.settings_fingerprint(tuple(SHIPPED))
    edited = tuple(
        t.model_copy(update={"keywords": (*t.keywords, "new phrase")}) if t.slug == "audio" else t
        for t in SHIPPED
    )
    assert topics.settings_fingerprint(edited) != base
    assert topics.settings_fingerprint(SHIPPED, "all-MiniLM-L6-v2") != base
    assert len(base) == 64


def test_heldout_labels_reach_the_target_with_the_lexical_model() -> None:
    labels = evaluate.read_labels((DATA / "topic_labels_heldout.csv").read_text(encoding="utf-8"))
    assert len(labels) >= 60 and not evaluate.unknown_topics(labels, [t.slug for t in SHIPPED])
    result = topics.classify([paper(i, lb.title, lb.abstract) for i, lb in enumerate(labels)], SHIPPED)
    report = evaluate.score(labels, {i: a.primary for i, a in result.items()})
    assert report.papers == len(labels)
    assert report.accuracy >= 0.90, [m.title for m in report.misses]
    assert report.predicted["other"] <= 0.15 * len(labels)


def test_read_labels_rejects_a_file_without_a_topic_column() -> None:
    from newsletter.errors import NewsletterError

    with pytest.raises(NewsletterError, match="no topic column"):
        evaluate.read_labels("title,label\nA,b\n")
    labels = evaluate.read_labels("title,topic,acceptable\nA,vision,3d; multimodal\n")
    assert labels[0].accepted == {"vision", "3d", "multimodal"}


def test_embedding_bytes_round_trip_as_float32() -> None:
    vec = [0.5, -1.25, 3.0e-3]
    blob = embeddings.to_bytes(vec)
    assert len(blob) == 12
    assert embeddings.from_bytes(blob) == pytest.approx(vec, rel=1e-6)


def test_embeddings_can_be_switched_off() -> None:
    assert not embeddings.available({"NEWSLETTER_EMBEDDINGS": "off"})
    assert embeddings.default_embedder({"NEWSLETTER_EMBEDDINGS": "0"}) is None


# --- digests ---------------------------------------------------------------------------------------------


def digest_paper(
    pid: int,
    topic: str,
    upvotes: int | None = None,
    rank: int | None = None,
    day: date = DAY,
    tags: tuple[str, ...] = (),
    title: str = "",
    abstract: str = "",
) -> Paper:
    return Paper(
        id=pid,
        key=f"k{pid}",
        title=title or f"Paper {pid}",
        abstract=abstract,
        upvotes=upvotes,
        best_rank=rank,
        topic=topic,
        topics=(topic, *tags),
        first_trending=day,
        last_trending=day,
    )


def build(papers: list[Paper], subscriber: Subscriber | None = None, **settings: int) -> object:
    return topics.build_digest(papers, SHIPPED, subscriber, Digest(**settings), "daily", DAY.isoformat(), DAY)


def reader(topics_: tuple[str, ...] | None = None, excluded: tuple[str, ...] = ()) -> Subscriber:
    return Subscriber(
        id=1,
        email="a@example.org",
        status="active",
        cadence="daily",
        topics=topics_,
        excluded_keywords=excluded,
    )


def test_papers_rank_by_upvotes_then_trending_rank_then_recency() -> None:
    papers = [
        digest_paper(1, "vision", upvotes=5, rank=1),
        digest_paper(2, "vision", upvotes=50, rank=9),
        digest_paper(3, "vision", upvotes=5, rank=3, day=date(2026, 3, 13)),
        digest_paper(4, "vision", upvotes=5, rank=3, day=DAY),
        digest_paper(5, "vision", upvotes=None, rank=2),
    ]
    digest = build(papers)
    assert [p.id for p in digest.sections[0].papers] == [2, 1, 4, 3, 5]  # type: ignore[attr-defined]


def test_sections_follow_chosen_topics_then_size_and_empty_ones_are_omitted() -> None:
    papers = (
        [digest_paper(i, "vision") for i in range(1, 4)]
        + [digest_paper(i, "audio") for i in range(4, 6)]
        + [digest_paper(6, "3d", tags=("vision",))]
    )
    by_size = build(papers)
    assert [s.slug for s in by_size.sections] == ["vision", "audio", "3d"]  # type: ignore[attr-defined]
    assert all(s.papers for s in by_size.sections)  # type: ignore[attr-defined]
    chosen = build(papers, reader(("3d", "audio")))
    assert [s.slug for s in chosen.sections] == ["audio", "3d"]  # type: ignore[attr-defined]
    assert by_size.sections[0].name == "Vision & perception"  # type: ignore[attr-defined]


def test_a_paper_matches_a_chosen_topic_through_any_of_its_topics() -> None:
    papers = [
        digest_paper(1, "llm-inference", tags=("quantization",)),
        digest_paper(2, "llm-inference"),
        digest_paper(3, "quantization"),
    ]
    digest = build(papers, reader(("quantization",)))
    assert sorted(p.id for p in digest.papers) == [1, 3]  # type: ignore[attr-defined]
    # a reader who chose quantization gets only that section: paper 1 sits there, through its tag
    assert [s.slug for s in digest.sections] == ["quantization"]  # type: ignore[attr-defined]
    assert sorted(p.id for p in digest.sections[0].papers) == [1, 3]  # type: ignore[attr-defined]
    # without a choice, every paper stays in its primary topic's section
    assert [s.slug for s in build(papers).sections] == ["llm-inference", "quantization"]  # type: ignore[attr-defined]
    assert len(build(papers).papers) == 3  # type: ignore[attr-defined]


def test_excluded_keywords_match_whole_words_case_insensitively() -> None:
    papers = [
        digest_paper(1, "vision", title="A Survey of Segmentation"),
        digest_paper(2, "vision", abstract="Surveys and surveyed are other words"),
        digest_paper(3, "vision", abstract="Resurvey of prior art"),
        digest_paper(4, "vision", title="Benchmark", abstract="large language models"),
    ]
    digest = build(papers, reader(excluded=("survey", "Language Models")))
    assert sorted(p.id for p in digest.papers) == [2, 3]  # type: ignore[attr-defined]


def test_caps_per_topic_and_per_digest() -> None:
    papers = [digest_paper(i, "vision", upvotes=100 - i) for i in range(1, 8)] + [
        digest_paper(i, "audio", upvotes=200 - i) for i in range(10, 13)
    ]
    digest = build(papers, max_per_topic=5, max_papers=6, top_papers=0)
    vision = next(s for s in digest.sections if s.slug == "vision")  # type: ignore[attr-defined]
    audio = next(s for s in digest.sections if s.slug == "audio")  # type: ignore[attr-defined]
    assert vision.total == 7 and audio.total == 3
    assert [p.id for p in audio.papers] == [10, 11, 12]
    assert [p.id for p in vision.papers] == [
        1,
        2,
        3,
    ]  # 5 by the topic cap, then the digest cap keeps 6 in all
    assert digest.omitted == 2 and digest.paper_count == 6  # type: ignore[attr-defined]
    assert digest.top == ()  # type: ignore[attr-defined]


def test_top_papers_open_the_digest_and_stay_in_their_sections() -> None:
    papers = [
        digest_paper(1, "vision", upvotes=10),
        digest_paper(2, "audio", upvotes=30),
        digest_paper(3, "3d", upvotes=20),
        digest_paper(4, "vision", upvotes=40),
        digest_paper(5, "3d", upvotes=1),
    ]
    digest = build(papers, top_papers=3)
    assert [p.id for p in digest.top] == [4, 2, 3]  # type: ignore[attr-defined]
    assert {p.id for p in digest.top} <= {p.id for p in digest.papers}  # type: ignore[attr-defined]
    assert digest.paper_count == 5 and digest.topic_count == 3  # type: ignore[attr-defined]


def test_unclassified_papers_are_classified_for_the_digest() -> None:
    unclassified = Paper(
        id=9,
        key="k9",
        title="Gaussian splatting for dynamic scenes",
        abstract="Real-time novel view synthesis of 4D scenes with 3D Gaussians.",
    )
    stale = replace(
        digest_paper(8, "no-such-topic"),
        title="Zero-shot text-to-speech",
        abstract="A speech synthesis model.",
    )
    digest = build([unclassified, stale])
    assert {s.slug: [p.id for p in s.papers] for s in digest.sections} == {"3d": [9], "audio": [8]}  # type: ignore


def test_the_same_input_always_yields_the_same_digest() -> None:
    rows = list(csv.DictReader((DATA / "topic_labels_heldout.csv").open(encoding="utf-8")))
    papers = [
        Paper(
            id=i,
            key=f"k{i}",
            title=r["title"],
            abstract=r["abstract"],
            upvotes=(i * 7) % 13,
            best_rank=i % 5 + 1,
            last_trending=DAY,
        )
        for i, r in enumerate(rows)
    ]
    assigned = topics.classify(papers, SHIPPED)
    papers = [replace(p, topic=assigned[p.id].primary, topics=assigned[p.id].topics) for p in papers]
    first = build(papers, reader(excluded=("diffusion",)), max_per_topic=4, max_papers=30)
    assert first == build(
        list(reversed(papers)), reader(excluded=("diffusion",)), max_per_topic=4, max_papers=30
    )
    assert first.paper_count == 30 and len({s.slug for s in first.sections}) >= 8  # type: ignore[attr-defined]
