"""Conformance on what real upstreams sent (../shared/data/real, read in place; skipped where it is absent).

Every feed of feedparser's corpus is served on 127.0.0.1 beside a good source; each is imported or refused
with a one-line message, and the good source is stored all the same. The recorded arXiv API and RSS
responses import with the ids, titles and authors they hold.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from newsletter import config
from newsletter.models import normalize_arxiv_id
from newsletter.pipeline import Newsletter
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.arxiv import Options as ArxivOptions
from newsletter.sources.http import RateLimiter

from support import DATA

GOOD = DATA / "hf_api/daily_papers_2025-03-14_p0.json"
ATOM = "{http://www.w3.org/2005/Atom}"


def corpus(real_data: Path) -> list[str]:
    listed = (real_data / "feedparser/FILES.txt").read_text().split()
    assert listed, "feedparser/FILES.txt lists no feeds"
    return listed


def test_every_corpus_feed_is_imported_or_refused_in_one_line_beside_a_good_source(real_data, httpserver, tmp_path):
    files = corpus(real_data)
    for index, name in enumerate(files):
        httpserver.expect_request(f"/feed/{index}").respond_with_data(
            (real_data / "feedparser" / name).read_bytes(), content_type="application/xml")
    sources = [{"type": "rss", "name": f"feed-{i}", "url": httpserver.url_for(f"/feed/{i}"), "retries": 0}
               for i in range(len(files))]
    sources.insert(len(files) // 2, {"type": "hf-json", "name": "good", "path": str(GOOD)})
    settings = config.from_mapping({"database_url": f"sqlite:///{tmp_path / 'n.db'}", "sources": sources},
                                   environ={}, base_dir=tmp_path)
    nl = Newsletter(settings)

    report = nl.fetch()

    by_name = {entry.source: entry for entry in report.sources}
    assert by_name["good"].error is None and by_name["good"].papers == 6
    refused, imported = [], []
    for index, name in enumerate(files):
        entry = by_name[f"feed-{index}"]
        if entry.error:
            assert "\n" not in entry.error and "Unexpected" not in entry.error and "unexpected" not in entry.error
            assert entry.error.startswith(httpserver.url_for(f"/feed/{index}")), entry.error
            refused.append(name)
        else:
            imported.append(name)
            for reason in entry.skipped:
                assert "\n" not in reason
    assert report.ingest is not None and report.ingest.new >= 6
    assert len(nl.store.papers()) == report.ingest.new  # everything fetched was stored, in one ingest
    # The multi-byte and the high-bit feeds decode; a bogus encoding is that feed's one-line refusal.
    assert "tests/encoding/big5.xml" in imported
    assert by_name[f"feed-{files.index('tests/encoding/bozo_bogus_encoding.xml')}"].error.endswith(
        "refused: the feed declares an unknown encoding ('bogus')")
    # Entities defined by a DTD stay refused; plain ill-formed feeds are read.
    assert "tests/wellformed/rdf/doctype_contains_entity_decl.xml" in refused
    assert "tests/illformed/rss_item_link_corrupted_ampersands.xml" in imported
    nl.close()


def test_an_entry_without_a_title_costs_only_that_entry(real_data, httpserver, tmp_path):
    # feedparser's corpus is full of one-item feeds whose item has no title: each is a feed, kept, with
    # the item skipped and its reason reported.
    body = (real_data / "feedparser/tests/wellformed/rss/item_description.xml").read_bytes()
    httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")
    settings = config.from_mapping({"database_url": f"sqlite:///{tmp_path / 'n.db'}",
                                    "sources": [{"type": "rss", "url": httpserver.url_for("/feed")}]},
                                   environ={}, base_dir=tmp_path)
    nl = Newsletter(settings)

    [entry] = nl.fetch().sources

    assert entry.error is None and entry.papers == 0
    assert entry.skipped == [f"{httpserver.url_for('/feed')}: entry 1: the entry has no title"]
    nl.close()


def _arxiv(httpserver, mode: str, **options) -> ArxivSource:
    opts = ArxivOptions(mode=mode, base_url=httpserver.url_for("/" + mode), retries=0, **options)
    return ArxivSource("arxiv", opts, sleep=lambda s: None, limiter=RateLimiter(0))


@pytest.mark.parametrize("name", ["id_list=1111.2011v2.xml", "search_query=au_del_maestro.xml",
                                  "search_query=au_del_maestro.AND.ti_checkerboard.xml",
                                  "search_query=au_del_maestro.AND.ti_quantum_criticality.xml",
                                  "search_query=au_del_maestro.ANDNOT._28ti_checkerboard.OR.ti_Pyrochlore_29.xml"])
def test_recorded_arxiv_api_responses_import_right(real_data, httpserver, name):
    body = (real_data / "arxiv_api" / name).read_bytes()
    httpserver.expect_request("/api").respond_with_data(body, content_type="application/atom+xml")
    expected = [
        (normalize_arxiv_id(e.findtext(f"{ATOM}id")), " ".join((e.findtext(f"{ATOM}title") or "").split()),
         [" ".join(a.findtext(f"{ATOM}name").split()) for a in e.findall(f"{ATOM}author")])
        for e in ET.fromstring(body).findall(f"{ATOM}entry")
    ]
    assert expected

    batch = _arxiv(httpserver, "api", max_results=2000).fetch()

    assert [(p.arxiv_id, p.title, p.authors) for p in batch.papers] == expected
    assert batch.skipped == []
    assert all(p.url == f"https://arxiv.org/abs/{p.arxiv_id}" and p.abstract for p in batch.papers)


def test_the_recorded_arxiv_rss_listing_imports_right(real_data, httpserver):
    [path] = (real_data / "arxiv_rss").glob("*.xml")
    httpserver.expect_request("/listing/cs.AI").respond_with_data(path.read_bytes(),
                                                                 content_type="application/rss+xml")

    batch = _arxiv(httpserver, "listing", categories=["cs.AI"]).fetch()

    [paper] = batch.papers
    assert paper.arxiv_id == "2509.13332"
    assert paper.title.startswith("Explicit Reasoning Makes Better Judges")
    assert paper.abstract.startswith("As Large Language Models (LLMs) are increasingly adopted")  # prefix gone
    assert paper.authors == []  # this copy was cut before the item's dc:creator
    assert paper.url == "https://arxiv.org/abs/2509.13332"
