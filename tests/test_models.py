"""Paper identity: arXiv ids without version, normalised titles that keep distinct papers distinct."""

import pytest

from newsletter.models import FetchedPaper, normalize_arxiv_id, normalize_title, paper_key


@pytest.mark.parametrize("raw, bare", [
    ("2401.01234v2", "2401.01234"),
    ("2401.01234", "2401.01234"),
    ("arXiv:2401.01234v11", "2401.01234"),
    ("https://arxiv.org/abs/2401.01234v3", "2401.01234"),
    ("https://arxiv.org/pdf/2401.01234v3.pdf", "2401.01234"),
    ("https://huggingface.co/papers/2503.20314", "2503.20314"),
    ("0704.0001", "0704.0001"),
    ("hep-th/9901001v2", "hep-th/9901001"),
    ("not an id 12345", None),
    ("", None),
    (None, None),
])
def test_arxiv_ids_lose_their_version(raw, bare) -> None:  # noqa: ANN001
    assert normalize_arxiv_id(raw) == bare


def test_key_prefers_arxiv_id() -> None:
    assert paper_key("2401.01234v2", "Anything") == "arxiv:2401.01234"
    assert paper_key(None, "  FlashAttention-2: Faster  Attention ") == "title:flashattention 2 faster attention"


@pytest.mark.parametrize("a, b", [
    ("VBench: Comprehensive Benchmark Suite for Video Generative Models",
     "VBench++: Comprehensive and Versatile Benchmark Suite for Video Generative Models"),
    ("VBench: Comprehensive Benchmark", "VBench++: Comprehensive Benchmark"),
    ("CoRe^2: Collect, Reflect and Refine", "CoRe: Collect, Reflect and Refine"),
    ("C++ kernels", "C kernels"),
])
def test_similar_titles_stay_distinct(a: str, b: str) -> None:
    assert normalize_title(a) != normalize_title(b)


@pytest.mark.parametrize("a, b", [
    ("Dr.LLM: Dynamic Layer Routing in LLMs", "Dr. LLM — dynamic layer routing in LLMs."),
    ("\u201cGive Me BF16 or Give Me Death\u201d? Accuracy", '"Give Me BF16 or Give Me Death"? accuracy'),
    ("Zero\u200bWidth Title", "ZeroWidth title"),
    ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
])
def test_cosmetic_differences_are_the_same_title(a: str, b: str) -> None:
    assert normalize_title(a) == normalize_title(b)


def test_fetched_paper_normalises_on_creation() -> None:
    p = FetchedPaper(title="A  title\n split", arxiv_id="https://arxiv.org/abs/2401.01234v2")
    assert (p.title, p.arxiv_id, p.key) == ("A title split", "2401.01234", "arxiv:2401.01234")
