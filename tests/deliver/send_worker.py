"""A sender in its own process, for the tests that kill one or run two side by side.

    python send_worker.py DB_URL SMTP_PORT [--batch N] [--pool N]

Prints the delivery report as JSON when it finishes.
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()
    store = Store.open(args.db_url, migrate=False)
    messenger = SmtpMessenger("127.0.0.1", args.port, pool_size=args.pool, timeout=30)
    try:
        report = Sender(DeliveryQueue(store.engine), messenger, build_message,
                        DeliveryPolicy(batch_size=args.batch, lock_wait=30)).run()
    finally:
        messenger.close()
        store.close()
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main()
