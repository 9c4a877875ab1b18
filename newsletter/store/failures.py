"""What a database failure means to an operator: the driver's own words (``database or disk is full``), not
the name of the SQLAlchemy exception that carried them, and what to do about it.

Example: ``raise database_error(exc) from exc`` where a query raised ``sqlalchemy.exc.OperationalError``.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..errors import StoreError

# Words of the driver's message -> what to do about it.
_FIXES = (
    (("disk is full", "no space left", "could not extend file", "disk full"),
     "free disk space (or raise the database's quota), then run `newsletter retry`"),
    (("database is locked", "could not obtain lock", "deadlock"),
     "another process holds the database; try again when it is done"),
    (("readonly", "read-only", "permission denied"),
     "the database file (and its folder) must be writable by this user"),
    (("connection refused", "could not connect", "server closed the connection", "terminating connection"),
     "is the database server running and database_url right? Then run `newsletter retry`"),
)


def cause(exc: BaseException) -> str:
    """The driver's message of a database error, on one line, without the SQL and its parameters."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip() or type(orig).__name__
    return " ".join(text.splitlines()[0].split())


def database_error(exc: SQLAlchemyError, doing: str = "") -> StoreError:
    """A ``StoreError`` that names the real cause of ``exc`` and how to fix it."""
    why = cause(exc)
    lower = why.lower()
    hint = next((fix for words, fix in _FIXES if any(w in lower for w in words)),
                "run again with -v for the details")
    return StoreError(f"The database failed{' ' + doing if doing else ''}: {why}.", hint=hint)


__all__ = ["cause", "database_error"]
