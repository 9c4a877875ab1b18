"""Ready-to-send personalised digests per second: the fast path beside the per-reader path, in one run.

10,000 readers spread over realistic topic choices: most follow every topic, the others pick one to four
topics, popular topics more often than others. The papers are the bundled sample page of Mar 14, 2025 (85
papers; see tests/render_sample.py), grouped as the topics stage does (at most 60 per digest, 12 per topic).

- fast path: readers with the same papers share one render (Jinja + MJML) and one encoded body
  (``MessageFactory.prepare``); per reader only their links (two HMACs), header lines and greeting are filled
  in (``PreparedDigest.message``).
- per-reader path: render, compile, build and encode the whole message for every reader
  (``render_digest`` + ``build_message``, the email package end to end). It is measured on a sample of
  readers (``--slow-sample``) and its rate extrapolated, since all 10,000 would take minutes.

Every reader of the slow sample, and a spread of others, is built both ways and compared byte for byte.
Run: ``python bench/bench_render.py`` (about 30 s). One process, one core; rates are per CPU second of this
process, so other work on the machine does not skew them. ``--quick`` (2,000 readers) is a smoke test: with
fewer readers per distinct digest its rate is lower, and the 2,000 msg/s target is for the full run.
``--dkim``: every message DKIM-signed (rsa-sha256 with a 2048-bit key made for the run; both paths), to compare
with a run without it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from render_sample import digest_of, sample_papers, settings  # noqa: E402

from newsletter.render.links import LinkMaker  # noqa: E402
from newsletter.render.message import MessageFactory, PreparedDigest, Recipient, build_message  # noqa: E402
from newsletter.models import DigestContent  # noqa: E402
from newsletter.render import render_digest  # noqa: E402
from newsletter.tokens import Signer  # noqa: E402

EDITION = "https://papers.example.org/editions/7"
WHEN = datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)
ISSUED = int(WHEN.timestamp())
# CPU seconds of this process: what one core does, whatever else the machine runs meanwhile.
clock = time.process_time
FIRST_NAMES = ["Ada", "Alan", "Grace", "Zoë", "José", "Li Wei", "Fatima", "Ola", "Dr. Kim", "Søren", None, None, None]


@dataclass(frozen=True)
class Reader:
    id: int
    email: str
    name: str | None
    topics: tuple[str, ...] | None  # None: every topic


def make_readers(count: int, slugs: list[str], seed: int = 11) -> list[Reader]:
    rng = random.Random(seed)
    popularity = [1.0 / (rank + 1) ** 0.9 for rank in range(len(slugs))]  # Zipf-like: a few topics are popular
    readers = []
    for i in range(count):
        if rng.random() < 0.6:
            topics = None
        else:
            k = rng.choices([1, 2, 3, 4], weights=[35, 30, 20, 15])[0]
            chosen: set[str] = set()
            while len(chosen) < k:
                chosen.add(rng.choices(slugs, weights=popularity)[0])
            topics = tuple(sorted(chosen))
        name = rng.choice(FIRST_NAMES)
        readers.append(Reader(i + 1, f"reader{i + 1}@example.org", f"{name} Example" if name else None, topics))
    return readers


def recipient(reader: Reader, links: LinkMaker) -> Recipient:
    return Recipient(reader.email, f"<7.{reader.id}.daily.2025-03-14@example.org>",
                     links.for_reader(reader.id, ISSUED), reader.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--slow-sample", type=int, default=300, help="readers built the per-reader way")
    parser.add_argument("--quick", action="store_true", help="2,000 readers, a slow sample of 100")
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every message (2048-bit RSA key)")
    args = parser.parse_args()
    if args.quick:
        args.readers, args.slow_sample = 2_000, 100

    s = settings()
    papers = sample_papers()
    slugs = [t.slug for t in s.topics]
    readers = make_readers(args.readers, slugs)
    links = LinkMaker(s.site_url, s.sender.email, Signer(b"benchmark signing key, 32 bytes!"))
    signer = None
    if args.dkim:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from newsletter.render.dkim import DkimSigner

        signer = DkimSigner("example.org", "bench", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    factory = MessageFactory(s, signer)
    render_digest(digest_of(papers), s, EDITION)  # warm up: templates compiled, character tables built

    # --- fast path: once per distinct digest, then per reader ------------------------------------------------
    t0 = clock()
    contents: dict[tuple[str, ...] | None, DigestContent] = {}
    prepared: dict[tuple[str, ...] | None, PreparedDigest] = {}
    render_s = prepare_s = 0.0
    sizes = 0
    fast: dict[int, bytes] = {}
    sample_every = max(1, args.readers // 200)
    for reader in readers:
        ready = prepared.get(reader.topics)
        if ready is None:
            a = clock()
            content = contents[reader.topics] = digest_of(papers, topics=reader.topics)
            rendered = render_digest(content, s, EDITION)
            b = clock()
            ready = prepared[reader.topics] = factory.prepare(rendered)
            render_s += b - a
            prepare_s += clock() - b
        data = ready.message(recipient(reader, links), WHEN)
        sizes += len(data)
        if reader.id <= args.slow_sample or reader.id % sample_every == 0:
            fast[reader.id] = data
    fast_s = clock() - t0
    per_reader_s = fast_s - render_s - prepare_s

    # --- per-reader path: everything for every reader ----------------------------------------------------------
    sample = readers[:args.slow_sample]
    t0 = clock()
    slow: dict[int, bytes] = {}
    for reader in sample:
        rendered = render_digest(digest_of(papers, topics=reader.topics), s, EDITION)
        slow[reader.id] = build_message(rendered, recipient(reader, links), s, WHEN, signer)
    slow_s = clock() - t0

    # --- same bytes? ---------------------------------------------------------------------------------------------
    for reader in readers:
        if reader.id in fast and reader.id not in slow:
            rendered = render_digest(contents[reader.topics], s, EDITION)
            slow[reader.id] = build_message(rendered, recipient(reader, links), s, WHEN, signer)
    compared = [rid for rid in fast if rid in slow]
    different = [rid for rid in compared if fast[rid] != slow[rid]]

    fast_rate = args.readers / fast_s
    slow_rate = len(sample) / slow_s
    print(f"DKIM: {'rsa-sha256, 2048-bit key' if signer else 'off'}")
    print(f"readers: {args.readers:,}; distinct digests: {len(prepared)}; papers: {len(papers)}; "
          f"mean message: {sizes / args.readers / 1000:.0f} KB")
    print(f"fast path:       {args.readers:,} messages in {fast_s:.2f} s = {fast_rate:,.0f} msg/s "
          f"(render {render_s:.2f} s + prepare {prepare_s:.2f} s for {len(prepared)} digests, "
          f"per reader {per_reader_s / args.readers * 1e6:.0f} us)")
    print(f"per-reader path: {len(sample):,} messages in {slow_s:.2f} s = {slow_rate:,.0f} msg/s "
          f"({slow_s / len(sample) * 1000:.1f} ms per message; 10,000 would take {10_000 / slow_rate:.0f} s)")
    print(f"speed-up: {fast_rate / slow_rate:.0f}x; target >= 2,000 msg/s: {'met' if fast_rate >= 2000 else 'NOT met'}")
    print(f"byte-identical: {len(compared) - len(different)}/{len(compared)} sampled messages")
    if different:
        raise SystemExit(f"messages differ for readers {different[:10]}")


if __name__ == "__main__":
    main()
