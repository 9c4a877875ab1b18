"""``newsletter subscribers add/remove/list/import``: managing readers by hand."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from ..models import CADENCES, SUBSCRIBER_STATUSES
from ..readers import check_topics, normalize_email, parse_csv, split_list
from . import Context, config_option, console, json_option, main, print_json


@main.group(cls=type(main))
def subscribers() -> None:
    """Add, remove, list and import readers.

    Example: newsletter subscribers add ada@example.org --topics quantization,llm-inference
    """


@subscribers.command("add")
@config_option
@click.argument("email")
@click.option("--cadence", type=click.Choice(CADENCES), default="daily", show_default=True)
@click.option("--topics", metavar="SLUG,...", help="Topics to receive (default: all).")
@click.option("--exclude", metavar="WORD,...", help="Leave out papers mentioning these words.")
@click.option("--name", help="Name used in the greeting.")
@click.pass_obj
def add(obj: Context, email: str, cadence: str, topics: str | None, exclude: str | None, name: str | None) -> None:
    """Add an active reader (operators only: no confirmation email is sent).

    Example: newsletter subscribers add ada@example.org --cadence weekly --exclude "survey"
    """
    nl = obj.nl
    sub = nl.store.add_subscriber(normalize_email(email), cadence=cadence,
                                  topics=check_topics(split_list(topics), nl.settings.topic_slugs()),
                                  excluded_keywords=split_list(exclude), name=name)
    console.print(f"[green]✓[/green] added {sub.email} ({sub.cadence}, {', '.join(sub.topics) if sub.topics else 'all topics'})")


@subscribers.command("remove")
@config_option
@click.argument("email")
@click.option("--forget", is_flag=True, help="Delete the reader and their delivery history instead of unsubscribing.")
@click.pass_obj
def remove(obj: Context, email: str, forget: bool) -> None:
    """Unsubscribe a reader (kept, so nothing is re-sent if they return), or --forget them entirely.

    Example: newsletter subscribers remove ada@example.org
    """
    sub = obj.nl.store.remove_subscriber(email, forget=forget)
    console.print(f"[green]✓[/green] {'forgot' if forget else 'unsubscribed'} {sub.email}")


@subscribers.command("list")
@config_option
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only readers in this state.")
@click.option("--cadence", type=click.Choice(CADENCES), help="Only readers of this cadence.")
@json_option
@click.pass_obj
def list_(obj: Context, status: str | None, cadence: str | None, as_json: bool) -> None:
    """List readers.

    Example: newsletter subscribers list --status active --json
    """
    subs = obj.nl.store.subscribers(status=status, cadence=cadence)
    if as_json:
        print_json(subs)
        return
    table = Table("id", "email", "status", "cadence", "topics", "excluded", box=None, header_style="bold")
    for s in subs:
        table.add_row(str(s.id), Text(s.email), s.status, s.cadence, ", ".join(s.topics) if s.topics else "all",
                      Text(", ".join(s.excluded_keywords)))  # a reader's own words, never read as markup
    console.print(table)
    console.print(f"[dim]{len(subs)} readers[/dim]")


@subscribers.command("import")
@config_option
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@click.option("--update", is_flag=True, help="Update readers that already exist instead of stopping.")
@click.pass_obj
def import_(obj: Context, csv_file: click.utils.LazyFile, update: bool) -> None:
    """Import readers from a CSV file (header: email,cadence,topics,excluded_keywords,name,status).

    The whole file is checked first; a bad row stops the import with nothing stored.

    Example: newsletter subscribers import readers.csv --update
    """
    nl = obj.nl
    specs = parse_csv(csv_file.read(), nl.settings.topic_slugs())
    added = nl.import_readers(specs, update=update)
    console.print(f"[green]✓[/green] imported {added} readers")
