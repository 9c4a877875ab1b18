"""The CLI end to end on a real SQLite file: every command documented, clean errors, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main

from support import PAGE_DAYS, PAGES, ROOT


def all_commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + (name,), cmd))
        if isinstance(cmd, click.Group):
            out.extend(all_commands(cmd, prefix + (name,)))
    return out


def run(config_file: Path, *args: str, ok: bool = True) -> click.testing.Result:
    result = CliRunner().invoke(main, ["--config", str(config_file), *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("path, cmd", all_commands(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_with_an_example(path: tuple[str, ...], cmd: click.Command) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example:" in (cmd.help or ""), f"`newsletter {' '.join(path)}` has no example in its docstring"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    leaves = [" ".join(p) for p, c in all_commands() if not isinstance(c, click.Group) or c.invoke_without_command]
    missing = [name for name in leaves if f"newsletter {name}" not in readme
               and f"newsletter {name.rsplit(' ', 1)[0]} " not in readme]
    assert not missing, f"README.md does not mention: {missing}"


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "newsletter", "--help"], capture_output=True, text=True, check=True)
    assert "Usage: newsletter" in out.stdout


def test_import_then_papers_json(config_file: Path) -> None:
    result = run(config_file, "import", str(PAGES["oct28"]), "--date", PAGE_DAYS["oct28"].isoformat(), "--json")
    assert json.loads(result.output)[0]["papers"] == 97
    papers = json.loads(run(config_file, "papers", "--json").output)
    assert len(papers) == 97
    required = {"key", "arxiv_id", "title", "abstract", "authors", "author_count", "organization", "published",
                "upvotes", "url", "topic", "topics"}
    assert all(required <= set(p) for p in papers)
    sana = next(p for p in papers if p["title"].startswith("SANA-Video"))
    assert (sana["organization"], sana["published"], sana["upvotes"]) == ("NVIDIA", "2025-09-29", 2)
    wave = next(p for p in papers if p["title"].startswith("Towards High-Quality and Efficient Speech"))
    assert (wave["authors"], wave["author_count"]) == ([], 4)
    filtered = json.loads(run(config_file, "papers", "--search", "speculative", "--json").output)
    assert filtered and all("speculative" in (p["title"] + p["abstract"]).lower() for p in filtered)


def test_a_malformed_page_is_a_clear_error_and_stores_nothing(config_file: Path, tmp_path: Path) -> None:
    run(config_file, "import", str(PAGES["mar14"]), "--date", "2025-03-14")
    before = run(config_file, "papers", "--json").output
    bad = tmp_path / "bad.txt"
    bad.write_text(PAGES["oct28"].read_text().replace("Jan 12, 2024", "Jan 12, 2O24"))
    result = run(config_file, "import", str(bad), ok=False)
    assert result.exit_code == 1
    assert "expected a date" in result.output and "Traceback" not in result.output
    assert run(config_file, "papers", "--json").output == before


def test_config_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("smtp:\n  port: twenty-five\n")
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "check"])
    assert result.exit_code == 2
    assert "smtp.port" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["--config", str(cfg), "-v", "config", "check"])
    assert result.exit_code == 2


def test_config_check_masks_secrets(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    result = run(config_file, "config", "check", "--json")
    data = json.loads(result.output)
    assert data["smtp"]["password"] == "***" and "hunter2" not in result.output


def test_config_after_the_subcommand_and_from_the_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path / "..")
    assert CliRunner().invoke(main, ["papers", "--config", str(config_file)]).exit_code == 0
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(config_file))
    assert CliRunner().invoke(main, ["papers"]).exit_code == 0
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    CliRunner().invoke(main, ["import", str(PAGES["mar14"])])
    assert (tmp_path / "other.db").exists()


def test_subscribers_add_list_remove(config_file: Path) -> None:
    run(config_file, "subscribers", "add", "Ada@Example.org", "--topics", "quantization,llm-inference", "--exclude", "survey")
    bad = run(config_file, "subscribers", "add", "x@example.org", "--topics", "astrology", ok=False)
    assert bad.exit_code != 0 and "Unknown topic 'astrology'" in bad.output
    bad = run(config_file, "subscribers", "add", "not an address", ok=False)
    assert "is not an email address" in bad.output
    listed = json.loads(run(config_file, "subscribers", "list", "--json").output)
    assert [(s["email"], s["topics"], s["excluded_keywords"]) for s in listed] == \
        [("ada@example.org", ["quantization", "llm-inference"], ["survey"])]
    run(config_file, "subscribers", "remove", "ada@example.org")
    assert json.loads(run(config_file, "subscribers", "list", "--json").output)[0]["status"] == "unsubscribed"


def test_subscribers_import_is_all_or_nothing(config_file: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("email,cadence,topics,excluded_keywords,name\n"
                    "a@example.org,daily,,,A\nb@example.org,weekly,3d;vision,survey;benchmark,B\n")
    run(config_file, "subscribers", "import", str(good))
    bad = tmp_path / "bad.csv"
    bad.write_text("email,cadence\nc@example.org,daily\nd@example.org,hourly\n")
    result = run(config_file, "subscribers", "import", str(bad), ok=False)
    assert "line 3: cadence must be daily or weekly" in result.output
    emails = [s["email"] for s in json.loads(run(config_file, "subscribers", "list", "--json").output)]
    assert emails == ["a@example.org", "b@example.org"]
    again = run(config_file, "subscribers", "import", str(good), ok=False)
    assert "already a subscriber" in again.output
    run(config_file, "subscribers", "import", str(good), "--update")


def test_diff_shows_the_next_issue_without_sending(config_file: Path) -> None:
    run(config_file, "import", str(PAGES["mar14"]), "--date", "2025-03-14")
    run(config_file, "subscribers", "add", "a@example.org")
    run(config_file, "subscribers", "add", "b@example.org", "--cadence", "weekly")
    out = json.loads(run(config_file, "diff", "--date", "2025-03-14", "--json").output)
    daily, weekly = out
    assert (daily["period"], daily["candidates"], daily["readers"]) == ("2025-03-14", 85, 1)
    assert (weekly["period"], weekly["readers"]) == ("2025-W11", 1)
    # What the email lists (at most digest.max_papers, 60, of the 85, and what fits the size limit: 47 with
    # every card's "more / fewer like this" links), the rest counted as in the web copy.
    [digest] = daily["digests"]
    assert (len(digest["papers"]), digest["listed"], digest["more"]) == (47, 47, 38)
    shown_topics = [s for s in digest["sections"] if s["listed"]]
    assert sum(s["listed"] for s in shown_topics) == 47 and len(shown_topics) == digest["topics"] == 14
    assert digest["subject"].endswith("47 new in 14 topics, Mar 14")
    text = run(config_file, "diff", "--date", "2025-03-14", "--papers").output
    assert "SageAttention2" in text and "Subject: " in text
    # Nothing was recorded: running it again shows the same.
    assert json.loads(run(config_file, "diff", "--date", "2025-03-14", "--json").output) == out


def test_diff_shows_what_send_sends_reader_by_reader(config_file: Path) -> None:
    """The README's example: a reader of two topics. `diff` applies their topics, the caps and the size limit
    as `send` does, and what it lists is exactly what `send` then records as sent to them."""
    from newsletter.pipeline import Newsletter

    run(config_file, "import", str(PAGES["mar14"]), "--date", "2025-03-14")
    run(config_file, "subscribers", "add", "ada@example.org", "--topics", "quantization,llm-inference")
    run(config_file, "subscribers", "add", "bob@example.org", "--exclude", "diffusion")
    [daily] = json.loads(run(config_file, "diff", "--cadence", "daily", "--date", "2025-03-14", "--json").output)
    assert daily["readers_with_news"] == 2 and len(daily["digests"]) == 2
    by_topics = {tuple(s["slug"] for s in d["sections"]): d for d in daily["digests"]}
    ada = by_topics[("quantization", "llm-inference")]
    assert ada["readers"] == 1 and (ada["listed"], ada["topics"], ada["more"]) == (17, 2, 5)
    assert [(s["listed"], s["more"]) for s in ada["sections"]] == [(12, 5), (5, 0)]  # max_per_topic: 12
    assert sum(s["listed"] for s in ada["sections"]) == ada["listed"] == len(ada["papers"])
    assert "17 new in 2 topics" in ada["subject"]
    bob = next(d for d in daily["digests"] if d is not ada)
    assert bob["papers"] and not any("diffusion" in (p["title"] + p["abstract"]).lower() for p in bob["papers"])
    text = run(config_file, "diff", "--cadence", "daily", "--date", "2025-03-14").output
    assert "17 papers in 2 topics, 5 more only in the web copy, for 1 reader" in text
    run(config_file, "send", "--cadence", "daily", "--date", "2025-03-14", "--no-fetch")
    nl = Newsletter.from_config(config_file, {})
    try:
        for reader, planned in (("ada@example.org", ada), ("bob@example.org", bob)):
            sent = nl.store.delivered_papers(nl.store.subscriber(reader).id)
            assert sorted(sent) == sorted(p["id"] for p in planned["papers"])
    finally:
        nl.close()


def readme_quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in quick.split("```sh")[1:]]
    return [c.split("```")[0].strip() for c in commands]


def test_the_quick_start_is_two_commands_and_ci_runs_both_in_a_fresh_venv() -> None:
    commands = readme_quick_start()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    install_and_run, test = commands
    assert install_and_run.endswith("newsletter run") and "pytest" in test
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    # Each README command is a line of .ci/run, word for word, once.
    assert ci.count(install_and_run) == 1 and ci.count(test) == 1
    # ...run inside a virtual environment that .ci/run made itself, so that what this machine already has
    # installed (an older pytest, say) cannot hide what pip picks for a new user.
    made = next(i for i, line in enumerate(ci) if "-m venv" in line)
    activated = next(i for i, line in enumerate(ci) if "/bin/activate" in line)
    assert made < activated < ci.index(install_and_run) < ci.index(test)


def test_the_test_extra_bounds_every_tool_above_by_a_version_known_to_work() -> None:
    """pip picks the newest release that the bounds allow: pytest 9.2 broke schemathesis 4.32."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_extra = [Requirement(r) for r in project["optional-dependencies"]["test"]]
    unbounded = [str(r) for r in test_extra if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"test requirements without an upper bound: {unbounded}"
    pytest_req = next(r for r in test_extra if r.name == "pytest")
    assert not pytest_req.specifier.contains("9.2.0")
    # The runtime dependencies are capped at their next major version.
    runtime = [Requirement(r) for r in project["dependencies"]]
    assert all(any(s.operator == "<" for s in r.specifier) for r in runtime), [str(r) for r in runtime]


def test_the_import_example_names_a_file_that_exists_and_runs_as_written(config_file: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`newsletter import --help` shows an example a new user can paste in a checkout of the project."""
    help_text = " ".join(CliRunner().invoke(main, ["import", "--help"]).output.split())
    example = help_text.split("Example: newsletter ", 1)[1].split(" Options:", 1)[0].split()
    assert example[0] == "import"
    files = [arg for arg in example[1:] if not arg.startswith("-") and "/" in arg]
    assert files and all((ROOT / f).is_file() for f in files), f"{files} not in the project"
    monkeypatch.chdir(ROOT)
    result = run(config_file, *example, "--json")
    assert json.loads(result.output)[0]["papers"] > 0


def test_tables_show_web_text_as_written_not_as_markup(config_file: Path, tmp_path: Path) -> None:
    """A title like "[Re] ..." (a real kind: reproducibility reports) or a reader's own keyword in brackets is
    shown as written; read as rich markup, the bracketed part would vanish or restyle the operator's terminal."""
    items = json.loads((ROOT / "tests/data/hf_api/daily_papers_2025-03-14_p1.json").read_text())[:1]
    items[0]["paper"]["title"] = "[Re] Reproducing [bold]Gaussian[/bold] volumes"
    items[0]["title"] = items[0]["paper"]["title"]
    page = tmp_path / "one.json"
    page.write_text(json.dumps(items))
    run(config_file, "import", str(page), "--date", "2025-03-14")
    out = run(config_file, "papers").output
    assert "[Re] Reproducing [bold]Gaussian[/bold] volumes" in " ".join(out.split())
    run(config_file, "subscribers", "add", "ada@example.org", "--exclude", "[red]survey")
    assert "[red]survey" in run(config_file, "subscribers", "list").output
