"""Helpers of the inbound tests: a newsletter with one edition queued, and real reports made to be about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


# --- a newsletter with one edition queued for a few readers ---------------------------------------------


@dataclass
class Sent:
    """A delivery of the edition: what a bounce or complaint about it would quote."""

    delivery_id: int
    subscriber_id: int
    email: str
    message_id: str
    return_path: str  # the VERP envelope sender the digest left with


@dataclass
class World:
    nl: object
    config_path: Path
    sent: dict[str, Sent]

    def subscriber(self, email: str) -> object:
        return self.nl.store.subscriber(email)  # type: ignore[attr-defined]

    def bounce_count(self, email: str) -> int:
        from sqlalchemy import text

        with self.nl.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return int(conn.execute(text("SELECT bounce_count FROM subscribers WHERE email = :e"),
                                    {"e": email}).scalar_one())


def make_world(tmp_path: Path, db_url: str, emails: tuple[str, ...], environ: dict[str, str] | None = None,
               **overrides: object) -> World:
    from newsletter import config
    from newsletter.inbound.verp import Verp
    from newsletter.pipeline import Newsletter
    from newsletter.tokens import signing_key

    from support import PAGE_DAYS, PAGES, write_config

    path = write_config(tmp_path, database_url=db_url, **overrides)
    nl = Newsletter(config.load(path, environ=environ or {}))
    nl.import_file(PAGES["mar14"], PAGE_DAYS["mar14"])
    nl.store.add_subscribers([{"email": e} for e in emails])
    edition = nl.record_edition(nl.plan("daily", PAGE_DAYS["mar14"]), subject="x")
    key = signing_key(nl.settings.signing_key, nl.store.get_state, nl.store.add_state)
    verp = Verp(key, nl.settings.sender.email)
    with nl.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT d.id, d.subscriber_id, s.email, d.message_id FROM deliveries d JOIN subscribers s "
            f"ON s.id = d.subscriber_id WHERE d.edition_id = {int(edition)}").fetchall()
    sent = {r[2]: Sent(r[0], r[1], r[2], r[3], verp.address(r[0])) for r in rows}
    return World(nl, path, sent)


def readdressed(raw: bytes, *, to: str | None = None, replace: dict[str, str] | None = None) -> bytes:
    """A real report made to be about our message: its top-level To (where a bounce goes: the envelope
    sender of the bounced message, our VERP address) and any strings in ``replace``."""
    import re as _re

    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    if to is not None:
        head, sep, body = raw.partition(b"\n\n") if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
        head = _re.sub(rb"(?mi)^(To|Delivered-To|X-Original-To):[^\r\n]*(\r?\n[ \t][^\r\n]*)*",
                       lambda m: m.group(1) + b": " + to.encode(), head)
        raw = head + sep + body
    return raw
