"""`newsletter preview`: the next issue or a made edition, rendered to files from a real SQLite store."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

from click.testing import CliRunner
from support import PAGE_DAYS, PAGES

from newsletter.cli import main
from newsletter.pipeline import Newsletter

DAY = PAGE_DAYS["mar14"].isoformat()


def run(config_file: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config_file), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_preview_writes_both_parts_and_the_message(config_file: Path, tmp_path: Path) -> None:
    run(config_file, "import", str(PAGES["mar14"]), "--date", DAY)
    run(config_file, "subscribers", "add", "ada@example.org", "--topics", "quantization,llm-inference")
    out = tmp_path / "out"
    output = run(config_file, "preview", "--date", DAY, "--out", str(out))
    assert "next daily issue (2025-03-14) for a reader of every topic" in output
    html, text = (out / "preview.html").read_text(), (out / "preview.txt").read_text()
    assert "<html" in html and "Unsubscribe" in html and "%%nl-" not in html
    assert "TOP PAPERS" in text and "/unsubscribe?token=" in text
    msg = message_from_bytes((out / "preview.eml").read_bytes(), policy=default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    output = run(config_file, "preview", "--date", DAY, "--out", str(out), "--subscriber", "ada@example.org")
    assert "for ada@example.org" in output
    mine = (out / "preview.txt").read_text()
    assert "Hello," in mine and len(mine) < len(text)
    assert "Quantization & compression" in mine


def test_preview_of_an_edition_shows_it_as_it_went_out(config_file: Path, tmp_path: Path) -> None:
    run(config_file, "import", str(PAGES["mar14"]), "--date", DAY)
    run(config_file, "subscribers", "add", "ada@example.org", "--topics", "quantization")
    nl = Newsletter.from_config(config_file, {})
    try:
        plan = nl.plan("daily", PAGE_DAYS["mar14"])
        edition = nl.record_edition(plan, subject="Trending papers")
        before = nl.preview(subscriber="ada@example.org", edition_id=edition)
    finally:
        nl.close()
    out = tmp_path / "edition"
    output = run(config_file, "preview", "--edition", str(edition), "--subscriber", "ada@example.org",
                 "--out", str(out))
    assert f"edition {edition} for ada@example.org" in output
    html = (out / "preview.html").read_text()
    assert f"/editions/{edition}" in html
    assert before.content.sections[0].slug == "quantization"
    run(config_file, "preview", "--edition", str(edition), "--subscriber", "ada@example.org", "--out", str(out))
    assert (out / "preview.html").read_text() == html  # the same data renders the same bytes
    # Papers fetched later never enter an edition made before them (their order may change: upvotes and
    # sightings are not kept per edition, so exact bytes would need the rendered message kept).
    run(config_file, "import", str(PAGES["mar25"]), "--date", PAGE_DAYS["mar25"].isoformat())
    nl = Newsletter.from_config(config_file, {})
    try:
        after = nl.preview(subscriber="ada@example.org", edition_id=edition)
        in_edition = {pid for pid, _ in nl.store.edition_papers(edition)}
    finally:
        nl.close()
    assert {p.id for p in after.content.papers} <= in_edition
    assert [s.slug for s in after.content.sections] == [s.slug for s in before.content.sections]


def test_preview_refuses_a_reader_of_another_cadence(config_file: Path) -> None:
    run(config_file, "subscribers", "add", "weekly@example.org", "--cadence", "weekly")
    result = CliRunner().invoke(main, ["--config", str(config_file), "preview", "--cadence", "daily",
                                       "--subscriber", "weekly@example.org"])
    assert result.exit_code != 0 and "not an active daily reader" in result.output


def test_preview_prints_the_counts_the_subject_and_the_email_say(config_file: Path, tmp_path: Path) -> None:
    """`preview` says what the email lists, as the subject and the heading do, and what only the web copy holds."""
    import re

    run(config_file, "import", str(PAGES["mar14"]), "--date", DAY)
    run(config_file, "subscribers", "add", "ada@example.org", "--topics", "quantization,llm-inference")
    out = run(config_file, "preview", "--subscriber", "ada@example.org", "--date", DAY, "--out", str(tmp_path / "p"))
    said = " ".join(out.split())  # the console wraps long lines
    assert "17 new papers in 2 topics (+ 5 only in the web copy)" in said
    html = (tmp_path / "p" / "preview.html").read_text()
    assert ">17 new papers in 2 topics</h1>" in html
    message = message_from_bytes((tmp_path / "p" / "preview.eml").read_bytes(), policy=default)
    subject = str(message["Subject"])
    assert subject.endswith("17 new in 2 topics, Mar 14") and f"Subject: {subject}" in said
