"""Readers' signals, as the web pages use them (issue 15): who a card link belongs to, recording "more like
this", "fewer like this", a tracked click, seeds, and listing or removing them. A thin layer over
``store.signals`` and ``tokens.CardSigner``; the web handlers are thinner still.

Every bad card token (malformed, forged, expired, for a reader or paper that is gone) raises ``InvalidLink``:
the web app answers it with its one "this link is not valid" page.

Example::

    feedback = Feedback(store, signing_key)
    reader, paper, changed = feedback.record(token, "more")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from ..models import Paper, Subscriber
from ..store import Store
from ..store import signals as queries
from ..store.subscriptions import subscriber_by_id
from ..subscriptions import InvalidLink
from ..tokens import CardSigner, InvalidToken
from .seeds import parse_seeds

ACTIONS = {"more": "more", "fewer": "fewer"}  # URL path -> signal kind


@dataclass(frozen=True)
class SeedResult:
    read: int  # entries read from the input
    added: int  # new seed signals
    matched: list[str]  # titles of the papers found
    unmatched: int  # entries no stored paper matched


class Feedback:
    def __init__(self, store: Store, key: bytes, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.cards = CardSigner(key)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def card(self, token: str) -> tuple[Subscriber, Paper]:
        """The reader and paper of a card token; changes nothing (a GET, a link scanner's included)."""
        try:
            claims = self.cards.verify(token or "", now=self.clock())
        except InvalidToken:
            raise InvalidLink() from None
        reader = subscriber_by_id(self.store, claims.subscriber_id)
        papers = self.store.papers(ids=[claims.paper_id])
        if reader is None or not papers:
            raise InvalidLink()
        return reader, papers[0]

    def record(self, token: str, kind: str) -> tuple[Subscriber, Paper, bool]:
        reader, paper = self.card(token)
        changed = queries.record_signal(self.store.engine, reader.id, paper.id, kind, self.clock())
        return reader, paper, changed

    def signals(self, subscriber_id: int) -> list[queries.SignalInfo]:
        return queries.reader_signals(self.store.engine, subscriber_id)

    def remove(self, subscriber_id: int, paper_ids: list[int] | None) -> int:
        return queries.remove_signals(self.store.engine, subscriber_id, paper_ids, self.clock())

    def seed(self, subscriber_id: int, text: str | bytes) -> SeedResult:
        """Seeds from ``text`` (raises ``seeds.InvalidSeeds``): stored papers matched by arXiv id, else title."""
        seeds = parse_seeds(text)
        found = queries.find_papers(self.store.engine, [s.arxiv_id for s in seeds if s.arxiv_id],
                                    [s.title_key for s in seeds if s.title_key])
        ids: list[int] = []
        for s in seeds:
            pid = found.get(f"arxiv:{s.arxiv_id}") if s.arxiv_id else None
            if pid is None and s.title_key:
                pid = found.get(f"title:{s.title_key}")
            if pid is not None and pid not in ids:
                ids.append(pid)
        added = queries.record_signals(self.store.engine, subscriber_id, ids, "seed", self.clock()) if ids else 0
        titles = [p.title for p in self.store.papers(ids=ids)] if ids else []
        return SeedResult(len(seeds), added, titles, len(seeds) - len(ids))
