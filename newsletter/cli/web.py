"""``newsletter serve``: the web pages and the digest scheduler in one process."""

from __future__ import annotations

import logging
import signal

import click

from . import Context, config_option, console, main

log = logging.getLogger(__name__)


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--no-scheduler", is_flag=True, help="Serve the pages only; send no digests from this process.")
@click.option("--production/--no-production", default=None,
              help="Production mode (refuse to start without NEWSLETTER_SIGNING_KEY). "
              "Default: web.production, NEWSLETTER_ENV=production, or an https site_url.")
@click.pass_obj
def serve(obj: Context, host: str, port: int, no_scheduler: bool, production: bool | None) -> None:
    """Serve the subscribe, preferences, unsubscribe and archive pages, the feeds and the JSON API, and run
    the daily and weekly sends on their schedule (unless --no-scheduler). Stops on Ctrl-C or SIGTERM.

    Behind a reverse proxy on the same machine, the client address comes from X-Forwarded-For.

    Example: NEWSLETTER_SIGNING_KEY=$(openssl rand -hex 32) newsletter serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from ..web import create_app

    nl = obj.nl
    app = create_app(nl.settings, nl.store, production=production)  # raises before listening when misconfigured
    scheduler = None
    if not no_scheduler:
        from ..schedule import DigestScheduler

        scheduler = DigestScheduler(nl, config_path=obj.config_path)
        scheduler.start()
    console.print(f"[green]✓[/green] serving {nl.settings.list_name} on http://{host}:{port} "
                  f"(public address {nl.settings.site_url}){'' if scheduler else '; scheduler off'}")
    # uvicorn handles SIGINT/SIGTERM: it finishes open requests, puts back the handlers it found and raises
    # the signal again. Ours then only notes it, so the scheduler below still stops cleanly (a send in
    # progress finishes its current message) and the command exits 0.
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # log.format: json: uvicorn's own records go through the same JSON handler (its config would add a
        # text handler of its own).
        json_logs = {"log_config": None} if nl.settings.log.format == "json" else {}
        uvicorn.run(app, host=host, port=port, log_level="info" if obj.verbose else "warning",
                    proxy_headers=True, server_header=False, **json_logs)
    finally:
        if scheduler is not None:
            scheduler.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped%s", f" by {signal.Signals(caught[0]).name}" if caught else "")
