"""What a send run is told (``DeliveryPolicy``: retries, leases, batches) and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Delivery as DeliverySettings

MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Example: ``DeliveryPolicy(retry_window=timedelta(hours=48), backoff_base=300, bounce_limit=3)``."""

    retry_window: timedelta = timedelta(hours=48)
    backoff_base: float = 300.0  # seconds before the first retry
    max_backoff: timedelta = MAX_BACKOFF
    lease_seconds: float = 300.0
    bounce_limit: int = 3
    batch_size: int = 200
    lock_wait: float = 10.0  # SQLite: how long a second sender waits for the first

    @classmethod
    def from_settings(cls, delivery: DeliverySettings) -> DeliveryPolicy:
        return cls(retry_window=timedelta(hours=delivery.retry_window_hours),
                   backoff_base=delivery.backoff_base_seconds, lease_seconds=delivery.lease_seconds,
                   bounce_limit=delivery.bounce_limit, batch_size=delivery.batch_size)

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th temporary failure: base, 2×base, 4×base, ... capped."""
        return min(timedelta(seconds=self.backoff_base * 2 ** max(0, attempts - 1)), self.max_backoff)


@dataclass
class DeliveryReport:
    due: int = 0  # due when the run started
    sent: int = 0
    retry: int = 0
    failed: int = 0
    bounced: int = 0  # of the failed: the address was refused
    suppressed: int = 0
    expired: int = 0  # failed because the retry window had passed
    lost_claims: int = 0  # outcomes not recorded because another sender had taken the row over
    halted: dict[int, str] = field(default_factory=dict)  # editions paused or cancelled while this run sent them
    errors: list[str] = field(default_factory=list)  # the first few failures, for the CLI

    @property
    def done(self) -> int:
        """Deliveries this run dealt with, whatever the outcome."""
        return self.sent + self.retry + self.failed + self.suppressed + self.expired

    def summary(self) -> str:
        """The recorded outcomes in words, e.g. ``50 sent, 2 to retry`` (``0 sent`` when there were none)."""
        counts = ((self.retry, "to retry"), (self.failed, "failed"), (self.suppressed, "suppressed"),
                  (self.expired, "expired"))
        return ", ".join([f"{self.sent} sent", *(f"{n} {what}" for n, what in counts if n)])
