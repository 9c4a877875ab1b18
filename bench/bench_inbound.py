"""Inbound messages per second: the classifier, and the whole effect path, over a 10,000-message maildir.

    NEWSLETTER_REAL_DATA=/work/shared/data/real python bench/bench_inbound.py [--messages 10000] [--imap]

The maildir (a temporary folder, removed at the end) is built from the 73 real bounce, delay, auto-reply
and complaint mails in ``<repo>/../shared/data/real/bounces`` (or ``$NEWSLETTER_REAL_DATA/bounces``),
repeated; each copy gets one extra header line so that every message is distinct (each is its own event).
Two figures:

- parse: read each file of the maildir and classify it (``newsletter.inbound.classify``);
- parse + store: the same through ``read_mailbox`` with a real ``mailbox.Maildir``, each event matched and
  stored with its effect in a fresh SQLite file (one transaction per message, as in a real pass), the
  processed message moved to the maildir's ``.Processed`` folder.

With ``--imap`` (needs Debian's dovecot-imapd and dovecot-pop3d), a third and fourth figure: the same
messages delivered into the maildir of a private Dovecot on 127.0.0.1 (started like the tests start it) and
read by ``newsletter.inbound.run_pass`` over IMAP with STARTTLS (each message fetched, classified, stored,
then moved to a Processed folder), and over POP3 with STLS (each retrieved, classified, stored, deleted).
"""

from __future__ import annotations

import argparse
import mailbox
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import config as config_mod  # noqa: E402
from newsletter.inbound.classify import classify  # noqa: E402
from newsletter.inbound.process import InboundProcessor, read_mailbox  # noqa: E402
from newsletter.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def real_bounces() -> Path:
    folder = Path(os.environ.get("NEWSLETTER_REAL_DATA") or ROOT.parent / "shared" / "data" / "real") / "bounces"
    if not folder.is_dir():
        sys.exit(f"no real bounce mails at {folder}; set NEWSLETTER_REAL_DATA to the folder holding bounces/")
    return folder


class MaildirBox:
    """The Mailbox protocol over a local maildir: processed mail moves to .Processed, the rest stays."""

    def __init__(self, path: Path) -> None:
        self.name = f"maildir:{path}"
        self.box = mailbox.Maildir(path, factory=None, create=False)
        self.done_box = self.box.add_folder("Processed")

    def messages(self, limit: int):  # type: ignore[no-untyped-def]
        for n, key in enumerate(list(self.box.iterkeys())):
            if n >= limit:
                return
            with self.box.get_file(key) as f:
                yield key, f.read()

    def done(self, uid: str) -> None:
        src = Path(self.box._path) / self.box._lookup(uid)  # type: ignore[attr-defined]
        os.replace(src, Path(self.done_box._path) / "cur" / src.name)  # type: ignore[attr-defined]

    def keep(self, uid: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def build_maildir(path: Path, n: int) -> Counter[str]:
    sources = sorted(real_bounces().glob("*.eml"))
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    kinds: Counter[str] = Counter()
    for i in range(n):
        src = sources[i % len(sources)]
        raw = src.read_bytes()
        eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
        (path / "new" / f"{i:06d}.bench").write_bytes(b"X-Bench-Copy: " + str(i).encode() + eol + raw)
        kinds[src.name.split("__")[0]] += 1
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--imap", action="store_true", help="also read them through a private Dovecot (IMAP and POP3)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    try:
        maildir = work / "Maildir"
        built = build_maildir(maildir, args.messages)
        size = sum(p.stat().st_size for p in (maildir / "new").iterdir())
        print(f"maildir: {args.messages:,} messages, {size / 1e6:.1f} MB, from {len(set(built))} categories "
              f"of real mail ({', '.join(f'{k} {v}' for k, v in sorted(built.items()))})")

        files = sorted((maildir / "new").iterdir())
        start = time.perf_counter()
        kinds: Counter[str] = Counter()
        raws = []
        for p in files:
            raws.append(p.read_bytes())
            kinds[classify(raws[-1]).kind] += 1
        parse_s = time.perf_counter() - start
        print(f"parse:         {len(files) / parse_s:8.0f} msg/s  ({parse_s:.2f} s)  kinds: {dict(sorted(kinds.items()))}")

        settings = config_mod.from_mapping({"database_url": f"sqlite:///{work / 'nl.db'}"}, environ={},
                                           base_dir=work)
        store = Store.open(settings.resolved_database_url)
        try:
            processor = InboundProcessor(settings, store)
            box = MaildirBox(maildir)
            start = time.perf_counter()
            report = read_mailbox(processor, box, limit=args.messages)
            full_s = time.perf_counter() - start
            print(f"parse + store: {report.read / full_s:8.0f} msg/s  ({full_s:.2f} s)  effects: "
                  f"{dict(sorted(report.effects.items()))}, moved {len(list((maildir / '.Processed' / 'cur').iterdir())):,}")
        finally:
            store.close()
        if args.imap:
            for protocol in ("imap", "pop3"):
                server_pass(work, raws, protocol)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def server_pass(work: Path, raws: list[bytes], protocol: str) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "inbound"))
    from dovecot_server import make_ca, start_dovecot  # noqa: E402

    from newsletter.inbound import run_pass

    (work / f"ca-{protocol}").mkdir()
    box = start_dovecot(make_ca(work / f"ca-{protocol}"))
    try:
        for raw in raws:
            box.deliver(raw)
        inbound = {"protocol": protocol, "host": "127.0.0.1", "port": box.imap if protocol == "imap" else box.pop3,
                   "security": "starttls", "username": box.user, "password": "${INBOUND_PASSWORD}",
                   "ca_file": str(box.ca_file), "max_messages": len(raws) + 1}
        if protocol == "imap":
            inbound["processed_folder"] = "Processed"
        settings = config_mod.from_mapping({"database_url": f"sqlite:///{work / f'{protocol}.db'}", "inbound": inbound},
                                           environ={"INBOUND_PASSWORD": box.password}, base_dir=work)
        store = Store.open(settings.resolved_database_url)
        try:
            start = time.perf_counter()
            report = run_pass(settings, store)
            took = time.perf_counter() - start
        finally:
            store.close()
        label = "IMAP STARTTLS" if protocol == "imap" else "POP3 STLS"
        print(f"{label + ':':14s} {report.read / took:8.0f} msg/s  ({took:.2f} s)  read {report.read:,}, "
              f"left in the mailbox {box.folder_count():,}")
    finally:
        box.stop()


if __name__ == "__main__":
    main()
