"""The store on a real SQLite file and on the real PostgreSQL server (every test runs on both)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import inspect, text

from newsletter.errors import NotFound, StoreError
from newsletter.models import FetchedPaper, SourceBatch
from newsletter.sources.hf_page import Options, SavedPageSource
from newsletter.store import Store

from support import PAGE_DAYS, PAGES


def page_batch(name: str) -> SourceBatch:
    return SavedPageSource("hf-page", Options(path=str(PAGES[name]))).fetch(PAGE_DAYS[name])


def test_migrations_create_every_table(store: Store) -> None:
    names = set(inspect(store.engine).get_table_names())
    assert {"papers", "sightings", "subscribers", "editions", "edition_papers", "digests", "deliveries",
            "paper_embeddings", "app_state", "alembic_version"} <= names
    assert store.current_revision() == store.head_revision()
    assert store.upgrade()[0] == store.upgrade()[1]  # idempotent


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:  # noqa: ANN001
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_ingesting_the_three_pages_dedupes_papers(store: Store) -> None:
    result = store.ingest([page_batch(n) for n in ("mar14", "mar25", "oct28")])
    titles = {p.title for n in PAGES for p in page_batch(n).papers}
    assert store.paper_count() == len(titles) == result.new
    assert result.sightings == 85 + 69 + 97
    again = store.ingest([page_batch("mar14")])
    assert (again.new, again.sightings) == (0, 0)  # same source, same day: nothing new
    assert store.paper_count() == len(titles)


def test_trending_again_later_is_one_paper_with_two_sightings(store: Store) -> None:
    store.ingest([page_batch("mar14"), page_batch("mar25")])
    p = store.paper("VBench++: Comprehensive and Versatile Benchmark Suite for Video Generative Models")
    assert (p.first_trending, p.last_trending) == (PAGE_DAYS["mar14"], PAGE_DAYS["mar25"])
    vbench = store.paper("VBench: Comprehensive Benchmark Suite for Video Generative Models")
    assert vbench.id != p.id


def test_same_paper_from_two_sources_is_merged_and_enriched(store: Store) -> None:
    store.ingest([page_batch("oct28")])
    title = "Mirror Speculative Decoding: Breaking the Serial Barrier in LLM Inference"
    before = store.paper(title)
    assert before.arxiv_id is None and before.upvotes == 2
    api = FetchedPaper(title=title.upper(), arxiv_id="2510.13161v1", abstract="short", authors=["A. Author", "B. Author"],
                       upvotes=17, url="https://huggingface.co/papers/2510.13161", github_repo="https://github.com/x/y")
    result = store.ingest([SourceBatch("huggingface", date(2025, 10, 29), [api])])
    assert (result.new, result.updated) == (0, 1)
    after = store.paper("2510.13161")
    assert after.id == before.id
    assert after.key == "arxiv:2510.13161"
    assert after.upvotes == 17 and after.authors == ("A. Author", "B. Author")
    assert after.abstract == before.abstract  # the longer abstract is kept
    assert after.organization == "Apple"  # what the new source lacks is not erased
    assert after.page_url == "https://huggingface.co/papers/2510.13161"
    # A later sighting with fewer upvotes does not lower the count.
    store.ingest([SourceBatch("huggingface", date(2025, 10, 30), [FetchedPaper(title=title, arxiv_id="2510.13161", upvotes=3)])])
    assert store.paper("arxiv:2510.13161").upvotes == 17
    assert store.paper("arxiv:2510.13161").last_trending == date(2025, 10, 30)


def test_versions_of_an_arxiv_id_are_one_paper(store: Store) -> None:
    store.ingest([SourceBatch("a", date(2025, 1, 1), [FetchedPaper(title="One", arxiv_id="2401.00001v1")]),
                  SourceBatch("b", date(2025, 1, 2), [FetchedPaper(title="One (revised)", arxiv_id="2401.00001v3")])])
    assert store.paper_count() == 1


def test_a_failing_batch_leaves_nothing_behind(store: Store) -> None:
    good = FetchedPaper(title="Fine paper", abstract="x")
    bad = FetchedPaper(title="Broken", abstract="x", arxiv_id="2401.00002")
    bad.rank = object()  # type: ignore[assignment]  # neither database driver accepts this value
    with pytest.raises(Exception):
        store.ingest([SourceBatch("s", date(2025, 1, 1), [good, bad])])
    assert store.table_counts()["papers"] == 0 and store.table_counts()["sightings"] == 0


def test_subscribers(store: Store) -> None:
    a = store.add_subscriber("Ada@Example.org", topics=["quantization"], excluded_keywords=["survey"])
    assert a.email == "ada@example.org" and a.topics == ("quantization",) and a.excluded_keywords == ("survey",)
    with pytest.raises(StoreError, match="already a subscriber"):
        store.add_subscriber("ada@example.org")
    store.add_subscriber("ada@example.org", cadence="weekly", update_existing=True)
    assert store.subscriber("ada@example.org").cadence == "weekly"
    assert store.subscriber("ada@example.org").topics is None  # all topics
    store.remove_subscriber("ada@example.org")
    assert store.subscriber("ada@example.org").status == "unsubscribed"
    store.remove_subscriber("ada@example.org", forget=True)
    with pytest.raises(NotFound):
        store.subscriber("ada@example.org")


def test_bulk_add_is_all_or_nothing(store: Store) -> None:
    store.add_subscriber("b@example.org")
    with pytest.raises(StoreError):
        store.add_subscribers([{"email": "a@example.org"}, {"email": "b@example.org"}])
    assert [s.email for s in store.subscribers()] == ["b@example.org"]


def test_one_edition_per_period_and_a_compact_sent_record(store: Store) -> None:
    store.ingest([page_batch("mar14")])
    papers = store.papers()[:10]
    subs = [store.add_subscriber(f"r{i}@example.org") for i in range(50)]
    sections = [(p.id, None) for p in papers]
    # 50 readers, only two distinct contents: two digest rows, 50 delivery rows.
    digests = {s.id: [p.id for p in (papers if s.id % 2 else papers[:5])] for s in subs}
    eid = store.create_edition("daily", "2025-03-14", date(2025, 3, 14), "subject", sections, digests)
    counts = store.table_counts()
    assert (counts["digests"], counts["deliveries"], counts["edition_papers"]) == (2, 50, 10)
    with pytest.raises(StoreError, match="already a daily edition"):
        store.create_edition("daily", "2025-03-14", date(2025, 3, 14), "again", sections, digests)
    assert store.table_counts()["deliveries"] == 50
    assert store.edition_id_for("daily", "2025-03-14") == eid
    summary = store.editions()[0]
    assert (summary.paper_count, summary.deliveries) == (10, {"pending": 50})


def test_taken_and_returned_papers(store: Store) -> None:
    store.ingest([page_batch("mar14")])
    p = store.papers()[:4]
    sub = store.add_subscriber("r@example.org")
    e1 = store.create_edition("daily", "d1", date(2025, 3, 14), "", [(x.id, None) for x in p[:2]], {sub.id: [p[0].id, p[1].id]})
    e2 = store.create_edition("daily", "d2", date(2025, 3, 15), "", [(x.id, None) for x in p[2:]], {sub.id: [p[2].id, p[3].id]})
    store.set_delivery_state(e1, sub.id, "sent")
    store.set_delivery_state(e2, sub.id, "failed", error="550 no such user")
    taken, returned = store.taken_and_returned(date(2025, 3, 1))
    assert taken == {sub.id: {p[0].id, p[1].id}}
    assert returned == {sub.id: {p[2].id, p[3].id}}
    assert store.delivered_papers(sub.id) == [p[0].id, p[1].id]


def test_the_migrated_schema_is_the_one_the_models_declare(store: Store) -> None:
    # Every table, column and index the code declares comes from a migration, and no migration leaves
    # behind what the models no longer declare (for example the index that inbound reports and erasure need).
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from newsletter.store.schema import Base

    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ignored = {"apscheduler_jobs"}  # APScheduler's own table, created by APScheduler
    differences = [d for d in differences if not (d[0] == "remove_table" and d[1].name in ignored)]
    assert differences == []
    assert "ix_inbound_events_delivery" in {i["name"] for i in inspect(store.engine).get_indexes("inbound_events")}


def test_two_planned_digests_of_the_same_papers_share_one_digest_row_and_each_reader_one_delivery(store: Store) -> None:
    """``write_edition`` merges digests of the same content (readers of two kinds whose emails list the same
    papers): ascending id arrays are merged, others sorted; each reader gets one delivery, with its message id."""
    from array import array
    from datetime import datetime, timezone

    from sqlalchemy import select

    from newsletter.store.record import EditionDigest, write_edition
    from newsletter.store.schema import DeliveryRow

    store.ingest([page_batch("mar14")])
    papers = [p.id for p in store.papers()[:3]]
    subs = [store.add_subscriber(f"m{i}@example.org").id for i in range(9)]
    digests = [EditionDigest(papers, papers, array("q", subs[0:9:2])),  # ascending
               EditionDigest(papers, papers, array("q", subs[1:9:2])),  # ascending, the others
               EditionDigest(papers, papers[:1], [subs[8], subs[2]])]  # another listing, unsorted
    now = datetime(2025, 3, 14, 6, tzinfo=timezone.utc)
    eid = write_edition(store.engine, "daily", "2025-03-14", date(2025, 3, 14), "s", [(p, None) for p in papers],
                        digests[:2], now=now)
    assert store.table_counts()["digests"] == 1
    with store.engine.connect() as conn:
        rows = conn.execute(select(DeliveryRow.subscriber_id, DeliveryRow.message_id)
                            .where(DeliveryRow.edition_id == eid).order_by(DeliveryRow.subscriber_id)).all()
    assert [r[0] for r in rows] == subs
    assert [r[1] for r in rows] == [f"<{eid}.{s}.daily.2025-03-14@newsletter.invalid>" for s in subs]
    e2 = write_edition(store.engine, "daily", "2025-03-15", date(2025, 3, 15), "s", [(p, None) for p in papers],
                       [digests[2], EditionDigest(papers, papers[:1], [subs[2], subs[0]])], now=now)
    with store.engine.connect() as conn:
        again = conn.execute(select(DeliveryRow.subscriber_id).where(DeliveryRow.edition_id == e2)
                             .order_by(DeliveryRow.subscriber_id)).scalars().all()
    assert again == [subs[0], subs[2], subs[8]]  # subs[2] given twice: one delivery


def test_migration_0014_drops_the_message_id_index_and_goes_back(store: Store) -> None:
    from alembic import command

    def indexes() -> set[str]:
        return {i["name"] for i in inspect(store.engine).get_indexes("deliveries")}

    assert "ix_deliveries_message_id" not in indexes()
    with store._connect() as conn, conn.begin():
        command.downgrade(store._alembic_config(conn), "0013_relevance")
    assert "ix_deliveries_message_id" in indexes()
    assert store.upgrade() == ("0013_relevance", store.head_revision())
    assert "ix_deliveries_message_id" not in indexes()


def test_migration_0015_adds_the_smtp_time_and_goes_back(store: Store) -> None:
    from alembic import command

    def columns() -> set[str]:
        return {c["name"] for c in inspect(store.engine).get_columns("deliveries")}

    assert "smtp_ms" in columns()
    with store._connect() as conn, conn.begin():
        command.downgrade(store._alembic_config(conn), "0014_message_id_index")
    assert "smtp_ms" not in columns() and "sent_at" in columns()
    assert store.upgrade() == ("0014_message_id_index", store.head_revision())
    assert "smtp_ms" in columns()
