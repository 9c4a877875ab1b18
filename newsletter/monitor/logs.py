"""Log output: plain text (the default) or one JSON object per line (``log.format: json``).

Each JSON record has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, the exception as
``exc`` when there is one, and, where they apply, ``edition``, ``delivery`` and ``source``. Those come from
the record's ``extra`` (``log.info(..., extra={"delivery": d.id})``) or from ``log_context``, which sets them
for everything logged inside it (in this thread and the tasks it starts): ``Newsletter.fetch`` wraps each
source, ``Newsletter.deliver`` the edition it sends.

Example::

    configure(settings.log, verbose=0)
    with log_context(edition=7):
        log.warning("failed %s", email, extra={"delivery": 42})
    # {"time": "...", "level": "WARNING", "logger": "...", "message": "failed ...", "edition": 7, "delivery": 42}
"""

from __future__ import annotations

import contextvars
import json
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from ..config import Log

FIELDS = ("edition", "delivery", "source")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("newsletter_log_context", default={})
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """``edition``, ``delivery`` and ``source`` for every record logged inside (None values are left out)."""
    values = {k: v for k, v in fields.items() if v is not None}
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        context = _context.get()
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is None:
                value = context.get(field)
            if value is not None:
                data[field] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is logged (as ``logging.lastResort`` does)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(log: Log | None, verbose: int = 0) -> None:
    """Apply ``log.level`` (``-v``: at least info, ``-vv``: debug) and ``log.format``. With ``json``, the
    plain handler ``logging.basicConfig`` set (the CLI's) is replaced by one writing JSON lines to stderr;
    with ``text`` the handlers stay as they are."""
    level = _LEVELS[log.level] if log is not None else logging.WARNING
    if verbose:
        level = min(level, logging.DEBUG if verbose > 1 else logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    if log is None or log.format != "json":
        return
    for old in list(root.handlers):
        if isinstance(old, StderrHandler) or type(old) is logging.StreamHandler:  # ours, or basicConfig's
            root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)


def unconfigure() -> None:
    """Remove the JSON handler ``configure`` added (tests, or an app embedding the package)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, StderrHandler):
            root.removeHandler(old)


__all__ = ["JsonFormatter", "StderrHandler", "configure", "current_context", "log_context", "unconfigure"]
