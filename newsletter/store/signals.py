"""Queries of readers' signals and relevance models (issue 15).

A signal is one reader's word about one paper: ``more``, ``fewer``, ``seed`` (from the preferences page) or
``click`` (a weak positive, only with ``tracking.clicks``). There is one current signal per (reader, paper): a
new one replaces it, except that a click never overrides a ``more``, ``fewer`` or ``seed``.

Every change bumps the reader's ``reader_models.signals_version`` in the same transaction; the model stored
there was trained on ``trained_version``. So the readers to retrain are one indexed query
(``trained_version < signals_version``), streamed in batches with their signals; nothing loops over all readers.

Example::

    record_signal(store.engine, 42, 7, "more")
    for sid, version, rows in stale_readers(store.engine): ...
    save_models(store.engine, [(42, model.to_bytes(), 3, version)])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from sqlalchemy import Engine, and_, delete, func, select, update

from ..errors import NotFound
from .schema import PaperRow, ReaderModelRow, SignalRow, SubscriberRow

KINDS = ("more", "fewer", "click", "seed")
STRONG = ("more", "fewer", "seed")  # a click does not replace these
BATCH = 2000  # readers per batch of ``stale_readers`` / ``models_for``
ID_CHUNK = 500


@dataclass(frozen=True)
class SignalInfo:
    """One of a reader's signals, as the preferences page, ``subscribers show`` and ``export`` list it."""

    paper_id: int
    kind: str
    created_at: datetime
    title: str
    arxiv_id: str | None


@dataclass(frozen=True)
class SignalText:
    """A signal with what the model needs of its paper (the text to vectorize)."""

    paper_id: int
    kind: str
    created_at: datetime
    title: str
    abstract: str
    keywords: tuple[str, ...]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _insert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _bump(conn: Any, engine: Engine, subscriber_id: int, now: datetime) -> None:
    """signals_version + 1 and signal_count recounted, for one reader (creating their row)."""
    count = select(func.count()).select_from(SignalRow).where(SignalRow.subscriber_id == subscriber_id).scalar_subquery()
    stmt = _insert(engine)(ReaderModelRow).values(subscriber_id=subscriber_id, signals_version=1, trained_version=0,
                                                  signal_count=count, model=None, updated_at=now)
    table = ReaderModelRow.__table__
    conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.subscriber_id], set_={
        "signals_version": table.c.signals_version + 1, "signal_count": count, "updated_at": now}))


def record_signals(engine: Engine, subscriber_id: int, paper_ids: Sequence[int], kind: str,
                   now: datetime | None = None) -> int:
    """Record ``kind`` for each paper (replacing the reader's current signal about it; a click replaces only a
    click); returns how many signals changed. Unknown papers are skipped."""
    if kind not in KINDS:
        raise ValueError(f"unknown signal kind {kind!r}; one of {', '.join(KINDS)}")
    now = _now(now)
    wanted = sorted(set(int(p) for p in paper_ids))
    changed = 0
    table = SignalRow.__table__
    with engine.begin() as conn:
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start:start + ID_CHUNK]
            known = [r[0] for r in conn.execute(select(PaperRow.id).where(PaperRow.id.in_(chunk)))]
            if not known:
                continue
            current = dict(conn.execute(select(SignalRow.paper_id, SignalRow.kind).where(
                SignalRow.subscriber_id == subscriber_id, SignalRow.paper_id.in_(known))).all())
            todo = [p for p in known if current.get(p) != kind and not (kind == "click" and current.get(p) in STRONG)]
            if not todo:
                continue
            stmt = _insert(engine)(SignalRow).values(
                [{"subscriber_id": subscriber_id, "paper_id": p, "kind": kind, "created_at": now} for p in todo])
            conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.subscriber_id, table.c.paper_id],
                                                    set_={"kind": stmt.excluded.kind, "created_at": now}))
            changed += len(todo)
        if changed:
            _bump(conn, engine, subscriber_id, now)
    return changed


def record_signal(engine: Engine, subscriber_id: int, paper_id: int, kind: str, now: datetime | None = None) -> bool:
    """One signal (see ``record_signals``); True when it changed something."""
    return record_signals(engine, subscriber_id, [paper_id], kind, now) > 0


def remove_signals(engine: Engine, subscriber_id: int, paper_ids: Sequence[int] | None = None,
                   now: datetime | None = None) -> int:
    """Remove the reader's signals about ``paper_ids`` (None: all of them); returns how many went."""
    q = delete(SignalRow).where(SignalRow.subscriber_id == subscriber_id)
    with engine.begin() as conn:
        if paper_ids is None:
            gone = conn.execute(q).rowcount
        else:
            ids = sorted(set(int(p) for p in paper_ids))
            gone = sum(conn.execute(q.where(SignalRow.paper_id.in_(ids[i:i + ID_CHUNK]))).rowcount
                       for i in range(0, len(ids), ID_CHUNK))
        if gone:
            _bump(conn, engine, subscriber_id, _now(now))
    return int(gone)


def reader_signals(engine: Engine, subscriber_id: int, limit: int | None = None) -> list[SignalInfo]:
    """The reader's signals, newest first, with their papers' titles."""
    q = (select(SignalRow.paper_id, SignalRow.kind, SignalRow.created_at, PaperRow.title, PaperRow.arxiv_id)
         .join(PaperRow, PaperRow.id == SignalRow.paper_id).where(SignalRow.subscriber_id == subscriber_id)
         .order_by(SignalRow.created_at.desc(), SignalRow.id.desc()))
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as conn:
        return [SignalInfo(r.paper_id, r.kind, _utc(r.created_at), r.title, r.arxiv_id) for r in conn.execute(q)]


def signal_count(engine: Engine, subscriber_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SignalRow)
                                .where(SignalRow.subscriber_id == subscriber_id)).scalar_one())


def _texts(conn: Any, lo: int, hi: int, stale_only: bool) -> dict[int, list[SignalText]]:
    q = (select(SignalRow.subscriber_id, SignalRow.paper_id, SignalRow.kind, SignalRow.created_at, PaperRow.title,
                PaperRow.abstract, PaperRow.ai_keywords)
         .join(PaperRow, PaperRow.id == SignalRow.paper_id)
         .where(SignalRow.subscriber_id > lo, SignalRow.subscriber_id <= hi)
         .order_by(SignalRow.subscriber_id, SignalRow.created_at, SignalRow.id))
    if stale_only:
        q = q.join(ReaderModelRow, and_(ReaderModelRow.subscriber_id == SignalRow.subscriber_id,
                                        ReaderModelRow.trained_version < ReaderModelRow.signals_version))
    out: dict[int, list[SignalText]] = {}
    for r in conn.execute(q):
        out.setdefault(r.subscriber_id, []).append(SignalText(r.paper_id, r.kind, _utc(r.created_at), r.title,
                                                              r.abstract or "", tuple(r.ai_keywords or ())))
    return out


def stale_readers(engine: Engine, batch: int = BATCH) -> Iterator[list[tuple[int, int, list[SignalText]]]]:
    """Batches of (reader, signals_version, their signals in order) for every reader whose signals changed
    since their model was trained (an empty list: they removed every signal). Keyset-paginated by reader."""
    q = (select(ReaderModelRow.subscriber_id, ReaderModelRow.signals_version)
         .where(ReaderModelRow.trained_version < ReaderModelRow.signals_version)
         .order_by(ReaderModelRow.subscriber_id))
    after = -(2**31)
    with engine.connect() as conn:
        while True:
            rows = conn.execute(q.where(ReaderModelRow.subscriber_id > after).limit(batch)).all()
            if not rows:
                return
            texts = _texts(conn, after, rows[-1][0], stale_only=True)
            yield [(sid, version, texts.get(sid, [])) for sid, version in rows]
            if len(rows) < batch:
                return
            after = rows[-1][0]


def save_models(engine: Engine, models: Sequence[tuple[int, bytes | None, int, int]],
                now: datetime | None = None) -> int:
    """Store (reader, model bytes, signal count, the signals_version trained on) for each; a model trained
    on a version that has been overtaken meanwhile is stored but stays stale. Returns rows written."""
    now = _now(now)
    table = ReaderModelRow.__table__
    written = 0
    with engine.begin() as conn:
        for sid, data, count, version in models:
            written += conn.execute(update(table).where(table.c.subscriber_id == sid).values(
                model=data, signal_count=count, trained_version=version, updated_at=now)).rowcount
    return written


def models_for(engine: Engine, subscriber_ids: Sequence[int]) -> dict[int, tuple[bytes, int]]:
    """reader -> (model bytes, signal count) for those of ``subscriber_ids`` (a batch) with a trained model."""
    ids = sorted(set(int(s) for s in subscriber_ids))
    out: dict[int, tuple[bytes, int]] = {}
    q = select(ReaderModelRow.subscriber_id, ReaderModelRow.model, ReaderModelRow.signal_count).where(
        ReaderModelRow.model.is_not(None), ReaderModelRow.signal_count > 0)
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            for sid, data, count in conn.execute(q.where(ReaderModelRow.subscriber_id.in_(ids[start:start + ID_CHUNK]))):
                out[int(sid)] = (bytes(data), int(count))
    return out


def readers_with_models(engine: Engine, lo: int, hi: int) -> set[int]:
    """Readers in the id range (lo, hi] that have a model with signals: one range query per reader batch."""
    q = select(ReaderModelRow.subscriber_id).where(ReaderModelRow.subscriber_id > lo, ReaderModelRow.subscriber_id <= hi,
                                                   ReaderModelRow.signal_count > 0)
    with engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(q)}


def liked_papers(engine: Engine, subscriber_id: int, limit: int = 50) -> list[SignalText]:
    """The reader's positives (more, seed, click), newest first: what "because you liked …" names."""
    q = (select(SignalRow.subscriber_id, SignalRow.paper_id, SignalRow.kind, SignalRow.created_at, PaperRow.title,
                PaperRow.abstract, PaperRow.ai_keywords)
         .join(PaperRow, PaperRow.id == SignalRow.paper_id)
         .where(SignalRow.subscriber_id == subscriber_id, SignalRow.kind != "fewer")
         .order_by(SignalRow.created_at.desc(), SignalRow.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [SignalText(r.paper_id, r.kind, _utc(r.created_at), r.title, r.abstract or "",
                           tuple(r.ai_keywords or ())) for r in conn.execute(q)]


def check_reader(engine: Engine, subscriber_id: int) -> None:
    with engine.connect() as conn:
        if conn.execute(select(SubscriberRow.id).where(SubscriberRow.id == subscriber_id)).first() is None:
            raise NotFound(f"No subscriber {subscriber_id}.")


def erase_signals(conn: Any, subscriber_id: int) -> int:
    """Inside an erasure's transaction: the reader's signals and model go (returns signals removed)."""
    gone = conn.execute(delete(SignalRow).where(SignalRow.subscriber_id == subscriber_id)).rowcount
    conn.execute(delete(ReaderModelRow).where(ReaderModelRow.subscriber_id == subscriber_id))
    return int(gone)


def find_papers(engine: Engine, arxiv_ids: Sequence[str], title_keys: Sequence[str]) -> dict[str, int]:
    """Stored papers by arXiv id (``"arxiv:ID"`` -> paper id) and by normalised title (``"title:KEY"``)."""
    out: dict[str, int] = {}
    ids = sorted(set(a for a in arxiv_ids if a))
    keys = sorted(set(t for t in title_keys if t))
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            for pid, aid in conn.execute(select(PaperRow.id, PaperRow.arxiv_id).where(
                    PaperRow.arxiv_id.in_(ids[start:start + ID_CHUNK]))):
                out[f"arxiv:{aid}"] = int(pid)
        for start in range(0, len(keys), ID_CHUNK):
            for pid, key in conn.execute(select(PaperRow.id, PaperRow.title_key).where(
                    PaperRow.title_key.in_(keys[start:start + ID_CHUNK]))):
                out.setdefault(f"title:{key}", int(pid))
    return out


def signals_by_reader(engine: Engine, status: str | None = None) -> dict[int, list[SignalInfo]]:
    """Every reader's signals (for ``subscribers export``), in one streamed query, oldest first per reader."""
    q = (select(SignalRow.subscriber_id, SignalRow.paper_id, SignalRow.kind, SignalRow.created_at, PaperRow.title,
                PaperRow.arxiv_id)
         .join(PaperRow, PaperRow.id == SignalRow.paper_id)
         .order_by(SignalRow.subscriber_id, SignalRow.created_at, SignalRow.id))
    if status:
        q = q.join(SubscriberRow, SubscriberRow.id == SignalRow.subscriber_id).where(SubscriberRow.status == status)
    out: dict[int, list[SignalInfo]] = {}
    with engine.connect() as conn:
        for r in conn.execution_options(stream_results=True, yield_per=2000).execute(q):
            out.setdefault(int(r.subscriber_id), []).append(
                SignalInfo(r.paper_id, r.kind, _utc(r.created_at), r.title, r.arxiv_id))
    return out


def paper_texts(engine: Engine, paper_ids: Sequence[int]) -> dict[int, tuple[str, str, tuple[str, ...]]]:
    """paper -> (title, abstract, keywords) for ``paper_ids`` (a few: the liked papers a reason may name)."""
    ids = sorted(set(int(i) for i in paper_ids))
    out: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    q = select(PaperRow.id, PaperRow.title, PaperRow.abstract, PaperRow.ai_keywords)
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            for pid, title, abstract, keywords in conn.execute(q.where(PaperRow.id.in_(ids[start:start + ID_CHUNK]))):
                out[int(pid)] = (title or "", abstract or "", tuple(keywords or ()))
    return out


def model_version(engine: Engine, subscriber_id: int) -> int | None:
    """The signals version a reader's stored model was trained on, or None when they have no model (what a
    page made from their model is cached under)."""
    q = select(ReaderModelRow.trained_version).where(ReaderModelRow.subscriber_id == subscriber_id,
                                                     ReaderModelRow.signal_count > 0, ReaderModelRow.model.is_not(None))
    with engine.connect() as conn:
        found = conn.execute(q).scalar()
    return None if found is None else int(found)
