"""Reader (subscriber) input and output: address checks, the CSV and JSON import formats and the export that
writes them. Pure: parsing, validation and formatting only."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .errors import NewsletterError
from .models import CADENCES, SUBSCRIBER_ACTIVE, SUBSCRIBER_STATUSES, Subscriber

# Deliberately strict: one @, a dot in the domain, no spaces, quotes, angle brackets or control characters,
# so an address can never smuggle a second header or recipient into a message.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")

CSV_COLUMNS = ("email", "cadence", "topics", "excluded_keywords", "name", "status", "signals")
EXPORT_EXTRA = ("id", "created_at")  # in the JSON export, for a person reading it; ignored on import
SIGNAL_KINDS = ("more", "fewer", "click", "seed")
MAX_SIGNALS = 1000  # per reader in an import


class InvalidReader(NewsletterError):
    exit_code = 2


def normalize_email(address: str) -> str:
    """Lower-cased, trimmed address; raises InvalidReader when it is not a plain mailbox address."""
    value = address.strip()
    if not _EMAIL.match(value) or ".." in value:
        raise InvalidReader(f"{address!r} is not an email address.", hint="use the form name@example.org")
    return value.lower()


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """'a; b, c' or ['a', 'b'] -> ['a', 'b', 'c'] (empty items dropped)."""
    if value is None:
        return []
    items = value if not isinstance(value, str) else re.split(r"[;,|]", value)
    return [i.strip() for i in items if i and i.strip()]


def check_topics(topics: Sequence[str] | None, known: Sequence[str]) -> list[str] | None:
    if topics is None or not list(topics):
        return None  # every topic
    unknown = [t for t in topics if known and t not in known]
    if unknown:
        raise InvalidReader(f"Unknown topic {unknown[0]!r}.", hint="topics: " + ", ".join(known))
    return list(dict.fromkeys(topics))


@dataclass
class ReaderSpec:
    email: str
    cadence: str = "daily"
    topics: list[str] | None = None
    excluded_keywords: list[str] = field(default_factory=list)
    name: str | None = None
    status: str = SUBSCRIBER_ACTIVE
    # "more / fewer like this", seeds and clicks (issue 15): {"kind", "arxiv_id", "paper" (its title), "at"}
    signals: list[dict[str, Any]] = field(default_factory=list)


def parse_csv(text: str, known_topics: Sequence[str]) -> list[ReaderSpec]:
    """Parse a subscriber CSV (header row required; only ``email`` is mandatory).

    Columns: email, cadence (daily|weekly), topics (slugs separated by ';'), excluded_keywords (';'),
    name, status (active|pending|unsubscribed|bounced), signals (the reader's signals as the JSON export writes
    them: a list of {"kind", "arxiv_id", "paper", "at"}). Every row is checked before anything is stored;
    the first bad row raises InvalidReader naming its line.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise InvalidReader("The CSV has no 'email' column in its header row.",
                            hint="first line like: email,cadence,topics,excluded_keywords,name")
    unknown = [f for f in reader.fieldnames if f.strip().lower() not in CSV_COLUMNS]
    if unknown:
        raise InvalidReader(f"Unknown CSV column {unknown[0]!r}.", hint="columns: " + ", ".join(CSV_COLUMNS))
    return _specs(((reader.line_num, {k.strip().lower(): (v or "").strip() for k, v in row.items() if k})
                   for row in reader), known_topics, "line")


def _specs(rows: Iterable[tuple[int, Mapping[str, Any]]], known_topics: Sequence[str], where: str) -> list[ReaderSpec]:
    """Check every row (a mapping of the CSV columns) before anything is stored; the first bad one raises."""
    specs: list[ReaderSpec] = []
    seen: set[str] = set()
    for line, data in rows:
        try:
            email = normalize_email(str(data.get("email") or ""))
            cadence = data.get("cadence") or "daily"
            if cadence not in CADENCES:
                raise InvalidReader(f"cadence must be daily or weekly, not {cadence!r}")
            status = data.get("status") or SUBSCRIBER_ACTIVE
            if status not in SUBSCRIBER_STATUSES:
                raise InvalidReader(f"status must be one of {', '.join(SUBSCRIBER_STATUSES)}, not {status!r}")
            topics = check_topics(split_list(data.get("topics")), known_topics)
            signals = parse_signals(data.get("signals"))
        except InvalidReader as exc:
            raise InvalidReader(f"{where} {line}: {exc.message}", exc.hint) from None
        if email in seen:
            raise InvalidReader(f"{where} {line}: {email} appears twice in the file.")
        seen.add(email)
        name = data.get("name")
        specs.append(ReaderSpec(email, cadence, topics, split_list(data.get("excluded_keywords")),
                                str(name).strip() or None if name else None, status, signals))
    return specs


def parse_signals(value: Any) -> list[dict[str, Any]]:
    """A reader's signals as an export writes them (a list, or its JSON in a CSV cell), checked: each a kind
    and a paper (arXiv id or title), with the time it was given."""
    from datetime import datetime, timezone

    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidReader(f"signals is not JSON: {exc}") from None
    if not isinstance(value, list) or len(value) > MAX_SIGNALS:
        raise InvalidReader(f"signals must be a list of at most {MAX_SIGNALS} signals")
    out = []
    for item in value:
        if not isinstance(item, dict) or item.get("kind") not in SIGNAL_KINDS:
            raise InvalidReader(f"a signal needs a kind: {', '.join(SIGNAL_KINDS)}")
        arxiv_id, title = item.get("arxiv_id"), item.get("paper")
        if not (isinstance(arxiv_id, str) and arxiv_id) and not (isinstance(title, str) and title.strip()):
            raise InvalidReader("a signal needs its paper: an arxiv_id or the paper's title")
        try:
            at = datetime.fromisoformat(str(item.get("at")))
        except ValueError:
            raise InvalidReader(f"a signal's time {item.get('at')!r} is not an ISO date and time") from None
        out.append({"kind": item["kind"], "arxiv_id": arxiv_id or None, "paper": title or "",
                    "at": at if at.tzinfo else at.replace(tzinfo=timezone.utc)})
    return out


def parse_json(text: str, known_topics: Sequence[str]) -> list[ReaderSpec]:
    """Parse a list of readers in ``subscribers export --json``'s shape: objects with the CSV's keys (topics and
    excluded_keywords as lists; topics null for every topic). Checked like the CSV, all rows first."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except ValueError as exc:
        raise InvalidReader(f"The file is not JSON: {exc}.", hint="export it with `subscribers export --json`") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise InvalidReader("The JSON file must hold a list of readers (objects with an 'email' key).")
    unknown = sorted({k for d in data for k in d if k not in CSV_COLUMNS + EXPORT_EXTRA})
    if unknown:
        raise InvalidReader(f"Unknown key {unknown[0]!r} in the JSON file.", hint="keys: " + ", ".join(CSV_COLUMNS))
    return _specs(enumerate(data, 1), known_topics, "reader")


def to_csv(subscribers: Iterable[Subscriber], signals: Mapping[int, Sequence[Any]] | None = None) -> str:
    """Readers in the import CSV's columns (``parse_csv`` reads it back to the same readers, their signals
    with them: ``signals`` maps a reader id to their ``store.signals.SignalInfo``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in subscribers:
        mine = signal_records((signals or {}).get(s.id, ()))
        writer.writerow([s.email, s.cadence, ";".join(s.topics or ()), ";".join(s.excluded_keywords), s.name or "",
                         s.status, json.dumps(mine, ensure_ascii=False, separators=(",", ":")) if mine else ""])
    return out.getvalue()


def signal_records(signals: Iterable[Any]) -> list[dict[str, Any]]:
    """``store.signals.SignalInfo`` as the exports write them (and the imports read them back)."""
    return [{"paper": x.title, "arxiv_id": x.arxiv_id, "kind": x.kind, "at": x.created_at.isoformat()}
            for x in signals]


def to_records(subscribers: Iterable[Subscriber], signals: Mapping[int, Sequence[Any]] | None = None
               ) -> list[dict[str, Any]]:
    """Readers as ``subscribers export --json`` prints them (``parse_json`` reads them back). With ``signals``
    (reader id -> their ``store.signals.SignalInfo``), each reader's signals too (the import stores them again)."""
    out = []
    for s in subscribers:
        record = {"email": s.email, "cadence": s.cadence, "topics": list(s.topics) if s.topics is not None else None,
                  "excluded_keywords": list(s.excluded_keywords), "name": s.name, "status": s.status,
                  "id": s.id, "created_at": s.created_at.isoformat() if s.created_at else None}
        if signals is not None:
            record["signals"] = signal_records(signals.get(s.id, ()))
        out.append(record)
    return out
