"""Reader management: `subscribers update`, `show`, `export` (round-tripping through `import`) and `erase`, the
GDPR erasure, checked by scanning every text column of a real SQLite file and of PostgreSQL for the address."""

from __future__ import annotations

import csv
import io
import json
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from support import write_config

from newsletter.cli import main
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.readers import parse_csv, parse_json, to_csv, to_records
from newsletter.store import Store
from newsletter.store.inbound import EventRecord, record_event
from newsletter.relevance.personal import retrain
from newsletter.store.readers import ERASED, erase, reader_record, update_reader
from newsletter.store.signals import record_signal
from newsletter.store.subscriptions import Choices, RequestMeta, confirm_subscription, request_subscription

ADA = "ada.lovelace@example.org"
NOW = datetime(2026, 3, 14, 9, 0, tzinfo=timezone.utc)


def run(cfg: Path, *args: str, ok: bool = True, input: str | None = None) -> Result:
    result = CliRunner(env={"NEWSLETTER_DATABASE_URL": ""}).invoke(main, ["--config", str(cfg), *args], input=input)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def everything_about_ada(store: Store) -> dict[str, int]:
    """Ada with a confirmed web sign-up, two editions' deliveries (one failed with her address in the error), a
    hard bounce and a complaint about her, and Bob, whose bounce report quotes her address."""
    req = request_subscription(store, ADA.upper(), Choices("daily", ("quantization",), ("survey",)),
                               RequestMeta("203.0.113.7", "Mozilla/5.0 Ada's laptop"), form_version="v1",
                               window=timedelta(minutes=15), now=NOW)
    confirm_subscription(store, req.subscriber.id, int(req.requested_at.timestamp()),
                         RequestMeta("203.0.113.8", "Mozilla/5.0 Ada's phone"), now=NOW)
    bob = store.add_subscriber("bob@example.org", name="Bob")
    ada = store.subscriber(ADA)
    ids = {}
    for n, day in enumerate(("2026-03-12", "2026-03-13")):
        store.ingest([SourceBatch("test", datetime.fromisoformat(day).date(),
                                  [FetchedPaper(title=f"Paper {n}", arxiv_id=f"2603.0000{n}")])])
        pid = store.paper(f"2603.0000{n}").id
        ids[day] = store.create_edition("daily", day, datetime.fromisoformat(day).date(), "subject", [(pid, None)],
                                        {ada.id: [pid], bob.id: [pid]}, message_id_domain="example.org", now=NOW)
    store.set_delivery_state(ids["2026-03-12"], ada.id, "sent", now=NOW)
    store.set_delivery_state(ids["2026-03-13"], ada.id, "failed", error=f"550 5.1.1 <{ADA}>: no such user",
                             now=NOW)
    store.set_delivery_state(ids["2026-03-13"], bob.id, "failed", error=f"451 greylisted, also tried {ADA.upper()}",
                             now=NOW)
    record_event(store, EventRecord("k1", "mailbox", "hard", f"550 5.1.1 <{ADA}> user unknown", recipient=ADA,
                                    subject=f"Undelivered Mail Returned to Sender: {ADA}"), bounce_limit=3, now=NOW)
    record_event(store, EventRecord("k2", "ses", "complaint", "abuse", recipient=ADA, feedback_type="abuse"),
                 bounce_limit=3, now=NOW)
    record_event(store, EventRecord("k3", "mailbox", "soft", f"mailbox full (forwarded from {ADA})",
                                    recipient="bob@example.org"), bounce_limit=3, now=NOW)
    # Her signals (issue 15) and the model trained on them; Bob has one too.
    papers = [store.paper(f"2603.0000{n}").id for n in range(2)]
    record_signal(store.engine, ada.id, papers[0], "more", NOW)
    record_signal(store.engine, ada.id, papers[1], "seed", NOW)
    record_signal(store.engine, bob.id, papers[1], "fewer", NOW)
    retrain(store.engine, NOW)
    return ids


def scan(engine: sa.Engine, needle: str) -> list[str]:
    """Every (table.column) whose text holds ``needle`` (any case), over every column of every table, the JSON
    ones as text too, and the binary ones (the rendered bodies, the readers' models) as stored and, where they
    are zlib-compressed, decompressed."""
    found = []
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if isinstance(column["type"], sa.LargeBinary):
                    for (blob,) in conn.execute(sa.text(f'SELECT "{column["name"]}" FROM "{table}"')):
                        data = bytes(blob or b"")
                        try:
                            data += zlib.decompress(data)
                        except zlib.error:
                            pass
                        if needle.lower().encode() in data.lower():
                            found.append(f"{table}.{column['name']}")
                            break
                    continue
                if isinstance(column["type"], (sa.Integer, sa.Float, sa.Boolean, sa.Date, sa.DateTime, sa.Numeric)):
                    continue
                q = sa.text(f'SELECT COUNT(*) FROM "{table}" WHERE LOWER(CAST("{column["name"]}" AS TEXT)) LIKE :n')
                if conn.execute(q, {"n": f"%{needle.lower()}%"}).scalar():
                    found.append(f"{table}.{column['name']}")
    return found


def test_erase_leaves_no_trace_of_the_address_in_any_table(store: Store) -> None:
    everything_about_ada(store)
    before = scan(store.engine, ADA)
    assert {"subscribers.email", "deliveries.last_error", "inbound_events.recipient",
            "inbound_events.reason", "inbound_events.subject"} <= set(before)  # the scan sees her
    ada = store.subscriber(ADA)
    shown = reader_record(store, ADA)
    assert shown.delivery_counts == {"sent": 1, "failed": 1}
    assert [c.action for c in shown.consents] == ["subscribe", "unsubscribe"]  # the complaint unsubscribed her
    assert shown.subscriber.status == "unsubscribed"
    assert shown.consents[0].ip == "203.0.113.7" and shown.consents[0].confirm_ip == "203.0.113.8"
    assert sorted(b.kind for b in shown.bounces) == ["complaint", "hard"]
    assert sorted(x.kind for x in shown.signals) == ["more", "seed"]

    done = erase(store, ADA.title())
    assert done.signals == 2
    assert (done.subscriber_id, done.consents, done.deliveries, done.events) == (ada.id, 2, 2, 2)
    assert done.scrubbed == 2  # Bob's delivery error and Bob's bounce report
    assert scan(store.engine, ADA) == []
    assert scan(store.engine, "203.0.113.") == [] and scan(store.engine, "ada's") == []  # consent records too
    with store.engine.connect() as conn:
        for table in ("consents", "deliveries", "inbound_events", "reader_signals", "reader_models"):
            assert not conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE subscriber_id = :i"),
                                    {"i": ada.id}).scalar()
    # Bob is untouched but for her address in his records.
    bob = reader_record(store, "bob@example.org")
    assert bob.subscriber.name == "Bob" and bob.delivery_counts == {"pending": 1, "failed": 1}
    assert [x.kind for x in bob.signals] == ["fewer"]
    assert bob.deliveries[0].last_error == f"451 greylisted, also tried {ERASED}"
    assert [b.reason for b in bob.bounces] == [f"mailbox full (forwarded from {ERASED})"]
    with pytest.raises(Exception, match="No subscriber"):
        erase(store, ADA)


def test_erase_on_sqlite_leaves_the_address_nowhere_in_the_file(tmp_path: Path) -> None:
    """Not only the tables: the file's free pages and its write-ahead log hold no copy either."""
    db = tmp_path / "newsletter.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        everything_about_ada(store)
        erase(store, ADA)
        assert scan(store.engine, ADA) == []
    finally:
        store.close()
    for path in tmp_path.iterdir():
        if path.name.startswith("newsletter.db"):
            data = path.read_bytes().lower()
            assert ADA.encode() not in data and b"203.0.113.7" not in data, path.name


def test_update_changes_what_is_given_and_keeps_the_rest(store: Store) -> None:
    store.add_subscriber(ADA, topics=["quantization"], excluded_keywords=["survey"], name="Ada")
    sub = update_reader(store, ADA.upper(), cadence="weekly")
    assert (sub.cadence, sub.topics, sub.excluded_keywords, sub.name) == ("weekly", ("quantization",), ("survey",),
                                                                          "Ada")
    sub = update_reader(store, ADA, topics=["llm-inference", "quantization"], excluded_keywords=[])
    assert (sub.topics, sub.excluded_keywords) == (("llm-inference", "quantization"), ())
    assert update_reader(store, ADA, all_topics=True, name="").topics is None
    assert store.subscriber(ADA).name is None
    with pytest.raises(Exception, match="No subscriber"):
        update_reader(store, "nobody@example.org", cadence="daily")


def test_export_round_trips_through_import_as_csv_and_json(store: Store, tmp_path: Path) -> None:
    store.add_subscribers([
        {"email": ADA, "cadence": "weekly", "topics": ["quantization", "llm-inference"],
         "excluded_keywords": ["survey", "benchmark"], "name": 'Ada "Countess" Lovelace, née Byron'},
        {"email": "bob@example.org", "status": "unsubscribed"},
        {"email": "cy@example.org", "status": "pending", "name": "Cy;Ö"},
    ])
    subs = store.subscribers()
    known = ["quantization", "llm-inference"]
    fields = ("email", "cadence", "topics", "excluded_keywords", "name", "status")

    def shape(items: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(getattr(s, f) if not isinstance(s, dict) else s[f] for f in fields) for s in items)

    for specs in (parse_csv(to_csv(subs), known), parse_json(json.dumps(to_records(subs)), known)):
        other = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
        try:
            other.add_subscribers([vars(s) for s in specs])
            assert shape(other.subscribers()) == shape(subs)
        finally:
            other.close()
            (tmp_path / "other.db").unlink()


def test_the_commands_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    cfg = write_config(tmp_path, messenger="outbox", sample_fallback=False)
    run(cfg, "subscribers", "add", ADA, "--name", "Ada")
    run(cfg, "subscribers", "add", "bob@example.org", "--cadence", "weekly")

    out = run(cfg, "subscribers", "update", ADA, "--topics", "quantization,llm-inference", "--cadence", "weekly",
              "--exclude", "survey").output
    assert "updated" in out and "weekly" in out and "quantization, llm-inference" in out
    assert run(cfg, "subscribers", "update", ADA, "--topics", "astrology", ok=False).exit_code == 2
    assert run(cfg, "subscribers", "update", ADA, ok=False).exit_code == 2  # nothing to change
    missing = run(cfg, "subscribers", "update", "nobody@example.org", "--cadence", "daily", ok=False)
    assert missing.exit_code != 0 and "No subscriber nobody@example.org" in missing.output

    run(cfg, "send", "--cadence", "weekly", "--date", "2025-03-14")  # real deliveries, to the outbox folder
    shown = json.loads(run(cfg, "subscribers", "show", ADA, "--json").output)
    assert shown["subscriber"]["topics"] == ["quantization", "llm-inference"]
    assert shown["delivery_counts"] == {"sent": 1} and shown["deliveries"][0]["state"] == "sent"
    assert shown["consents"] == [] and shown["bounces"] == []  # added by hand: no web consent
    assert shown["signals"] == []
    kept = Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")
    try:  # a "more like this" of hers (issue 15): shown, exported, erased with her
        record_signal(kept.engine, kept.subscriber(ADA).id, kept.papers()[0].id, "more")
    finally:
        kept.close()
    shown = json.loads(run(cfg, "subscribers", "show", ADA, "--json").output)
    assert [x["kind"] for x in shown["signals"]] == ["more"] and shown["signals"][0]["title"]
    assert "signals (1:" in run(cfg, "subscribers", "show", ADA).output
    exported = json.loads(run(cfg, "subscribers", "export", "--json").output)
    assert [x["kind"] for x in exported[0]["signals"]] == ["more"] and exported[1]["signals"] == []
    table = " ".join(run(cfg, "subscribers", "show", ADA).output.split())
    assert "status active" in table and "deliveries (1: 1 sent)" in table and "consent records (0)" in table

    csv_text = run(cfg, "subscribers", "export").output
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["email"] for r in rows] == [ADA, "bob@example.org"]
    assert rows[0]["topics"] == "quantization;llm-inference" and rows[0]["excluded_keywords"] == "survey"
    (tmp_path / "readers.json").write_text(run(cfg, "subscribers", "export", "--json").output)
    (tmp_path / "readers.csv").write_text(csv_text)

    refused = run(cfg, "subscribers", "erase", ADA, input="n\n", ok=False)
    assert refused.exit_code == 1 and run(cfg, "subscribers", "show", ADA).exit_code == 0
    erased = json.loads(run(cfg, "subscribers", "erase", ADA, "--json").output)
    assert erased["deliveries"] == 1 and erased["signals"] == 1
    assert run(cfg, "subscribers", "show", ADA, ok=False).exit_code != 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'newsletter.db'}")
    try:
        with engine.connect() as conn:  # what was sent left its renders, which the scan reads decompressed
            assert conn.execute(sa.text("SELECT COUNT(*) FROM render_bodies")).scalar()
        assert scan(engine, ADA) == []
        assert "render_bodies.data" in scan(engine, "unsubscribe")  # the scan does read inside them
    finally:
        engine.dispose()

    for name in ("readers.json", "readers.csv"):  # the exports bring her back as she was
        run(cfg, "subscribers", "import", str(tmp_path / name), "--update")
        back = json.loads(run(cfg, "subscribers", "show", ADA, "--json").output)["subscriber"]
        assert (back["cadence"], back["topics"], back["excluded_keywords"], back["name"]) == (
            "weekly", ["quantization", "llm-inference"], ["survey"], "Ada")
        run(cfg, "subscribers", "erase", ADA, "--yes")


def test_signals_round_trip_through_the_csv_export_and_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`subscribers export --csv` carries each reader's signals (issue 15) and `subscribers import` stores them
    again in another database holding the same papers (found by arXiv id, else title), each with its kind and
    time; one for a paper that database lacks is skipped and counted, and the JSON export does the same."""
    from newsletter.store.signals import reader_signals

    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    cfgs = {}
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        cfgs[name] = write_config(tmp_path / name, messenger="outbox", sample_fallback=False)
        run(cfgs[name], "fetch", "--date", "2025-03-14")  # the same papers in both
    run(cfgs["one"], "subscribers", "add", ADA, "--name", "Ada")
    run(cfgs["one"], "subscribers", "add", "bob@example.org")
    one = Store.open(f"sqlite:///{tmp_path / 'one' / 'newsletter.db'}")
    try:
        papers = one.papers()
        with_id = papers[:3]  # the saved page's papers carry no arXiv id: matched by title
        ada = one.subscriber(ADA).id
        for n, (p, kind) in enumerate(zip(with_id, ("more", "fewer", "seed"))):
            record_signal(one.engine, ada, p.id, kind, NOW + timedelta(minutes=n))
        assert len(with_id) == 3
        want = [(x.arxiv_id, x.title, x.kind, x.created_at) for x in reader_signals(one.engine, ada)]
    finally:
        one.close()
    exported = run(cfgs["one"], "subscribers", "export", "--csv").output
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(want) == 3, want
    assert [r["email"] for r in rows] == [ADA, "bob@example.org"]
    assert len(json.loads(rows[0]["signals"])) == 3 and rows[1]["signals"] == ""
    (tmp_path / "readers.csv").write_text(exported)
    out = run(cfgs["two"], "subscribers", "import", str(tmp_path / "readers.csv")).output
    assert "imported 2 readers, 3 signals" in out
    two = Store.open(f"sqlite:///{tmp_path / 'two' / 'newsletter.db'}")
    try:
        got = [(x.arxiv_id, x.title, x.kind, x.created_at) for x in reader_signals(two.engine, two.subscriber(ADA).id)]
        assert sorted(got) == sorted(want)
        assert reader_signals(two.engine, two.subscriber("bob@example.org").id) == []
    finally:
        two.close()
    # The JSON export round-trips the same way; a signal for a paper the database lacks is skipped, counted.
    records = json.loads(run(cfgs["one"], "subscribers", "export", "--json").output)
    records[0]["signals"].append({"paper": "A paper no database here holds", "arxiv_id": "2501.99999",
                                  "kind": "more", "at": NOW.isoformat()})
    (tmp_path / "readers.json").write_text(json.dumps(records))
    out = run(cfgs["two"], "subscribers", "import", "--update", str(tmp_path / "readers.json")).output
    assert "3 signals (1 for papers not in this database skipped)" in out
    bad = json.dumps([{"email": ADA, "signals": [{"kind": "love", "paper": "x", "at": NOW.isoformat()}]}])
    (tmp_path / "bad.json").write_text(bad)
    assert "a signal needs a kind" in run(cfgs["two"], "subscribers", "import", str(tmp_path / "bad.json"), ok=False).output
