"""``newsletter subscribers add/update/remove/list/show/export/import/erase``: managing readers by hand."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from ..models import CADENCES, SUBSCRIBER_STATUSES
from ..readers import check_topics, normalize_email, parse_csv, parse_json, split_list, to_csv, to_records
from . import Context, config_option, console, json_option, main, print_json


@main.group(cls=type(main))
def subscribers() -> None:
    """Add, update, remove, list, show, export, import and erase readers.

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
    """Unsubscribe a reader (kept, so nothing is re-sent if they return), or --forget them entirely (the same
    erasure as `subscribers erase`).

    Example: newsletter subscribers remove ada@example.org
    """
    if forget:
        from ..store.readers import erase

        erase(obj.nl.store, email)
        console.print("[green]✓[/green] forgot ", end="")
        console.print(email.strip().lower(), markup=False)
        return
    sub = obj.nl.store.remove_subscriber(email)
    console.print(f"[green]✓[/green] unsubscribed {sub.email}")


@subscribers.command("update")
@config_option
@click.argument("email")
@click.option("--topics", metavar="SLUG,...|all", help="Topics to receive; `all` for every topic.")
@click.option("--cadence", type=click.Choice(CADENCES), help="daily or weekly.")
@click.option("--exclude", metavar="WORD,...", help="Leave out papers mentioning these words (\"\" for none).")
@click.option("--name", help="Name used in the greeting (\"\" for none).")
@json_option
@click.pass_obj
def update(obj: Context, email: str, topics: str | None, cadence: str | None, exclude: str | None,
           name: str | None, as_json: bool) -> None:
    """Change a reader's topics, cadence, excluded words or name; what is not given stays as it is.

    Example: newsletter subscribers update ada@example.org --topics quantization,llm-inference --cadence weekly
    """
    from ..store.readers import update_reader

    nl = obj.nl
    if topics is None and cadence is None and exclude is None and name is None:
        raise click.UsageError("Nothing to change: give --topics, --cadence, --exclude or --name.")
    every = topics is not None and topics.strip().lower() == "all"
    chosen = None
    if topics is not None and not every:
        chosen = check_topics(split_list(topics), nl.settings.topic_slugs())
        if chosen is None:
            raise click.BadParameter("give topic slugs, or `all` for every topic", param_hint="--topics")
    sub = update_reader(nl.store, email, cadence=cadence, topics=chosen, all_topics=every,
                        excluded_keywords=split_list(exclude) if exclude is not None else None, name=name)
    if as_json:
        print_json(sub)
        return
    console.print("[green]✓[/green] updated ", end="")
    console.print(f"{sub.email} ({sub.cadence}, {', '.join(sub.topics) if sub.topics else 'all topics'}"
                  f"{'; excluding ' + ', '.join(sub.excluded_keywords) if sub.excluded_keywords else ''})",
                  markup=False)


@subscribers.command("show")
@config_option
@click.argument("email")
@click.option("--limit", "-n", type=int, default=20, show_default=True,
              help="At most this many deliveries and bounces listed (all are counted).")
@json_option
@click.pass_obj
def show(obj: Context, email: str, limit: int, as_json: bool) -> None:
    """Everything kept about one reader: status and choices, consent records, deliveries, bounces and signals.

    Example: newsletter subscribers show ada@example.org --json
    """
    from ..store.readers import reader_record

    r = reader_record(obj.nl.store, email, limit)
    if as_json:
        print_json(r)
        return
    s = r.subscriber

    def when(value: object) -> str:
        return value.isoformat(timespec="minutes") if hasattr(value, "isoformat") else "—"

    facts = Table(box=None, show_header=False, pad_edge=False)
    for key, value in (("email", s.email), ("name", s.name or "—"), ("status", s.status), ("cadence", s.cadence),
                       ("topics", ", ".join(s.topics) if s.topics else "all"),
                       ("excluded", ", ".join(s.excluded_keywords) or "—"), ("since", when(s.created_at)),
                       ("confirmed", when(r.confirmed_at)), ("unsubscribed", when(r.unsubscribed_at)),
                       ("bounce count", str(r.bounce_count))):
        facts.add_row(f"[bold]{key}[/bold]", Text(value))
    console.print(facts)
    console.print(f"\n[bold]consent records[/bold] ({len(r.consents)})")
    if r.consents:
        table = Table("action", "requested", "ip", "user agent", "form", "confirmed", box=None, header_style="bold")
        for c in r.consents:
            table.add_row(c.action, when(c.requested_at), Text(c.ip or ""), Text(c.user_agent or ""),
                          Text(c.form_version or ""), when(c.confirmed_at) if c.confirmed_at else "")
        console.print(table)
    counted = sum(r.delivery_counts.values())
    summary = ", ".join(f"{n} {state}" for state, n in sorted(r.delivery_counts.items()))
    console.print(f"\n[bold]deliveries[/bold] ({counted}{': ' + summary if summary else ''})")
    if r.deliveries:
        table = Table("edition", "cadence", "period", "state", "tries", "sent", "last error", box=None,
                      header_style="bold")
        for d in r.deliveries:
            table.add_row(str(d.edition_id), d.cadence, d.period, d.state, str(d.attempts),
                          when(d.sent_at) if d.sent_at else "", Text(d.last_error or ""))
        console.print(table)
    console.print(f"\n[bold]bounces, complaints and unsubscribe requests[/bold] ({len(r.bounces)})")
    if r.bounces:
        table = Table("received", "kind", "source", "effect", "reason", box=None, header_style="bold")
        for b in r.bounces:
            table.add_row(when(b.received_at), b.kind, b.source, b.effect, Text(b.reason[:120]))
        console.print(table)
    console.print(f"\n[bold]signals[/bold] ({len(r.signals)}: more / fewer like this, seeds, clicks)")
    if r.signals:
        table = Table("when", "kind", "arxiv", "paper", box=None, header_style="bold")
        for x in r.signals:
            table.add_row(when(x.created_at), x.kind, x.arxiv_id or "", Text(x.title[:100]))
        console.print(table)


@subscribers.command("export")
@config_option
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV in the import's columns (default).")
@click.option("--json", "fmt", flag_value="json", help="JSON: a list of readers.")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only readers in this state.")
@click.option("--out", "out", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: standard output).")
@click.pass_obj
def export(obj: Context, fmt: str, status: str | None, out: click.utils.LazyFile) -> None:
    """Write every reader (email, cadence, topics, excluded keywords, name, status, and their signals: more / fewer
    like this, seeds, clicks) as CSV or JSON; `subscribers import` reads either back to the same readers.

    Example: newsletter subscribers export --csv --out readers.csv
    """
    import json

    from ..store.signals import signals_by_reader

    subs = obj.nl.store.subscribers(status=status)
    signals = signals_by_reader(obj.nl.store.engine, status)  # each reader's (more/fewer like this, seeds, clicks)
    if fmt == "json":
        out.write(json.dumps(to_records(subs, signals), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(to_csv(subs, signals))


@subscribers.command("erase")
@config_option
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
def erase_(obj: Context, email: str, yes: bool, as_json: bool) -> None:
    """The GDPR erasure: delete the reader, their consent records, deliveries and bounces, and scrub the address
    from every other record, leaving no personal data behind. It cannot be undone.

    Files outside the database (the outbox messenger's .eml files, previews, logs) are not touched.

    Example: newsletter subscribers erase ada@example.org --yes
    """
    from ..store.readers import erase

    store = obj.nl.store
    store.subscriber(email)  # raises NotFound before asking
    if not yes and not as_json:
        click.confirm(f"Erase {email.strip().lower()} and everything kept about them?", abort=True)
    done = erase(store, email)
    if as_json:
        print_json(done)
        return
    console.print(f"[green]✓[/green] erased reader {done.subscriber_id}: {done.consents} consent records, "
                  f"{done.deliveries} deliveries, {done.events} bounces/complaints deleted; the address scrubbed "
                  f"from {done.scrubbed} other fields")


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
    """Import readers from a CSV file (header: email,cadence,topics,excluded_keywords,name,status,signals), or from
    the JSON of `subscribers export --json` (a file ending in .json).

    The whole file is checked first; a bad row stops the import with nothing stored. Signals (as the export
    writes them) are stored for papers this database holds (by arXiv id, else title); the others are skipped
    and counted.

    Example: newsletter subscribers import readers.csv --update
    """
    nl = obj.nl
    content = csv_file.read()
    parse = parse_json if str(getattr(csv_file, "name", "")).lower().endswith(".json") else parse_csv
    specs = parse(content, nl.settings.topic_slugs())
    added = nl.import_readers(specs, update=update)
    stored, skipped = nl.import_signals(specs)
    signals = f", {stored} signals" + (f" ({skipped} for papers not in this database skipped)" if skipped else "") \
        if stored or skipped else ""
    console.print(f"[green]✓[/green] imported {added} readers{signals}")
