"""``newsletter report [ID]``: how one edition went (``Newsletter.report``, aggregated in SQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ..store.reports import DomainStats

from . import Context, config_option, console, json_option, main, print_json


def duration(seconds: float | None, *, compact: bool = False) -> str:
    """``1 h 02 min``, ``3 min 20 s``, ``12.5 s``; compact, for table cells: ``1h02m``, ``3m20s``, ``12.5s``."""
    if seconds is None:
        return "–"
    sep = "" if compact else " "
    h, m, s = ("h", "m", "s") if compact else ("h", "min", "s")
    if seconds < 60:
        return f"{seconds:.1f}{sep}{s}" if seconds % 1 else f"{int(seconds)}{sep}{s}"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}{sep}{m} {secs:02d}{sep}{s}" if not compact else f"{minutes}{m}{secs:02d}{s}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}{sep}{h} {minutes:02d}{sep}{m}" if not compact else f"{hours}{h}{minutes:02d}{m}"


def milliseconds(ms: float | None) -> str:
    """``840 ms``, ``12.5 ms``, ``3.2 s``; ``–`` for none."""
    if ms is None:
        return "–"
    if ms >= 1000:
        return duration(ms / 1000, compact=True)
    return f"{ms:.1f} ms" if ms % 1 else f"{int(ms)} ms"


def domain_table(title: str, rows: list[DomainStats]) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    table.add_column("domain", no_wrap=True, overflow="fold", min_width=16)
    for name in ("readers", "sent", "failed", "deferred", "bounced", "timed", "median", "p95"):
        table.add_column(name, justify="right", no_wrap=True)
    for d in rows:
        table.add_row(Text(d.domain), *(str(v) for v in (d.readers, d.sent, d.failed, d.deferred, d.bounced, d.timed)),
                      milliseconds(d.smtp_median_ms), milliseconds(d.smtp_p95_ms))
    return table


@main.command("report")
@config_option
@click.argument("edition_id", type=int, metavar="[ID]", required=False)
@json_option
@click.pass_obj
def report(obj: Context, edition_id: int | None, as_json: bool) -> None:
    """How an edition went (default: the latest): readers, sent, failed, bounced, complaints, unsubscribes
    within 7 days, the time to send, the failing and slowest recipient domains (median and p95 SMTP time
    per message), and the papers most readers received. Bounces and complaints count once `newsletter inbound` (or a webhook) has recorded them.

    Example: newsletter report 12 --json
    """
    r = obj.nl.report(edition_id)
    if as_json:
        print_json(r)
        return
    console.print(Text(f"Edition {r.edition_id} · {r.cadence} {r.period} · {r.state}", style="bold"))
    if r.subject:
        console.print(Text(r.subject))
    console.print(f"{r.readers} readers: {r.sent} sent, {r.failed} failed, {r.waiting} waiting"
                  + (f" ({r.deferred} deferrals on the way)" if r.deferred else ""))
    console.print(f"{r.bounced} bounced ({r.hard_bounced} hard), {r.complaints} complaints, "
                  f"{r.unsubscribes} unsubscribed within 7 days")
    if r.first_sent is not None:
        console.print(f"Time to send: {duration(r.send_seconds)} (first {r.first_sent:%Y-%m-%d %H:%M:%S} UTC, "
                      f"last {r.last_sent:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        console.print("Nothing of it sent yet.")
    for title, rows in (("Failing and slowest domains", r.domains), ("Slowest domains", r.slowest_domains)):
        if rows:
            console.print(domain_table(f"{title} (SMTP time per message: connect or MAIL FROM to the final reply)",
                                       rows))
    if r.top_papers:
        table = Table("readers", "paper", title="Papers most readers received", title_justify="left", box=None,
                      header_style="bold")
        for p in r.top_papers:
            table.add_row(str(p.readers), Text(p.title[:90]))
        console.print(table)
