"""A saved Daily Papers API response read from disk: same mapping as the API, its own trending-day rule."""

from __future__ import annotations

import json
from datetime import date

import pytest

from newsletter.errors import ParseError, SourceError
from newsletter.sources import open_file_source, source_class
from newsletter.sources.hf_json import JsonFileSource, Options
from newsletter.sources.huggingface import HuggingFaceSource
from newsletter.sources.huggingface import Options as ApiOptions

PAGE0 = "hf_api/daily_papers_2025-03-14_p0.json"


def json_source(path, **options) -> JsonFileSource:
    return JsonFileSource("saved", Options(path=str(path), **options), today=date(2025, 3, 20))


def write(tmp_path, document, name="papers.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_registered_and_picked_for_json_files(data):
    assert source_class("hf-json") is JsonFileSource
    assert isinstance(open_file_source(str(data / PAGE0)), JsonFileSource)


def test_maps_items_exactly_as_the_api_source_does(httpserver, data):
    httpserver.expect_request("/api/daily_papers").respond_with_data((data / PAGE0).read_bytes())
    api = HuggingFaceSource("x", ApiOptions(base_url=httpserver.url_for("/").rstrip("/"), limit=50)).fetch()

    saved = json_source(data / PAGE0).fetch()

    assert saved.papers == api.papers  # one shared mapping function
    assert [p.arxiv_id for p in saved.papers][:2] == ["2411.10958", "2405.00587"]
    assert saved.papers[3].project_page is None  # the javascript: projectPage is dropped here too


def test_trending_day_is_the_newest_listing_day_in_the_file(data):
    assert json_source(data / PAGE0).fetch().trending_date == date(2025, 3, 14)


def test_trending_day_option_and_requested_day_win(data):
    assert json_source(data / PAGE0, trending_date=date(2025, 3, 13)).fetch().trending_date == date(2025, 3, 13)
    chosen = json_source(data / PAGE0, trending_date=date(2025, 3, 13)).fetch(date(2025, 3, 1))
    assert chosen.trending_date == date(2025, 3, 1)


def test_trending_day_falls_back_to_published_then_today(tmp_path, data):
    items = json.loads((data / PAGE0).read_bytes())
    for item in items:
        del item["paper"]["submittedOnDailyAt"]
    assert json_source(write(tmp_path, items)).fetch().trending_date == date(2025, 1, 14)  # newest publishedAt

    for item in items:
        del item["paper"]["publishedAt"], item["publishedAt"]
    assert json_source(write(tmp_path, items)).fetch().trending_date == date(2025, 3, 20)  # "today"


def test_accepts_a_papers_wrapper(tmp_path, data):
    items = json.loads((data / PAGE0).read_bytes())

    batch = json_source(write(tmp_path, {"papers": items, "date": "2025-03-14"})).fetch()

    assert len(batch.papers) == 6 and batch.papers[-1].rank == 6


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match=r"Cannot read .*nothing\.json"):
        json_source(tmp_path / "nothing.json").fetch()


def test_broken_json_is_a_parse_error_naming_the_file(tmp_path, data):
    path = tmp_path / "cut.json"
    path.write_bytes((data / PAGE0).read_bytes()[:5000])

    with pytest.raises(ParseError) as caught:
        json_source(path).fetch()
    assert str(path) in str(caught.value) and "not valid JSON" in str(caught.value)


def test_an_object_without_papers_is_a_parse_error(tmp_path):
    with pytest.raises(ParseError, match=r"expected a list of papers \(or an object with a 'papers' list\)"):
        json_source(write(tmp_path, {"items": []})).fetch()


def test_a_malformed_listing_day_is_reported_not_skipped(tmp_path, data):
    items = json.loads((data / PAGE0).read_bytes())
    items[2]["paper"]["submittedOnDailyAt"] = "14/03/2025"

    with pytest.raises(ParseError, match=r"item 2: submittedOnDailyAt '14/03/2025' is not an ISO date"):
        json_source(write(tmp_path, items)).fetch()
