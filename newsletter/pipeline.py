"""The stages wired together: sources → store → diff → topics → render → deliver.

``Newsletter`` is the importable API; the CLI, the web app and the scheduler are thin shells over it.

Example::

    from newsletter.pipeline import Newsletter
    nl = Newsletter.from_config("config.yaml")
    nl.fetch()
    plan = nl.plan("daily")
    print(len(plan.candidates), "papers,", plan.reader_count, "readers")
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from . import config as config_mod
from .config import Settings
from .diff import ReaderDiff, period_for, window_start
from .errors import NetworkUnavailable, NewsletterError, SourceError
from .render.links import LinkMaker, edition_url
from .render.message import Recipient, build_message
from .models import CADENCES, SUBSCRIBER_ACTIVE, DigestContent, Paper, SourceBatch, Subscriber
from .monitor.logs import log_context
from .readers import ReaderSpec
from .render import RenderedDigest, reader_values, render_digest
from .pipeline_plan import Planning
from .reports import FetchReport, Plan, PlannedDigest, Preview, RunReport, SendReport, SourceReport
from .sources import build_source, open_file_source
from .sources.hf_page import SavedPageSource
from .store import IngestResult, Store
from .store.listing_days import ListingRead, is_settled
from .store.editions import EditionRecord, delivery_digest_id, digest_paper_ids, edition_record
from .tokens import Signer, signing_key

if TYPE_CHECKING:
    import threading

    from .deliver import Messenger
    from .deliver.sender import DeliveryReport, Prepare
    from .deliver.sender import Progress as DeliveryProgress
    from .embeddings import Embedder
    from .sendtest import TestSendReport
    from .store.reports import EditionReport
    from .topics import Vectors

log = logging.getLogger(__name__)

__all__ = ["FetchReport", "Newsletter", "Plan", "PlannedDigest", "Preview", "RunReport", "SendReport", "SourceReport", "sample_pages"]

Progress = Callable[[str], None]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or "no message"


def _record_quietly(record: Callable[..., None], *args: object) -> None:
    """A monitoring record (newsletter/monitor) that cannot be written is logged; the work it records stands."""
    try:
        record(*args)
    except Exception as exc:  # noqa: BLE001 - e.g. the database went away at the end of a send
        log.warning("could not store the monitoring record (%s): %s", getattr(record, "__name__", record), exc)


def sample_pages() -> list[Path]:
    """The saved Daily Papers pages shipped with the package, oldest first by file name order."""
    folder = resources.files("newsletter") / "sample"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".txt"))


class Newsletter(Planning):
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._store = store
        # The clock that says what "today in UTC" is for fetching (the Daily Papers API refuses later days).
        self.utc_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None,
                    environ: Mapping[str, str] | None = None) -> "Newsletter":
        return cls(config_mod.load(path, environ))

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.resolved_database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # --- sources → store ------------------------------------------------------------------------------

    def fetch(self, day: date | None = None, only: Sequence[str] | None = None,
              progress: Progress | None = None, today: date | None = None) -> FetchReport:
        """Fetch every enabled source, then store what came back in one transaction.

        ``day`` acts as today (default: today in UTC; a later day than today in UTC is never asked for).
        A source that takes a date (the Daily Papers API) is caught up: every listing day from the oldest
        one not yet known complete through ``day`` is read, at most ``windows.weekly`` days back, because a
        day's list keeps growing after it opens (``store.listing_days``). Other sources (arXiv, RSS, saved
        files) take no date and are read once, labelled ``day``.

        A source that fails, however it fails, is reported and skipped; the others are still stored (and
        the days a catching-up source read before it failed). When every source failed because the
        network is unreachable and ``sample_fallback`` is on, the newest bundled sample page is stored as
        trending today, so a machine with no network still gets a digest.
        """
        report = FetchReport()
        started = datetime.now(timezone.utc)
        batches: list[SourceBatch] = []
        reads: dict[str, list[ListingRead]] = {}
        offline = 0
        utc_today = self.utc_clock().astimezone(timezone.utc).date()
        as_of = min(day, utc_today) if day is not None else utc_today
        specs = [s for s in self.settings.sources if s.enabled and (not only or s.label in only)]
        if only and not specs:
            raise NewsletterError(f"No enabled source named {', '.join(only)}.",
                                  hint="names: " + ", ".join(s.label for s in self.settings.sources))
        for spec in specs:
            if progress:
                progress(spec.label)
            entry = SourceReport(spec.label)
            got: list[SourceBatch] = []
            with log_context(source=spec.label):  # each log record of this source says which
                try:
                    source = build_source(spec)
                    if getattr(source, "dated_listing", False):
                        self._catch_up(source, spec.label, as_of, got, reads.setdefault(spec.label, []), progress)
                    else:
                        got.append(source.fetch(day))
                except NetworkUnavailable as exc:
                    offline += 1
                    entry.error = str(exc)
                except SourceError as exc:
                    entry.error = str(exc)
                except Exception as exc:  # noqa: BLE001 - whatever one upstream does, the others are stored
                    log.debug("source %s failed", spec.label, exc_info=True)
                    entry.error = f"{spec.label}: unexpected {type(exc).__name__}: {_one_line(exc)}"
                if entry.error:
                    log.info("source %s failed: %s", spec.label, entry.error)
            if got:
                entry.papers = sum(len(b.papers) for b in got)
                entry.trending_date = max(b.trending_date for b in got)
                entry.days = [b.trending_date for b in got]
                entry.skipped = [reason for b in got for reason in b.skipped]
                batches.extend(got)
            report.sources.append(entry)
        if not batches and specs and offline == len(specs) and self.settings.sample_fallback:
            page = sample_pages()[-1]
            source = SavedPageSource("sample", SavedPageSource.options_model(path=str(page)))
            batch = source.fetch(today or date.today())
            report.used_sample = True
            report.sources.append(SourceReport("sample", len(batch.papers), batch.trending_date))
            batches.append(batch)
        if batches:
            report.ingest = self.ingest(batches, listing_reads={k: v for k, v in reads.items() if v})
        from .monitor import record_fetch

        _record_quietly(record_fetch, self.store.engine, report, started)  # for /metrics and /healthz
        return report

    def catch_up_days(self, source: str, as_of: date) -> list[date]:
        """The listing days a fetch on ``as_of`` reads for a dated source: every day not known complete,
        from at most ``windows.weekly`` days back (older papers are in no digest's window) through ``as_of``."""
        longest = max(self.settings.windows.daily, self.settings.windows.weekly)
        since = window_start(as_of, longest)
        done = self.store.complete_listing_days(source, since, as_of)
        return [d for d in (since + timedelta(days=n) for n in range((as_of - since).days + 1)) if d not in done]

    def _catch_up(self, source: object, label: str, as_of: date, got: list[SourceBatch],
                  reads: list[ListingRead], progress: Progress | None) -> None:
        """Read each of ``catch_up_days``, oldest first, under the source's one deadline; what was read
        stays in ``got`` and ``reads`` even when a later day fails."""
        from contextlib import nullcontext

        one_deadline = getattr(source, "one_deadline", nullcontext)
        with one_deadline():
            for listing_day in self.catch_up_days(label, as_of):
                if progress:
                    progress(f"{label} {listing_day.isoformat()}")
                batch = source.fetch(listing_day)  # type: ignore[attr-defined]
                got.append(batch)
                reads.append(ListingRead(listing_day, len(batch.papers), is_settled(listing_day, as_of)))

    def import_file(self, path: str | os.PathLike[str], trending_date: date | None = None,
                    source_name: str | None = None) -> tuple[SourceBatch, IngestResult]:
        """Store a saved Daily Papers page or a JSON file in the API's shape. Malformed: nothing stored."""
        source = open_file_source(str(path), source_name)
        batch = source.fetch(trending_date)
        return batch, self.ingest([batch])

    def ingest(self, batches: Sequence[SourceBatch],
               listing_reads: Mapping[str, Sequence[ListingRead]] | None = None) -> IngestResult:
        result = self.store.ingest(batches, listing_reads=listing_reads)
        self._after_ingest(result)
        return result

    def _after_ingest(self, result: IngestResult) -> None:
        """Hook for the topics stage: classify papers as they enter the store."""
        classify = getattr(self, "classify_new", None)
        if callable(classify):
            classify()

    # --- topics ------------------------------------------------------------------------------------------

    def topic_fingerprint(self) -> str:
        """What classifications depend on: the topic settings, the classifier version, the semantic model."""
        from . import embeddings, topics

        embedder = embeddings.default_embedder()
        model = embedder.name if embedder else topics.LEXICAL
        return topics.settings_fingerprint(self.settings.topics, model)

    def classify_new(self, progress: Callable[[int], None] | None = None) -> int:
        """Classify papers not yet classified with the current topic settings; returns how many.

        Runs after every ingest, so a changed topic setting (or a newly installed embedding model)
        reclassifies every paper the next time anything is fetched, imported or digested.
        """
        stale = self.store.unclassified_ids(self.topic_fingerprint())
        return self._classify(self.store.papers(ids=stale), progress) if stale else 0

    def reclassify(self, progress: Callable[[int], None] | None = None) -> int:
        """Classify every stored paper again (``newsletter topics reclassify``); returns how many."""
        return self._classify(self.store.papers(), progress)

    def _classify(self, papers: Sequence[Paper], progress: Callable[[int], None] | None) -> int:
        from . import embeddings, topics

        embedder = embeddings.default_embedder()
        step = 64  # a transaction per step; progress moves at least this often
        for start in range(0, len(papers), step):
            chunk = papers[start:start + step]
            vectors = None
            if embedder:
                try:
                    vectors = self.paper_vectors(chunk, embedder)
                except Exception as exc:  # noqa: BLE001 - a broken optional extra must not stop an ingest
                    embeddings.give_up(f"{type(exc).__name__}: {exc}")
                    embedder = None
            fingerprint = self.topic_fingerprint()
            assigned = topics.classify(chunk, self.settings.topics, vectors)
            self.store.set_classification(
                {pid: (a.primary, a.topics, a.scores) for pid, a in assigned.items()}, fingerprint)
            if progress:
                progress(len(chunk))
        self.store.set_state("topics.fingerprint", self.topic_fingerprint())
        return len(papers)

    def paper_vectors(self, papers: Sequence[Paper], embedder: "Embedder | None" = None) -> "Vectors | None":
        """Embeddings of these papers (cached in the store) and of the topics; None without the extra."""
        from . import embeddings, topics

        embedder = embedder or embeddings.default_embedder()
        if embedder is None:
            return None
        scored = [t for t in self.settings.topics if t.slug != topics.FALLBACK]
        topic_vecs = embeddings.topic_vectors(embedder, {t.slug: topics.topic_text(t) for t in scored})
        texts = {p.id: topics.paper_text(p) for p in papers}
        paper_vecs = embeddings.paper_vectors(self.store, embedder, texts)
        return topics.Vectors(embedder.name, topic_vecs, paper_vecs)

    def digest_for(self, reader_diff_or_papers: "ReaderDiff | Sequence[Paper]",
                   subscriber: "Subscriber | None" = None, cadence: str = "daily", period: str | None = None,
                   day: date | None = None) -> "DigestContent":
        """One reader's digest (``digest_content``) from their ``ReaderDiff`` or a list of papers."""
        if isinstance(reader_diff_or_papers, ReaderDiff):
            papers = list(reader_diff_or_papers.papers)
            subscriber = subscriber or reader_diff_or_papers.subscriber
        else:
            papers = list(reader_diff_or_papers)
        day = day or date.today()
        return self.digest_content(papers, subscriber, cadence, period or period_for(cadence, day), day)

    def import_readers(self, specs: Sequence["ReaderSpec"], update: bool = False) -> int:
        """Store readers parsed by ``readers.parse_csv``: all or none (set-based: ``store.subscribers_bulk``)."""
        rows = ({"email": s.email, "cadence": s.cadence, "topics": s.topics, "excluded_keywords": s.excluded_keywords,
                 "name": s.name, "status": s.status} for s in specs)
        return self.store.import_subscribers(rows, update_existing=update).total

    def import_signals(self, specs: Sequence["ReaderSpec"]) -> tuple[int, int]:
        """Store the signals of imported readers (``ReaderSpec.signals``, as an export wrote them) for papers this
        database holds, found by arXiv id, else by title, each with its own time; (stored, skipped)."""
        from .models import normalize_title
        from .store.signals import find_papers, record_signal

        wanted = [s for s in specs if s.signals]
        if not wanted:
            return 0, 0
        items = [x for s in wanted for x in s.signals]
        found = find_papers(self.store.engine, [x["arxiv_id"] for x in items if x["arxiv_id"]],
                            [normalize_title(x["paper"]) for x in items if x["paper"]])
        stored = skipped = 0
        for spec in wanted:
            sid = self.store.subscriber(spec.email).id
            for x in sorted(spec.signals, key=lambda x: x["at"]):
                pid = found.get(f"arxiv:{x['arxiv_id']}") or found.get(f"title:{normalize_title(x['paper'])}")
                if pid is None:
                    skipped += 1
                    continue
                record_signal(self.store.engine, sid, pid, x["kind"], x["at"])
                stored += 1
        return stored, skipped

    # --- render and preview -------------------------------------------------------------------------------

    def link_maker(self) -> LinkMaker:
        """Each reader's signed links, with ``signing_key``; without one, a key generated once and kept in the
        database (so local runs work; the web app refuses to run in production without the variable)."""
        key = signing_key(self.settings.signing_key, self.store.get_state, self.store.add_state)
        return LinkMaker(self.settings.site_url, self.settings.sender.email, Signer(key))

    def digest_content(self, papers: Sequence[Paper], subscriber: Subscriber | None, cadence: str, period: str,
                       day: date) -> DigestContent:
        """The topics stage: ``papers`` filtered for ``subscriber`` (None: every topic), grouped and ranked."""
        from .topics import build_digest

        return build_digest(papers, self.settings.topics, subscriber, self.settings.digest, cadence, period, day)

    def render_for(self, content: DigestContent, edition_id: int | None = None) -> RenderedDigest:
        """HTML and text of ``content``, with per-reader values left as slots (see ``newsletter.render``)."""
        return render_digest(content, self.settings, edition_url(self.settings.site_url, edition_id))

    def edition_papers_for(self, edition_id: int, digest_id: int | None = None) -> tuple[EditionRecord, list[Paper]]:
        """An edition and the papers of one of its digests (default: every paper of the edition), in order,
        each in the section it had in that edition."""
        record = edition_record(self.store.engine, edition_id)
        sections = dict(self.store.edition_papers(edition_id))
        ids = digest_paper_ids(self.store.engine, digest_id) if digest_id is not None else list(sections)
        by_id = {p.id: p for p in self.store.papers(ids=ids)}
        papers = [replace(by_id[i], topic=sections.get(i) or by_id[i].topic) for i in ids if i in by_id]
        return record, papers

    def preview(self, cadence: str | None = None, subscriber: str | int | None = None, day: date | None = None, *,
                edition_id: int | None = None, now: datetime | None = None) -> Preview:
        """The digest ``send`` would send now (or, with ``edition_id``, one already made) rendered for
        ``subscriber`` (an email or id; None: a reader of every topic who was sent nothing yet).

        Example: ``nl.preview("daily", "ada@example.org").html``
        """
        now = now or datetime.now(timezone.utc)
        reader = self.store.subscriber(subscriber) if subscriber is not None else None
        kept: dict[str, object] | None = None
        plan = None
        if edition_id is not None:
            digest_id = None
            if reader is not None:
                digest_id = delivery_digest_id(self.store.engine, edition_id, reader.id)
                if digest_id is None:
                    raise NewsletterError(f"Edition {edition_id} has no delivery to {reader.email}.",
                                          hint="leave out --subscriber to see every paper of the edition")
            # The digest as it went out: the reader's own, or without --subscriber the one most readers got.
            from .store.editions import most_delivered_digest, reader_kind, saved_render

            sent_digest = digest_id if digest_id is not None else most_delivered_digest(self.store.engine, edition_id)
            kept = None
            if sent_digest is not None:
                kind = reader_kind(reader.topics, reader.excluded_keywords) if reader else None
                kept = saved_render(self.store.engine, sent_digest, kind) or saved_render(self.store.engine, sent_digest)
            record, papers = self.edition_papers_for(edition_id, sent_digest if kept else digest_id)
            cadence, period, day = record.cadence, record.period, record.day
        else:
            cadence = cadence or (reader.cadence if reader else "daily")
            if reader is not None and (reader.cadence != cadence or reader.status != SUBSCRIBER_ACTIVE):
                raise NewsletterError(f"{reader.email} is not an active {cadence} reader ({reader.status}, "
                                      f"{reader.cadence}).", hint=f"try --cadence {reader.cadence}")
            plan = self.plan(cadence, day, subscriber_ids=[reader.id] if reader else [], save_models=False)
            period, day = plan.period, plan.day
            papers = list(plan.groups[0].papers) if reader and plan.groups else list(plan.candidates)
            edition_id = plan.existing_edition
        content = self.digest_content(papers, reader, cadence, period, day)
        if reader is not None and not kept and plan is not None and plan.personal is not None \
                and plan.personal.is_personal(reader.id):
            # Their own order and For you block within what the shared digest lists (issue 15), as send makes it.
            content, rendered = self.reader_copy(content, self.render_shared(content, edition_id, personal=True),
                                                 reader.id, plan.personal, edition_id)
        else:
            rendered = RenderedDigest(**kept) if edition_id is not None and kept else self.render_for(content, edition_id)
        signed_at = now
        if edition_id is not None and reader is not None:  # the links the reader got were signed when queued
            from .store.editions import delivery_queued_at

            signed_at = delivery_queued_at(self.store.engine, edition_id, reader.id) or now
        links = self.link_maker().for_reader(reader.id if reader else 0, signed_at,
                                             edition_id if reader is not None and kept else None)
        # The reader's own web copy once their digest is recorded; before (or for no reader in particular), the
        # edition's page, or the archive while there is no edition yet.
        web_copy = links.web_copy or edition_url(self.settings.site_url, edition_id)
        html, text = rendered.fill(reader_values(reader.name if reader else None, links.preferences,
                                                 links.unsubscribe, web_copy), links.card if reader else None)
        domain = self.settings.sender.email.rpartition("@")[2]
        to = reader.email if reader else f"preview@{domain}"
        message_id = f"<preview.{cadence}.{period}.{reader.id if reader else 0}@{domain}>"
        links = replace(links, web_copy=web_copy)
        message = build_message(rendered, Recipient(to, message_id, links, reader.name if reader else None),
                                self.settings, now)
        return Preview(cadence, period, day, content, rendered, html, text, message, reader, edition_id)

    # --- operating --------------------------------------------------------------------------------------------

    def report(self, edition_id: int | None = None) -> "EditionReport":
        """The report of one edition (None: the latest): readers, sent, failed, bounced, complaints,
        unsubscribes within 7 days, the time to send, the failing and slowest domains, the papers most readers
        received; aggregated in SQL (``store.reports``).

        Example: ``nl.report(12).sent``
        """
        from .store.reports import edition_report

        return edition_report(self.store.engine, edition_id)

    # --- deliver ------------------------------------------------------------------------------------------

    def send_test(self, to: str, subscriber: str | int | None = None, cadence: str | None = None,
                  day: date | None = None, *, messenger: "Messenger | None" = None,
                  now: datetime | None = None) -> "TestSendReport":
        """The next issue, as ``subscriber`` (default: a reader of every topic) would get it, sent to ``to`` only
        with a ``[test]`` subject; nothing is recorded (``newsletter.sendtest``).

        Example: ``nl.send_test("me@example.org", "ada@example.org")``
        """
        from .sendtest import send_test

        return send_test(self, to, subscriber, cadence, day, messenger=messenger, now=now)

    def deliver(self, progress: "DeliveryProgress | None" = None, messenger: "Messenger | None" = None,
                prepare: "Prepare | None" = None, *, edition_id: int | None = None,
                stop: "threading.Event | None" = None,
                clock: "Callable[[], datetime] | None" = None) -> "DeliveryReport":
        """Send every due delivery: new ones, retries whose time has come, and those a crashed sender left.

        ``messenger`` defaults to the configured transport (closed afterwards); ``prepare(delivery)`` builds
        each reader's message (default: ``message_preparer()``). A fatal transport error stops the run and
        is raised; nothing in hand is marked sent.
        """
        from .deliver import build_messenger
        from .deliver.sender import DeliveryPolicy, Sender
        from .monitor import MeteredMessenger, record_send
        from .store.deliveries import DeliveryQueue, SenderBusy, utcnow

        prepare = prepare or self.message_preparer()
        own = messenger is None
        messenger = messenger or build_messenger(self.settings)
        # Each message's outcome and send time is counted in the database, for the web process's /metrics.
        metered = MeteredMessenger(messenger, self.store.engine)
        started = datetime.now(timezone.utc)
        sender: "Sender | None" = None
        error: BaseException | None = None
        try:
            with log_context(edition=edition_id):
                sender = Sender(DeliveryQueue(self.store.engine), metered, prepare,  # type: ignore[arg-type]
                                DeliveryPolicy.from_settings(self.settings.delivery),
                                clock=clock or utcnow, progress=progress, stop=stop)
                return sender.run(edition_id)
        except BaseException as exc:
            error = exc
            raise
        finally:
            metered.flush()
            if not isinstance(error, SenderBusy):  # another sender at work: this run sent nothing
                _record_quietly(record_send, self.store.engine, sender.report if sender else None, error,
                                started, edition_id)
            if own:
                messenger.close()

    def send(self, cadence: str, day: date | None = None, dry_run: bool = False, *, fetch: bool = True,
             progress: "DeliveryProgress | None" = None, messenger: "Messenger | None" = None,
             prepare: "Prepare | None" = None, stop: "threading.Event | None" = None,
             clock: "Callable[[], datetime] | None" = None) -> SendReport:
        """The whole job for one cadence: fetch → plan → record the edition → deliver.

        One edition per (cadence, period): when the period's edition exists already (a restart, a second
        scheduler, a second `newsletter send`), nothing is rebuilt and its deliveries are resumed. A dry run
        fetches and plans only: no edition is written and nothing is sent.
        """
        from .errors import StoreError

        day = day or date.today()
        if not dry_run:
            self.purge_unconfirmed()
        report = SendReport(cadence, period_for(cadence, day), day, dry_run=dry_run)
        report.edition_id = self.store.edition_id_for(cadence, report.period)
        if report.edition_id is None or dry_run:
            if fetch:
                report.fetch = self.fetch(day)
            plan = self.plan(cadence, day, save_models=not dry_run)
            planned = self.planned_digests(plan)
            report.readers = sum(d.reader_count for d in planned)
            if dry_run:
                return report
            if plan.existing_edition is not None:
                # Another sender made this period's edition while this one fetched and planned (its readers'
                # papers are taken by it, so they have nothing new): resume that edition.
                report.edition_id, report.readers = plan.existing_edition, 0
            elif not planned:
                # Nobody has anything new: no edition, so a reader who joins later today still gets this
                # period's issue on the next run. Retries of earlier editions still go out.
                log.info("%s %s: no reader has anything new; no edition made", cadence, report.period)
                report.others = self._deliver_others(progress, messenger, prepare, stop, clock)
                return report
            else:
                try:
                    report.edition_id = self.record_edition(plan, planned=planned)
                    report.created = True
                except StoreError:
                    # Another sender made this period's edition between our check and our write.
                    report.edition_id = self.store.edition_id_for(cadence, report.period)
                    report.readers = 0
                    if report.edition_id is None:
                        raise
        from .store.control import edition_state

        report.edition_state = edition_state(self.store.engine, report.edition_id) or "active"
        log.info("%s edition %s (%s): %s", cadence, report.period, report.edition_id,
                 "made" if report.created else f"exists ({report.edition_state}); resuming its deliveries"
                 if report.edition_state == "active" else f"exists, {report.edition_state}: nothing of it is sent")
        report.delivery = self.deliver(progress, messenger, prepare, edition_id=report.edition_id, stop=stop,
                                       clock=clock)
        report.others = self._deliver_others(progress, messenger, prepare, stop, clock, report.delivery.done)
        return report

    def _deliver_others(self, progress: "DeliveryProgress | None", messenger: "Messenger | None",
                        prepare: "Prepare | None", stop: "threading.Event | None",
                        clock: "Callable[[], datetime] | None",
                        done_before: int = 0) -> "DeliveryReport | None":
        """After an edition's own deliveries, what else is due (retries of earlier editions), counted apart so
        a send reports each edition's figures; None when nothing else was due."""
        from .store.deliveries import DeliveryQueue, utcnow

        if stop is not None and stop.is_set():
            return None
        if not DeliveryQueue(self.store.engine).due_count((clock or utcnow)()):
            return None
        shown = progress
        if progress is not None and done_before:  # one progress bar for the whole send: carry on from there
            outer = progress

            def carried(done: int, total: int) -> None:
                outer(done_before + done, done_before + total)

            shown = carried
        return self.deliver(shown, messenger, prepare, stop=stop, clock=clock)

    # --- the main job -------------------------------------------------------------------------------------

    def purge_unconfirmed(self, now: datetime | None = None) -> int:
        """Forget sign-ups whose confirmation link expired unconfirmed (run by ``run`` and ``send``)."""
        from .store.subscriptions import purge_unconfirmed
        from .tokens import MAX_AGE_SECONDS

        purged = purge_unconfirmed(self.store, timedelta(seconds=MAX_AGE_SECONDS["confirm"]), now)
        if purged:
            log.info("forgot %d unconfirmed sign-ups whose confirmation link expired", purged)
        return purged

    def due_cadences(self, day: date) -> list[str]:
        """The cadences whose schedule (``schedule.daily``/``weekly``, in ``schedule.timezone``) fires on ``day``."""
        from datetime import time as clock_time
        from zoneinfo import ZoneInfo

        from .schedule import fire_times, trigger_for

        tz = ZoneInfo(self.settings.schedule.timezone)
        start = datetime.combine(day, clock_time(), tz)
        end = datetime.combine(day, clock_time(23, 59, 59), tz)
        return [c for c in CADENCES if fire_times(trigger_for(self.settings, c), start, end)]

    def run(self, day: date | None = None, cadences: Sequence[str] | None = None, *,
            progress: "DeliveryProgress | None" = None) -> "RunReport":
        """The main job (``newsletter run``): fetch once, send each cadence due ``day`` (default: today, by the
        schedule), and write a preview of the next daily issue (HTML, text, .eml) to ``outbox_dir/preview``.

        Example: ``Newsletter.from_config().run()``
        """
        day = day or date.today()
        self.purge_unconfirmed()
        report = RunReport(day, self.fetch(day))
        for cadence in (self.due_cadences(day) if cadences is None else cadences):
            report.sends.append(self.send(cadence, day, fetch=False, progress=progress))
        shown = self.preview("daily", None, day)
        folder = self.settings.path(self.settings.outbox_dir) / "preview"
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (("preview.html", shown.html.encode()), ("preview.txt", shown.text.encode()),
                           ("preview.eml", shown.message)):
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
        report.preview = folder / "preview.html"
        report.preview_papers = len(shown.rendered.listed) if shown.rendered.listed else shown.content.paper_count
        report.readers = self.store.subscriber_count(status=SUBSCRIBER_ACTIVE)
        return report

    def message_preparer(self) -> "Prepare":
        """The default ``prepare`` of ``deliver``: each reader's message, built by ``newsletter.render.message``."""
        from .errors import DeliveryError

        try:
            from .render import message as message_mod
        except ImportError as exc:
            raise DeliveryError(f"Cannot build messages: {exc}.",
                                hint="pass prepare= to Newsletter.deliver") from None
        factory = getattr(message_mod, "preparer", None)
        if factory is None:
            raise DeliveryError("newsletter.render.message has no preparer(newsletter) function.")
        return factory(self)  # type: ignore[no-any-return]
