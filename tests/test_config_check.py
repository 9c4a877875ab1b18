"""``newsletter config check`` refuses what would fail later, and the built-in topics ship with the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from newsletter.cli import main

from support import ROOT

SECRETS_UNSET = {"SMTP_PASSWORD": None, "NEWSLETTER_SIGNING_KEY": None, "NEWSLETTER_ENV": None,
                 "NEWSLETTER_DATABASE_URL": None, "NEWSLETTER_CONFIG": None}


def check(tmp_path: Path, text: str, **env: str) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text("database_url: sqlite:///n.db\n" + text)
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)], env={**SECRETS_UNSET, **env})
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


SMTP_LOGIN = "messenger: smtp\nsmtp:\n  username: bot\n  password: ${SMTP_PASSWORD}\n"


def test_an_unset_smtp_password_is_refused_when_the_smtp_login_needs_it(tmp_path: Path) -> None:
    code, out = check(tmp_path, SMTP_LOGIN)
    assert code != 0 and "is valid" not in out
    assert "smtp.password refers to ${SMTP_PASSWORD}, which is not set in the environment" in out
    assert "logs in as 'bot'" in out and "Export SMTP_PASSWORD=" in out and "Traceback" not in out
    assert check(tmp_path, SMTP_LOGIN, SMTP_PASSWORD="hunter2")[0] == 0


@pytest.mark.parametrize("text", [
    "messenger: outbox\nsmtp:\n  username: bot\n  password: ${SMTP_PASSWORD}\n",  # no SMTP at all
    "messenger: smtp\nsmtp:\n  password: ${SMTP_PASSWORD}\n",  # no login
])
def test_an_unset_smtp_password_is_fine_when_nothing_needs_it(tmp_path: Path, text: str) -> None:
    code, out = check(tmp_path, text)
    assert code == 0 and "is valid" in out, out


def test_an_smtp_login_with_no_password_at_all_is_refused(tmp_path: Path) -> None:
    code, out = check(tmp_path, "messenger: smtp\nsmtp:\n  username: bot\n")
    assert code != 0 and "smtp.password is not set" in out and "password: ${SMTP_PASSWORD}" in out


@pytest.mark.parametrize("production, env", [
    ("web:\n  production: true\n", {}),
    ("", {"NEWSLETTER_ENV": "production"}),
    ("site_url: https://papers.example.org\n", {}),
])
def test_an_unset_signing_key_is_refused_in_production(tmp_path: Path, production: str, env: dict[str, str]) -> None:
    text = "signing_key: ${NEWSLETTER_SIGNING_KEY}\n" + production
    code, out = check(tmp_path, text, **env)
    assert code != 0
    assert "signing_key refers to ${NEWSLETTER_SIGNING_KEY}, which is not set in the environment" in out
    assert "production mode needs it" in out and "Export NEWSLETTER_SIGNING_KEY=" in out
    assert check(tmp_path, text, NEWSLETTER_SIGNING_KEY="k" * 64, **env)[0] == 0


def test_an_unset_signing_key_is_fine_outside_production(tmp_path: Path) -> None:
    assert check(tmp_path, "signing_key: ${NEWSLETTER_SIGNING_KEY}\n")[0] == 0


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    code, out = check(tmp_path, SMTP_LOGIN + "signing_key: ${KEY}\nweb:\n  production: true\n")
    assert code != 0 and "${SMTP_PASSWORD}" in out and "signing_key refers to ${KEY}" in out


def test_an_out_of_range_cron_field_fails_the_check(tmp_path: Path) -> None:
    code, out = check(tmp_path, "schedule:\n  daily: '0 25 * * mon-fri'\n")
    assert code != 0 and "schedule.daily" in out and "the hour field '25' is refused" in out


def test_the_unknown_key_hint_names_a_command_that_lists_the_settings(tmp_path: Path) -> None:
    code, out = check(tmp_path, "smpt:\n  port: 25\n")
    assert code != 0 and "`newsletter config settings` lists every setting" in out
    listed = CliRunner().invoke(main, ["config", "settings", "--json"])
    assert listed.exit_code == 0, listed.output
    names = [row["name"] for row in yaml.safe_load(listed.output)]
    assert "smtp.port" in names and "topics" in names


def test_config_settings_shows_the_built_in_topics_as_the_default() -> None:
    listed = CliRunner().invoke(main, ["config", "settings", "--json"])
    rows = {row["name"]: row["default"] for row in yaml.safe_load(listed.output)}
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())["topics"]
    assert [t["slug"] for t in rows["topics"]] == [t["slug"] for t in shipped]


def test_a_config_without_topics_checks_with_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database_url: sqlite:///n.db\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path), "--json"], env=SECRETS_UNSET)
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)["topics"]
    assert [t["slug"] for t in shown] == [t["slug"] for t in yaml.safe_load((ROOT / "config.yaml").read_text())["topics"]]


def test_a_non_editable_build_ships_the_default_topics(tmp_path: Path) -> None:
    # The files a wheel is made of, built by the project's own setuptools configuration (pyproject's package
    # data and the build_py hook), then imported from the build folder alone, away from the source tree.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "tests", "bench", "build", "*.egg-info", "__pycache__", "*.db", "outbox", ".venv*"))
    out = tmp_path / "lib"
    build = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                            "-d", str(out)], cwd=source, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (out / "newsletter" / "default_topics.yaml").is_file()
    probe = subprocess.run([sys.executable, "-c", "from newsletter import config; import sys; "
                            "print(config.__file__); print(len(config.default_topics()))"],
                           cwd=tmp_path, env={"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    where, count = probe.stdout.split()
    assert where.startswith(str(out)) and int(count) == len(yaml.safe_load((ROOT / "config.yaml").read_text())["topics"])
