"""Seed parsing (issue 15, point 2): pasted ids and links, Zotero's BibTeX (parsed with bibtexparser), CSL JSON;
a clear error for what is none of them or too large, and nothing half-read."""

from __future__ import annotations

import json

import pytest

from newsletter.relevance.seeds import MAX_SEED_BYTES, InvalidSeeds, Seed, parse_seeds

ZOTERO_BIB = r"""
@misc{dao_flashattention-2_2023,
	title = {{FlashAttention}-2: {Faster} {Attention} with {Better} {Parallelism} and {Work} {Partitioning}},
	shorttitle = {{FlashAttention}-2},
	url = {http://arxiv.org/abs/2307.08691},
	doi = {10.48550/arXiv.2307.08691},
	publisher = {arXiv},
	author = {Dao, Tri},
	month = jul,
	year = {2023},
	note = {arXiv:2307.08691 [cs]},
}

@article{vaswani2017,
  title={Attention Is All You Need},
  author={Vaswani, Ashish and others},
  eprint={1706.03762},
  archivePrefix={arXiv},
  year={2017}
}

@inproceedings{nolink,
  title = {A Paper Known Only by Its Title},
  booktitle = {Proceedings},
}
"""


def test_pasted_ids_and_links_in_any_spelling() -> None:
    seeds = parse_seeds("2307.08691\narXiv:2411.10958v2, https://arxiv.org/pdf/2501.08331v1 https://huggingface.co/papers/2307.08691")
    assert [s.arxiv_id for s in seeds] == ["2307.08691", "2411.10958", "2501.08331"]  # the same paper once


def test_zoteros_bibtex_gives_ids_from_url_or_eprint_and_titles_without_braces() -> None:
    seeds = parse_seeds(ZOTERO_BIB.encode("utf-8"))
    assert seeds == [
        Seed("2307.08691", "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning"),
        Seed("1706.03762", "Attention Is All You Need"),
        Seed(None, "A Paper Known Only by Its Title")]
    assert seeds[2].title_key == "a paper known only by its title"


def test_csl_json_from_zotero() -> None:
    items = [{"id": "http://zotero.org/users/1/items/ABC", "type": "article", "title": "Go-with-the-Flow",
              "URL": "http://arxiv.org/abs/2501.08331v1"},
             {"id": "x", "type": "article-journal", "title": "Only a title", "DOI": "10.1000/xyz"}]
    assert parse_seeds(json.dumps(items)) == [Seed("2501.08331", "Go-with-the-Flow"), Seed(None, "Only a title")]


def test_what_is_none_of_them_or_too_large_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidSeeds, match="No arXiv id found"):
        parse_seeds("my favourite papers")
    with pytest.raises(InvalidSeeds, match="not valid JSON"):
        parse_seeds("[{oops")
    with pytest.raises(InvalidSeeds, match="No BibTeX entry"):
        parse_seeds("@article{broken, title={never closed")
    with pytest.raises(InvalidSeeds, match="not UTF-8"):
        parse_seeds(b"\xff\xfe@article{x, title={y}}")
    with pytest.raises(InvalidSeeds, match="larger than"):
        parse_seeds(b"2307.08691\n" * (MAX_SEED_BYTES // 11 + 1))
    assert parse_seeds("   ") == []
