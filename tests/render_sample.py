"""A realistic digest for the render tests, golden files, screenshots and the benchmark.

Built from the bundled saved page of Mar 14, 2025 (85 papers; the page carries titles and abstracts only).
The nine papers that the Daily Papers API listed that day get their public metadata (arXiv id, authors,
code, stars, project page, upvotes, comments, AI summary). The others get *synthetic* arXiv ids
``2503.9xxxx``, past the ids arXiv issued in March 2025, so they link somewhere well-formed without naming a
real, unrelated paper. Topics come from a keyword table, standing in for the topics stage.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date
from typing import Sequence

from support import PAGES, ROOT

from newsletter import config
from newsletter.config import Settings
from newsletter.models import DigestContent, Paper, TopicSection
from newsletter.sources.hf_page import parse_page

DAY = date(2025, 3, 14)

# From the Daily Papers API for 2025-03-14 (public data).
KNOWN: dict[str, dict[str, object]] = {
    "SageAttention2": dict(
        arxiv_id="2411.10958", authors=("Jintao Zhang", "Haofeng Huang", "Pengle Zhang", "Jia Wei", "Jun Zhu",
                                        "Jianfei Chen"),
        published=date(2024, 11, 17), upvotes=52, num_comments=3, github_repo="https://github.com/thu-ml/SageAttention",
        github_stars=1850, ai_summary="SageAttention2 quantizes Q and K to INT4 and P and V to FP8 with smoothing, "
        "running about 3x faster than FlashAttention2 on an RTX4090 with negligible end-to-end loss."),
    "GraCo": dict(
        arxiv_id="2405.00587", authors=("Yian Zhao", "Kehan Li", "Zesen Cheng", "Pengchong Qiao"),
        published=date(2024, 5, 1), upvotes=17, num_comments=1, github_repo="https://github.com/Zhao-Yian/GraCo",
        github_stars=104, project_page="https://zhao-yian.github.io/GraCo",
        ai_summary="GraCo adds a granularity control to interactive segmentation, trained on mask-granularity pairs "
        "that an any-granularity mask generator produces without manual annotation."),
    "DataStates-LLM": dict(
        arxiv_id="2406.10707", authors=("Avinash Maurya", "Robert Underwood", "M. Mustafa Rafique", "Franck Cappello"),
        published=date(2024, 6, 15), upvotes=9, num_comments=0),
    "Mugs": dict(
        arxiv_id="2203.14415", authors=("Pan Zhou", "Yichen Zhou", "Chenyang Si", "Weihao Yu"),
        published=date(2022, 3, 27), upvotes=6, github_repo="https://github.com/sail-sg/mugs", github_stars=83,
        project_page="javascript:alert(document.cookie)",  # as the API returned it: must never become a link
        ai_summary="Mugs learns instance, local-group and group discrimination features together for "
        "self-supervised ViTs."),
    "Go-with-the-Flow": dict(
        arxiv_id="2501.08331", authors=("Ryan Burgert", "Yuancheng Xu", "Wenqi Xian", "Oliver Pilarski"),
        published=date(2025, 1, 14), upvotes=31, num_comments=4,
        github_repo="https://github.com/Eyeline-Research/Go-with-the-Flow", github_stars=612,
        project_page="https://eyeline-research.github.io/Go-with-the-Flow/",
        ai_summary="Structured latent noise warped by optical flow gives video diffusion models motion control "
        "without changing the architecture or training pipeline."),
    "Vidu4D": dict(
        arxiv_id="2405.16822", authors=("Yikai Wang", "Xinzhou Wang", "Zilong Chen", "Zhengyi Wang"),
        published=date(2024, 5, 27), upvotes=12, num_comments=2, project_page="https://vidu4d-dgs.github.io/",
        ai_summary="Vidu4D reconstructs 4D content from a single generated video with Dynamic Gaussian Surfels."),
    "GVGEN": dict(
        arxiv_id="2403.12957", authors=("Xianglong He", "Junyi Chen", "Sida Peng", "Di Huang"),
        published=date(2024, 3, 19), upvotes=8, num_comments=1, github_repo="https://github.com/SOTAMak1r/GVGEN",
        github_stars=57),
    "FlashAttention-2": dict(
        arxiv_id="2307.08691", authors=("Tri Dao",), published=date(2023, 7, 17), upvotes=74, num_comments=6,
        github_repo="https://github.com/Dao-AILab/flash-attention", github_stars=16240,
        ai_summary="FlashAttention-2 reaches 50-73% of the A100's peak FLOPs/s by splitting work better across "
        "thread blocks and warps."),
    "VPTQ": dict(
        arxiv_id="2409.17066", authors=("Yifei Liu", "Jicheng Wen", "Yang Wang", "Shengyu Ye"),
        published=date(2024, 9, 25), upvotes=27, num_comments=2, organization="Microsoft",
        github_repo="https://github.com/microsoft/VPTQ", github_stars=598,
        ai_summary="VPTQ uses second-order optimization to guide vector quantization, reaching 2-bit LLM weights "
        "with better accuracy than prior methods."),
}

# slug -> words that put a paper in that topic (checked in this order; the first match is its section).
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "quantization": ("quantiz", "low-bit", "bit ", "int8", "int2", "fp6", "binariz", "compression", "pruning",
                     "compressed", "sparsity", "bf16"),
    "llm-inference": ("inference", "serving", "speculative", "kv cache", "mixture-of-experts", "mixture of experts"),
    "training": ("training", "checkpointing", "fine-tun", "low-rank adaptation", "parameter-efficient"),
    "hardware": ("gpu", "cuda", "mpi", "accelerator", "asic", "tensor cores", "gemm", "c++", "collectives"),
    "video-generation": ("video",),
    "3d": ("3d", "gaussian", "nerf", "mesh", "texture", "garment", "4d"),
    "image-generation": ("diffusion", "try-on", "generation"),
    "vision": ("segmentation", "vision", "convolution", "self-supervised", "clip", "image"),
    "architectures": ("attention", "transformer", "mixture", "foundation model"),
}


def settings(**overrides: object) -> Settings:
    """The shipped config.yaml with a fixed site and sender (and any overrides)."""
    import yaml

    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update({"site_url": "https://papers.example.org", "database_url": "sqlite:///:memory:",
                 "sources": [{"type": "hf-page", "path": str(PAGES["mar14"])}]})
    data.update(overrides)
    data.pop("signing_key", None)
    return config.from_mapping(data, environ={})


@functools.cache
def _topic_names() -> dict[str, str]:
    return {t.slug: t.name for t in settings().topics}


@functools.cache
def _sample_papers() -> tuple[Paper, ...]:
    return tuple(_parse_sample())


def sample_papers() -> list[Paper]:
    return list(_sample_papers())


def _parse_sample() -> list[Paper]:
    page = parse_page(PAGES["mar14"].read_text(encoding="utf-8"), year=2025)
    papers = []
    for f in page.papers:
        rank = f.rank or 0
        extra = next((v for k, v in KNOWN.items() if f.title.startswith(k)), {})
        title, abstract = f.title.lower(), f.abstract.lower()
        # The section: the first topic named in the title; tags: further topics of the title, then the abstract.
        topics = [slug for slug, words in TOPIC_WORDS.items() if any(w in title for w in words)] or ["other"]
        topics += [slug for slug, words in TOPIC_WORDS.items() if slug not in topics and any(w in abstract for w in words)]
        fields: dict[str, object] = dict(
            id=rank, key="", title=f.title, abstract=f.abstract, arxiv_id=f"2503.9{rank:04d}",
            topic=topics[0], topics=tuple(topics[:3]), first_trending=DAY, last_trending=DAY, best_rank=rank,
        )
        fields.update(extra)
        arxiv_id = str(fields["arxiv_id"])
        fields["key"] = f"arxiv:{arxiv_id}"
        fields["url"] = f"https://huggingface.co/papers/{arxiv_id}"
        papers.append(Paper(**fields))  # type: ignore[arg-type]
    return papers


def digest_of(papers: Sequence[Paper], *, topics: Sequence[str] | None = None, max_papers: int = 60,
              max_per_topic: int = 12, top: int = 3, cadence: str = "daily", day: date = DAY,
              names: dict[str, str] | None = None) -> DigestContent:
    """Group ``papers`` as the topics stage does: sections in config order, best first; a section's total
    counts its papers before the caps (a section the caps emptied is kept, with no papers); ``omitted`` what the
    per-digest cap dropped."""
    names = names or _topic_names()
    chosen = [p for p in papers if topics is None or p.topic in topics]
    ranked = sorted(chosen, key=lambda p: (-(p.upvotes or 0), p.best_rank or 0, p.id))
    position = {p.id: i for i, p in enumerate(ranked)}
    groups = {slug: [p for p in ranked if p.topic == slug] for slug in names}
    capped = [p for ps in groups.values() for p in ps[:max_per_topic]]
    keep = {p.id for p in sorted(capped, key=lambda p: position[p.id])[:max_papers]}
    sections = []
    for slug, members in groups.items():
        shown = tuple(p for p in members[:max_per_topic] if p.id in keep)
        if members:
            sections.append(TopicSection(slug, names[slug], shown, len(members)))
    in_digest = [p for p in ranked if p.id in keep]
    period = day.isoformat() if cadence == "daily" else f"{day.isocalendar()[0]}-W{day.isocalendar()[1]:02d}"
    return DigestContent(cadence, period, day, tuple(in_digest[:top]), tuple(sections),
                         max(0, len(capped) - max_papers))


def sample_digest(**kwargs: object) -> DigestContent:
    return digest_of(sample_papers(), **kwargs)  # type: ignore[arg-type]


def hostile_paper(pid: int = 9001, **changes: object) -> Paper:
    """A paper whose every field tries something: markup, entities, script links, bidi and zero-width tricks."""
    base = Paper(
        id=pid, key=f"title:hostile-{pid}", arxiv_id=None,
        title='<script>alert("t")</script> &amp; \u202eRTL\u202c trick\u200b <b>bold</b> "quoted" \'single\'',
        abstract="<img src=x onerror=alert(1)> &lt;escaped&gt; & raw. Second sentence here. " + "x" * 50,
        authors=("<b>Eve</b>", "Mallory &amp; Co", "\u202eevil", "Trent"), organization="<i>Org</i>",
        upvotes=3, num_comments=1, github_repo="javascript:alert(1)", project_page="data:text/html,<script>",
        url="javascript:alert('x')", topic="other", topics=("other", "<svg onload=alert(1)>"),
    )
    return replace(base, **changes)
