"""config.yaml: validation that names the key and the fix, secrets from the environment, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from newsletter import config
from newsletter.errors import ConfigError

from support import ROOT, write_config


def load_yaml(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> config.Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return config.load(path, environ or {})


def test_the_shipped_config_is_valid(tmp_path: Path) -> None:
    settings = config.load(ROOT / "config.yaml", {})
    assert settings.topic_slugs()[0] == "llm-inference" and "other" in settings.topic_slugs()
    assert settings.smtp.password is None  # ${SMTP_PASSWORD} unset
    assert settings.resolved_database_url == f"sqlite:///{ROOT / 'newsletter.db'}"


@pytest.mark.parametrize("text, expected", [
    ("smtp:\n  port: seventy\n", "smtp.port: Input should be a valid integer"),
    ("smtp:\n  port: 70000\n", "smtp.port: Input should be less than or equal to 65535"),
    ("smtp:\n  security: ssl\n", "smtp.security: must be 'none', 'starttls' or 'tls'"),
    ("smpt:\n  port: 25\n", "smpt: unknown setting; check the spelling (`newsletter config settings` lists every"),
    ("sender:\n  email: not-an-address\n", "sender.email: must be an email address"),
    ("site_url: ftp://x\n", "site_url: must be an http(s) URL"),
    ("schedule:\n  timezone: Mars/Olympus\n", "schedule.timezone: unknown time zone 'Mars/Olympus'"),
    ("schedule:\n  daily: '0 8 * *'\n", "schedule.daily: '0 8 * *' is not a 5-field cron expression"),
    ("schedule:\n  daily: '0 25 * * mon-fri'\n", "schedule.daily: '0 25 * * mon-fri' is not a valid cron expression: "
     "the hour field '25' is refused (the last value (25) is higher than the maximum value (23)); it takes 0-23"),
    ("schedule:\n  weekly: '61 9 * * mon'\n", "schedule.weekly: '61 9 * * mon' is not a valid cron expression: "
     "the minute field '61' is refused"),
    ("schedule:\n  daily: '0 8 32 * *'\n", "the day field '32' is refused"),
    ("schedule:\n  daily: '0 8 * 13 *'\n", "the month field '13' is refused"),
    ("schedule:\n  daily: '0 8 * * 8'\n", "the day-of-week field '8' is refused"),
    ("schedule:\n  daily: '0 8 * * mon-fry'\n", "the day-of-week field 'mon-fry' is refused"),
    ("topics: []\n", "topics: the list is empty; list at least one topic, or remove the `topics:` key"),
    ("smtp:\n  host: ${SMTP_HOST}\n", "smtp.host refers to ${SMTP_HOST}, which is not set in the environment"),
    ("windows:\n  daily: 0\n", "windows.daily: Input should be greater than or equal to 1"),
    ("topics:\n  - slug: Bad Slug\n    name: x\n", "topics[0].slug: String should match pattern"),
    ("topics:\n  - slug: a\n    name: A\n  - slug: a\n    name: B\n", "slug 'a' appears more than once"),
    ("sources:\n  - type: carrier-pigeon\n", "sources[0].type: unknown source type 'carrier-pigeon'"),
    ("sources:\n  - type: hf-page\n    paht: x.txt\n", "sources[0].paht: unknown option"),
    ("messenger: fax\n", "messenger: must be 'outbox', 'smtp' or 'console'"),
    ("- just\n- a list\n", "the top level must be a mapping"),
    ("smtp: [unclosed\n", "not valid YAML at line"),
])
def test_errors_name_the_key_and_what_is_allowed(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path, text)
    assert expected in str(info.value)
    assert "Traceback" not in str(info.value)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    text = "smtp:\n  username: bot\n  password: ${SMTP_PASSWORD}\nsigning_key: ${SIGNING}\n"
    settings = load_yaml(tmp_path, text, {"SMTP_PASSWORD": "hunter2", "SIGNING": "k" * 32})
    assert settings.smtp.password == "hunter2" and settings.signing_key == "k" * 32
    shown = config.masked(settings)
    assert shown["smtp"]["password"] == "***" and shown["signing_key"] == "***"
    assert "hunter2" not in yaml.safe_dump(shown)


@pytest.mark.parametrize("key, text", [
    ("smtp.password", "smtp:\n  password: hunter2\n"),
    ("signing_key", "signing_key: abc\n"),
])
def test_a_literal_secret_is_refused(tmp_path: Path, key: str, text: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} holds a literal secret"):
        load_yaml(tmp_path, text)


def test_a_reference_inside_text_must_be_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"site_url refers to \$\{HOST\}, which is not set"):
        load_yaml(tmp_path, "site_url: https://${HOST}/papers\n")
    assert load_yaml(tmp_path, "site_url: https://${HOST}/papers\n", {"HOST": "x.org"}).site_url == "https://x.org/papers"


def test_database_url_override_and_relative_sqlite_path(tmp_path: Path) -> None:
    assert load_yaml(tmp_path, "database_url: sqlite:///data/n.db\n").resolved_database_url == \
        f"sqlite:///{tmp_path.resolve() / 'data/n.db'}"
    env = {"NEWSLETTER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/test"}
    assert load_yaml(tmp_path, "database_url: sqlite:///n.db\n", env).resolved_database_url == env["NEWSLETTER_DATABASE_URL"]


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config.config_path(None, {}) == Path("config.yaml")
    assert config.config_path(None, {"NEWSLETTER_CONFIG": "/x.yaml"}) == Path("/x.yaml")
    assert config.config_path("a.yaml", {"NEWSLETTER_CONFIG": "/x.yaml"}) == Path("a.yaml")
    with pytest.raises(ConfigError, match="No config file at"):
        config.load(tmp_path / "missing.yaml", {})


def test_every_setting_is_declared_with_help() -> None:
    rows = config.documented_settings()
    names = [name for name, _, _ in rows]
    assert {"database_url", "smtp.password", "schedule.timezone", "windows.daily", "digest.max_per_topic"} <= set(names)
    assert all(help_ for _, _, help_ in rows), [n for n, _, h in rows if not h]


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _, _ in config.documented_settings() if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


@pytest.mark.parametrize("expr", ["0 8 * * mon-fri", "*/15 6-18 * * 0-4", "0 8 last * *", "30 7 1,15 jan-jun sun",
                                  "0 0 * * *", "59 23 31 12 6"])
def test_cron_expressions_the_scheduler_accepts_load(tmp_path: Path, expr: str) -> None:
    from newsletter import schedule

    settings = load_yaml(tmp_path, f"schedule:\n  daily: '{expr}'\n")
    assert schedule.trigger_for(settings, "daily")  # and APScheduler builds the trigger from it


def test_a_config_without_topics_gets_the_built_in_ones(tmp_path: Path) -> None:
    shipped = config.load(ROOT / "config.yaml", {}).topics
    for text in ("list_name: No topics here\n", "topics:\n# - slug: all commented out\n"):
        settings = load_yaml(tmp_path, text)
        assert settings.topics == config.default_topics() == shipped
        assert len(settings.topics) > 1 and settings.topic_slugs()[-1] == "other"
    own = load_yaml(tmp_path, "topics:\n  - slug: mine\n    name: Mine\n")
    assert own.topic_slugs() == ["mine"]  # a config's own list replaces the built-in one


def test_the_shipped_config_topics_equal_the_packaged_default_file() -> None:
    packaged = yaml.safe_load((ROOT / "newsletter" / config.DEFAULT_TOPICS_FILE).read_text())
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["topics"] == packaged


def test_unset_references_are_remembered_with_their_variable(tmp_path: Path) -> None:
    text = "smtp:\n  username: bot\n  password: ${SMTP_PASSWORD}\nsigning_key: ${SIGNING}\n"
    settings = load_yaml(tmp_path, text)
    assert settings.smtp.password is None and settings.signing_key is None  # loading alone still works
    assert settings.unset_references == {"smtp.password": "SMTP_PASSWORD", "signing_key": "SIGNING"}
    assert "unset_references" not in config.masked(settings)
    assert config.needed_but_unset(settings, production=False) == []  # messenger: outbox needs no password


def test_an_internationalised_sender_domain_is_written_in_its_ascii_form(tmp_path: Path) -> None:
    """papers@bücher.example is accepted as papers@xn--bcher-kva.example, which every header, the envelope
    and the Message-ID can carry (as given, building the Message-ID crashed with UnicodeEncodeError)."""
    import email
    from email.policy import default

    from click.testing import CliRunner

    from newsletter.cli import main
    from support import PAGES

    cfg = write_config(tmp_path, sender={"name": "Bücher Papers", "email": "papers@bücher.example",
                                         "reply_to": "hilfe@bücher.example"})
    settings = config.load(cfg)
    assert (settings.sender.email, settings.sender.reply_to) == ("papers@xn--bcher-kva.example",
                                                                 "hilfe@xn--bcher-kva.example")
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(cfg), "import", str(PAGES["mar14"]), "--date", "2025-03-14"]
                         ).exit_code == 0
    result = runner.invoke(main, ["--config", str(cfg), "preview", "--date", "2025-03-14", "--out",
                                  str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes((tmp_path / "p" / "preview.eml").read_bytes(), policy=default)
    assert message["From"].addresses[0].addr_spec == "papers@xn--bcher-kva.example"
    assert message["Message-ID"].endswith("@xn--bcher-kva.example>")


@pytest.mark.parametrize("address", ["päpers@example.org", "papers@" + "ü" * 64 + ".example"])
def test_a_sender_address_no_server_could_carry_is_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(write_config(tmp_path, sender={"email": address}))
    assert "sender.email" in str(info.value)
