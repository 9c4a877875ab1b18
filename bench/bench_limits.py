"""Time spent on large or hostile input, which the tests check for behaviour only (no test asserts a duration).

- the summary of a paper whose abstract is 1 MB (only a bounded prefix is read);
- one render (Jinja + MJML) of the sample digest, the work done once per distinct digest (templates loaded and
  the per-paper text caches warm, as when many digests share papers);
- refusing the "billion laughs" feed of tests/data/rss/ (refused at its entity declaration, never expanded).

Run: ``python bench/bench_limits.py [--repeat N]``. Prints the best and median of N runs of each, in CPU time of
this process, so other work on the machine skews them little. The summary's cache is cleared before each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from render_sample import sample_digest, settings  # noqa: E402

from newsletter.errors import ParseError  # noqa: E402
from newsletter.models import Paper  # noqa: E402
from newsletter.render import render_digest  # noqa: E402
from newsletter.sources.rss import parse_feed  # noqa: E402
from newsletter.textfilters import summary  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm caches (templates, regexes)
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        runs.append(time.process_time() - start)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    huge = Paper(id=1, key="k", title="t", abstract=("A sentence of an abstract. " * 40_000)[:1_000_000])
    content, conf = sample_digest(), settings()
    laughs = (ROOT / "tests/data/rss/billion_laughs.xml").read_bytes()

    def refuse() -> None:
        try:
            parse_feed(laughs, "billion_laughs.xml")
        except ParseError:
            return
        raise SystemExit("the billion laughs feed was not refused")

    cases = [
        ("summary of a 1 MB abstract", lambda: (summary.cache_clear(), summary(huge))),
        (f"render of the sample digest ({content.paper_count} papers)",
         lambda: render_digest(content, conf, "https://papers.example.org/editions/7")),
        (f"refusing billion laughs ({len(laughs):,} bytes)", refuse),
    ]
    for name, fn in cases:
        best, median = timed(fn, args.repeat)
        print(f"{name:<45} best {best * 1000:8.2f} ms   median {median * 1000:8.2f} ms   ({args.repeat} runs)")


if __name__ == "__main__":
    main()
