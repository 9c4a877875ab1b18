"""The pages of a card's links and the reader's signals (issue 15), in-process on SQLite and PostgreSQL: a GET
shows one button and records nothing, a POST without cookie records and says what changes, bad tokens get the
one 400 page, the preferences page lists, removes and clears signals and takes seeds (ids, BibTeX, CSL JSON),
and a tracked click redirects only to the paper's own stored link."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from web_support import add_edition, csrf_of

from newsletter.store.signals import reader_signals
from newsletter.tokens import CardSigner

EMAIL = "ada@example.org"


def _setup(web: Any) -> tuple[Any, dict[str, int], CardSigner]:
    add_edition(web.store, web.settings)
    reader = web.store.add_subscriber(EMAIL)
    papers = {p.title: p.id for p in web.store.papers()}
    return reader, papers, CardSigner(web.subs.key)


def _card(web: Any, cards: CardSigner, sid: int, pid: int, age: timedelta = timedelta()) -> str:
    return cards.sign(sid, pid, web.clock.now - age)


def test_a_more_link_shows_one_button_and_its_post_without_cookie_records_the_signal(web_db: Any) -> None:
    web = web_db
    reader, papers, cards = _setup(web)
    token = _card(web, cards, reader.id, papers["Fast KV caches"], timedelta(days=20))
    client = web.client()
    page = client.get(f"/more/{token}")
    assert page.status_code == 200 and page.text.count("<button") == 1
    assert "Fast KV caches" in page.text and "What is kept" in page.text
    assert client.head(f"/more/{token}").status_code == 200
    assert reader_signals(web.store.engine, reader.id) == []  # a GET (a link scanner's) records nothing
    fresh = web.client(ip="203.0.113.9")  # a mail client: no cookie, no CSRF token
    done = fresh.post(f"/more/{token}")
    assert done.status_code == 200 and "Noted: more like this" in done.text and "rank higher" in done.text
    assert [(s.paper_id, s.kind) for s in reader_signals(web.store.engine, reader.id)] == [(papers["Fast KV caches"], "more")]
    assert fresh.post(f"/more/{token}").status_code == 200  # again: the same answer, nothing more
    assert len(reader_signals(web.store.engine, reader.id)) == 1
    fewer = fresh.post(f"/fewer/{token}")
    assert "Noted: fewer like this" in fewer.text and "rank lower" in fewer.text
    assert [s.kind for s in reader_signals(web.store.engine, reader.id)] == ["fewer"]


def test_bad_card_tokens_get_the_one_invalid_link_page(web_db: Any) -> None:
    web = web_db
    reader, papers, cards = _setup(web)
    good = _card(web, cards, reader.id, papers["Robot hands"])
    forged = CardSigner(b"not the key, but long enough!!!").sign(reader.id, papers["Robot hands"], web.clock.now)
    client = web.client()
    for bad in (forged, good[:-1] + ("A" if good[-1] != "A" else "B"), "x" * 24, "short",
                _card(web, cards, reader.id, papers["Robot hands"], timedelta(days=400)),
                _card(web, cards, reader.id + 99, papers["Robot hands"]), _card(web, cards, reader.id, 10**6)):
        for method in (client.get, client.post):
            answer = method(f"/more/{bad}")
            assert answer.status_code == 400 and "invalid or has expired" in answer.text and bad not in answer.text
    assert client.get(f"/sideways/{good}").status_code == 404
    assert reader_signals(web.store.engine, reader.id) == []


def test_the_preferences_page_lists_signals_removes_one_and_clears_all(web_db: Any) -> None:
    web = web_db
    reader, papers, cards = _setup(web)
    client = web.client()
    for title, action in (("Fast KV caches", "more"), ("Robot hands", "fewer"), ("Speculative decoding at scale", "more")):
        client.post(f"/{action}/{_card(web, cards, reader.id, papers[title])}")
    prefs = client.get(f"/preferences?token={web.token('preferences', reader.id)}")
    assert prefs.status_code == 200 and "Your signals" in prefs.text and "What is kept" in prefs.text
    assert all(t in prefs.text for t in ("Fast KV caches", "Robot hands", "Fewer like this"))
    form = {"csrf_token": csrf_of(prefs.text), "token": web.token("preferences", reader.id)}
    removed = client.post("/preferences/signals", data={**form, "paper_id": str(papers["Robot hands"])})
    assert removed.status_code == 200 and "Removed" in removed.text
    assert {s.paper_id for s in reader_signals(web.store.engine, reader.id)} == {
        papers["Fast KV caches"], papers["Speculative decoding at scale"]}
    cleared = client.post("/preferences/signals", data={**form, "clear": "1"})
    assert "Removed all 2" in cleared.text and "No signals yet" in cleared.text
    assert reader_signals(web.store.engine, reader.id) == []
    assert client.post("/preferences/signals", data={**form, "token": "nope", "clear": "1"}).status_code == 400
    assert client.post("/preferences/signals", data={"token": form["token"], "clear": "1"}).status_code == 403


def test_seeds_from_pasted_ids_bibtex_and_csl_json_match_stored_papers(web_db: Any) -> None:
    web = web_db
    reader, papers, _cards = _setup(web)
    client = web.client()
    url = f"/preferences?token={web.token('preferences', reader.id)}"
    form = {"csrf_token": csrf_of(client.get(url).text), "token": web.token("preferences", reader.id)}
    pasted = client.post("/preferences/seeds", data={**form, "ids": "arXiv:2503.00000v2\nhttps://arxiv.org/abs/9999.99999"})
    assert pasted.status_code == 200 and "Read 2 entries: 1 are papers" in pasted.text and "1 are not here" in pasted.text
    bib = b"@article{k, title={Speculative {D}ecoding at Scale}, author={A}}\n@misc{x, eprint={2503.00002}, archivePrefix={arXiv}}"
    up = client.post("/preferences/seeds", data=form, files={"file": ("library.bib", bib, "application/x-bibtex")})
    assert up.status_code == 200 and "2 are papers" in up.text
    csl = json.dumps([{"title": "Fast KV caches", "type": "article"}]).encode()
    client.post("/preferences/seeds", data=form, files={"file": ("zotero.json", csl, "application/json")})
    kinds = {s.paper_id: s.kind for s in reader_signals(web.store.engine, reader.id)}
    assert kinds == {papers["Fast KV caches"]: "seed", papers["Speculative decoding at scale"]: "seed",
                     papers["Robot hands"]: "seed"}
    bad = client.post("/preferences/seeds", data=form, files={"file": ("x.json", b"[not json", "application/json")})
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    nothing = client.post("/preferences/seeds", data={**form, "ids": "hello world"})
    assert nothing.status_code == 400 and "No arXiv id found" in nothing.text
    big = client.post("/preferences/seeds", data=form,
                      files={"file": ("big.bib", b"@misc{a, title={x}}\n" * 5000, "text/plain")})
    assert big.status_code == 413  # web.max_body_bytes, with its own page
    assert len(reader_signals(web.store.engine, reader.id)) == 3  # what failed stored nothing


def test_a_tracked_click_records_a_weak_positive_and_redirects_only_to_the_papers_own_link(make_web: Any) -> None:
    web = make_web(tracking={"clicks": True})
    reader, papers, cards = _setup(web)
    token = _card(web, cards, reader.id, papers["Robot hands"])
    client = web.client()
    answer = client.get(f"/r/{token}?url=https://evil.example/&next=https://evil.example/")
    assert answer.status_code == 303 and answer.headers["location"] == "https://arxiv.org/abs/2503.00002"
    assert [s.kind for s in reader_signals(web.store.engine, reader.id)] == ["click"]
    client.post(f"/more/{token}")
    client.get(f"/r/{token}")  # a click never overrides "more"
    assert [s.kind for s in reader_signals(web.store.engine, reader.id)] == ["more"]
    assert client.get("/r/" + "x" * 24).status_code == 400


def test_without_click_tracking_a_card_link_redirects_and_records_nothing(web: Any) -> None:
    reader, papers, cards = _setup(web)
    answer = web.client().get(f"/r/{_card(web, cards, reader.id, papers['Robot hands'])}")
    assert answer.status_code == 303 and reader_signals(web.store.engine, reader.id) == []


def test_the_web_copy_of_a_reader_with_signals_is_in_their_order_with_their_for_you_block(web_db: Any) -> None:
    """Ada marked 3D papers: her web copy (every paper of her digest) opens with the For you block her email
    had, each with its reason, and her sections follow her order; Bob, with no signals, shares the digest and
    his copy is today's. Both copies stay private and cached apart."""
    import re
    from datetime import date, datetime, timezone
    from email import message_from_bytes, policy
    from pathlib import Path

    from markupsafe import escape
    from support import PAGES

    from newsletter.pipeline import Newsletter
    from newsletter.store.signals import record_signals

    web = web_db
    nl = Newsletter(web.settings, web.store)
    nl.import_file(PAGES["mar14"], date(2025, 3, 14))
    ada = web.store.add_subscriber(EMAIL)
    bob = web.store.add_subscriber("bob@example.org")
    threed = [p.id for p in web.store.papers() if p.topic == "3d"][:4]
    record_signals(web.store.engine, ada.id, threed, "more", datetime(2025, 3, 14, 6, tzinfo=timezone.utc))
    eid = nl.send("daily", date(2025, 3, 14), fetch=False).edition_id
    nl.close()
    mails = {}
    for eml in Path(web.settings.outbox_dir).iterdir():
        parsed = message_from_bytes(eml.read_bytes(), policy=policy.default)
        mails[str(parsed["To"])] = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    block = mails[EMAIL].split("\nFor you\n=======\n", 1)[1].split("\n\n\nTOP PAPERS", 1)[0]
    emailed = [line[2:] for line in block.split("\n") if line.startswith("* ")]  # each pick's title (first line)
    client = web.client()
    mine = client.get(f"/editions/{eid}/yours?token={web.token('web-copy', ada.id)}")
    his = client.get(f"/editions/{eid}/yours?token={web.token('web-copy', bob.id)}")
    assert mine.status_code == his.status_code == 200 and mine.headers["cache-control"] == "private, no-store"
    assert 'id="for-you"' in mine.text and 'id="for-you"' not in his.text and "For you" not in his.text
    shown = mine.text.split('id="for-you"', 1)[1].split("</section>", 1)[0]
    assert shown.count('<article class="paper">') == len(emailed) >= 3 and "Because you liked" in shown
    assert all(str(escape(title.strip()))[:40] in shown for title in emailed)  # the email's picks
    titles = re.compile(r'<div class="ptitle"[^>]*>(?:<a [^>]*>)?([^<]+)')
    body = mine.text.split("</section>", 2)[2]
    assert sorted(titles.findall(body)) == sorted(titles.findall(his.text.split("</section>", 1)[1]))
    assert titles.findall(body) != titles.findall(his.text.split("</section>", 1)[1])  # her own order
    assert client.get(f"/editions/{eid}/yours?token={web.token('web-copy', ada.id)}").text == mine.text
