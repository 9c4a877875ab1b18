"""What the pipeline's steps hand back: plain records of what was fetched, planned, sent and previewed."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TYPE_CHECKING, Callable, Sequence

from .diff import ReaderDiff, ReaderGroup
from .models import DigestContent, Paper, Subscriber
from .render import EmailCounts, RenderedDigest, email_counts
from .store import IngestResult

if TYPE_CHECKING:
    from .deliver.sender import DeliveryReport


@dataclass
class SourceReport:
    source: str
    papers: int = 0
    trending_date: date | None = None
    error: str | None = None
    skipped: list[str] = field(default_factory=list)  # entries left out of this source's batch, and why
    days: list[date] = field(default_factory=list)  # the listing days read (a dated source's catch-up)


@dataclass
class FetchReport:
    sources: list[SourceReport] = field(default_factory=list)
    ingest: IngestResult | None = None
    used_sample: bool = False

    @property
    def ok(self) -> bool:
        return self.ingest is not None and not any(r.error for r in self.sources if not self.used_sample)


@dataclass
class Plan:
    """What the next edition of a cadence would hold, per group of readers; nothing is written.

    ``groups`` hold every active reader of the cadence, as ids, with the papers they have not been sent
    (``diff.ReaderGroup``): a million readers take a few megabytes. ``readers`` (one ``ReaderDiff`` per
    reader, with their stored details) is loaded on first use, for small plans: a preview, a test.
    """

    cadence: str
    day: date
    period: str
    window_start: date
    candidates: list[Paper]
    groups: list[ReaderGroup]
    existing_edition: int | None = None  # set when this period's edition was already made
    load_subscribers: "Callable[[Sequence[int]], list[Subscriber]] | None" = field(default=None, repr=False,
                                                                                    compare=False)
    _readers: list[ReaderDiff] | None = field(default=None, repr=False, compare=False)
    personal: Any = field(default=None, repr=False, compare=False)  # relevance.personal.Personalizer (issue 15)

    @property
    def reader_count(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def readers(self) -> list[ReaderDiff]:
        """Every reader with their unsent papers, ascending by id (loads each reader: for small plans)."""
        if self._readers is None:
            papers = {sid: g.papers for g in self.groups for sid in g.ids}
            subs = self.load_subscribers(sorted(papers)) if self.load_subscribers else []
            self._readers = [ReaderDiff(s, papers[s.id]) for s in subs if s.id in papers]
        return self._readers

    def distinct_digests(self) -> dict[tuple[int, ...], list[ReaderDiff]]:
        groups: dict[tuple[int, ...], list[ReaderDiff]] = {}
        for reader in self.readers:
            groups.setdefault(tuple(p.id for p in reader.papers), []).append(reader)
        return groups


@dataclass
class PlannedDigest:
    """One distinct digest of the next edition, exactly as ``send`` makes it: the readers who get it (``reader_ids``,
    ascending; ``subscriber`` is the first of them), every eligible paper of theirs (``full``: the web copy), the
    email's content (``content``, with the caps) and the email itself (``rendered``, after the size guard).
    ``send`` records ``rendered.listed`` as sent; ``diff`` and ``preview`` print ``counts``."""

    reader_ids: "array[int]"
    full: DigestContent
    content: DigestContent
    rendered: RenderedDigest
    kind: str  # store.editions.reader_kind of these readers
    subscriber: Subscriber | None = None

    @property
    def reader_count(self) -> int:
        return len(self.reader_ids)

    @property
    def counts(self) -> EmailCounts:
        return email_counts(self.content, self.rendered.shown)

    @property
    def listed(self) -> tuple[int, ...]:
        return self.rendered.listed


@dataclass
class SendReport:
    """What ``Newsletter.send`` did for one cadence."""

    cadence: str
    period: str = ""
    day: date | None = None
    edition_id: int | None = None
    created: bool = False  # False: the period's edition already existed and its deliveries were resumed
    edition_state: str = "active"  # paused or cancelled: the operator stopped it, and nothing of it was sent
    readers: int = 0  # readers with something new in this edition (when it was made now)
    dry_run: bool = False
    fetch: FetchReport | None = None
    delivery: "DeliveryReport | None" = None  # this edition's deliveries (None: no edition)
    others: "DeliveryReport | None" = None  # due deliveries of other editions (retries) sent by the same run


@dataclass
class RunReport:
    """What ``Newsletter.run`` (the main job) did."""

    day: date
    fetch: FetchReport
    sends: list[SendReport] = field(default_factory=list)
    preview: Path | None = None  # the next daily issue, as a reader of every topic would get it
    preview_papers: int = 0
    readers: int = 0  # active readers


@dataclass
class Preview:
    """One digest rendered as a reader would get it, for ``newsletter preview``; nothing is sent or written."""

    cadence: str
    period: str
    day: date
    content: DigestContent
    rendered: RenderedDigest
    html: str  # with the reader's greeting and links filled in
    text: str
    message: bytes  # the whole message, as ``send`` would hand it to the transport
    subscriber: Subscriber | None = None  # None: a reader of every topic who was sent nothing yet
    edition_id: int | None = None  # set for an edition already made
