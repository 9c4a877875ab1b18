"""The 48 archived days of the Daily Papers API (../shared/data/real/hf-api-days/), replayed day by day
through a loopback stand-in whose lists grow through the day: a daily reader gets every paper of every day
exactly once. Skipped, saying why, where the real data is absent."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from newsletter import config
from newsletter.models import paper_key
from newsletter.pipeline import Newsletter

from support import GrowingDailyPapers, archived_days, replay_daily_sends


def test_a_daily_reader_gets_every_paper_of_the_48_days_exactly_once(real_data, httpserver, tmp_path, capsys):
    lists = archived_days(real_data)
    assert len(lists) == 48 and sum(len(v) for v in lists.values()) == 806
    standin = GrowingDailyPapers(lists)
    httpserver.expect_request("/api/daily_papers").respond_with_handler(standin.handler)
    settings = config.from_mapping(
        {"database_url": f"sqlite:///{tmp_path / 'replay.db'}",
         "sources": [{"type": "huggingface", "base_url": httpserver.url_for("/").rstrip("/"), "retries": 0}],
         "digest": {"max_papers": 1000, "max_per_topic": 1000}},
        environ={}, base_dir=tmp_path)
    nl = Newsletter(settings)
    nl.store.add_subscriber("reader@example.org")

    sent = replay_daily_sends(nl, standin, sorted(lists))

    delivered = [key for keys in sent.values() for key in keys]
    listed = {paper_key(i["paper"]["id"], i["paper"]["title"]) for items in lists.values() for i in items}
    assert len(delivered) == len(set(delivered))  # nothing twice
    assert set(delivered) == listed  # nothing missed: every paper of every day
    # Every fetch succeeded (replay_daily_sends checks it): no day after the stand-in's today was asked.
    # What one read per day at its morning send would have seen (the behaviour before issue 10).
    early = set()
    for day, items in lists.items():
        if day.weekday() < 5:
            send = datetime.combine(day, time(8), ZoneInfo("Europe/Berlin")).astimezone(ZoneInfo("UTC"))
            stamp = send.strftime("%Y-%m-%dT%H:%M:%S.999Z")
            early |= {paper_key(i["paper"]["id"], i["paper"]["title"]) for i in items
                      if GrowingDailyPapers.listed_at(i) <= stamp}
    with capsys.disabled():
        print(f"\n48-day replay: {len(listed)} distinct papers listed ({sum(len(v) for v in lists.values())} "
              f"items), {len(delivered)} delivered to the daily reader in {len([s for s in sent.values() if s])} "
              f"digests over {len(sent)} sends ({len(standin.asked)} API requests); one read per day at its 08:00 "
              f"send would have had {len(early)}")
    nl.close()
