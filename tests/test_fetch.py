"""``newsletter fetch`` end to end against a real HTTP server on 127.0.0.1: stored whole, or not at all."""

from __future__ import annotations

import json
import socket
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main

from support import DATA, write_config

PAGE0 = DATA / "hf_api/daily_papers_2025-03-14_p0.json"


def hf_config(tmp_path: Path, base_url: str, **extra: object) -> Path:
    return write_config(tmp_path, sources=[{"type": "huggingface", "base_url": base_url, "retries": 1, "limit": 50}],
                        **extra)


def cli(cfg: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


def stored(cfg: Path) -> list[dict]:
    return json.loads(cli(cfg, "papers", "--json").output)


def serve_day(httpserver, day: str, body: bytes) -> None:  # noqa: ANN001
    """The API stand-in: ``body`` for ``day``, an empty list for every other day (as for a weekend)."""
    httpserver.expect_request("/api/daily_papers", query_string={"p": "0", "limit": "50", "date": day}
                              ).respond_with_data(body, content_type="application/json")
    httpserver.expect_request("/api/daily_papers").respond_with_json([])


def test_fetch_stores_the_feed_with_its_metadata(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    serve_day(httpserver, "2025-03-14", PAGE0.read_bytes())
    cfg = hf_config(tmp_path, httpserver.url_for("/").rstrip("/"))
    result = cli(cfg, "fetch", "--date", "2025-03-14")
    assert result.exit_code == 0, result.output
    # A fresh store catches up on windows.weekly (14) listing days through the day asked.
    assert "6 papers on 14 listing days, 2025-03-01 to 2025-03-14" in result.output
    papers = stored(cfg)
    items = json.loads(PAGE0.read_bytes())
    assert {p["arxiv_id"] for p in papers} == {i["paper"]["id"] for i in items}
    assert all(p["url"].startswith("https://huggingface.co/papers/") for p in papers)
    assert [r.args["date"] for r, _ in httpserver.log][-1] == "2025-03-14"


def test_http_500_is_a_clear_error_and_changes_nothing(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    httpserver.expect_request("/api/daily_papers").respond_with_data("boom", status=500)
    cfg = hf_config(tmp_path, httpserver.url_for("/").rstrip("/"))
    cli(cfg, "import", str(DATA.parent.parent / "newsletter/sample/daily-papers-mar14.txt"))
    before = stored(cfg)
    result = cli(cfg, "fetch")
    assert result.exit_code == 1
    assert "HTTP 500" in result.output and "gave up after 2 attempts" in result.output
    assert "Traceback" not in result.output
    assert stored(cfg) == before


def test_truncated_json_is_a_clear_error_and_changes_nothing(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    body = PAGE0.read_bytes()
    httpserver.expect_request("/api/daily_papers").respond_with_data(body[: len(body) // 2], content_type="application/json")
    cfg = hf_config(tmp_path, httpserver.url_for("/").rstrip("/"))
    result = cli(cfg, "fetch")
    assert result.exit_code == 1
    assert "not valid JSON" in result.output, result.output
    assert stored(cfg) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_falls_back_to_the_bundled_sample(tmp_path: Path) -> None:
    cfg = hf_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    result = cli(cfg, "fetch")
    assert result.exit_code == 0, result.output
    assert "bundled sample" in result.output
    papers = stored(cfg)
    assert len(papers) == 97  # the newest sample page
    assert {p["last_trending"] for p in papers} == {date.today().isoformat()}  # stored as trending today


def test_the_offline_sample_keeps_its_papers_publication_dates(tmp_path: Path) -> None:
    from newsletter import config
    from newsletter.pipeline import Newsletter

    cfg = hf_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    nl = Newsletter(config.load(cfg, {}))
    try:
        today = date(2026, 12, 2)
        report = nl.fetch(today=today)
        assert report.used_sample and report.sources[-1].trending_date == today  # listed as today's papers
    finally:
        nl.close()
    papers = {p["title"]: p for p in stored(cfg)}
    assert {p["last_trending"] for p in papers.values()} == {today.isoformat()}
    # ... each with its own publication date (2025 papers), not this year's
    assert papers["StreamDiT: Real-Time Streaming Text-to-Video Generation"]["published"] == "2025-07-04"
    assert papers["Qwen2.5-Omni Technical Report"]["published"] == "2025-03-26"
    assert max(p["published"] for p in papers.values() if p["published"]) <= "2025-10-28"


def test_no_network_without_fallback_is_an_error(tmp_path: Path) -> None:
    cfg = hf_config(tmp_path, f"http://127.0.0.1:{closed_port()}", sample_fallback=False)
    result = cli(cfg, "fetch")
    assert result.exit_code == 1 and "cannot connect" in result.output
    assert stored(cfg) == []


def test_one_failing_source_does_not_block_the_others(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    httpserver.expect_request("/api/daily_papers").respond_with_data("boom", status=503)
    cfg = write_config(tmp_path, sources=[
        {"type": "huggingface", "base_url": httpserver.url_for("/").rstrip("/"), "retries": 0},
        {"type": "hf-json", "path": str(PAGE0)},
    ])
    result = cli(cfg, "fetch", "--json")
    assert result.exit_code == 1  # a source failed: the run says so
    report = json.loads(result.output)
    assert [bool(s["error"]) for s in report["sources"]] == [True, False]
    assert len(stored(cfg)) == 6


class _Exploding:
    """A source whose upstream library fails in a way nobody foresaw (not a SourceError)."""

    options_model = __import__("newsletter.sources", fromlist=["SourceOptions"]).SourceOptions

    def __init__(self, name: str, options: object) -> None:
        self.name = name

    def fetch(self, day: object = None) -> object:
        raise ValueError("multi-byte encodings are not supported\nsecond line")


def test_any_exception_is_that_sources_one_line_error_and_the_others_are_stored(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from newsletter import sources

    monkeypatch.setitem(sources.REGISTRY, "exploding", f"{__name__}:_Exploding")
    cfg = write_config(tmp_path, sources=[{"type": "exploding"}, {"type": "hf-json", "path": str(PAGE0)}])
    result = cli(cfg, "fetch", "--json")
    assert result.exit_code == 1
    first, second = json.loads(result.output)["sources"]
    assert first["error"] == "exploding: unexpected ValueError: multi-byte encodings are not supported second line"
    assert second["error"] is None and len(stored(cfg)) == 6


def test_skipped_entries_are_counted_with_their_reasons(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    items = json.loads(PAGE0.read_text())
    items[2]["paper"].pop("id")
    serve_day(httpserver, "2025-03-14", json.dumps(items).encode())
    cfg = hf_config(tmp_path, httpserver.url_for("/").rstrip("/"))
    result = cli(cfg, "fetch", "--date", "2025-03-14")
    assert result.exit_code == 0, result.output
    assert "1 entry skipped" in result.output and "item 2: paper.id is missing" in result.output
    assert len(stored(cfg)) == len(items) - 1
