"""The ``newsletter`` command: thin shells over ``newsletter.pipeline.Newsletter``.

Every command has ``--help`` with an example; errors print one clear message (a traceback only with -v)
and exit non-zero; commands a script would read take ``--json``.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

import click
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from ..errors import NewsletterError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Context:
    """Per-invocation state: the config path and, on first use, the loaded Newsletter."""

    def __init__(self, config_path: str | None, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._nl: Any = None

    @property
    def nl(self) -> Any:
        if self._nl is None:
            from ..pipeline import Newsletter

            from ..monitor.logs import configure

            self._nl = Newsletter.from_config(self.config_path)
            configure(self._nl.settings.log, self.verbose)  # log.format (text or json) and log.level
        return self._nl

    def close(self) -> None:
        if self._nl is not None:
            self._nl.close()


class Group(click.Group):
    """A click group that turns NewsletterError into a clean message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("[yellow]Interrupted.[/yellow]")
            sys.exit(130)
        except SQLAlchemyError as exc:  # a failed query outside the send loop: the driver's words
            from ..store.failures import database_error

            error = database_error(exc)
            _fail(ctx, str(error), error.exit_code)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for a clean CLI
            _fail(ctx, f"Unexpected error: {type(exc).__name__}: {exc}", 1, unexpected=True)


def _fail(ctx: click.Context, message: str, code: int, unexpected: bool = False) -> None:
    verbose = ctx.find_root().params.get("verbose", 0)
    if verbose:
        traceback.print_exc()
    err_console.print(f"[bold red]error:[/bold red] {click.style('', reset=False)}", end="")
    err_console.print(message, markup=False)
    if unexpected and not verbose:
        err_console.print("Run again with -v for the traceback.", style="dim")
    sys.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH", envvar="NEWSLETTER_CONFIG",
              help="Config file (default ./config.yaml, or $NEWSLETTER_CONFIG).")
@click.option("-v", "--verbose", count=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="trending-papers-newsletter", prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Trending ML papers, diffed per reader, grouped by topic, delivered on a schedule.

    Example: newsletter fetch && newsletter diff
    """
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config_path, verbose)
    ctx.call_on_close(ctx.obj.close)


def config_option(f: Any) -> Any:
    """``--config`` accepted after the sub-command too (``newsletter papers --config x.yaml``)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.find_object(Context).config_path = value

    return click.option("--config", "config_path_", metavar="PATH", expose_value=False, callback=remember,
                        is_eager=True, help="Config file (default ./config.yaml, or $NEWSLETTER_CONFIG).")(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-03-14") from None


# Command modules register themselves on ``main``.
from . import (  # noqa: E402,F401
    admin, deliver, editions, inbound, operator, papers, preview, report, run, subscribers, topics, web,
)
