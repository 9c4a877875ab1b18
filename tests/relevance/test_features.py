"""Paper vectors: unit TF-IDF over the shipped (dev-days) vocabulary, compact bytes, never an error on odd text."""

from __future__ import annotations

import gzip
import json
import math
from importlib import resources

import pytest

from newsletter.errors import ParseError
from newsletter.relevance import Vector, features, is_test_day, split_days, vectorize, vocab


def test_a_vector_is_unit_length_sorted_and_capped() -> None:
    v = vectorize("Speculative Decoding for Fast LLM Inference",
                  "We accelerate decoding with a small draft model that proposes tokens the large model verifies. " * 20,
                  ["speculative decoding", "draft model"])
    assert 0 < len(v) <= features.MAX_TERMS
    assert list(v.ids) == sorted(v.ids)
    assert math.isclose(sum(w * w for w in v.weights), 1.0, rel_tol=1e-5)
    assert math.isclose(v.dot(v), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("title, abstract, keywords", [
    ("", "", ()), ("   ", "\n\t", ("",)), ("!!! ???", "---", ("...",)), ("\x00\ud800", "\uffff", ()),
    ("the of and", "we propose a novel method", ()), ("zzqx unknownword", "", ()),
])
def test_empty_or_odd_text_gives_an_empty_vector_not_an_error(title: str, abstract: str, keywords: tuple) -> None:
    v = vectorize(title, abstract, keywords)
    assert len(v) == 0 and not v and v.dot(vectorize("diffusion", "")) == 0.0
    assert Vector.from_bytes(v.to_bytes()) == v


def test_similar_papers_are_closer_than_unrelated_ones() -> None:
    a = vectorize("Speculative decoding with draft models", "A draft model proposes tokens for speculative decoding.")
    b = vectorize("Faster speculative decoding", "We improve the acceptance rate of draft tokens in speculative decoding.")
    c = vectorize("Video diffusion for 3D scene generation", "A video diffusion model generates 3D scenes.")
    assert a.dot(b) > 0.2 > a.dot(c)


def test_vector_bytes_round_trip_and_bad_bytes_are_a_clear_error() -> None:
    v = vectorize("Mixture of experts routing", "Sparse mixture-of-experts models route tokens to experts.")
    raw = v.to_bytes()
    assert Vector.from_bytes(raw) == v and len(raw) == 3 + 8 * len(v)
    for bad in (b"", b"\x01", b"\x02\x00\x00", raw[:-1]):
        with pytest.raises(ParseError):
            Vector.from_bytes(bad)


def test_vectors_are_data_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(vectorize("a paper", ""))


def test_the_split_is_the_topic_labels_one_every_fourth_day_from_the_first() -> None:
    from pathlib import Path
    days = [Path(f"2025-01-{n:02d}.json") for n in range(1, 13)]
    dev, test = split_days(list(reversed(days)))
    assert [d.name for d in test] == ["2025-01-03.json", "2025-01-07.json", "2025-01-11.json"]
    assert len(dev) == 9 and [is_test_day(n) for n in range(7)] == [False, False, True, False, False, False, True]


def test_the_shipped_vocabulary_holds_terms_and_counts_only_from_dev_days() -> None:
    from support import DATA
    import csv
    test_days = {r["day"] for r in csv.DictReader((DATA / "topic_labels_real_test.csv").open(encoding="utf-8"))}
    doc = json.loads(gzip.decompress(resources.files("newsletter.relevance").joinpath(vocab.VOCAB_FILE).read_bytes()))
    assert set(doc) == {"version", "docs", "days", "terms", "df"}
    assert doc["days"] and not set(doc["days"]) & test_days
    shipped = vocab.shipped()
    assert len(shipped) == len(doc["terms"]) > 1000 and shipped.docs == doc["docs"]


def test_a_vocabulary_keeps_words_and_only_repeated_pairs() -> None:
    built = vocab.build([("Speculative decoding", "", ()), ("Speculative decoding again", "", ()), ("Lone pair here", "", ())])
    assert "speculative decoding" in built.ids and "lone pair" not in built.ids and "lone" in built.ids
    v = vectorize("speculative decoding", "", vocabulary=built)
    assert len(v) == 3


def test_the_vocabulary_script_rebuilds_from_dev_days_only_and_says_what_it_wrote(tmp_path, capsys) -> None:
    days = tmp_path / "days"
    days.mkdir()
    for n in range(8):
        title = "Speculative decoding day %d" % n if n % 4 != 2 else "Testdayonly gaussian splatting"
        (days / f"2025-01-{n + 1:02d}.json").write_text(json.dumps(
            [{"paper": {"id": f"2501.0000{n}", "title": title, "summary": "A draft model speeds decoding."}}]))
    out = tmp_path / "vocab.json.gz"
    assert vocab.main([str(days), "--out", str(out)]) == 0
    assert "from 6 papers of 6 dev days" in capsys.readouterr().out
    built = vocab.Vocabulary.from_json(json.loads(gzip.decompress(out.read_bytes())))
    assert "speculative decoding" in built.ids and "testdayonly" not in built.ids
    assert "2025-01-03" not in built.days and len(built.days) == 6
    assert vocab.main([str(tmp_path / "nowhere")]) == 1
    assert "no Daily Papers day files" in capsys.readouterr().err


def test_a_malformed_vocabulary_is_a_clear_error() -> None:
    for doc in ({}, {"terms": ["a"], "df": [1, 2], "docs": 3}, {"terms": ["a"], "df": ["x"], "docs": 1}):
        with pytest.raises(ParseError):
            vocab.Vocabulary.from_json(doc)
