"""The arXiv source, in both modes, against recorded responses served from 127.0.0.1."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from newsletter.errors import ParseError, SourceError
from newsletter.sources import arxiv, source_class
from newsletter.sources.arxiv import ArxivSource, Options
from newsletter.sources.http import RateLimiter

DAY = date(2025, 3, 14)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter_waits() -> list[float]:
    return []


@pytest.fixture
def limiter(limiter_waits) -> RateLimiter:
    return RateLimiter(clock=FakeClock(), sleep=limiter_waits.append)


def api_source(httpserver, sleeps, limiter, **options) -> ArxivSource:
    opts = Options(base_url=httpserver.url_for("/api/query"), **options)
    return ArxivSource("arxiv", opts, sleep=sleeps, limiter=limiter, today=DAY)


def listing_source(httpserver, sleeps, limiter, **options) -> ArxivSource:
    opts = Options(mode="listing", base_url=httpserver.url_for("/rss"), **options)
    return ArxivSource("arxiv-listing", opts, sleep=sleeps, limiter=limiter, today=DAY)


def test_registered_under_its_type_name():
    assert source_class("arxiv") is ArxivSource


def test_api_mode_queries_newest_first_and_maps_entries(httpserver, data, sleeps, limiter):
    httpserver.expect_request(
        "/api/query",
        query_string={
            "search_query": "cat:cs.LG",
            "start": "0",
            "max_results": "50",
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        },
    ).respond_with_data((data / "arxiv/api_query.xml").read_bytes(), content_type="application/atom+xml")

    batch = api_source(httpserver, sleeps, limiter).fetch()

    assert batch.source == "arxiv" and batch.trending_date == DAY
    assert [p.arxiv_id for p in batch.papers] == ["2502.21231", "2401.18079", "2312.11514", "2311.17982"]
    assert [p.rank for p in batch.papers] == [1, 2, 3, 4]
    bytescale = batch.papers[0]
    assert bytescale.title == (
        "ByteScale: Efficient Scaling of LLM Training with a 2048K Context Length on More Than 12,000 GPUs"
    )
    assert bytescale.abstract.startswith("Scaling long-context ability is essential for Large Language Models (LLMs).")
    assert "\n" not in bytescale.abstract
    assert bytescale.authors[0] == "Hao Ge" and len(bytescale.authors) == 9
    assert bytescale.published == date(2025, 2, 28)
    assert bytescale.url == "https://arxiv.org/abs/2502.21231"  # no version, https
    kvquant = batch.papers[1]
    assert "achieve <0.1 perplexity degradation" in kvquant.abstract  # plain-text summary: '<' is not a tag
    assert batch.papers[3].authors[-1] == "Ziwei Liu"


def test_api_query_combines_query_and_categories(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/api/query").respond_with_data((data / "arxiv/api_query.xml").read_bytes())

    batch = api_source(
        httpserver, sleeps, limiter, query="abs:quantization", categories=["cs.LG", "cs.CL"], max_results=2
    ).fetch()

    request = httpserver.log[0][0]
    assert request.args["search_query"] == "(abs:quantization) AND (cat:cs.LG OR cat:cs.CL)"
    assert request.args["max_results"] == "2"
    assert len(batch.papers) == 2  # the answer is cut to max_results even if the server sends more


def test_listing_mode_skips_replacements_and_cleans_entries(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(
        (data / "arxiv/listing_cs.LG.xml").read_bytes(), content_type="application/rss+xml"
    )

    batch = listing_source(httpserver, sleeps, limiter, categories=["cs.LG", "cs.CL"]).fetch()

    assert [p.arxiv_id for p in batch.papers] == ["2502.21231", "2410.23918", "2502.12135"]  # new, new, cross
    bytescale = batch.papers[0]
    assert bytescale.abstract.startswith("Scaling long-context ability")  # "arXiv:... Announce Type: new Abstract:" gone
    assert bytescale.authors[:3] == ["Hao Ge", "Junda Feng", "Qi Huang"]  # dc:creator "A, B, C" split
    assert len(bytescale.authors) == 9
    assert bytescale.published == DAY
    assert bytescale.url == "https://arxiv.org/abs/2502.21231"


def test_listing_mode_can_keep_replacements(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/rss/cs.LG").respond_with_data((data / "arxiv/listing_cs.LG.xml").read_bytes())

    batch = listing_source(httpserver, sleeps, limiter, include_replacements=True).fetch()

    assert [p.arxiv_id for p in batch.papers][2:] == ["2411.02355", "2502.12135", "2410.12168"]
    assert batch.papers[2].title.startswith('"Give Me BF16 or Give Me Death"?')


def test_two_fetches_are_spaced_by_the_rate_limit(httpserver, data, sleeps, limiter, limiter_waits):
    httpserver.expect_request("/api/query").respond_with_data((data / "arxiv/api_query.xml").read_bytes())
    first = api_source(httpserver, sleeps, limiter)
    second = api_source(httpserver, sleeps, limiter)  # another source, same process-wide limiter

    first.fetch()
    second.fetch()

    assert limiter_waits == [pytest.approx(3.0)]  # arXiv: one request every three seconds
    assert len(httpserver.log) == 2


def test_sources_share_one_limiter_by_default():
    one = ArxivSource("a", Options())
    two = ArxivSource("b", Options(mode="listing"))
    assert one.limiter is two.limiter is arxiv.SHARED_LIMITER


def test_an_api_error_feed_is_a_source_error(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/api/query").respond_with_data((data / "arxiv/api_error.xml").read_bytes())

    with pytest.raises(SourceError, match=r"arXiv reported an error: max_results must be less than or equal to 30000"):
        api_source(httpserver, sleeps, limiter).fetch()


def test_an_empty_page_despite_matches_is_a_source_error(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/api/query").respond_with_data((data / "arxiv/api_empty_page.xml").read_bytes())

    with pytest.raises(SourceError, match=r"no entries although it reports 241637 matches"):
        api_source(httpserver, sleeps, limiter).fetch()


def test_arxiv_responses_go_through_the_safe_xml_path(httpserver, data, sleeps, limiter):
    httpserver.expect_request("/api/query").respond_with_data((data / "rss/billion_laughs.xml").read_bytes())

    with pytest.raises(ParseError, match=r"declares the XML entity 'lol'") as caught:
        api_source(httpserver, sleeps, limiter).fetch()
    assert httpserver.url_for("/api/query") in str(caught.value)


def test_a_truncated_response_keeps_its_whole_entries_and_skips_the_cut_one(httpserver, data, sleeps, limiter):
    body = (data / "arxiv/api_query.xml").read_bytes()
    httpserver.expect_request("/api/query").respond_with_data(body[: len(body) // 2])

    batch = api_source(httpserver, sleeps, limiter).fetch()

    assert [p.arxiv_id for p in batch.papers] == ["2502.21231"]
    [reason] = batch.skipped
    assert reason.endswith(": entry 2: cut off by the end of the document")


def test_an_entry_without_an_arxiv_id_is_skipped_with_its_reason(httpserver, data, sleeps, limiter):
    body = (data / "arxiv/api_query.xml").read_bytes().replace(b"2401.18079", b"not-an-id")
    httpserver.expect_request("/api/query").respond_with_data(body)

    batch = api_source(httpserver, sleeps, limiter).fetch()

    assert [p.arxiv_id for p in batch.papers] == ["2502.21231", "2312.11514", "2311.17982"]
    [reason] = batch.skipped
    assert reason.endswith("entry 2: no arXiv id in the entry's id or links")


def test_options_are_validated():
    with pytest.raises(ValidationError, match="query is for mode 'api'"):
        Options(mode="listing", query="cat:cs.LG")
    with pytest.raises(ValidationError, match="not an arXiv category"):
        Options(categories=["cs.LG&max_results=9"])
    with pytest.raises(ValidationError):
        Options(mode="rss")
    with pytest.raises(ValidationError):
        Options(max_results=5000)
    assert Options().min_interval_seconds == 3.0
    assert ArxivSource("a", Options()).api_params()["search_query"] == "cat:cs.LG"
