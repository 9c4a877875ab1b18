"""The send loop: claim due deliveries, build each message, hand it to the messenger, record the outcome.

It depends on three things it is given: the delivery queue (``store.deliveries``), a ``Messenger``, and
``prepare(delivery) -> OutgoingMessage``, so it knows nothing of rendering or of the transport's protocol.

The rules (see the issue "every reader gets each digest once, on time, whatever fails"):

- A delivery is marked sent only after the messenger returned (the server's 250), and each outcome is
  committed before the next message goes, so a crash repeats at most the messages in flight (one per
  connection), with their Message-IDs unchanged. With several connections, the outcomes that arrive together
  are committed together (one UPDATE). The next message is built while the server takes the current one's
  content (the messenger's ``waiting()``), so the send loop's own work hides behind the SMTP exchange.
- Temporary failures are retried with exponential backoff until the retry window (counted from when the
  digest was queued) would be passed, then the delivery fails with the last error.
- Permanent failures fail the delivery; a refused address counts a bounce, and after ``bounce_limit`` in a
  row the reader is marked bounced.
- A fatal transport error (login refused, sender refused, server unreachable) stops the run: the message in
  hand and the rest of the batch go back to the queue untouched, and the error is raised.
- A batch is only worked on while its lease holds; what is left when it runs short goes back to the queue
  rather than risk another sender taking over rows this one is still sending.
- A reader's status is checked when their delivery is claimed: an unsubscribe that arrives after that (at
  most one batch, a few seconds of sending) no longer stops that one message.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from ..errors import NewsletterError, NotFound
from ..store.deliveries import DeliveryQueue, DueDelivery, SenderBusy, utcnow
from ..store.failures import database_error
from . import MessageFailure, Messenger, OutgoingMessage, PermanentFailure, TemporaryFailure
from .policy import MAX_BACKOFF, DeliveryPolicy, DeliveryReport

log = logging.getLogger(__name__)

Prepare = Callable[[DueDelivery], OutgoingMessage]
Progress = Callable[[int, int], None]  # (done, total) after each message


class _StopRequested(Exception):
    """Raised from ``ready()`` when a stop was asked for: the message in hand is not handed over."""


class Sender:
    """Example: ``Sender(DeliveryQueue(store.engine), messenger, prepare, DeliveryPolicy()).run()``."""

    def __init__(
        self,
        queue: DeliveryQueue,
        messenger: Messenger,
        prepare: Prepare,
        policy: DeliveryPolicy | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        workers: int | None = None,
    ) -> None:
        self.queue, self.messenger, self.prepare = queue, messenger, prepare
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.progress = progress
        self.stop = stop or threading.Event()
        self.workers = max(1, workers if workers is not None else getattr(messenger, "concurrency", 1))
        self.report = DeliveryReport()
        self.recheck_seconds = 0.5  # how stale a reader's "still subscribed" may be while a batch goes out
        self._gone: dict[int, str] = {}
        self._halted: dict[int, str] = {}
        self._gone_batch: Sequence[DueDelivery] | None = None
        self._gone_at = 0.0
        # Messengers that call ``ready()`` just before the content let a stop request keep it back; those that
        # call ``waiting()`` while the server takes the content let the next message be built meanwhile.
        params = inspect.signature(messenger.send).parameters
        self._ready_hook, self._waiting_hook = "ready" in params, "waiting" in params

    def run(self, edition_id: int | None = None) -> DeliveryReport:
        """Send every due delivery (of one edition, or all), batch by batch, until none is left.

        An error that stops the run (the transport, the database) is raised with its hint saying what this
        run recorded before it stopped, so an operator knows how much went out."""
        try:
            return self._run(edition_id)
        except NewsletterError as exc:
            if not (isinstance(exc, SenderBusy) and not self.report.done):
                exc.hint = self._stopped_note(exc.hint)
            raise
        except SQLAlchemyError as exc:  # a failed write (a full disk, a dropped database connection)
            error = database_error(exc, "while sending")
            error.hint = self._stopped_note(error.hint)
            raise error from exc

    def _stopped_note(self, hint: str | None) -> str:
        """What the database holds for this run when it stopped: the outcomes recorded, nothing more."""
        note = (f"this run recorded {self.report.summary()} before it stopped; every delivery not sent stays "
                "queued (`newsletter deliveries` shows each)")
        return f"{hint}; {note}" if hint else note

    def _run(self, edition_id: int | None) -> DeliveryReport:
        policy, report = self.policy, self.report
        with self.queue.running(lease_seconds=policy.lease_seconds, lock_wait=policy.lock_wait,
                                now=self.clock()):
            report.due = self.queue.due_count(self.clock(), edition_id)
            self._progress()
            while not self.stop.is_set():
                now = self.clock()
                claim = self.queue.claim(self._batch_size(), lease_seconds=policy.lease_seconds,
                                         retry_window=policy.retry_window, now=now, edition_id=edition_id)
                report.suppressed += claim.suppressed
                report.expired += claim.expired
                if claim.suppressed or claim.expired:
                    self._progress()
                if not claim.deliveries:
                    break
                # Stop sending from this batch well before its lease ends (see the module docstring).
                deadline = now + timedelta(seconds=policy.lease_seconds * 0.8)
                if self.workers == 1:
                    self._send_serially(claim.deliveries, deadline)
                else:
                    self._send_concurrently(claim.deliveries, deadline)
                self.queue.renew(policy.lease_seconds, self.clock())
        return report

    def _batch_size(self) -> int:
        """No bigger than the messenger's rate limit lets us send within half a lease."""
        rate = getattr(self.messenger, "rate_limit", 0) or 0
        size = self.policy.batch_size
        if rate > 0:
            size = min(size, max(1, int(rate * self.policy.lease_seconds / 2)))
        return size

    # --- sending ----------------------------------------------------------------------------------------

    def _send_serially(self, batch: Sequence[DueDelivery], deadline: datetime) -> None:
        """One message at a time, each outcome committed before the next message is handed over, so a crash
        repeats at most the one message in flight. While the server takes a message's content (the longest
        part of the exchange), the next message is built (``waiting``), so building it costs no wall time."""
        built: dict[int, OutgoingMessage | Exception] = {}

        def build_next(i: int) -> None:
            if i < len(batch) and batch[i].id not in built:
                try:
                    built[batch[i].id] = self.prepare(batch[i])
                except Exception as exc:  # noqa: BLE001 - raised when its turn comes, not into the messenger
                    built[batch[i].id] = exc

        def settle() -> None:  # the previous message's "sent", if its reply was left for later
            lost = self.queue.settle()
            if lost:
                self.report.lost_claims += lost
                log.warning("a delivery was taken over by another sender before its outcome was recorded")

        def ready() -> None:
            settle()
            if self.stop.is_set():
                raise _StopRequested()

        i = 0
        try:
            for i, d in enumerate(batch):
                if self.stop.is_set() or self.clock() >= deadline or self._edition_halted(batch, d):
                    settle()
                    self.queue.release(batch[i:])  # halted: paused or cancelled since the claim
                    return
                left = self._left(batch, d)
                if left:  # unsubscribed (or bounced) since the claim: this one does not go out
                    built.pop(d.id, None)
                    self._suppress(d, left)
                    continue
                build_next(i)
                message = built.pop(d.id)
                if isinstance(message, NotFound):  # the reader was erased meanwhile, and their delivery with them
                    self._erased(d)
                    continue
                if isinstance(message, Exception):
                    raise message
                outcome: MessageFailure | None = None
                smtp_ms = None  # what ``send`` returns: the SMTP exchange's time (None: the transport has none)
                try:
                    if self._waiting_hook:
                        smtp_ms = self.messenger.send(message, ready, waiting=lambda: build_next(i + 1))  # type: ignore[call-arg]
                    elif self._ready_hook:
                        smtp_ms = self.messenger.send(message, ready)  # type: ignore[call-arg]
                    else:
                        ready()
                        smtp_ms = self.messenger.send(message)
                except (TemporaryFailure, PermanentFailure) as exc:
                    outcome = exc
                # "sent" goes to the database now; its reply is read before the next content (``ready``).
                self._record(d, outcome, deferred=True, smtp_ms=smtp_ms)
            settle()
        except BaseException as exc:
            # A fatal transport error, a bug in prepare, a stop request, Ctrl-C: the message in hand and the
            # rest of the batch go back untouched.
            try:
                settle()
                self.queue.release(batch[i:])
            except Exception:
                log.exception("could not give back %d claimed deliveries", len(batch) - i)
            if isinstance(exc, _StopRequested):
                return
            raise

    def _send_concurrently(self, batch: Sequence[DueDelivery], deadline: datetime) -> None:
        """Up to ``workers`` messages on the wire at once; outcomes are recorded here, one commit each."""
        pending = list(batch)
        pending.reverse()  # pop() from the end keeps the claim order
        inflight: dict[Future[None], DueDelivery] = {}
        fatal: BaseException | None = None
        halted = False
        with ThreadPoolExecutor(self.workers, thread_name_prefix="send") as pool:
            try:
                while pending or inflight:
                    while (pending and len(inflight) < self.workers and fatal is None and not halted
                           and not self.stop.is_set() and self.clock() < deadline):
                        if self._edition_halted(batch, pending[-1]):  # paused or cancelled since the claim
                            halted = True
                            break
                        d = pending.pop()
                        left = self._left(batch, d)
                        if left:  # unsubscribed (or bounced) since the claim: this one does not go out
                            self._suppress(d, left)
                            continue
                        try:
                            message = self.prepare(d)
                        except NotFound:  # the reader was erased meanwhile, and their delivery with them
                            self._erased(d)
                            continue
                        except BaseException as error:
                            pending.append(d)
                            fatal = error
                            break
                        inflight[pool.submit(self.messenger.send, message)] = d
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    outcomes = []
                    for future in done:
                        d = inflight.pop(future)
                        outcome = future.exception()
                        if outcome is None or isinstance(outcome, (TemporaryFailure, PermanentFailure)):
                            outcomes.append((d, outcome, future.result() if outcome is None else None))
                        else:
                            pending.append(d)  # not marked: goes back to the queue
                            fatal = fatal or outcome
                    self._record_many(outcomes)  # the messages that finished together: one commit
            except BaseException as exc:  # Ctrl-C, a failed write: let the messages on the wire finish
                fatal = fatal or exc
                outcomes = []
                for future, d in inflight.items():
                    exc2 = future.exception()
                    if exc2 is None or isinstance(exc2, (TemporaryFailure, PermanentFailure)):
                        outcomes.append((d, exc2, future.result() if exc2 is None else None))
                    else:
                        pending.append(d)
                try:
                    self._record_many(outcomes)  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001 - the first error is the one raised
                    log.exception("could not record the outcomes of %d deliveries", len(outcomes))
                    pending.extend(d for d, _, _ in outcomes)
            finally:
                try:
                    self.queue.release(pending)
                except Exception:
                    if fatal is None:
                        raise
                    log.exception("could not give back %d claimed deliveries", len(pending))
        if fatal is not None:
            raise fatal

    # --- outcomes ---------------------------------------------------------------------------------------

    def _record_many(self, outcomes: Sequence[tuple[DueDelivery, MessageFailure | None, int | None]]) -> None:
        """Outcomes that arrived together (each with its SMTP time): the sent ones in one statement, failures
        (rare) one by one."""
        sent = [d for d, failure, _ in outcomes if failure is None]
        if len(sent) > 1:
            ours = self.queue.record_sent(sent, self.clock(), [ms for _, failure, ms in outcomes if failure is None])
            self.report.sent += len(sent)
            if ours < len(sent):
                self.report.lost_claims += len(sent) - ours
                log.warning("%d of %d deliveries were taken over by another sender before their outcome was "
                            "recorded", len(sent) - ours, len(sent))
            self._progress()
        for d, failure, ms in outcomes:
            if failure is not None or len(sent) == 1:
                self._record(d, failure, smtp_ms=ms)

    def _record(self, d: DueDelivery, failure: MessageFailure | None, deferred: bool = False,
                smtp_ms: int | None = None) -> None:
        now = self.clock()
        report = self.report
        if failure is None and deferred:
            self.queue.mark_sent_deferred(d, now, smtp_ms)  # a lost row is counted when its reply is read
            ours = True
            report.sent += 1
        elif failure is None:
            ours = self.queue.mark_sent(d, now, smtp_ms)
            report.sent += 1
        elif isinstance(failure, TemporaryFailure):
            error = failure.message
            next_at = now + self.policy.backoff(d.attempts + 1)
            if next_at > d.created_at + self.policy.retry_window:
                ours = self.queue.mark_failed(d, error, now)
                report.failed += 1
                log.warning("giving up on %s after %d attempts: %s", d.email, d.attempts + 1, error, extra=_ids(d))
            else:
                ours = self.queue.mark_retry(d, error, next_at, now)
                report.retry += 1
                log.info("will retry %s at %s: %s", d.email, next_at.isoformat(timespec="seconds"), error,
                         extra=_ids(d))
            self._note(error)
        else:
            error = failure.message
            limit = self.policy.bounce_limit if failure.bounce else None
            ours = self.queue.mark_failed(d, error, now, bounce_limit=limit)
            report.failed += 1
            report.bounced += int(failure.bounce)
            log.warning("failed %s: %s", d.email, error, extra=_ids(d))
            self._note(error)
        if not ours:
            report.lost_claims += 1
            log.warning("delivery %d to %s was taken over by another sender before its outcome was recorded",
                        d.id, d.email, extra=_ids(d))
        self._progress()

    def _recheck(self, batch: Sequence[DueDelivery]) -> None:
        """A batch is claimed with its readers and editions active; an unsubscribe, a pause or a cancel can
        arrive while it is being sent, so they are looked at again, at most every ``recheck_seconds`` (one
        small query for the batch, not one per message)."""
        tick = time.monotonic()
        if self._gone_batch is not batch or tick - self._gone_at >= self.recheck_seconds:
            self._gone, self._halted = self.queue.batch_changes(batch)
            self._gone_batch, self._gone_at = batch, tick

    def _left(self, batch: Sequence[DueDelivery], d: DueDelivery) -> str | None:
        """The reader's status when they are no longer active (see ``_recheck``)."""
        self._recheck(batch)
        return self._gone.get(d.subscriber_id)

    def _edition_halted(self, batch: Sequence[DueDelivery], d: DueDelivery) -> bool:
        """The delivery's edition was paused or cancelled since the claim: the rest of the batch goes back (the
        next claim leaves that edition out) and it is noted in the report."""
        self._recheck(batch)
        state = self._halted.get(d.edition_id)
        if state is None:
            return False
        if d.edition_id not in self.report.halted:
            self.report.halted[d.edition_id] = state
            log.info("edition %d was %s: its deliveries not sent yet go back to the queue", d.edition_id,
                     "paused" if state == "paused" else "cancelled")
        return True

    def _suppress(self, d: DueDelivery, status: str) -> None:
        if not self.queue.mark_suppressed(d, status, self.clock()):
            self.report.lost_claims += 1
        log.info("delivery %d to %s: not sent, the reader is %s", d.id, d.email, status, extra=_ids(d))
        self.report.suppressed += 1
        self._progress()

    def _erased(self, d: DueDelivery) -> None:
        log.info("delivery %d: the reader was erased after it was claimed; skipped", d.id, extra=_ids(d))
        self.report.suppressed += 1

    def _note(self, error: str) -> None:
        if len(self.report.errors) < 20:
            self.report.errors.append(error)

    def _progress(self) -> None:
        if self.progress is not None:
            self.progress(self.report.done, max(self.report.due, self.report.done))


def _ids(d: DueDelivery) -> dict[str, int]:
    """The delivery and edition of a log record (``log.format: json`` shows them as fields)."""
    return {"delivery": d.id, "edition": d.edition_id}


__all__ = ["MAX_BACKOFF", "DeliveryPolicy", "DeliveryReport", "Prepare", "Progress", "Sender"]
