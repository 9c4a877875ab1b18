"""``inbound`` (one pass over the bounce mailbox) and ``bounces`` (the events it and the webhooks stored)."""

from __future__ import annotations

import click
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from ..inbound import KINDS
from . import Context, config_option, console, err_console, json_option, main, print_json


@main.command("inbound")
@config_option
@json_option
@click.pass_obj
def inbound_cmd(obj: Context, as_json: bool) -> None:
    """Read the bounce mailbox once: bounces, complaints and mailto unsubscribes take effect.

    Hard bounces count toward delivery.bounce_limit, complaints and mail to the unsubscribe address
    unsubscribe the reader at once; delays and auto-replies are recorded and change nothing. Processed mail
    is moved to inbound.processed_folder (or flagged); mail that is none of these stays where it is and is
    reported once. The scheduler runs the same pass on schedule.inbound.

    Example: INBOUND_PASSWORD=... newsletter inbound --json
    """
    from ..inbound import run_pass

    nl = obj.nl
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True,
                  disable=as_json) as bar:
        task = bar.add_task("reading the mailbox", total=None)
        report = run_pass(nl.settings, nl.store, progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json({"mailbox": report.mailbox, "read": report.read, "kinds": dict(report.kinds),
                    "effects": dict(report.effects), "already_recorded": report.already, "kept": report.kept})
        return
    console.print(f"{report.mailbox}: {report.read} message{'s' if report.read != 1 else ''} read.")
    if report.kinds:
        console.print("  " + ", ".join(f"{n} {kind}" for kind, n in sorted(report.kinds.items())))
    effects = {k: v for k, v in report.effects.items() if k != "recorded"}
    if effects:
        console.print("  effects: " + ", ".join(f"{n} {effect}" for effect, n in sorted(effects.items())))
    if report.already:
        console.print(f"  {report.already} recorded by an earlier pass, now filed away")
    for kept in report.kept:
        console.print(f"  [yellow]kept in the mailbox[/yellow] (not a bounce, complaint or unsubscribe): "
                      f"from {kept['from'] or '?'}, subject {kept['subject']!r}", markup=True, highlight=False)


@main.command("bounces")
@config_option
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Only events of this kind (repeat for several).")
@click.option("--email", metavar="ADDRESS", help="Only events about this address.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000), help="Newest N events.")
@json_option
@click.pass_obj
def bounces_cmd(obj: Context, kinds: tuple[str, ...], email: str | None, limit: int, as_json: bool) -> None:
    """Bounces, delays, auto-replies, complaints and unsubscribe requests received, newest first, each with
    its raw reason and what it did (counted, bounced, unsubscribed, recorded, unmatched, duplicate).

    Example: newsletter bounces --kind hard --kind complaint --json
    """
    from ..store.inbound import counts_by_kind, events

    rows = events(obj.nl.store, kinds=kinds or None, email=email, limit=limit)
    if as_json:
        print_json({"counts": counts_by_kind(obj.nl.store), "events": rows})
        return
    if not rows:
        console.print("No inbound events recorded.")
        return
    table = Table("received", "source", "kind", "address", "status", "effect", "reason", box=None)
    for r in rows:
        table.add_row(r.received_at.strftime("%Y-%m-%d %H:%M"), r.source, r.kind, r.email or "",
                      r.status or r.feedback_type or "", r.effect, " ".join(r.reason.split())[:80])
    console.print(table)
