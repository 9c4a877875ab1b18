"""A sender in its own process, for the tests that kill one or run two side by side.

    python send_worker.py DB_URL SMTP_PORT [--batch N] [--pool N] [--commit-delay SECONDS]

``--commit-delay`` makes each "sent" commit wait that long first, like a disk slow to flush: the window in
which a sender that did not wait for the previous commit would already be handing over the next message.
Prints the delivery report as JSON when it finishes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from mailkit import build_message

from newsletter.deliver.sender import DeliveryPolicy, Sender
from newsletter.deliver.smtp import SmtpMessenger
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryQueue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db_url")
    parser.add_argument("port", type=int)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--pool", type=int, default=1)
    parser.add_argument("--commit-delay", type=float, default=0.0)
    args = parser.parse_args()
    store = Store.open(args.db_url, migrate=False)
    messenger = SmtpMessenger("127.0.0.1", args.port, pool_size=args.pool, timeout=30)
    queue = DeliveryQueue(store.engine)
    if args.commit_delay:
        mark_sent = queue.mark_sent

        def slow_mark_sent(*a: object, **kw: object) -> bool:
            time.sleep(args.commit_delay)
            return mark_sent(*a, **kw)  # type: ignore[arg-type]

        queue.mark_sent = slow_mark_sent  # type: ignore[method-assign]
    try:
        report = Sender(queue, messenger, build_message,
                        DeliveryPolicy(batch_size=args.batch, lock_wait=30)).run()
    finally:
        messenger.close()
        store.close()
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main()
