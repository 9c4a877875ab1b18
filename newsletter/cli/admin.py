"""``newsletter config check`` and ``newsletter db upgrade``."""

from __future__ import annotations

import click
import yaml

from .. import config as config_mod
from ..errors import ConfigError
from ..subscriptions import is_production
from ..store import Store
from . import Context, config_option, console, json_option, main, print_json


@main.group("config", cls=type(main))
def config_group() -> None:
    """Inspect the configuration.

    Example: newsletter config check
    """


@config_group.command("check")
@config_option
@json_option
@click.pass_obj
def config_check(obj: Context, as_json: bool) -> None:
    """Validate config.yaml and print the effective settings, secrets masked.

    Environment references (${VAR}) are substituted and NEWSLETTER_DATABASE_URL applied first. A setting
    that is needed but empty fails the check: the SMTP password with smtp.username and messenger: smtp, and
    signing_key in production mode; the message names the key and the variable to export. A DKIM key
    (dkim.private_key or dkim.private_key_file) is read and checked too.

    Example: SMTP_PASSWORD=x newsletter config check --config config.yaml
    """
    settings = config_mod.load(obj.config_path)
    path = config_mod.config_path(obj.config_path, __import__("os").environ)
    problems = config_mod.needed_but_unset(settings, production=is_production(settings))
    if problems:
        raise ConfigError(f"{path}: " + "\n  ".join(problems))
    from ..render.dkim import signer_from_settings

    signer_from_settings(settings)  # a DKIM key that cannot be read or used fails here, naming its key
    data = config_mod.masked(settings)
    if as_json:
        print_json(data)
        return
    console.print(f"[green]✓[/green] {path} is valid.\n")
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())


@config_group.command("settings")
@json_option
def config_settings(as_json: bool) -> None:
    """List every setting with its default and what it does.

    Example: newsletter config settings --json
    """
    rows = config_mod.documented_settings()
    if as_json:
        print_json([{"name": n, "default": d, "help": h} for n, d, h in rows])
        return
    from rich.table import Table

    table = Table("setting", "default", "help", box=None)
    for name, default, help_ in rows:
        shown = "…" if isinstance(default, (tuple, list)) else default  # lists: see --json or config.yaml
        table.add_row(name, "" if shown is None else str(shown), help_)
    console.print(table)


@main.group("db", cls=type(main))
def db_group() -> None:
    """Manage the database schema.

    Example: newsletter db upgrade
    """


@db_group.command("upgrade")
@config_option
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Apply pending migrations (also done automatically on first use).

    Example: NEWSLETTER_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test newsletter db upgrade
    """
    settings = config_mod.load(obj.config_path)
    store = Store.open(settings.resolved_database_url, migrate=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        console.print(f"Database is up to date (revision {after}).")
    else:
        console.print(f"[green]Upgraded[/green] database from {before or 'empty'} to {after}.")
