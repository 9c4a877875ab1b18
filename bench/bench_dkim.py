"""What DKIM signing costs per message on the fast path, split into the body hash and the RSA signature.

One digest of the bundled sample page (every topic, as most readers have it), prepared once
(``MessageFactory.prepare``: its ``SharedBody`` canonicalizes the constant chunks and hashes everything before
the first personal line), then each reader's message built (``PreparedDigest.message``) with real links and
card tokens, signed with a 2048-bit RSA key made for the run, and once more unsigned. Printed:

- the body's bytes: constant (canonicalized once per digest) and personal (each reader's links and card
  tokens: canonicalized per message), and the bytes of the SHA-256 state kept from before the first personal
  byte;
- per message, in CPU microseconds of this process: the whole cost of signing (signed minus unsigned), its
  body hash (``SharedBody.hash``: the personal chunks canonicalized, the rest of the precomputed canonical
  body fed to SHA-256), the header canonicalization and signature field, and the RSA signature itself;
- beside it, what hashing each body whole would cost (``relaxed_body`` + SHA-256 of the finished body).

Every signed message is checked against the slow path (``DkimSigner.sign`` of the unsigned message) on a
sample: the same bytes. Run: ``python bench/bench_dkim.py`` (about 20 s), ``--readers N``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from render_sample import digest_of, sample_papers, settings  # noqa: E402

from newsletter.render import render_digest  # noqa: E402
from newsletter.render import dkim as dkim_module  # noqa: E402
from newsletter.render.links import LinkMaker  # noqa: E402
from newsletter.render.message import MessageFactory, Recipient  # noqa: E402
from newsletter.tokens import Signer  # noqa: E402

from bench_render import EDITION, ISSUED, WHEN  # noqa: E402

clock = time.process_time  # CPU seconds of this process: other work on the machine does not count


class Timed:
    """Wraps a callable, adding the CPU time of its calls to ``seconds``."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += clock() - start
            self.calls += 1


class TimedKey:
    """The RSA key, its ``sign`` timed (``DkimSigner`` calls nothing else on it)."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.sign = Timed(key.sign)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2_000)
    args = parser.parse_args()
    from cryptography.hazmat.primitives.asymmetric import rsa

    s = settings()
    links = LinkMaker(s.site_url, s.sender.email, Signer(b"benchmark signing key, 32 bytes!"))
    rendered = render_digest(digest_of(sample_papers()), s, EDITION)
    key = TimedKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    signer = dkim_module.DkimSigner("example.org", "bench", key)  # type: ignore[arg-type]
    recipients = [Recipient(f"reader{i}@example.org", f"<7.{i}.daily.2025-03-14@example.org>",
                            links.for_reader(i, ISSUED), "Ada Example" if i % 3 else None)
                  for i in range(1, args.readers + 1)]

    MessageFactory(s, signer).prepare(rendered)  # warm up: encoding tables, caches
    t0 = clock()
    plain = MessageFactory(s).prepare(rendered)
    t1 = clock()
    signed = MessageFactory(s, signer).prepare(rendered)
    t2 = clock()
    shared = signed._shared_body
    if shared is None:
        raise SystemExit("this digest's body is not line-aligned: no shared body (every body hashed whole)")
    pieces = signed._body
    constant = sum(len(p) for p in pieces if isinstance(p, bytes))
    first = next(i for i, p in enumerate(pieces) if not isinstance(p, bytes))
    prefix = sum(len(p) for p in pieces[:first])

    for r in recipients[:50]:  # warm up: caches, first calls
        plain.message(r, WHEN)
        signed.message(r, WHEN)

    t = clock()
    unsigned = [plain.message(r, WHEN) for r in recipients]
    unsigned_s = clock() - t

    body_hash = Timed(shared.hash)
    signature = Timed(signer.signature)
    shared.hash = body_hash  # type: ignore[method-assign]
    signer.signature = signature  # type: ignore[method-assign]
    key.sign.seconds, key.sign.calls = 0.0, 0
    t = clock()
    messages = [signed.message(r, WHEN) for r in recipients]
    signed_s = clock() - t
    rsa_s, rsa_calls = key.sign.seconds, key.sign.calls  # before the comparison below signs more

    t = clock()
    for data in unsigned:
        hashlib.sha256(dkim_module.relaxed_body(data.partition(b"\r\n\r\n")[2])).digest()
    whole_s = clock() - t

    del shared.hash, signer.signature  # the class's own again, for the comparison below
    sample = range(0, len(recipients), max(1, len(recipients) // 50))
    different = [i for i in sample if messages[i] != signer.sign(unsigned[i], WHEN)]
    n = len(recipients)
    body = len(unsigned[0].partition(b"\r\n\r\n")[2])
    us = 1e6 / n
    print(f"readers: {n:,}; one digest; body {body:,} bytes: {constant:,} constant (canonicalized once per digest), "
          f"{body - constant:,} personal (canonicalized per message); SHA-256 state kept for the first "
          f"{prefix:,} bytes")
    print(f"prepare once per digest: {(t1 - t0) * 1000:.1f} ms unsigned, {(t2 - t1) * 1000:.1f} ms signed "
          f"(the shared body: {(t2 - t1 - (t1 - t0)) * 1000:+.1f} ms)")
    print(f"per message: unsigned {unsigned_s * us:.0f} us, signed {signed_s * us:.0f} us: signing adds "
          f"{(signed_s - unsigned_s) * us:.0f} us")
    rsa_us = rsa_s * us
    print(f"  body hash (SharedBody.hash)       {body_hash.seconds * us:7.0f} us  ({body_hash.calls:,} calls)")
    print(f"  signature field (headers + RSA)   {signature.seconds * us:7.0f} us, of which RSA-2048 sign "
          f"{rsa_us:.0f} us ({rsa_calls:,} calls)")
    print(f"  hashing each body whole instead   {whole_s * us:7.0f} us (relaxed_body + SHA-256 of the finished body)")
    print(f"same bytes as DkimSigner.sign: {len(sample) - len(different)}/{len(sample)} sampled messages")
    if different:
        raise SystemExit(f"messages differ for readers {different[:10]}")


if __name__ == "__main__":
    main()
