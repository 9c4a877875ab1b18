"""``send``, ``deliveries``, ``retry`` and ``schedule``: getting each digest to every reader once, on time."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..models import (
    CADENCES,
    DELIVERY_CANCELLED,
    DELIVERY_CLAIMED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_RETRY,
    DELIVERY_SENT,
    DELIVERY_STATES,
    DELIVERY_SUPPRESSED,
)
from . import Context, config_option, console, err_console, json_option, main, parse_day, print_json

# The columns of `newsletter deliveries` and its --json keys: the stored delivery states, the words --state
# takes.
SUMMARY_STATES = (DELIVERY_SENT, DELIVERY_PENDING, DELIVERY_CLAIMED, DELIVERY_RETRY, DELIVERY_FAILED,
                  DELIVERY_SUPPRESSED, DELIVERY_CANCELLED)


@contextmanager
def progress_bar(label: str, disabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, fed by the send loop's (done, total) callback."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True, disable=disabled) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def delivery_line(report: Any) -> str:
    parts = [f"{report.sent} sent"]
    if report.retry:
        parts.append(f"[yellow]{report.retry} to retry[/yellow]")
    if report.failed:
        bounced = f" ({report.bounced} bounced)" if report.bounced else ""
        parts.append(f"[red]{report.failed} failed[/red]{bounced}")
    if report.suppressed:
        parts.append(f"{report.suppressed} suppressed (unsubscribed)")
    if report.expired:
        parts.append(f"[red]{report.expired} expired[/red]")
    return ", ".join(parts)


def send_line(report: Any) -> str:
    """One line for a ``SendReport``: which edition, made or resumed, what it delivered, and what else
    (retries of other editions) the same run delivered."""
    head = f"[bold]{report.cadence}[/bold] {report.period}: "
    if report.edition_id is None:
        line = head + "no reader has anything new; no edition made"
    else:
        state = "made" if report.created else "resumed"
        line = head + f"edition {report.edition_id} {state}; {delivery_line(report.delivery)}"
        halted = getattr(report, "edition_state", "active")
        if halted == "paused":
            line = head + (f"edition {report.edition_id} is paused; nothing of it sent "
                           f"(`newsletter edition resume {report.edition_id}` lets it go on)")
        elif halted != "active":
            line = head + f"edition {report.edition_id} is {halted}; nothing of it sent"
    others = getattr(report, "others", None)
    if others is not None and others.done:
        line += f"; other editions' due deliveries: {delivery_line(others)}"
    return line


def show_send_errors(report: Any) -> None:
    """The errors of a ``SendReport``'s edition and of the other editions it delivered."""
    for delivery in (report.delivery, getattr(report, "others", None)):
        if delivery is not None:
            show_errors(delivery)


def show_errors(report: Any) -> None:
    for error in report.errors[:5]:  # the bullet is markup; the error is the server's text, shown as it is
        err_console.print(Text.assemble(("  • ", "dim"), error), highlight=False)
    if len(report.errors) > 5:
        err_console.print("  [dim]… see `newsletter deliveries --edition ID` for the rest[/dim]")


@main.command()
@config_option
@click.option("--cadence", type=click.Choice(CADENCES), default="daily", show_default=True,
              help="Which digest to build and send.")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day of the edition (default: today).")
@click.option("--dry-run", is_flag=True,
              help="Fetch and plan only: show who would get what; write and send nothing.")
@click.option("--no-fetch", is_flag=True, help="Use the papers already stored instead of fetching first.")
@click.option("--to", "test_to", metavar="ADDRESS",
              help="Test send: the next issue to this one address, subject prefixed [test]; nothing recorded.")
@click.option("--subscriber", metavar="EMAIL",
              help="With --to: render it as this reader gets it (default: a reader of every topic).")
@json_option
@click.pass_obj
def send(obj: Context, cadence: str, day: str | None, dry_run: bool, no_fetch: bool, test_to: str | None,
         subscriber: str | None, as_json: bool) -> None:
    """Build this period's edition (fetch → diff → group → render) and deliver it, with a progress bar.

    One edition per cadence and period: running it again, or after a crash, resumes that edition and sends
    nobody a second copy. Transport settings come from `messenger` and `smtp` in config.yaml.

    With --to, a test send: the next issue (after a fetch, unless --no-fetch), rendered as --subscriber gets
    it, goes to ADDRESS only, through the configured messenger, with a [test] subject. No edition or delivery
    is recorded and nothing is marked sent. An address outside `test_recipients` is refused when that is set.

    Example: newsletter send --cadence daily --dry-run

    Example: newsletter send --to me@example.org --subscriber ada@example.org --no-fetch
    """
    nl = obj.nl
    if subscriber is not None and test_to is None:
        raise click.UsageError("--subscriber needs --to ADDRESS (a test send).")
    if test_to is not None:
        if dry_run:
            raise click.UsageError("--to is a test send already; leave out --dry-run.")
        from ..sendtest import check_recipient

        check_recipient(test_to, nl.settings.test_recipients)  # refused before anything is fetched
        given = click.get_current_context().get_parameter_source("cadence") is not click.core.ParameterSource.DEFAULT
        test_cadence = cadence if given else None  # default: the reader's own cadence (daily for no reader)
        if not no_fetch:
            fetched = nl.fetch(parse_day(day))
            for entry in fetched.sources:
                if entry.error and not as_json:
                    err_console.print(f"[yellow]fetch {entry.source}:[/yellow] ", end="")
                    err_console.print(entry.error, markup=False)
        report = nl.send_test(test_to, subscriber, test_cadence, parse_day(day))
        if as_json:
            print_json(report)
            return
        who = report.rendered_for or "a reader of every topic"
        console.print(f"[green]✓[/green] test {report.cadence} {report.period} sent to ", end="")
        console.print(f"{report.to} by {report.messenger}, as {who}: {report.papers} papers; nothing recorded.",
                      markup=False)
        console.print("  subject: ", end="", style="dim")
        console.print(report.subject, markup=False)
        return
    with progress_bar(f"sending {cadence}", disabled=as_json or dry_run) as update:
        report = nl.send(cadence, parse_day(day), dry_run=dry_run, fetch=not no_fetch, progress=update)
    if as_json:
        print_json(report)
        return
    if report.fetch is not None:
        for entry in report.fetch.sources:
            if entry.error:
                err_console.print(f"[yellow]fetch {entry.source}:[/yellow] ", end="")
                err_console.print(entry.error, markup=False)
    if dry_run:
        made = f"edition {report.edition_id} already exists" if report.edition_id else "no edition yet"
        console.print(f"[bold]{cadence}[/bold] {report.period} (dry run, {made}): {report.readers} readers "
                      "would get a digest; nothing written or sent.")
        return
    console.print(send_line(report))
    show_send_errors(report)


@main.command()
@config_option
@click.option("--edition", type=int, metavar="ID", help="One line per reader of this edition.")
@click.option("--cadence", type=click.Choice(CADENCES), help="Only editions of this cadence.")
@click.option("--state", type=click.Choice(DELIVERY_STATES),
              help="With --edition: only deliveries in this state.")
@click.option("--limit", "-n", type=int, default=20, show_default=True, help="At most this many rows.")
@json_option
@click.pass_obj
def deliveries(obj: Context, edition: int | None, cadence: str | None, state: str | None, limit: int,
               as_json: bool) -> None:
    """Show how many deliveries of each edition are sent, pending, claimed, retry, failed, suppressed or cancelled.

    The words are the stored states, the same in the table, in --json and in --state. With --edition, one
    line per reader: state, attempts, next attempt and the last error. An edition that does not exist is an
    error.

    Example: newsletter deliveries --edition 12 --state failed
    """
    from ..store.deliveries import delivery_list
    from ..store.editions import edition_record

    if state is not None and edition is None:
        raise click.UsageError("--state needs --edition ID (the list of editions shows every state's count).")
    store = obj.nl.store
    if edition is not None:
        edition_record(store.engine, edition)  # raises NotFound: "No edition 999."
        rows = delivery_list(store.engine, edition, state, limit or None)
        if as_json:
            print_json(rows)
            return
        table = Table("id", "reader", "state", "tries", "next attempt", "last error", box=None,
                      header_style="bold")
        for r in rows:
            waiting = r.next_attempt_at is not None and r.state == "retry"
            when = r.next_attempt_at.isoformat(timespec="minutes") if waiting and r.next_attempt_at else ""
            table.add_row(str(r.id), Text(r.email), r.state, str(r.attempts), when, Text(r.last_error or ""))
        console.print(table)
        return
    editions = store.editions(cadence, limit=limit or None)
    out = []
    for e in editions:
        counts = e.deliveries
        out.append({"edition": e.id, "cadence": e.cadence, "period": e.period, "papers": e.paper_count,
                    **{s: counts.get(s, 0) for s in SUMMARY_STATES}, "created_at": e.created_at})
    if as_json:
        print_json(out)
        return
    if not out:
        console.print("[dim]No editions yet; `newsletter send` makes one.[/dim]")
        return
    # claimed: held by a sender now, or by one that crashed (taken over by the next run)
    # cancelled: only when an edition listed has such deliveries (the table fits 80 columns without it)
    shown = [s for s in SUMMARY_STATES if s != DELIVERY_CANCELLED or any(row[s] for row in out)]
    table = Table("edition", "cadence", "period", *shown, box=None, header_style="bold",
                  pad_edge=False)
    for row in out:
        table.add_row(str(row["edition"]), row["cadence"], row["period"],
                      *(str(row[s]) for s in shown))
    console.print(table)


@main.command()
@config_option
@click.option("--now", "due_now", is_flag=True,
              help="Do not wait for the backoff: retry waiting deliveries now.")
@click.option("--edition", type=int, metavar="ID", help="Only deliveries of this edition.")
@json_option
@click.pass_obj
def retry(obj: Context, due_now: bool, edition: int | None, as_json: bool) -> None:
    """Resume delivery: send what is due (new, retries whose time has come, and those a crashed sender left).

    Example: newsletter retry --now
    """
    from ..store.deliveries import make_due_now, next_attempt, utcnow

    from ..store.editions import edition_record

    nl = obj.nl
    if edition is not None:
        edition_record(nl.store.engine, edition)  # raises NotFound: "No edition 999."
    if due_now:
        make_due_now(nl.store.engine, utcnow(), edition)
    with progress_bar("sending", disabled=as_json) as update:
        report = nl.deliver(update, edition_id=edition)
    if as_json:
        print_json(report)
        return
    console.print(delivery_line(report) if report.done else "Nothing was due.")
    show_errors(report)
    later = next_attempt(nl.store.engine, edition)
    if later is not None:
        console.print(f"[dim]next retry due {later.isoformat(timespec='minutes')} "
                      "(`newsletter retry --now` to try at once)[/dim]")


@main.command()
@config_option
@click.option("--list", "list_only", is_flag=True, help="Show the next run times and exit.")
@json_option
@click.pass_obj
def schedule(obj: Context, list_only: bool, as_json: bool) -> None:
    """Run the scheduler in the foreground: each cadence's digest at its cron time (schedule.* settings).

    Logs each run; stops cleanly on Ctrl-C or SIGTERM (a send in progress finishes its current message).

    Example: newsletter schedule --list --json
    """
    from .. import schedule as schedule_mod

    nl = obj.nl
    if list_only:
        rows = schedule_mod.upcoming(nl.settings, stored=schedule_mod.stored_next_runs(nl.store.engine))
        every = schedule_mod.retry_interval(nl.settings)
        if as_json:
            retries = {"job": schedule_mod.DELIVERIES_JOB_ID, "every_seconds": every.total_seconds()}
            print_json([*rows, retries])
            return
        for row in rows:
            runs = ", ".join(t.strftime("%a %Y-%m-%d %H:%M %Z") for t in row["next_runs"])
            console.print(f"[bold]{row['job']}[/bold] ({row['cron']}, {row['timezone']}): {runs}")
            stored = row["stored_next_run"]
            if stored is not None and stored < row["next_runs"][0]:
                console.print(f"  [yellow]a run due {stored} is pending (missed while the scheduler was "
                              "down)[/yellow]")
        console.print(f"[bold]{schedule_mod.DELIVERIES_JOB_ID}[/bold]: every {every.total_seconds() / 60:g} "
                      "minutes, sends retries whose time has come")
        return
    logging.getLogger("newsletter").setLevel(logging.INFO)
    schedule_mod.DigestScheduler(nl, config_path=obj.config_path).run_forever(
        ready=lambda: err_console.print(f"Scheduler running ({nl.settings.schedule.timezone}); "
                                        "Ctrl-C to stop."))
