"""``fetch``, ``import``, ``papers`` and ``diff``: getting papers in and seeing what the next issue holds."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..models import CADENCES, Paper
from ..render.textfilters import plural
from . import Context, config_option, console, err_console, json_option, main, parse_day, print_json


@main.command()
@config_option
@click.option("--date", "day", metavar="YYYY-MM-DD",
              help="Act as if today were this day (default: today in UTC): catch up through it, never later.")
@click.option("--source", "only", multiple=True, metavar="NAME", help="Only this configured source (repeatable).")
@json_option
@click.pass_obj
def fetch(obj: Context, day: str | None, only: tuple[str, ...], as_json: bool) -> None:
    """Fetch the trending papers from every configured source and store them.

    The Daily Papers API is caught up: every listing day not yet known complete (a day's list grows after
    it opens) is read again, up to today in UTC. A source that fails is reported and the others are still
    stored; with no network at all the bundled sample is used (unless sample_fallback is off).

    Example: newsletter fetch --date 2026-03-14
    """
    nl = obj.nl
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("fetching", total=None)
        report = nl.fetch(parse_day(day), only or None,
                          progress=lambda name: bar.update(task, description=f"fetching {name}"))
    if as_json:
        print_json(report)
    else:
        for entry in report.sources:
            if entry.error:
                err_console.print(f"[red]✗[/red] {entry.source}: ", end="")
                err_console.print(entry.error, markup=False, soft_wrap=True, crop=False)
                if entry.days:  # a catch-up that failed part way: what it read first is stored
                    err_console.print(f"  the {len(entry.days)} listing days read before that "
                                      f"({min(entry.days)} to {max(entry.days)}, {entry.papers} papers) were stored",
                                      soft_wrap=True, crop=False)
            else:
                if len(entry.days) > 1:  # a dated source caught up on several listing days
                    console.print(f"[green]✓[/green] {entry.source}: {entry.papers} papers on {len(entry.days)} "
                                  f"listing days, {min(entry.days)} to {max(entry.days)}")
                else:
                    console.print(f"[green]✓[/green] {entry.source}: {entry.papers} papers trending "
                                  f"{entry.trending_date}")
            if entry.skipped:
                noun = "entry" if len(entry.skipped) == 1 else "entries"
                err_console.print(f"  [yellow]{len(entry.skipped)} {noun} skipped[/yellow]")
                for reason in entry.skipped[:3]:
                    err_console.print(f"    {reason}", markup=False, soft_wrap=True, crop=False)
                if len(entry.skipped) > 3:
                    err_console.print(f"    ... and {len(entry.skipped) - 3} more (see --json)")
        if report.used_sample:
            err_console.print("[yellow]No network: stored the bundled sample page as trending today.[/yellow]")
        if report.ingest:
            console.print(f"{report.ingest.new} new papers, {report.ingest.updated} updated.")
    if not report.ok:
        raise SystemExit(1)


@main.command("import")
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Trending day (default: the page's own date).")
@json_option
@click.pass_obj
def import_(obj: Context, files: tuple[str, ...], day: str | None, as_json: bool) -> None:
    """Store papers from saved Daily Papers pages (text) or JSON files in the API's shape.

    Each file is all or nothing: a malformed file is reported and nothing from it is stored.

    Example: newsletter import newsletter/sample/daily-papers-mar14.txt --date 2025-03-14
    """
    out = []
    for path in files:
        batch, result = obj.nl.import_file(path, parse_day(day))
        out.append({"file": path, "trending_date": batch.trending_date, "papers": len(batch.papers),
                    "new": result.new, "updated": result.updated})
        if not as_json:
            console.print(f"[green]✓[/green] {path}: {len(batch.papers)} papers trending {batch.trending_date} "
                          f"({result.new} new, {result.updated} already known)")
    if as_json:
        print_json(out)


def paper_json(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id, "key": p.key, "arxiv_id": p.arxiv_id, "title": p.title, "abstract": p.abstract,
        "authors": list(p.authors), "author_count": p.author_count if p.author_count is not None else (len(p.authors) or None),
        "organization": p.organization, "published": p.published.isoformat() if p.published else None,
        "upvotes": p.upvotes, "num_comments": p.num_comments, "url": p.page_url, "pdf_url": p.pdf_url,
        "ai_summary": p.ai_summary, "ai_keywords": list(p.ai_keywords), "github_repo": p.github_repo,
        "github_stars": p.github_stars, "project_page": p.project_page, "topic": p.topic, "topics": list(p.topics),
        "first_trending": p.first_trending.isoformat() if p.first_trending else None,
        "last_trending": p.last_trending.isoformat() if p.last_trending else None, "best_rank": p.best_rank,
    }


@main.command()
@config_option
@click.option("--since", metavar="YYYY-MM-DD", help="Only papers trending on or after this day.")
@click.option("--until", metavar="YYYY-MM-DD", help="Only papers trending on or before this day.")
@click.option("--topic", metavar="SLUG", help="Only papers whose primary topic is SLUG.")
@click.option("--search", "-s", metavar="TEXT", help="Only papers whose title or abstract contains TEXT.")
@click.option("--limit", "-n", type=int, default=None, help="At most this many papers.")
@json_option
@click.pass_obj
def papers(obj: Context, since: str | None, until: str | None, topic: str | None, search: str | None,
           limit: int | None, as_json: bool) -> None:
    """List stored papers, most recently trending first.

    Example: newsletter papers --since 2026-03-01 --search quantization --json
    """
    found = obj.nl.store.papers(since=parse_day(since), until=parse_day(until), topic=topic, search=search, limit=limit)
    if as_json:
        print_json([paper_json(p) for p in found])
        return
    table = Table("id", "trending", "▲", "topic", "title", box=None, header_style="bold")
    for p in found:
        table.add_row(str(p.id), str(p.last_trending or ""), "" if p.upvotes is None else str(p.upvotes),
                      p.topic or "", Text(p.title))  # a title from the web, never read as markup
    console.print(table)
    console.print(f"[dim]{len(found)} papers[/dim]")


@main.command()
@config_option
@click.option("--cadence", type=click.Choice(CADENCES), multiple=True, help="Only this cadence (default: both).")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day of the edition (default: today).")
@click.option("--papers/--no-papers", "show_papers", default=False, help="List each digest's papers.")
@json_option
@click.pass_obj
def diff(obj: Context, cadence: tuple[str, ...], day: str | None, show_papers: bool, as_json: bool) -> None:
    """Show what the next issue would hold for each cadence, digest by digest, and for how many readers. Sends nothing.

    It takes the code path `send` takes, reader by reader (topics, excluded keywords, the caps and the size
    limit): each distinct digest with its subject, the papers its email lists, its sections, and how many more
    papers only its web copy holds (those are not recorded as sent). Readers with signals get their digest in
    their own order with a For you block; with --papers each is listed in the order send will use. Models whose
    signals changed are trained in memory: nothing is written.

    Example: newsletter diff --cadence daily --date 2026-03-14 --papers
    """
    out = []
    for cad in cadence or CADENCES:
        plan = obj.nl.plan(cad, parse_day(day), save_models=False)
        planned = obj.nl.planned_digests(plan)
        listed_of = [{p.id: p for p in d.content.papers + d.content.top} for d in planned]
        entry = {
            "cadence": cad, "period": plan.period, "window": [plan.window_start, plan.day],
            "candidates": len(plan.candidates), "readers": plan.reader_count,
            "readers_with_news": sum(d.reader_count for d in planned),
            "already_made": plan.existing_edition,
            "digests": [{
                "readers": d.reader_count, "subject": d.rendered.subject,
                "listed": d.counts.listed, "topics": d.counts.topics, "more": d.counts.more,
                "sections": [{"slug": v.slug, "name": v.name, "listed": n, "more": max(v.total, n) - n}
                             for v in d.content.sections
                             for n in [min(len(v.papers), d.rendered.shown.get(v.slug, len(v.papers)))]],
                "papers": [paper_json(listed[pid]) if as_json else listed[pid] for pid in d.listed],
                "readers_with_signals": sum(1 for sid in d.reader_ids if plan.personal.is_personal(sid)),
                "personal": [personal_order(plan, d, sid, obj.nl.settings) for sid in d.reader_ids if plan.personal.is_personal(sid)]
                if show_papers else [],
            } for d, listed in zip(planned, listed_of)],
        }
        out.append(entry)
    if as_json:
        print_json(out)
        return
    for entry in out:
        made = f"  [yellow](edition {entry['already_made']} already made)[/yellow]" if entry["already_made"] else ""
        console.print(f"[bold]{entry['cadence']}[/bold] {entry['period']}: {entry['candidates']} papers trending "
                      f"{entry['window'][0]} … {entry['window'][1]}; {entry['readers_with_news']} of "
                      f"{entry['readers']} readers get news in {plural(len(entry['digests']), 'distinct digest')}"
                      f"{made}")
        if not entry["readers"]:
            console.print("  [dim]no active readers; add one with `newsletter subscribers add EMAIL`[/dim]")
        for i, digest in enumerate(entry["digests"], 1):
            more = f", {digest['more']} more only in the web copy" if digest["more"] else ""
            console.print(f"  digest {i}: {plural(digest['listed'], 'paper')} in {plural(digest['topics'], 'topic')}"
                          f"{more}, for {plural(digest['readers'], 'reader')}", markup=False)
            console.print(f"    Subject: {digest['subject']}", markup=False, highlight=False)
            console.print("    " + "; ".join(f"{s['name']} {s['listed']}" + (f" (+{s['more']})" if s["more"] else "")
                                             for s in digest["sections"]), markup=False, highlight=False)
            if show_papers:
                for p in digest["papers"]:
                    console.print(f"    • {p.title}", markup=False)
                for mine in digest["personal"]:
                    console.print(f"    reader {mine['subscriber_id']} (with signals): For you "
                                  f"{', '.join(map(str, mine['for_you'])) or '(none)'}; listed in the order "
                                  f"{', '.join(map(str, mine['order']))}", markup=False, highlight=False)
            elif digest["readers_with_signals"]:
                console.print(f"    {plural(digest['readers_with_signals'], 'reader')} with signals get it in their "
                              "own order (--papers lists them)", markup=False)


def personal_order(plan: object, digest: object, subscriber_id: int, settings: object) -> dict[str, object]:
    """A reader with signals in a planned digest: their For you papers and every listed paper in the order their
    email lists them (as send writes it)."""
    from ..render import listed_ids

    mine = plan.personal.view(digest.content, digest.listed, subscriber_id,  # type: ignore[attr-defined]
                              rendered=digest.rendered, settings=settings)  # type: ignore[attr-defined]
    return {"subscriber_id": subscriber_id, "for_you": [f.paper.id for f in mine.for_you],
            "order": list(listed_ids(mine))}
