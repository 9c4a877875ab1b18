"""The URLs a digest links to: the edition on the web, and each reader's signed preference and unsubscribe links.

URL shapes (routes of the web app)::

    {site_url}/editions/{edition_id}           the edition's public page (every paper of the edition)
    {site_url}/editions/{edition_id}/yours?token=...   view in browser: the reader's own web copy of their digest
    {site_url}/preferences?token=...           manage preferences
    {site_url}/unsubscribe?token=...           one-click unsubscribe (also the List-Unsubscribe https URL)
    mailto:{local}+unsubscribe@{domain}?subject=unsubscribe%20{token}
    {site_url}/more/{card token}               "more like this" on a card (GET: a one-button page, POST: done)
    {site_url}/fewer/{card token}              "fewer like this"
    {site_url}/r/{card token}                  the card's title link with ``tracking.clicks`` (a weak positive)

A card token (``tokens.CardSigner``) names one reader and one paper; each message signs its cards itself
(``ReaderLinks.card``), so a digest rendered once still carries every reader's own card links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from ..tokens import CARD_TOKEN_CHARS, DAY, Signer


def edition_url(site_url: str, edition_id: int | None) -> str:
    """The web copy of an edition; before an edition exists (a preview), the archive."""
    base = site_url.rstrip("/")
    return f"{base}/editions/{int(edition_id)}" if edition_id is not None else f"{base}/editions"


def web_copy_url(site_url: str, edition_id: int, token: str) -> str:
    """A reader's web copy of their digest of an edition: exactly its papers, also those the email cut."""
    return f"{site_url.rstrip('/')}/editions/{int(edition_id)}/yours?token={token}"


@dataclass(frozen=True)
class ReaderLinks:
    preferences: str
    unsubscribe: str
    unsubscribe_mailto: str
    web_copy: str = ""  # empty before the edition exists (a preview): the digest's edition_url stands in
    # paper id -> this reader's card token (None: a preview, whose card links carry PREVIEW_CARD_TOKEN)
    card: Callable[[int], str] | None = field(default=None, compare=False, repr=False)


PREVIEW_CARD_TOKEN = "preview-card-not-a-link"[:CARD_TOKEN_CHARS].ljust(CARD_TOKEN_CHARS, "0")


def card_url(site_url: str, action: str, token: str) -> str:
    """``{site_url}/more/TOKEN``, ``/fewer/TOKEN`` or ``/r/TOKEN``."""
    return f"{site_url.rstrip('/')}/{action}/{token}"


class LinkMaker:
    """Makes every reader's links; one per send, shared by all messages."""

    def __init__(self, site_url: str, sender_email: str, signer: Signer) -> None:
        self.site_url = site_url.rstrip("/")
        local, _, domain = sender_email.rpartition("@")
        self._mailto = f"mailto:{local}+unsubscribe@{domain}?subject=unsubscribe%20"
        self.signer = signer
        self.cards = signer.card_signer()

    def edition(self, edition_id: int | None) -> str:
        return edition_url(self.site_url, edition_id)

    def for_reader(self, subscriber_id: int, issued_at: int | datetime | None = None,
                   edition_id: int | None = None) -> ReaderLinks:
        if isinstance(issued_at, datetime):
            issued_at = int(issued_at.timestamp())
        if issued_at is None:
            import time

            issued_at = int(time.time())
        unsubscribe = self.signer.sign("unsubscribe", subscriber_id, issued_at)
        preferences = self.signer.sign("preferences", subscriber_id, issued_at)
        copy = ""
        if edition_id is not None and subscriber_id:
            copy = web_copy_url(self.site_url, edition_id, self.signer.sign("web-copy", subscriber_id, issued_at))
        return ReaderLinks(
            preferences=f"{self.site_url}/preferences?token={preferences}",
            unsubscribe=f"{self.site_url}/unsubscribe?token={unsubscribe}",
            unsubscribe_mailto=self._mailto + unsubscribe,
            web_copy=copy,
            card=self.cards.for_reader(subscriber_id, int(issued_at) // DAY),
        )
