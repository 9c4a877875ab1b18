"""For you end to end (issue 15): `newsletter send` through a real SMTP server on 127.0.0.1 delivers digests
whose cards carry each reader's own "more / fewer like this" links; a reader follows some of them (the one-button
page, then its POST, through the real web app), and the next edition gives that reader their own order and a
"For you" block, while another reader's digest keeps today's order. Never a paper twice."""

from __future__ import annotations

import re
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from mailkit import MailServer
from support import PAGES
from test_cli_deliver import run, write_config

from newsletter import config
from newsletter.store import Store
from newsletter.store.sent import parse_history, reader_batches, sent_digests
from newsletter.store.signals import reader_signals
from newsletter.tokens import CardSigner, signing_key
from newsletter.web import create_app

ADA, BOB = "ada@example.org", "bob@example.org"
LINK = re.compile(r"^\s*(More|Fewer) like this: (\S+)$", re.M)


def texts(smtpd: MailServer) -> dict[str, str]:
    out = {}
    for received in smtpd.handler.received:
        parsed = message_from_bytes(received.data, policy=policy.default)
        out[received.rcpt] = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    return out


def card_ids(text: str, key: bytes) -> list[int]:
    """The paper of each card of a text part, in order, read from its signed "More like this" link (signed when
    the delivery was queued: now, whatever ``--date`` says)."""
    signer = CardSigner(key)
    return [signer.verify(u.rsplit("/", 1)[1]).paper_id for k, u in LINK.findall(text) if k == "More"]


def use_page(cfg: Path, name: str, day: str) -> None:
    data = yaml.safe_load(cfg.read_text())
    data["sources"] = [{"type": "hf-page", "path": str(PAGES[name]), "trending_date": day}]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def test_following_more_links_gives_the_reader_their_own_order_and_a_for_you_block(tmp_path: Path,
                                                                                    smtpd: MailServer) -> None:
    cfg = write_config(tmp_path, smtpd.port)
    for email in (ADA, BOB):
        run(cfg, "subscribers", "add", email)
    run(cfg, "send", "--date", "2025-03-14")
    first = texts(smtpd)
    assert set(first) == {ADA, BOB}
    settings = config.load(cfg, {})
    store = Store.open(settings.resolved_database_url)
    try:
        key = signing_key(settings.signing_key, store.get_state, store.add_state)
        ada_id = store.subscriber(ADA).id
        ada_links = LINK.findall(first[ADA])
        assert ada_links and len(ada_links) == 2 * first[ADA].count("More like this: ")
        assert not {u for _k, u in ada_links} & {u for _k, u in LINK.findall(first[BOB])}  # each reader's own
        assert "For you" not in first[ADA]  # no signals yet: today's digest
        assert card_ids(first[ADA], key) == card_ids(first[BOB], key)  # the same papers, in the same order

        # Ada marks the 3D papers of her digest "more like this" and one other "fewer", in the web app.
        papers = {p.id: p for p in store.papers()}
        ids = card_ids(first[ADA], key)
        threed = [i for i in ids if papers[i].topic == "3d"][:4]
        other = next(i for i in ids if papers[i].topic in ("quantization", "hardware", "training"))
        assert len(threed) >= 3
        urls = {k: {} for k in ("More", "Fewer")}  # kind -> paper id -> URL
        for kind, url in ada_links:
            urls[kind][CardSigner(key).verify(url.rsplit("/", 1)[1]).paper_id] = url
        app = create_app(settings, store, production=False, environ={})
        with TestClient(app, base_url=settings.site_url, follow_redirects=False) as client:
            for pid, kind in [(i, "More") for i in threed] + [(other, "Fewer")]:
                path = urls[kind][pid].removeprefix(settings.site_url)
                assert client.get(path).status_code == 200  # the one-button page records nothing
                assert client.post(path).status_code == 200
        assert sorted(s.kind for s in reader_signals(store.engine, ada_id)) == ["fewer"] + ["more"] * len(threed)
    finally:
        store.close()

    smtpd.handler.received.clear()
    use_page(cfg, "mar25", "2025-03-25")
    run(cfg, "send", "--date", "2025-03-25")
    second = texts(smtpd)
    ada, bob = second[ADA], second[BOB]
    assert "\nFor you\n=======\n" in ada and "For you" not in bob
    assert "Because you liked" in ada
    for_you = ada.split("\nFor you\n=======\n", 1)[1].split("\n\n\nTOP PAPERS", 1)[0]
    store = Store.open(settings.resolved_database_url)
    try:
        papers = {p.id: p for p in store.papers()}
        picks = card_ids(for_you, key)
        assert 1 <= len(picks) <= 5
        liked_3d = sum("3d" in (papers[i].topic, *papers[i].topics) for i in picks)
        assert liked_3d > len(picks) // 2, [papers[i].title for i in picks]
        ada_ids, bob_ids = card_ids(ada, key), card_ids(bob, key)
        assert len(ada_ids) == len(set(ada_ids))  # never a paper twice: a For you paper is a one-line reference
        assert all(f"-> For you {n}: " in ada for n in range(1, len(picks) + 1))
        assert ada_ids != bob_ids  # her own order; Bob, with no signals, keeps today's
        # What is recorded as sent to each is exactly what their email lists (every listed paper is a card).
        digests = sent_digests(store.engine, date(2025, 3, 20))
        for sid, _t, _e, history in next(reader_batches(store.engine, "daily", date(2025, 3, 20))):
            taken, _returned = parse_history(history, digests)
            assert taken == set(ada_ids if sid == ada_id else bob_ids)
    finally:
        store.close()

