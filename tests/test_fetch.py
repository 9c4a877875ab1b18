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


def test_fetch_stores_the_feed_with_its_metadata(httpserver, tmp_path: Path) -> None:  # noqa: ANN001
    httpserver.expect_request("/api/daily_papers").respond_with_data(PAGE0.read_bytes(), content_type="application/json")
    cfg = hf_config(tmp_path, httpserver.url_for("/").rstrip("/"))
    result = cli(cfg, "fetch", "--date", "2025-03-14")
    assert result.exit_code == 0, result.output
    assert "6 papers trending 2025-03-14" in result.output
    papers = stored(cfg)
    items = json.loads(PAGE0.read_bytes())
    assert {p["arxiv_id"] for p in papers} == {i["paper"]["id"] for i in items}
    assert all(p["url"].startswith("https://huggingface.co/papers/") for p in papers)
    assert httpserver.log[0][0].args["date"] == "2025-03-14"


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
