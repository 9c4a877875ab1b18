"""What catch-up fetching costs and delivers: the 48 archived Daily Papers days replayed day by day.

A loopback stand-in of the API whose lists grow through the day (``tests/support.GrowingDailyPapers``)
serves ``../shared/data/real/hf-api-days/`` (or ``$NEWSLETTER_REAL_DATA``); every weekday 08:00 (Europe/
Berlin) send near an archived day fetches as of its day, then plans and records the daily edition for one
reader. Run: ``python bench/bench_catch_up.py``.

Prints the papers the days list, the papers delivered, what one read per day at its send would have had,
the API requests made, and the seconds per fetch (the catch-up re-reads yesterday and today each time).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from datetime import datetime
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from werkzeug import Request  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from newsletter import config  # noqa: E402
from newsletter.models import paper_key  # noqa: E402
from newsletter.pipeline import Newsletter  # noqa: E402
from support import GrowingDailyPapers, archived_days, real_data_dir, replay_daily_sends  # noqa: E402


def main() -> None:
    folder = real_data_dir()
    if not (folder / "hf-api-days").is_dir():
        sys.exit(f"no archived days at {folder / 'hf-api-days'} (set NEWSLETTER_REAL_DATA)")
    lists = archived_days(folder)
    standin = GrowingDailyPapers(lists)
    WSGIRequestHandler.log_request = lambda *args, **kwargs: None  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, lambda env, start: standin.handler(Request(env))(env, start),
                         threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.from_mapping(
            {"database_url": f"sqlite:///{Path(tmp) / 'replay.db'}",
             "sources": [{"type": "huggingface", "base_url": f"http://127.0.0.1:{server.server_port}",
                          "retries": 0}],
             "digest": {"max_papers": 1000, "max_per_topic": 1000}}, environ={}, base_dir=Path(tmp))
        nl = Newsletter(settings)
        nl.store.add_subscriber("reader@example.org")
        fetch_seconds: list[float] = []
        original = nl.fetch

        def timed_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                fetch_seconds.append(time.perf_counter() - started)

        nl.fetch = timed_fetch  # type: ignore[method-assign]
        started = time.perf_counter()
        sent = replay_daily_sends(nl, standin, sorted(lists))
        total = time.perf_counter() - started
        nl.close()
    server.shutdown()
    listed = {paper_key(i["paper"]["id"], i["paper"]["title"]) for items in lists.values() for i in items}
    delivered = [k for keys in sent.values() for k in keys]
    early = set()
    for day, items in lists.items():
        if day.weekday() < 5:
            stamp = datetime.combine(day, clock(8), ZoneInfo("Europe/Berlin")).astimezone(ZoneInfo("UTC"))
            early |= {paper_key(i["paper"]["id"], i["paper"]["title"]) for i in items
                      if GrowingDailyPapers.listed_at(i) <= stamp.strftime("%Y-%m-%dT%H:%M:%S.999Z")}
    print(f"days archived            {len(lists)}")
    print(f"papers listed            {len(listed)} ({sum(len(v) for v in lists.values())} items)")
    print(f"papers delivered         {len(delivered)} ({len(set(delivered))} distinct) in "
          f"{sum(1 for s in sent.values() if s)} digests over {len(sent)} sends")
    print(f"one read per day at send {len(early)} (missed: {len(listed) - len(early)})")
    print(f"API requests             {len(standin.asked)} ({len(standin.asked) / len(sent):.1f} per fetch)")
    print(f"seconds per fetch        {sum(fetch_seconds) / len(fetch_seconds):.3f} "
          f"(max {max(fetch_seconds):.3f}); whole replay {total:.1f} s")


if __name__ == "__main__":
    main()
