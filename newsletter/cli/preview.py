"""``preview``: the next issue (or one already sent) rendered to files, and served locally with live reload."""

from __future__ import annotations

import os
import tempfile
import webbrowser
from pathlib import Path

import click

from ..models import CADENCES
from . import Context, config_option, console, err_console, main, parse_day


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader (the browser, the preview server) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@main.command()
@config_option
@click.option("--cadence", type=click.Choice(CADENCES), default=None,
              help="Which issue (default: the subscriber's cadence, else daily).")
@click.option("--subscriber", metavar="EMAIL", help="Render it as this reader gets it (default: a reader of every topic).")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day of the issue (default: today).")
@click.option("--edition", "edition_id", type=int, metavar="N", help="Show edition N, already made, instead of the next issue.")
@click.option("--out", "out_dir", metavar="DIR", help="Folder for preview.html, preview.txt and preview.eml "
              "(default: <outbox_dir>/preview).")
@click.option("--serve", is_flag=True, help="Serve it on 127.0.0.1 with desktop, phone, dark and text views; "
              "reloads when a template changes. Ctrl-C stops.")
@click.option("--port", type=int, default=8025, show_default=True, help="Port for --serve.")
@click.option("--open", "open_browser", is_flag=True, help="Open it in a browser.")
@click.pass_obj
def preview(obj: Context, cadence: str | None, subscriber: str | None, day: str | None, edition_id: int | None,
            out_dir: str | None, serve: bool, port: int, open_browser: bool) -> None:
    """Render the next issue (what `send` would send now) to files, without sending anything.

    Writes the HTML part, the text part and the whole message (.eml). With --serve, shows them on
    http://127.0.0.1:PORT/ with buttons for desktop width, phone width, dark mode and the text part, and
    reloads whenever a template file changes.

    Example: newsletter preview --cadence daily --subscriber ada@example.org --serve --open
    """
    from ..preview_server import PreviewServer, Rendering
    from ..render import email_counts, reset_template_cache, template_files, template_search_path
    from ..render.textfilters import plural
    from ..render.template_check import check_templates

    nl = obj.nl
    settings = nl.settings
    folder = Path(out_dir) if out_dir else settings.path(settings.outbox_dir) / "preview"
    day_value = parse_day(day)

    def render() -> Rendering:
        reset_template_cache()
        shown = nl.preview(cadence, subscriber, day_value, edition_id=edition_id)
        return Rendering(shown.rendered.subject, shown.html, shown.text, shown.message)

    def write(r: Rendering) -> None:
        _write(folder / "preview.html", r.html.encode("utf-8"))
        _write(folder / "preview.txt", r.text.encode("utf-8"))
        _write(folder / "preview.eml", r.message)

    first = nl.preview(cadence, subscriber, day_value, edition_id=edition_id)
    for problem in check_templates(settings, first.content):
        err_console.print(f"[yellow]template:[/yellow] {problem}", markup=True, highlight=False)
    what = f"edition {first.edition_id}" if edition_id is not None else f"next {first.cadence} issue ({first.period})"
    who = first.subscriber.email if first.subscriber else "a reader of every topic"
    counts = email_counts(first.content, first.rendered.shown)  # what the subject and the email's heading say
    more = f" (+ {counts.more} only in the web copy)" if counts.more else ""
    console.print(f"{what} for {who}: {plural(counts.listed, 'new paper')} in {plural(counts.topics, 'topic')}{more}, "
                  f"{first.rendered.html_bytes / 1000:.1f} KB of HTML"
                  + (" [yellow](shortened to stay under Gmail's clipping limit)[/yellow]" if first.rendered.shortened else ""))
    console.print(f"Subject: {first.rendered.subject}", markup=False)
    write(Rendering(first.rendered.subject, first.html, first.text, first.message))
    for name in ("preview.html", "preview.txt", "preview.eml"):
        console.print(f"  {folder / name}", markup=False)
    if not serve:
        if open_browser:
            webbrowser.open((folder / "preview.html").resolve().as_uri())
        return
    server = PreviewServer(render, watch=lambda: template_files(template_search_path(settings)), port=port,
                           on_render=write)
    console.print(f"Serving on {server.url} (Ctrl-C to stop); it reloads when a template changes.")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
