"""``newsletter run``: the main job, in one command."""

from __future__ import annotations

import click

from ..models import CADENCES
from . import Context, config_option, console, err_console, json_option, main, parse_day, print_json
from .deliver import progress_bar, send_line, show_send_errors


@main.command()
@config_option
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day to run for (default: today).")
@click.option("--cadence", type=click.Choice(CADENCES), multiple=True,
              help="Send this cadence whatever the schedule says (repeatable; default: the cadences due today).")
@json_option
@click.pass_obj
def run(obj: Context, day: str | None, cadence: tuple[str, ...], as_json: bool) -> None:
    """The main job: fetch today's papers, send the digests due today, write a preview of the next issue.

    Fetching falls back to the bundled sample when there is no network (see sample_fallback). Digests go
    out through the configured messenger (the outbox folder by default); the preview of the next daily
    issue is written to outbox/preview/ whether or not anyone is subscribed.

    Example: newsletter run --cadence daily
    """
    nl = obj.nl
    with progress_bar("sending", disabled=as_json) as update:
        report = nl.run(parse_day(day), cadence or None, progress=update)
    if as_json:
        print_json(report)
        return
    for entry in report.fetch.sources:
        if entry.error:
            err_console.print(f"[yellow]fetch {entry.source}:[/yellow] ", end="")
            err_console.print(entry.error, markup=False)
        else:
            console.print(f"[green]✓[/green] fetched {entry.papers} papers from {entry.source} "
                          f"(trending {entry.trending_date})")
    if report.fetch.used_sample:
        err_console.print("[yellow]No network: used the bundled sample page as today's papers.[/yellow]")
    if not report.sends:
        console.print(f"No digest is due on {report.day} by the schedule (use --cadence to send anyway).")
    for sent in report.sends:
        console.print(send_line(sent))
        show_send_errors(sent)
    console.print(f"Next daily issue: {report.preview_papers} papers → {report.preview}", markup=False)
    if not report.readers:
        console.print("[dim]No readers yet: add one with `newsletter subscribers add you@example.org`, "
                      "or run `newsletter serve` for the subscribe page.[/dim]")
