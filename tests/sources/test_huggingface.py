"""The Daily Papers API source against recorded responses served from 127.0.0.1."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from pydantic import ValidationError

from newsletter.errors import ParseError, SourceError
from newsletter.sources import source_class
from newsletter.sources.huggingface import HuggingFaceSource, Options

DAY = date(2025, 3, 14)
PAGE0 = "hf_api/daily_papers_2025-03-14_p0.json"  # six items
PAGE1 = "hf_api/daily_papers_2025-03-14_p1.json"  # three items


def source(httpserver, sleeps, **options) -> HuggingFaceSource:
    opts = Options(base_url=httpserver.url_for("/").rstrip("/"), **options)
    return HuggingFaceSource("huggingface", opts, sleep=sleeps, today=date(2025, 3, 20))


def serve_pages(httpserver, data, limit=6):
    for page, name in ((0, PAGE0), (1, PAGE1)):
        httpserver.expect_request(
            "/api/daily_papers", query_string={"p": str(page), "limit": str(limit), "date": "2025-03-14"}
        ).respond_with_data((data / name).read_bytes(), content_type="application/json")


def test_registered_under_its_type_name():
    assert source_class("huggingface") is HuggingFaceSource


def test_maps_every_field(httpserver, data, sleeps):
    serve_pages(httpserver, data)

    batch = source(httpserver, sleeps, limit=6).fetch(DAY)

    assert batch.source == "huggingface" and batch.trending_date == DAY
    first = batch.papers[0]
    assert first.arxiv_id == "2411.10958"
    assert first.title.startswith("SageAttention2 Technical Report: Accurate 4 Bit Attention")
    assert first.abstract.startswith("Although quantization for linear layers has been widely used, its application to")
    assert "\n" not in first.abstract and "  " not in first.abstract  # the API's line breaks are collapsed
    assert first.abstract.endswith("https://github.com/thu-ml/SageAttention.")
    assert first.authors == ["Jintao Zhang", "Haofeng Huang", "Pengle Zhang", "Jia Wei", "Jun Zhu", "Jianfei Chen"]
    assert first.published == date(2024, 11, 17)
    assert (first.upvotes, first.num_comments) == (52, 3)
    assert first.ai_summary.startswith("SageAttention2 quantizes Q and K to INT4")
    assert first.ai_keywords[:2] == ["INT4 quantization", "FP8"]
    assert (first.github_repo, first.github_stars) == ("https://github.com/thu-ml/SageAttention", 1850)
    assert first.project_page is None and first.organization is None
    assert first.thumbnail == "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2411.10958.png"
    assert first.url == "https://huggingface.co/papers/2411.10958"
    assert first.rank == 1


def test_optional_fields_absent_or_unsafe(httpserver, data, sleeps):
    serve_pages(httpserver, data)

    papers = {p.arxiv_id: p for p in source(httpserver, sleeps, limit=6).fetch(DAY).papers}

    graco = papers["2405.00587"]
    assert "   " not in graco.authors and len(graco.authors) == 9  # the blank author name is skipped
    assert graco.project_page == "https://zhao-yian.github.io/GraCo"

    datastates = papers["2406.10707"]  # no ai_summary, keywords, repo, project page or thumbnail
    assert datastates.ai_summary is None and datastates.ai_keywords == []
    assert datastates.github_repo is None and datastates.github_stars is None
    assert datastates.project_page is None and datastates.thumbnail is None
    assert datastates.num_comments == 0

    mugs = papers["2203.14415"]  # projectPage is javascript:
    assert mugs.project_page is None
    assert mugs.github_repo == "https://github.com/sail-sg/mugs"

    vidu = papers["2405.16822"]  # keywords with stray spaces, a duplicate and an empty one
    assert vidu.ai_keywords == ["4D reconstruction", "Dynamic Gaussian Surfels", "video generation"]

    vptq = papers["2409.17066"]
    assert vptq.organization == "Microsoft"  # fullname, not the slug
    assert vptq.published == date(2024, 9, 25)


def test_pagination_reads_until_a_short_page(httpserver, data, sleeps):
    serve_pages(httpserver, data)

    batch = source(httpserver, sleeps, limit=6).fetch(DAY)

    assert [p.rank for p in batch.papers] == list(range(1, 10))
    assert [p.arxiv_id for p in batch.papers[5:7]] == ["2405.16822", "2403.12957"]  # page 0's last, page 1's first
    pages = [(req.args["p"], req.args["limit"], req.args["date"]) for req, _ in httpserver.log]
    assert pages == [("0", "6", "2025-03-14"), ("1", "6", "2025-03-14")]  # page 1 held 3 < 6: no page 2


def test_max_pages_stops_early(httpserver, data, sleeps):
    serve_pages(httpserver, data)

    batch = source(httpserver, sleeps, limit=6, max_pages=1).fetch(DAY)

    assert len(batch.papers) == 6
    assert len(httpserver.log) == 1


def test_without_a_day_reads_the_latest_list_dated_by_its_listing_day(httpserver, data, sleeps):
    httpserver.expect_request("/api/daily_papers", query_string={"p": "0", "limit": "50"}).respond_with_data(
        (data / PAGE1).read_bytes(), content_type="application/json"
    )

    batch = source(httpserver, sleeps).fetch()

    # Labelled with the day the papers were listed (their submittedOnDailyAt), not the clock's "today".
    listed = max(date.fromisoformat(i["paper"]["submittedOnDailyAt"][:10]) for i in json.loads((data / PAGE1).read_bytes())
                 if i["paper"].get("submittedOnDailyAt"))
    assert batch.trending_date == listed != date(2025, 3, 20)
    assert len(batch.papers) == 3
    assert "date" not in httpserver.log[0][0].args


def test_without_a_day_or_listing_dates_the_list_is_dated_today(httpserver, data, sleeps):
    items = json.loads((data / PAGE1).read_bytes())
    for item in items:
        item["paper"].pop("submittedOnDailyAt", None)
        item.pop("submittedOnDailyAt", None)
        item["paper"].pop("publishedAt", None)
        item.pop("publishedAt", None)
    httpserver.expect_request("/api/daily_papers").respond_with_json(items)
    assert source(httpserver, sleeps).fetch().trending_date == date(2025, 3, 20)  # the injected "today"


def test_a_paper_repeated_on_the_next_page_is_kept_once(httpserver, data, sleeps):
    page0 = json.loads((data / PAGE0).read_bytes())
    page1 = [page0[-1]] + json.loads((data / PAGE1).read_bytes())  # the list shifted by one meanwhile
    for page, items in ((0, page0), (1, page1)):
        httpserver.expect_request("/api/daily_papers", query_string={"p": str(page), "limit": "6"}).respond_with_json(
            items
        )

    batch = source(httpserver, sleeps, limit=6).fetch()

    ids = [p.arxiv_id for p in batch.papers]
    assert len(ids) == len(set(ids)) == 9
    assert [p.rank for p in batch.papers] == list(range(1, 10))


def test_429_with_retry_after_then_success(httpserver, data, sleeps):
    httpserver.expect_oneshot_request("/api/daily_papers").respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_oneshot_request("/api/daily_papers").respond_with_data((data / PAGE1).read_bytes())

    batch = source(httpserver, sleeps).fetch(DAY)

    assert sleeps.waits == [2.0]
    assert len(batch.papers) == 3


def test_repeated_500_is_a_source_error_after_the_retries(httpserver, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_data("upstream down", status=500)

    with pytest.raises(SourceError, match=r"/api/daily_papers\?p=0.*HTTP 500.*3 attempts"):
        source(httpserver, sleeps, retries=2).fetch(DAY)
    assert sleeps.waits == [1.0, 2.0]
    assert len(httpserver.log) == 3


def test_truncated_json_is_a_parse_error_naming_the_url(httpserver, data, sleeps):
    body = (data / PAGE0).read_bytes()
    httpserver.expect_request("/api/daily_papers").respond_with_data(body[: len(body) // 2])

    with pytest.raises(ParseError) as caught:
        source(httpserver, sleeps).fetch(DAY)

    message = str(caught.value)
    assert httpserver.url_for("/api/daily_papers") in message
    assert "not valid JSON" in message and "truncated" in message
    assert "\n" not in message


def test_html_instead_of_json_is_a_parse_error(httpserver, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_data("<html>maintenance</html>", content_type="text/html")

    with pytest.raises(ParseError, match="not valid JSON"):
        source(httpserver, sleeps).fetch(DAY)


def test_a_body_that_is_not_a_list_is_a_parse_error(httpserver, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_json({"error": "Invalid date"})

    with pytest.raises(ParseError, match=r"expected a list of papers, found an object"):
        source(httpserver, sleeps).fetch(DAY)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda item: item["paper"].pop("id"), r"item 1: paper.id is missing"),
        (lambda item: item["paper"].update(id="not-an-id"), r"item 1: paper.id 'not-an-id' is not an arXiv id"),
        (lambda item: (item["paper"].pop("title"), item.pop("title")), r"item 1: paper 2405.00587 has no title"),
        (lambda item: item.pop("paper"), r"item 1: no 'paper' object"),
        (lambda item: item["paper"].update(upvotes="many"), r"item 1: upvotes should be a whole number"),
        (lambda item: item["paper"].update(publishedAt="yesterday"), r"item 1: publishedAt 'yesterday' is not"),
        (lambda item: item["paper"].update(authors="Tri Dao"), r"item 1: paper.authors should be a list"),
    ],
)
def test_a_malformed_item_is_skipped_with_its_reason(httpserver, data, sleeps, mutate, expected):
    items = json.loads((data / PAGE0).read_bytes())
    mutate(items[1])
    httpserver.expect_request("/api/daily_papers").respond_with_json(items)

    batch = source(httpserver, sleeps).fetch(DAY)

    assert len(batch.papers) == len(items) - 1  # the rest of the day is kept
    [reason] = batch.skipped
    assert re.search(expected, reason) and httpserver.url_for("/api/daily_papers") in reason


def test_a_title_only_at_top_level_is_enough(httpserver, data, sleeps):
    items = json.loads((data / PAGE1).read_bytes())
    del items[0]["paper"]["title"]
    httpserver.expect_request("/api/daily_papers").respond_with_json(items)

    batch = source(httpserver, sleeps).fetch(DAY)

    assert batch.papers[0].title.startswith("GVGEN: Text-to-3D Generation")


def test_a_response_over_max_bytes_is_a_source_error(httpserver, data, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_data((data / PAGE0).read_bytes())

    with pytest.raises(SourceError, match=r"over the limit of 2,048 bytes"):
        source(httpserver, sleeps, max_bytes=2048).fetch(DAY)


def test_options_are_validated():
    with pytest.raises(ValidationError):
        Options(limit=101)
    with pytest.raises(ValidationError):
        Options(base_url="javascript:alert(1)")
    with pytest.raises(ValidationError, match="extra"):
        Options(limt=10)
    assert Options().base_url == "https://huggingface.co" and Options().limit == 50


# --- fidelity to what the real API sends -----------------------------------------------------------------


def test_an_older_response_is_dated_by_the_items_listing_day_not_the_arxiv_date(httpserver, sleeps, real_data):
    # 2024 responses have no submittedOnDailyAt: the item's top-level publishedAt is when it was listed.
    body = (real_data / "hf/deep-diver_daily_papers_2024-10-25_first4.json").read_bytes()
    httpserver.expect_request("/api/daily_papers").respond_with_data(body, content_type="application/json")

    batch = source(httpserver, sleeps).fetch()

    assert batch.trending_date == date(2024, 10, 25)
    assert batch.papers[0].published == date(2024, 10, 22)  # the arXiv date stays the paper's own


def test_a_withdrawn_paper_is_never_kept(httpserver, data, sleeps):
    items = json.loads((data / PAGE0).read_bytes())
    items[2]["paper"]["withdrawnAt"] = "2025-03-15T09:00:00.000Z"
    httpserver.expect_request("/api/daily_papers").respond_with_json(items)

    batch = source(httpserver, sleeps).fetch(DAY)

    assert items[2]["paper"]["id"] not in [p.arxiv_id for p in batch.papers]
    assert len(batch.papers) == len(items) - 1
    [reason] = batch.skipped
    assert reason.endswith(f"item 2: paper {items[2]['paper']['id']} was withdrawn (2025-03-15)")


def test_hidden_authors_are_not_shown(httpserver, sleeps, real_data):
    items = [json.loads(p.read_bytes()) for p in sorted((real_data / "hf-api-days").glob("*.json"))]
    item = next(i for d in items for i in d if any(a.get("hidden") for a in i["paper"]["authors"]))
    httpserver.expect_request("/api/daily_papers").respond_with_json([item])

    [paper] = source(httpserver, sleeps).fetch(DAY).papers

    visible = [a["name"] for a in item["paper"]["authors"] if not a.get("hidden")]
    hidden = [a["name"] for a in item["paper"]["authors"] if a.get("hidden")]
    assert paper.authors == visible and hidden and not set(hidden) & set(paper.authors)


def test_paging_stops_when_the_api_ignores_the_page_number(httpserver, data, sleeps):
    # An API that answers every page with the whole list: the second page brings nothing new, so stop.
    items = json.loads((data / PAGE0).read_bytes())
    httpserver.expect_request("/api/daily_papers").respond_with_json(items)

    batch = source(httpserver, sleeps, limit=3, max_pages=5).fetch(DAY)

    assert len(batch.papers) == len(items)
    assert [r.args["p"] for r, _ in httpserver.log if r.path == "/api/daily_papers"] == ["0", "1"]


def test_an_empty_weekend_list_is_not_an_error(httpserver, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_json([])

    batch = source(httpserver, sleeps).fetch(date(2025, 3, 15))  # a Saturday

    assert batch.papers == [] and batch.skipped == [] and batch.trending_date == date(2025, 3, 15)


def test_a_date_the_api_refuses_shows_the_apis_own_error(httpserver, sleeps):
    httpserver.expect_request("/api/daily_papers").respond_with_json(
        {"error": "Invalid date: must not be in the future"}, status=400)

    with pytest.raises(SourceError, match=r"HTTP 400 BAD REQUEST: Invalid date: must not be in the future$"):
        source(httpserver, sleeps).fetch(date(2031, 1, 1))
