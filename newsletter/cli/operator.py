"""``newsletter admin hash-password``: the argon2 hash the /admin pages check (``admin.password_hash``)."""

from __future__ import annotations

import sys

import click

from ..errors import NewsletterError
from . import console, main


@main.group("admin", cls=type(main))
def admin_group() -> None:
    """The operator pages (/admin) and API (/api/admin).

    Example: export NEWSLETTER_ADMIN_PASSWORD_HASH="$(newsletter admin hash-password)"
    """


@admin_group.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from the first line of stdin "
              "instead of asking for it.")
def hash_password(from_stdin: bool) -> None:
    """Ask for a password (twice, not shown) and print its argon2id hash, for admin.password_hash. The
    password itself is stored nowhere.

    Example: export NEWSLETTER_ADMIN_PASSWORD_HASH="$(newsletter admin hash-password)"
    """
    from ..web.admin_auth import MIN_PASSWORD, hash_password as make_hash

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < MIN_PASSWORD:
        raise NewsletterError(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    click.echo(make_hash(password))
    if sys.stdout.isatty():
        console.print("[dim]Set it as NEWSLETTER_ADMIN_PASSWORD_HASH (config.yaml: admin.password_hash: "
                      "${NEWSLETTER_ADMIN_PASSWORD_HASH}); quote it, it holds $ signs.[/dim]")
