"""``newsletter edition list/pause/resume/cancel``: holding an edition's deliveries back, letting them go again,
or calling them off."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from ..models import DELIVERY_STATES, EDITION_STATES
from . import Context, config_option, console, json_option, main, print_json


@main.group(cls=type(main))
def edition() -> None:
    """List editions with their state; pause, resume or cancel one.

    Example: newsletter edition pause 12
    """


@edition.command("list")
@config_option
@click.option("--state", type=click.Choice(EDITION_STATES), help="Only editions in this state.")
@click.option("--limit", "-n", type=int, default=20, show_default=True, help="At most this many editions.")
@json_option
@click.pass_obj
def list_(obj: Context, state: str | None, limit: int, as_json: bool) -> None:
    """The newest editions with their state (active, paused, cancelled) and their deliveries by state.

    Example: newsletter edition list --state paused --json
    """
    from ..store.control import edition_states

    rows = edition_states(obj.nl.store.engine, state=state, limit=limit or None)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("[dim]No editions yet; `newsletter send` makes one.[/dim]")
        return
    shown = [s for s in DELIVERY_STATES if any(r.deliveries.get(s) for r in rows)]
    table = Table("edition", "cadence", "period", "state", *shown, "subject", box=None, header_style="bold")
    for r in rows:
        colour = {"paused": "yellow", "cancelled": "red"}.get(r.state, "green")
        table.add_row(str(r.id), r.cadence, r.period, f"[{colour}]{r.state}[/{colour}]",
                      *(str(r.deliveries.get(s, 0)) for s in shown), Text(r.subject[:60]))
    console.print(table)


def _change(obj: Context, edition_id: int, action: str, as_json: bool) -> None:
    from ..store.control import change_state

    done = change_state(obj.nl.store.engine, edition_id, action)
    if as_json:
        print_json(done)
        return
    if done.before == done.after:
        console.print(f"Edition {edition_id} is already {done.after}; nothing changed.")
        return
    what = {"paused": "paused: nothing more of it goes out until `newsletter edition resume "
                      f"{edition_id}` (a running sender stops within its current batch)",
            "active": "resumed: its deliveries go out with the next `newsletter retry`, send or scheduled run",
            "cancelled": f"cancelled: {done.cancelled} deliveries not sent are called off; their papers stay "
                         "eligible for the next edition"}[done.after]
    console.print(f"[green]✓[/green] edition {edition_id} {what}")


@edition.command("pause")
@config_option
@click.argument("edition_id", type=int, metavar="ID")
@json_option
@click.pass_obj
def pause(obj: Context, edition_id: int, as_json: bool) -> None:
    """Hold an edition's deliveries back: a running sender stops within one batch, nothing of it is claimed
    (not by `send`, `retry` or the scheduler) until it is resumed. Nothing is lost.

    Example: newsletter edition pause 12
    """
    _change(obj, edition_id, "pause", as_json)


@edition.command("resume")
@config_option
@click.argument("edition_id", type=int, metavar="ID")
@json_option
@click.pass_obj
def resume(obj: Context, edition_id: int, as_json: bool) -> None:
    """Let a paused edition's deliveries go again (with the next `retry`, send or scheduled run).

    Example: newsletter edition resume 12 && newsletter retry --edition 12
    """
    _change(obj, edition_id, "resume", as_json)


@edition.command("cancel")
@config_option
@click.argument("edition_id", type=int, metavar="ID")
@json_option
@click.pass_obj
def cancel(obj: Context, edition_id: int, as_json: bool) -> None:
    """Call off what an edition has not sent yet; a running sender stops within one batch. The papers of its
    unsent deliveries stay eligible for the next edition. It cannot be undone.

    Example: newsletter edition cancel 12
    """
    _change(obj, edition_id, "cancel", as_json)
