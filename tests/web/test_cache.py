"""Public pages rendered once and served with ETag/304 and gzip (web/cache.py): edition pages, the archive and
the feeds; the readers' web copies cached per digest but private; what invalidates (a cancelled edition, an
erasure, a paper's new counts, other settings or templates); and a real `newsletter serve` process."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
from markupsafe import escape
from support import PAGES, wait_listening
from web_support import add_edition, free_port, make_settings

from newsletter.models import FetchedPaper, SourceBatch
from newsletter.store import Store
from newsletter.store.control import change_state
from newsletter.store.editions import delivery_digest_id, digest_paper_ids
from newsletter.store.readers import erase
from newsletter.web.cache import Page, PageCache, accepts_gzip, fingerprint, not_modified

GZ = {"accept-encoding": "gzip"}


def raw_get(client: Any, path: str, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
    """The response and its bytes as sent (httpx would undo the gzip)."""
    with client.stream("GET", path, headers=headers or {}) as response:
        return response, b"".join(response.iter_raw())


def sent_edition(web: Any, *readers: tuple[str, list[str] | None]) -> int:
    """The Mar 14 sample page sent to ``readers`` (email, topics) as `newsletter send` does: the edition id."""
    from newsletter.pipeline import Newsletter

    nl = Newsletter(web.settings, web.store)
    nl.import_file(PAGES["mar14"], date(2025, 3, 14))
    for email, topics in readers:
        web.store.add_subscriber(email, topics=topics)
    report = nl.send("daily", date(2025, 3, 14), fetch=False)
    nl.close()
    assert report.edition_id is not None
    return int(report.edition_id)


# --- ETag, 304, gzip, HEAD -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/editions/{eid}", "/editions", "/feed.atom", "/feed.json"])
def test_public_pages_have_a_strong_etag_and_answer_a_matching_if_none_match_with_304(web: Any, path: str) -> None:
    eid = add_edition(web.store, web.settings)
    client = web.client()
    url = path.format(eid=eid)
    first = client.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=300"
    assert first.headers["vary"] == "Accept-Encoding" and "set-cookie" not in first.headers
    assert client.get(url).headers["etag"] == etag  # the same bytes, the same tag
    for matching in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = client.get(url, headers={"if-none-match": matching})
        assert again.status_code == 304 and again.content == b"", matching
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "public, max-age=300"
        assert again.headers["content-security-policy"]  # the security headers on a 304 too
    assert client.get(url, headers={"if-none-match": '"stale"'}).status_code == 200


@pytest.mark.parametrize("path", ["/editions/{eid}", "/editions", "/feed.atom", "/feed.json"])
def test_gzip_round_trips_to_the_plain_body_with_its_own_etag(web: Any, path: str) -> None:
    eid = add_edition(web.store, web.settings)
    client = web.client()
    url = path.format(eid=eid)
    plain, plain_bytes = raw_get(client, url, {"accept-encoding": "identity"})
    packed, packed_bytes = raw_get(client, url, GZ)
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed_bytes) == plain_bytes and len(packed_bytes) < len(plain_bytes)
    assert int(packed.headers["content-length"]) == len(packed_bytes)
    assert plain.headers["vary"] == packed.headers["vary"] == "Accept-Encoding"
    assert plain.headers["content-type"] == packed.headers["content-type"]
    assert packed.headers["etag"] != plain.headers["etag"]  # one strong tag per representation
    assert client.get(url, headers={**GZ, "if-none-match": packed.headers["etag"]}).status_code == 304
    # the other representation's tag is not this one's
    assert client.get(url, headers={**GZ, "if-none-match": plain.headers["etag"]}).status_code == 200
    refused, _ = raw_get(client, url, {"accept-encoding": "gzip;q=0, *;q=1"})
    assert "content-encoding" not in refused.headers


def test_head_answers_the_headers_of_get_without_a_body(web: Any) -> None:
    eid = add_edition(web.store, web.settings)
    client = web.client()
    for headers in ({}, GZ):
        get, body = raw_get(client, f"/editions/{eid}", headers)
        head = client.head(f"/editions/{eid}", headers=headers)
        assert head.status_code == 200 and head.content == b""
        for name in ("etag", "content-length", "content-type", "cache-control", "vary"):
            assert head.headers[name] == get.headers[name], name
        assert int(head.headers["content-length"]) == len(body)


def test_an_edition_is_rendered_once_and_the_cache_stays_within_its_bound(web: Any) -> None:
    eid = add_edition(web.store, web.settings)
    cache: PageCache = web.app.state.web.pages
    client = web.client()
    for _ in range(5):
        assert client.get(f"/editions/{eid}").status_code == 200
    assert cache.misses == 1 and cache.hits == 4

    small = PageCache(max_bytes=3000)
    pages = [Page.of(f"<p>{i}</p>".encode() * 100, "text/html") for i in range(4)]
    for i, page in enumerate(pages):
        small.put(i, page)
        assert small.bytes <= 3000
    assert len(small) < 4 and small.get(3) is pages[3] and small.get(0) is None  # the oldest went first
    nothing = PageCache(max_bytes=0)
    nothing.put("k", pages[0])
    assert len(nothing) == 0


def test_accept_encoding_and_if_none_match_are_parsed_as_the_rfc_says() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*") and accepts_gzip("x-gzip")
    assert accepts_gzip("deflate, GZIP ; q=1.0")
    assert not accepts_gzip(None) and not accepts_gzip("") and not accepts_gzip("br, deflate")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0") and not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("gzip;q=nonsense")
    assert not_modified('"abc"', '"abc"') and not_modified('W/"abc"', '"abc"') and not_modified("*", '"x"')
    assert not_modified('"a, b", "abc"', '"abc"')
    assert not not_modified(None, '"abc"') and not not_modified('"abcd"', '"abc"') and not not_modified("abc", '"abc"')


# --- readers' web copies ----------------------------------------------------------------------------------


def test_web_copies_are_cached_per_digest_never_mixed_between_readers_and_never_shared_cached(web_db: Any) -> None:
    web = web_db
    eid = sent_edition(web, ("ada@example.org", ["quantization"]), ("bob@example.org", ["robotics"]),
                       ("cy@example.org", ["quantization"]))
    ada, bob, cy = (web.store.subscriber(e) for e in ("ada@example.org", "bob@example.org", "cy@example.org"))
    client = web.client()

    def copy(reader: Any, **headers: str) -> Any:
        return client.get(f"/editions/{eid}/yours?token={web.token('web-copy', reader.id)}", headers=headers)

    pages = {r.email: copy(r) for r in (ada, bob, cy, ada, bob)}
    papers = {p.id: p for p in web.store.papers()}
    for reader in (ada, bob):
        page = pages[reader.email]
        assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
        assert "set-cookie" not in page.headers
        digest = digest_paper_ids(web.store.engine, delivery_digest_id(web.store.engine, eid, reader.id))
        assert digest and page.text.count('<article class="paper">') == len(digest)  # their papers, no other
        assert all(str(escape(papers[pid].title)) in page.text for pid in digest)
    assert pages["ada@example.org"].text != pages["bob@example.org"].text
    assert pages["cy@example.org"].text == pages["ada@example.org"].text  # one digest, one page
    assert pages["cy@example.org"].headers["etag"] == pages["ada@example.org"].headers["etag"]
    # The token is checked on every request: a bad one after good ones never gets a cached copy.
    for bad in (web.token("unsubscribe", ada.id), web.token("web-copy", ada.id)[:-3] + "abc", ""):
        answer = client.get(f"/editions/{eid}/yours?token={bad}")
        assert answer.status_code == 400 and "Fast" not in answer.text
    # A reader the edition never reached has no copy; the public page holds every paper.
    dee = web.store.add_subscriber("dee@example.org")
    assert client.get(f"/editions/{eid}/yours?token={web.token('web-copy', dee.id)}").status_code == 404
    public = client.get(f"/editions/{eid}")
    assert public.headers["cache-control"].startswith("public") and public.text != pages["ada@example.org"].text
    assert copy(ada, **{"if-none-match": pages["ada@example.org"].headers["etag"]}).status_code == 304


# --- what invalidates -------------------------------------------------------------------------------------


def test_a_cancelled_edition_leaves_its_page_the_archive_and_the_feeds_but_not_its_readers_copies(web_db: Any) -> None:
    web = web_db
    eid = sent_edition(web, ("ada@example.org", None))
    ada = web.store.subscriber("ada@example.org")
    client = web.client()
    urls = ("/editions", "/feed.atom", "/feed.json", "/api/editions")
    before = {url: client.get(url) for url in urls}
    assert client.get(f"/editions/{eid}").status_code == 200
    assert all(f"/editions/{eid}" in r.text for r in before.values())
    change_state(web.store.engine, eid, "cancel")
    assert client.get(f"/editions/{eid}").status_code == 404
    assert client.get(f"/api/editions/{eid}").status_code == 404
    for url in urls:
        after = client.get(url, headers={"if-none-match": before[url].headers.get("etag", '"-"')})
        assert after.status_code == 200 and f"/editions/{eid}" not in after.text, url
    mine = client.get(f"/editions/{eid}/yours?token={web.token('web-copy', ada.id)}")
    assert mine.status_code == 200 and mine.headers["cache-control"] == "private, no-store"


def test_an_erasure_reaches_the_cached_pages(web_db: Any) -> None:
    """An address scrubbed from a paper's title by the GDPR erasure is gone from the cached page and feed at
    once; the erased reader's web copy link gets the bad-link answer."""
    web = web_db
    address = "zoe.erased@example.org"
    eid = add_edition(web.store, web.settings, titles=(f"Data by {address}", "Speculative decoding", "Robot hands"))
    client = web.client()
    page, feed = client.get(f"/editions/{eid}"), client.get("/feed.atom")
    assert address in page.text and address in feed.text
    zoe = web.store.add_subscriber(address)
    erase(web.store, address)
    after = client.get(f"/editions/{eid}", headers={"if-none-match": page.headers["etag"]})
    assert after.status_code == 200 and address not in after.text and "Speculative decoding" in after.text
    assert address not in client.get("/feed.atom").text
    assert client.get(f"/editions/{eid}/yours?token={web.token('web-copy', zoe.id)}").status_code == 400


def test_new_counts_of_a_paper_make_a_new_page(web_db: Any) -> None:
    web = web_db
    eid = add_edition(web.store, web.settings)
    client = web.client()
    first = client.get(f"/editions/{eid}")
    web.clock.advance(minutes=5)
    again = FetchedPaper(title="Fast KV caches", abstract="We study fast kv caches.", arxiv_id="2503.00000", upvotes=999)
    web.store.ingest([SourceBatch("test", date(2025, 3, 15), [again])], now=web.clock.now)
    second = client.get(f"/editions/{eid}", headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 200 and "999 upvotes" in second.text
    assert second.headers["etag"] != first.headers["etag"]


def test_the_key_holds_the_settings_and_the_templates(tmp_path: Path, make_web: Any) -> None:
    one = make_web()
    other = one.settings.model_copy(update={"site_url": "https://papers.example.org"})
    assert fingerprint(one.settings, Path(__file__)) != fingerprint(other, Path(__file__))
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "edition.html").write_text("one")
    before = fingerprint(one.settings, templates)
    (templates / "edition.html").write_text("two")
    changed = fingerprint(one.settings, templates)
    assert changed != before
    (templates / "static").mkdir()
    (templates / "static" / "site.css").write_text("x")  # served as a file with its own ETag, in no page
    assert fingerprint(one.settings, templates) == changed


# --- a real server --------------------------------------------------------------------------------------


class Serve:
    """`newsletter serve --no-scheduler` in a process of its own."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "NEWSLETTER_SIGNING_KEY": "k" * 64}
        self.proc = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "serve",
                                      "--no-scheduler", "--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(self.proc, self.port, 40, "newsletter serve did not start")
        except RuntimeError:
            self.stop()
            raise

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers={"host": "127.0.0.1", **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, Serve, int]]:
    tmp = tmp_path_factory.mktemp("cache")
    settings = make_settings(tmp)
    store = Store.open(settings.resolved_database_url)
    eid = add_edition(store, settings, titles=tuple(f"Paper number {i} on attention" for i in range(45)))
    store.close()
    first = Serve(tmp / "config.yaml")
    try:
        second = Serve(tmp / "config.yaml")
    except Exception:
        first.stop()
        raise
    yield first, second, eid
    first.stop()
    second.stop()


def test_a_real_server_process_serves_etag_304_gzip_and_head(two_servers: tuple[Serve, Serve, int]) -> None:
    server, _, eid = two_servers
    for path in (f"/editions/{eid}", "/feed.atom", "/feed.json", "/editions"):
        status, plain, body = server.request("GET", path)
        assert status == 200 and plain["vary"] == "Accept-Encoding" and "etag" in plain, path
        status, packed, packed_body = server.request("GET", path, GZ)
        assert status == 200 and packed["content-encoding"] == "gzip" and gzip.decompress(packed_body) == body
        status, head, head_body = server.request("HEAD", path, GZ)
        assert status == 200 and head_body == b"" and head["content-length"] == str(len(packed_body))
        assert head["etag"] == packed["etag"]
        status, same, nothing = server.request("GET", path, {**GZ, "if-none-match": packed["etag"]})
        assert status == 304 and nothing == b"" and same["etag"] == packed["etag"]
    status, _, body = server.request("GET", f"/editions/{eid}")
    assert body.count(b'<article class="paper">') == 45


def test_two_worker_processes_serve_the_same_bytes_and_etags(two_servers: tuple[Serve, Serve, int]) -> None:
    """Each worker has its own cache; the tag is a hash of the body, so a 304 holds whichever answers."""
    first, second, eid = two_servers
    for path in (f"/editions/{eid}", "/feed.atom", "/editions"):
        for headers in ({}, GZ):
            a, b = first.request("GET", path, headers), second.request("GET", path, headers)
            assert a[1]["etag"] == b[1]["etag"] and a[2] == b[2], path
            assert second.request("GET", path, {**headers, "if-none-match": a[1]["etag"]})[0] == 304


def test_with_the_cache_off_every_request_renders_and_still_revalidates(make_web: Any) -> None:
    web = make_web(web={"page_cache_mb": 0})
    eid = add_edition(web.store, web.settings)
    client = web.client()
    first, second = client.get(f"/editions/{eid}", headers=GZ), client.get(f"/editions/{eid}", headers=GZ)
    assert web.app.state.web.pages.misses == 2 and len(web.app.state.web.pages) == 0
    assert first.text == second.text and first.headers["etag"] == second.headers["etag"]
    assert "content-encoding" not in first.headers  # not worth compressing for one answer
    assert client.get(f"/editions/{eid}", headers={"if-none-match": first.headers["etag"]}).status_code == 304
