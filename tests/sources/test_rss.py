"""Any RSS/Atom feed: entry mapping, HTML stripping, link hygiene, and refusal of entity tricks."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from newsletter.errors import ParseError, SourceError
from newsletter.sources import source_class
from newsletter.sources.rss import FeedSource, Options, html_to_text, parse_feed

DAY = date(2025, 3, 14)


def feed_source(httpserver, sleeps, path="/feed.xml", **options) -> FeedSource:
    return FeedSource("feed", Options(url=httpserver.url_for(path), **options), sleep=sleeps, today=DAY)


def serve(httpserver, body: bytes, path="/feed.xml", content_type="application/rss+xml"):
    httpserver.expect_request(path).respond_with_data(body, content_type=content_type)


def test_registered_under_its_type_name():
    assert source_class("rss") is FeedSource


def test_maps_rss_entries(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/reading_list.xml").read_bytes())

    batch = feed_source(httpserver, sleeps).fetch()

    assert batch.source == "feed" and batch.trending_date == DAY
    assert [p.rank for p in batch.papers] == [1, 2, 3, 4]
    flash = batch.papers[0]
    assert flash.title.startswith("FlashAttention-2: Faster Attention")
    assert flash.arxiv_id == "2307.08691"  # from the link, version dropped
    assert flash.url == "https://arxiv.org/abs/2307.08691v2"
    assert flash.authors == ["Tri Dao"]
    assert flash.published == date(2025, 3, 14)


def test_html_in_summaries_is_reduced_to_text(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/reading_list.xml").read_bytes())

    flash, kvquant = feed_source(httpserver, sleeps).fetch().papers[:2]

    assert flash.abstract == (
        "Why read it: FlashAttention-2 reaches 50\u201373% of the theoretical maximum FLOPs/s on A100 & is the "
        "default kernel in most stacks. Discussion on our notes page."
    )  # tags gone, entities decoded, the script's text dropped
    assert kvquant.abstract == (
        "3-bit KV cache quantization with <0.1 perplexity degradation. per-channel keys pre-RoPE quantization"
    )
    assert "<" not in flash.abstract and "alert" not in flash.abstract


def test_non_http_links_are_dropped_and_ids_found_elsewhere(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/reading_list.xml").read_bytes())

    papers = feed_source(httpserver, sleeps).fetch().papers

    kvquant, notes, vptq = papers[1], papers[2], papers[3]
    assert kvquant.url is None  # the javascript: link is not kept
    assert kvquant.arxiv_id == "2401.18079"  # but the guid names the paper
    assert notes.arxiv_id is None  # a blog path like /posts/1234567 is not an old-style arXiv id
    assert notes.url == "https://reading.example.org/posts/1234567"
    assert vptq.arxiv_id == "2409.17066" and vptq.url == "https://huggingface.co/papers/2409.17066"


def test_maps_atom_entries(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/atom_feed.xml").read_bytes(), content_type="application/atom+xml")

    vidu, rono = feed_source(httpserver, sleeps).fetch().papers

    assert vidu.title == "Vidu4D: Single Generated Video to High-Fidelity 4D Reconstruction"  # type="html" title
    assert vidu.url is None  # its only alternate link is a data: URL
    assert vidu.arxiv_id == "2405.16822"  # from the related pdf link
    assert vidu.abstract == "Dynamic Gaussian Surfels; a < b is kept as text, not a tag."
    assert vidu.authors == ["Yikai Wang", "Xinzhou Wang"]
    assert vidu.published == date(2025, 3, 13)
    assert rono.abstract == "Lagrangian dynamics on highly sparse graphs."
    assert rono.published == date(2025, 3, 12)  # no <published>: <updated>


def test_max_entries_keeps_the_first_ones(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/reading_list.xml").read_bytes())

    batch = feed_source(httpserver, sleeps, max_entries=2).fetch()

    assert [p.arxiv_id for p in batch.papers] == ["2307.08691", "2401.18079"]


def test_billion_laughs_is_refused_before_any_expansion(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/billion_laughs.xml").read_bytes())

    with pytest.raises(ParseError) as caught:
        feed_source(httpserver, sleeps).fetch()

    message = str(caught.value)
    assert httpserver.url_for("/feed.xml") in message
    assert "refused" in message and "'lol'" in message  # the entity declaration itself is refused
    assert sleeps.waits == []  # a parse error is final: no retry (the time is in bench/bench_limits.py)


def test_external_entity_is_refused_and_never_fetched(httpserver, sleeps):
    httpserver.expect_request("/secret.txt").respond_with_data("TOP SECRET")
    doc = f"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "{httpserver.url_for('/secret.txt')}">]>
<rss version="2.0"><channel><title>t</title><link>https://e.example/</link><description>d</description>
<item><title>&secret;</title><link>https://e.example/1</link></item></channel></rss>"""
    serve(httpserver, doc.encode())

    with pytest.raises(ParseError, match=r"refused: the document declares the XML entity 'secret'"):
        feed_source(httpserver, sleeps).fetch()
    assert [req.path for req, _ in httpserver.log] == ["/feed.xml"]  # /secret.txt was never requested


def test_the_recorded_file_entity_document_is_refused(data):
    with pytest.raises(ParseError, match=r"declares the XML entity 'secret'"):
        parse_feed((data / "rss/external_entity.xml").read_bytes(), "external_entity.xml")


def test_external_dtd_is_refused_and_never_fetched(httpserver, data, sleeps):
    httpserver.expect_request("/evil.dtd").respond_with_data('<!ENTITY x "boom">')
    doc = (data / "rss/external_dtd.xml").read_bytes().replace(
        b"http://127.0.0.1:9/evil.dtd", httpserver.url_for("/evil.dtd").encode()
    )
    serve(httpserver, doc)

    with pytest.raises(ParseError, match=r"refused: the document refers to an external DTD"):
        feed_source(httpserver, sleeps).fetch()
    assert [req.path for req, _ in httpserver.log] == ["/feed.xml"]


def test_the_rss_091_doctype_is_allowed(data):
    feed = parse_feed((data / "rss/rss091_doctype.xml").read_bytes(), "rss091_doctype.xml")
    assert feed.version == "rss091n"
    assert feed.entries[0].title.startswith("Mugs")


def test_a_foreign_document_is_refused(httpserver, data, sleeps):
    serve(httpserver, (data / "rss/not_a_feed.xml").read_bytes())

    with pytest.raises(ParseError, match=r"not an RSS or Atom feed"):
        feed_source(httpserver, sleeps).fetch()


def test_an_html_entity_in_a_feed_is_read_by_the_loose_parser(httpserver, data, sleeps):
    # &nbsp; is undefined in XML, so the document is not well-formed; it declares nothing, so it is read.
    serve(httpserver, (data / "rss/undefined_entity.xml").read_bytes())

    [one] = feed_source(httpserver, sleeps).fetch().papers

    assert one.title == "One" and one.url == "https://bad.example.org/1"


def test_a_truncated_feed_keeps_its_whole_entries(httpserver, data, sleeps):
    body = (data / "rss/reading_list.xml").read_bytes()
    cut = body.index(b"</item>", body.index(b"</item>") + 1) + len(b"</item>") + 20  # two items and a bit
    serve(httpserver, body[:cut])

    papers = feed_source(httpserver, sleeps).fetch().papers

    assert [p.arxiv_id for p in papers][:2] == ["2307.08691", "2401.18079"]


def test_an_ill_formed_document_with_declarations_is_refused(httpserver, sleeps):
    # expat stops at the stray "&" before it reaches the entity declaration; the loose parser never sees it.
    doc = b"""<?xml version="1.0"?>& <!DOCTYPE rss [<!ENTITY a "aaaa">]><rss version="2.0"><channel>
<title>&a;</title><item><title>&a; & b</title></item></channel></rss>"""
    serve(httpserver, doc)

    with pytest.raises(ParseError, match=r"not well-formed XML .*refused, as it also has a DOCTYPE"):
        feed_source(httpserver, sleeps).fetch()


def test_an_entry_without_a_title_is_skipped_with_its_reason(httpserver, sleeps):
    doc = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://e.example/</link>
<description>d</description><item><description>no title</description><link>https://e.example/1</link></item>
<item><title>Kept</title><link>https://e.example/2</link></item>
</channel></rss>"""
    serve(httpserver, doc)

    batch = feed_source(httpserver, sleeps).fetch()

    assert [p.title for p in batch.papers] == ["Kept"]
    assert batch.skipped == [f"{httpserver.url_for('/feed.xml')}: entry 1: the entry has no title"]


ITEM = "<item><title>{}</title><link>https://e.example/{}</link></item>"


@pytest.mark.parametrize("encoding", ["big5", "shift_jis", "euc-kr", "gb2312", "koi8-r", "windows-1255",
                                      "iso-8859-1", "utf-16"])
def test_every_encoding_python_knows_is_decoded(httpserver, sleeps, encoding):
    title = {"big5": "中文標題", "shift_jis": "日本語のタイトル", "euc-kr": "한국어 제목", "gb2312": "中文标题",
             "koi8-r": "Заголовок", "windows-1255": "כותרת", "iso-8859-1": "Título"}.get(encoding, "Ünïcode")
    doc = (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>t</title>'
           f"{ITEM.format(title, 1)}</channel></rss>")
    serve(httpserver, doc.encode(encoding))

    [paper] = feed_source(httpserver, sleeps).fetch().papers

    assert paper.title == title


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'<?xml version="1.0" encoding="bogus"?><rss version="2.0"><channel/></rss>',
         r"refused: the feed declares an unknown encoding \('bogus'\)$"),
        ('<?xml version="1.0"?><rss version="2.0"><channel><title>中文</title></channel></rss>'.encode("big5"),
         r"refused: the bytes are not UTF-8 \(at byte \d+\) and the feed declares no encoding$"),
        (b'<?xml version="1.0" encoding="shift_jis"?><rss><channel><title>\x81</title></channel></rss>',
         r"refused: the bytes are not valid shift_jis \(at byte \d+\)$"),
    ],
)
def test_an_undecodable_feed_is_a_one_line_error(httpserver, sleeps, body, expected):
    serve(httpserver, body)

    with pytest.raises(ParseError, match=expected) as caught:
        feed_source(httpserver, sleeps).fetch()
    assert "\n" not in str(caught.value) and httpserver.url_for("/feed.xml") in str(caught.value)


def test_http_failures_are_source_errors(httpserver, sleeps):
    httpserver.expect_request("/feed.xml").respond_with_data("gone", status=410)

    with pytest.raises(SourceError, match=r"HTTP 410"):
        feed_source(httpserver, sleeps).fetch()


def test_html_to_text():
    assert html_to_text("<p>One</p><p>Two<br/>Three</p>") == "One Two Three"
    assert html_to_text("x<b>bold</b>y &amp; z &lt;tag&gt; &#8212;") == "xboldy & z <tag> \u2014"
    assert html_to_text("<style>p{}</style>kept<script>drop()</script>") == "kept"


def test_options_are_validated():
    with pytest.raises(ValidationError):
        Options(url="file:///etc/passwd")
    with pytest.raises(ValidationError):
        Options(url="https://e.example/feed", max_entries=0)
    assert Options(url="https://e.example/feed").max_entries == 100


def test_the_servers_charset_is_used_only_when_the_document_says_nothing(httpserver, sleeps):
    undeclared = f"<rss version='2.0'><channel><title>t</title>{ITEM.format('Заголовок', 1)}</channel></rss>"
    serve(httpserver, undeclared.encode("koi8-r"), content_type="application/rss+xml; charset=KOI8-R")
    [paper] = feed_source(httpserver, sleeps).fetch().papers
    assert paper.title == "Заголовок"

    # A default charset some servers add to every text/* answer does not override the document's own.
    declared = f'<?xml version="1.0" encoding="utf-8"?>{undeclared}'
    serve(httpserver, declared.encode("utf-8"), path="/declared.xml", content_type="text/xml; charset=iso-8859-1")
    [paper] = feed_source(httpserver, sleeps, path="/declared.xml").fetch().papers
    assert paper.title == "Заголовок"
