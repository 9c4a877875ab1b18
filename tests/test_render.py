"""Rendering: filters, escaping exactly once, hostile papers in both parts, only http(s) links, the size
guard, and the templates themselves (mjml-python validates nothing, so these tests do)."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_sample import DAY, digest_of, hostile_paper, sample_digest, sample_papers, settings

from newsletter import render
from newsletter.models import DigestContent, Paper, TopicSection
from newsletter.render import RenderError, format_subject, render_digest
from newsletter.render.template_check import check_mjml, check_templates
from newsletter.render.textfilters import (
    MAX_FIELD_CHARS,
    SUMMARY_CHARS,
    clean,
    compact_number,
    cut_at_sentence,
    format_authors,
    format_day,
    safe_url,
    summary,
)

EDITION = "https://papers.example.org/editions/7"
VALUES = {"greeting": "Hi Ada,", "preferences_url": "https://papers.example.org/preferences?token=PREF",
          "unsubscribe_url": "https://papers.example.org/unsubscribe?token=UNSUB"}


class Page(HTMLParser):
    """What a browser would see: tags, attributes and text (entities decoded once)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @property
    def hrefs(self) -> list[str]:
        return [a["href"] or "" for t, a in self.tags if t == "a" and "href" in a]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def rendered_for(content: DigestContent, **overrides: object) -> tuple[str, str]:
    return render_digest(content, settings(**overrides), EDITION).fill(VALUES)


# --- filters ------------------------------------------------------------------------------------------------


def paper(**fields: object) -> Paper:
    base = dict(id=1, key="arxiv:2501.00001", title="T", abstract="", arxiv_id="2501.00001")
    base.update(fields)
    return Paper(**base)  # type: ignore[arg-type]


def test_authors_first_three_then_et_al() -> None:
    assert format_authors(paper(authors=("A",))) == "A"
    assert format_authors(paper(authors=("A", "B", "C"))) == "A, B, C"
    assert format_authors(paper(authors=("A", "B", "C", "D"))) == "A, B, C et al."
    assert format_authors(paper(author_count=4)) == "4 authors"
    assert format_authors(paper(author_count=1)) == "1 author"
    assert format_authors(paper()) == ""


def test_summary_prefers_the_ai_summary_else_cuts_the_abstract_at_a_sentence() -> None:
    abstract = ("We study X, e.g. in transformers, and find Y. " * 3 + "Then a very long sentence follows " * 20)
    cut = summary(paper(abstract=abstract))
    assert cut.endswith("find Y.") and len(cut) <= SUMMARY_CHARS
    assert "e.g. in" in cut  # "e.g." is not a sentence end
    assert summary(paper(abstract=abstract, ai_summary="Short AI summary.")) == "Short AI summary."
    one_long_sentence = "word " * 200
    cut = summary(paper(abstract=one_long_sentence))
    assert cut.endswith("…") and len(cut) <= SUMMARY_CHARS
    assert cut_at_sentence("Short. Text.", 100) == "Short. Text."


def test_a_one_megabyte_abstract_is_cut_from_its_beginning_only() -> None:
    """The summary reads a bounded prefix of the abstract (its cost does not grow with the abstract; the
    time is printed by bench/bench_limits.py): what follows the first few KB cannot change it."""
    head = ("A sentence of an abstract. " * 40_000)[:1_000_000]
    text = summary(paper(abstract=head))
    assert len(text) <= SUMMARY_CHARS and text.endswith(".")
    assert summary(paper(abstract=head[:SUMMARY_CHARS * 4])) == text
    tail_changed = head[:SUMMARY_CHARS * 4] + "<" * (len(head) - SUMMARY_CHARS * 4)  # clean() would touch it
    assert summary(paper(abstract=tail_changed)) == text


def test_safe_url_lets_only_absolute_http_urls_through() -> None:
    ok = ["https://arxiv.org/abs/2501.00001", "http://example.org/a?b=1&c=2#d", "HTTPS://EXAMPLE.ORG/x"]
    for url in ok:
        assert safe_url(url) == url
    bad = ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
           "data:text/html,<script>", "vbscript:x", "mailto:a@b.org", "//evil.example/x", "/relative",
           "https://huggingface.co@evil.example/", "https://ex ample.org", "https://example.org/\"onmouseover=x",
           "https://example.org/<script>", "https://exa\u202emple.org", "https://example.org/\u200b",
           "https://example.org:99999/", "https:///nohost", "", None, "https://" + "a" * 3000]
    for url in bad:
        assert safe_url(url) == "", url
    assert safe_url("https://example.org/papers/é") == "https://example.org/papers/%C3%A9"


def test_clean_removes_what_hides_or_reorders_text() -> None:
    assert clean("a\u202eb\u200bc\u2066d\u0000e\x1bf") == "abcdef"
    assert clean("  many \n\t spaces\u2028here ") == "many spaces here"
    assert clean("emoji 👩\u200d💻 keeps its joiner") == "emoji 👩\u200d💻 keeps its joiner"
    assert clean(None) == "" and len(clean("x" * 2_000_000)) == MAX_FIELD_CHARS


def test_dates_numbers_and_subject() -> None:
    assert format_day(date(2025, 3, 4)) == "Mar 4, 2025"
    assert [compact_number(n) for n in (952, 1850, 16240, 3_100_000)] == ["952", "1.9k", "16.2k", "3.1M"]
    content = sample_digest()
    # {count} is what the email lists (60: digest.max_papers), not every paper new to the reader (85).
    assert format_subject("Trending papers, {date}: {count} new in {topics} topics", content) == \
        f"Trending papers, Mar 14: 60 new in {content.topic_count} topics"
    assert format_subject("{top_title} and {more} more", content) == f"{content.top[0].title} and 25 more"
    with pytest.raises(RenderError, match="fields"):
        format_subject("{date.__class__.__mro__}", content)
    with pytest.raises(RenderError):
        format_subject("{unknown}", content)


# --- escaping and hostile input ---------------------------------------------------------------------------------


def hostile_digest() -> DigestContent:
    evil = hostile_paper()
    huge = hostile_paper(9002, title="A 1 MB abstract", abstract="Long sentence here. " * 52_429,
                         url="https://huggingface.co/papers/2503.99999?a=1&b=2")
    rtl = hostile_paper(9003, title="\u05e9\u05dc\u05d5\u05dd \u202eevil\u202c title", authors=("\u05d0\u05d1",))
    section = TopicSection("other", "More papers", (evil, huge, rtl), 3)
    return DigestContent("daily", "2025-03-14", DAY, (evil,), (section,))


def test_hostile_papers_are_escaped_exactly_once_in_html() -> None:
    html, _ = rendered_for(hostile_digest())
    page = Page(html)
    # Nothing from a paper became markup.
    assert not [t for t, _ in page.tags if t in ("script", "img", "svg", "iframe", "object", "b", "i")]
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    # What the reader sees is the title's own text, decoded once: "&amp;" shows as "&amp;", "<b>" as "<b>".
    shown = page.all_text
    assert '<script>alert("t")</script> &amp; RTL trick <b>bold</b> "quoted" \'single\'' in shown
    assert "&lt;script&gt;" in html and "&amp;amp;" in html and "&amp;amp;amp;" not in html
    assert "<b>Eve</b>, Mallory &amp; Co, evil et al." in shown
    # Bidi overrides and zero-width characters are gone from both the page and its attributes.
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200b]", html)
    assert "\u05e9\u05dc\u05d5\u05dd evil title" in shown


def test_hostile_papers_in_the_text_part_are_plain_and_clean() -> None:
    _, text = rendered_for(hostile_digest())
    assert '<script>alert("t")</script> &amp; RTL trick <b>bold</b>' in text  # plain text: not escaped
    assert "<img src=x onerror=alert(1)> &lt;escaped&gt; & raw." in text  # the abstract's own characters
    assert "&amp;amp;" not in text and "&#" not in text
    assert not re.search("[\u0000-\u0008\u000b-\u001f\u007f\u202a-\u202e\u2066-\u2069\u200b]", text)
    assert "javascript:" not in text and "data:" not in text
    assert "https://huggingface.co/papers/2503.99999?a=1&b=2" in text
    assert len(text) < 50_000  # the 1 MB abstract became a summary


def test_only_http_links_and_no_web_fonts() -> None:
    for content in (sample_digest(), hostile_digest()):
        html, _ = rendered_for(content)
        page = Page(html)
        assert page.hrefs
        for href in page.hrefs:
            assert href.startswith(("https://", "http://", "#")), href
        assert "javascript:" not in html.lower() and "data:" not in html.lower()
        assert not [a for t, a in page.tags if t == "link"]  # no stylesheet or font links
        assert "googleapis" not in html and "@import" not in html and "@font-face" not in html
        srcs = [a.get("src") for t, a in page.tags if "src" in a]
        assert not srcs  # no remote images: nothing loads, nothing tracks


def test_ampersands_in_urls_are_escaped_for_attributes() -> None:
    html, _ = rendered_for(hostile_digest())
    assert 'href="https://huggingface.co/papers/2503.99999?a=1&amp;b=2"' in html
    assert "https://huggingface.co/papers/2503.99999?a=1&b=2" in Page(html).hrefs


def test_a_forged_slot_marker_in_a_title_is_not_filled() -> None:
    content = sample_digest()
    marker = render_digest(content, settings(), EDITION).slots["unsubscribe_url"]
    sneaky = replace(content.sections[0].papers[0], title=f"Click {marker}")
    section = replace(content.sections[0], papers=(sneaky,) + content.sections[0].papers[1:])
    forged = replace(content, sections=(section,) + content.sections[1:])
    rendered = render_digest(forged, settings(), EDITION)
    assert rendered.slots["unsubscribe_url"] != marker
    html, text = rendered.fill(VALUES)
    assert f"Click {marker}" in Page(html).all_text and f"Click {marker}" in text


# --- both parts ---------------------------------------------------------------------------------------------------


def test_the_digest_has_every_section_with_anchors_counts_and_footer_links() -> None:
    content = sample_digest()
    rendered = render_digest(content, settings(), EDITION)
    html, text = rendered.fill(VALUES)
    page = Page(html)
    ids = {a.get("id") for _, a in page.tags if a.get("id")}
    for section in content.sections:
        assert f"topic-{section.slug}" in ids and f"#topic-{section.slug}" in page.hrefs
        assert section.name in text
    assert "top-papers" in ids
    for url in (VALUES["preferences_url"], VALUES["unsubscribe_url"], EDITION):
        assert url in page.hrefs and url in text
    assert "1 Example Street" in page.all_text and "1 Example Street" in text
    assert '<html lang="en"' in html and "prefers-color-scheme: dark" in html
    assert 'name="color-scheme" content="light dark"' in html
    # Card links point at the paper pages.
    for section in content.sections:
        for p in section.papers[:rendered.shown[section.slug]]:
            assert p.page_url in page.hrefs and p.page_url in text
    assert "Hi Ada," in page.all_text and "Hi Ada," in text


def test_the_text_part_is_written_for_plain_text() -> None:
    _, text = rendered_for(sample_digest())
    assert "<" not in text.replace("<b>", "") and "&amp;" not in text
    assert "TOP PAPERS\n==========" in text
    long_lines = [line for line in text.splitlines() if len(line) > 78 and "http" not in line]
    assert not long_lines
    url_lines = [line.strip() for line in text.splitlines() if "https://" in line]
    assert all(" " not in line.split("https://", 1)[1] for line in url_lines)  # a URL ends its line


def test_slot_markers_sit_alone_on_short_lines() -> None:
    rendered = render_digest(sample_digest(), settings(), EDITION)
    readers = [m for k, m in rendered.slots.items() if k != render.CARD_SLOT]
    for part in (rendered.html, rendered.text):
        lines = list(render.iter_slot_lines(part, readers))
        assert lines and all(len(line) < 200 for line in lines)
        # a card's token is on no line of the reader's other values (the fast path splices those lines apart)
        assert not [line for line in lines if rendered.slots[render.CARD_SLOT] in line]
    for marker in rendered.slots.values():
        assert marker in rendered.html


def test_every_card_carries_the_readers_own_more_and_fewer_links_in_both_parts() -> None:
    from newsletter.render.links import LinkMaker
    from newsletter.tokens import Signer

    content = sample_digest()
    rendered = render_digest(content, settings(), EDITION)
    links = LinkMaker("https://papers.example.org", "papers@example.org", Signer(b"k" * 32)).for_reader(42, 1_741_939_200)
    html, text = rendered.fill(VALUES, links.card)
    for pid in rendered.listed:
        token = links.card(pid)
        assert len(token) == 24
        assert html.count(f'href="https://papers.example.org/more/{token}"') == 1
        assert html.count(f'href="https://papers.example.org/fewer/{token}"') == 1
        assert f"More like this: https://papers.example.org/more/{token}\n" in text
        assert f"Fewer like this: https://papers.example.org/fewer/{token}\n" in text
    assert "%%nl-" not in html + text
    preview_html, _ = rendered.fill(VALUES)  # a preview: no reader, the links lead to the "not valid" page
    assert "/more/preview-card-not-a-link0" in preview_html


# --- the size guard ---------------------------------------------------------------------------------------------------


def bulky_digest(papers_per_topic: int = 12) -> DigestContent:
    papers = sample_papers()
    # 12 full sections (144 papers, more than digest.max_papers allows): the shipped taxonomy has 20 topics,
    # but a digest never holds 240 papers
    names = {t.slug: t.name for t in settings().topics[:12]}
    sections = []
    for i, (slug, name) in enumerate(names.items()):
        chosen = tuple(replace(p, id=1000 * i + p.id, topic=slug, ai_summary=None, authors=("A B", "C D", "E F", "G H"),
                               organization="Some Institute of Technology", upvotes=10, num_comments=2,
                               github_repo=f"https://github.com/example/repo-{p.id}", github_stars=1234,
                               project_page=f"https://example.org/project/{p.id}")
                       for p in papers[:papers_per_topic])
        sections.append(TopicSection(slug, name, chosen, papers_per_topic + 5))
    return DigestContent("daily", "2025-03-14", DAY, sections[0].papers[:3], tuple(sections))


def test_a_digest_that_would_be_clipped_by_gmail_is_shortened_with_links_to_the_web() -> None:
    content = bulky_digest()
    rendered = render_digest(content, settings(), EDITION)
    assert rendered.shortened
    html, _ = rendered.fill({**VALUES, "unsubscribe_url": VALUES["unsubscribe_url"] + "x" * 60})
    assert len(html.encode()) < render.SIZE_LIMIT
    page = Page(html)
    assert VALUES["unsubscribe_url"] + "x" * 60 in page.hrefs  # the footer survived
    more = [h for h in page.hrefs if h.startswith(EDITION + "#topic-")]
    assert len(more) >= len(content.sections) - 1
    assert re.search(r"\d+ more papers on .+ in your web copy", page.all_text)
    # The contents count what each section lists, and how many more the web copy holds.
    first = content.sections[0]
    assert f">{rendered.shown[first.slug]} + {first.total - rendered.shown[first.slug]} on the web</td>" in html


@pytest.mark.parametrize("limit", [30_000, 60_000])
def test_the_size_guard_drops_whole_sections_last(limit: int) -> None:
    """Sections are shortened first, down to one paper each; only then do whole sections go, from the end,
    and the contents say how many topics are left for the web copy."""
    content = bulky_digest()
    rendered = render_digest(content, settings(), EDITION, size_limit=limit)
    assert rendered.html_bytes < limit
    order = [s.slug for s in content.sections]
    shown = [rendered.shown[slug] for slug in order]
    dropped = shown.count(0)
    assert 0 < dropped < len(order)  # this limit does make the guard drop sections, and not all of them
    assert shown == [1] * (len(order) - dropped) + [0] * dropped  # every kept section is down to one paper
    # Sections left with nothing to show are still named in the contents, with their count in the web copy.
    page = Page(rendered.html)
    for section in content.sections:
        assert section.name in page.all_text and section.name in rendered.text
    assert "in your web copy" in page.all_text


def test_a_small_digest_is_not_shortened() -> None:
    rendered = render_digest(sample_digest(topics=["quantization"]), settings(), EDITION)
    assert not rendered.shortened and rendered.html_bytes < 60_000


# --- the templates ---------------------------------------------------------------------------------------------------


SHIPPED = {"digest.mjml", "_header.mjml", "_toc.mjml", "_top.mjml", "_section.mjml", "_card.mjml", "_footer.mjml",
           "digest.txt", "_card.txt"}


def test_every_shipped_template_is_used_and_the_whole_compiles_cleanly() -> None:
    folder = render.shipped_templates_dir()
    assert SHIPPED <= {p.name for p in folder.iterdir()}
    sources = "\n".join((folder / name).read_text() for name in SHIPPED)
    for name in SHIPPED - {"digest.mjml", "digest.txt"}:
        assert f'include "{name}"' in sources, f"{name} is not included anywhere"
    for content in (sample_digest(), hostile_digest(), sample_digest(topics=["3d"], top=0)):
        assert check_templates(settings(), content) == []
        html, _ = rendered_for(content)
        assert "<mj-" not in html and "</mj-" not in html


def test_the_mjml_checker_catches_what_mjml_python_lets_through() -> None:
    good = ("<mjml><mj-head><mj-style>a{}</mj-style></mj-head><mj-body><mj-section><mj-column>"
            "<mj-text><div><p>x</p></div></mj-text></mj-column></mj-section></mj-body></mjml>")
    assert check_mjml(good) == []
    bad = {
        "<mjml><mj-body><mj-column><mj-text>x</mj-text></mj-column></mj-body></mjml>": "cannot be inside <mj-body>",
        "<mjml><mj-head><mj-font name='x' href='y'/></mj-head><mj-body></mj-body></mjml>": "Google Fonts",
        "<mjml><mj-head><mj-style inline='inline'>a{}</mj-style></mj-head><mj-body></mj-body></mjml>": "ignores",
        "<mjml><mj-head><mj-html-attributes></mj-html-attributes></mj-head><mj-body></mj-body></mjml>": "raises",
        "<mjml><mj-body><mj-section><mj-column><mj-txt>x</mj-txt></mj-column></mj-section></mj-body></mjml>": "unknown",
        "<mjml><mj-body><mj-section><div>x</div></mj-section></mj-body></mjml>": "HTML <div>",
        "<mjml><mj-body><mj-section>stray</mj-section></mj-body></mjml>": "stray",
        "<mjml><mj-body><mj-section><mj-column></mj-section></mj-body></mjml>": "does not close",
    }
    for source, expected in bad.items():
        problems = check_mjml(source)
        assert any(expected in p for p in problems), (source, problems)


def test_an_operator_folder_overrides_single_templates(tmp_path: Path) -> None:
    own = tmp_path / "my-templates"
    own.mkdir()
    (own / "_footer.mjml").write_text(
        (render.shipped_templates_dir() / "_footer.mjml").read_text().replace("You get the", "OPERATOR FOOTER: you get the"))
    render.reset_template_cache()
    html, text = rendered_for(sample_digest(), templates_dir=str(own))
    assert "OPERATOR FOOTER" in html and "OPERATOR FOOTER" not in text  # only the overridden file changed
    with pytest.raises(RenderError, match="not a folder"):
        rendered_for(sample_digest(), templates_dir=str(tmp_path / "missing"))


def test_autoescaping_covers_mjml_templates_and_not_the_text_template(tmp_path: Path) -> None:
    own = tmp_path / "t"
    shutil.copytree(render.shipped_templates_dir(), own)
    (own / "_footer.mjml").write_text((own / "_footer.mjml").read_text().replace(
        "</mj-text>", "{{ '<i>raw</i>' }}\n</mj-text>"))
    (own / "digest.txt").write_text((own / "digest.txt").read_text() + "{{ '<i>raw</i>' }}\n")
    render.reset_template_cache()
    html, text = rendered_for(sample_digest(), templates_dir=str(own))
    assert "&lt;i&gt;raw&lt;/i&gt;" in html and "<i>raw</i>" not in html
    assert "<i>raw</i>" in text


def test_a_broken_template_names_the_file_and_line(tmp_path: Path) -> None:
    own = tmp_path / "t"
    own.mkdir()
    (own / "_toc.mjml").write_text("<mj-section>\n{% if %}\n</mj-section>\n")
    render.reset_template_cache()
    with pytest.raises(RenderError, match=r"_toc\.mjml, line 2"):
        rendered_for(sample_digest(), templates_dir=str(own))
    (own / "_toc.mjml").write_text("<mj-section>{{ no_such_variable.x }}</mj-section>\n")
    render.reset_template_cache()
    with pytest.raises(RenderError, match="no_such_variable"):
        rendered_for(sample_digest(), templates_dir=str(own))


def test_digest_of_sample_data_is_realistic() -> None:
    content = digest_of(sample_papers())
    assert content.paper_count == 60 and content.top[0].title.startswith("FlashAttention-2")


# --- what the email says it holds -----------------------------------------------------------------------------


def _h1(html: str) -> str:
    return re.search(r"<h1[^>]*>([^<]+)</h1>", html).group(1)  # type: ignore[union-attr]


def test_subject_heading_contents_and_listed_papers_count_the_same() -> None:
    """One count (render.email_counts): the papers the email lists. The subject, the heading, the preheader and
    the contents say it; what the caps and the size guard left out is counted apart, as in the web copy."""
    content = sample_digest()
    rendered = render_digest(content, settings(digest={"subject": "{count} new in {topics} topics, {more} more"}),
                             EDITION)
    html, text = rendered.fill(VALUES)
    counts = render.email_counts(content, rendered.shown)
    listed_titles = {p.id: p.title for s in content.sections for p in s.papers} | {p.id: p.title for p in content.top}
    assert len(rendered.listed) == counts.listed == len(set(rendered.listed))
    assert all(escape_title(listed_titles[pid]) in html for pid in rendered.listed)
    assert rendered.subject == f"{counts.listed} new in {counts.topics} topics, {counts.more} more"
    assert _h1(html) == f"{counts.listed} new papers in {counts.topics} topics"
    assert f"{counts.listed} new papers in {counts.topics} topics" in text.splitlines()[1]
    assert rendered.preheader.startswith(f"{counts.listed} new papers in {counts.topics} topics")
    toc = re.findall(r"^  - (.+) \((\d+)(?:, \+ (\d+) on the web)?\)$", text, re.MULTILINE)
    sections = [t for t in toc if t[0] != "Top papers"]
    assert sum(int(n) for _, n, _ in sections) == counts.listed
    assert sum(int(m or 0) for _, _, m in sections) == counts.more
    assert counts.listed + counts.more == sum(s.total for s in content.sections) == 85
    assert f"{counts.more} more papers are only in" in text


def escape_title(title: str) -> str:
    from markupsafe import escape

    return str(escape(clean(title)))


def test_the_shipped_subject_names_the_top_paper() -> None:
    content = sample_digest(topics=["video-generation"])
    rendered = render_digest(content, settings(), EDITION)
    assert rendered.subject.startswith(content.top[0].title)
    assert rendered.subject.endswith("· 4 new in 1 topic, Mar 14")


def test_nothing_to_list_is_never_0_new_in_0_topics() -> None:
    empty = DigestContent("daily", "2025-03-14", DAY, (), ())
    assert format_subject("Trending papers, {date}: {count} new in {topics} topics", empty) == "No new papers, Mar 14"


def test_top_papers_are_not_repeated_as_cards_in_their_sections() -> None:
    content = sample_digest(topics=["video-generation"])
    html, text = rendered_for(content)
    for rank, paper in enumerate(content.top, 1):
        title = escape_title(paper.title)
        assert html.count(f'href="{paper.page_url}"') == 2  # the Top papers card and the reference in its section
        assert f"Top paper {rank}:</span>" in html and title in html
        assert text.count(paper.page_url) == 1  # the text part links it once, in Top papers
    assert html.count('<div class="nl-paper nl-rule"') == len(content.top) + 1  # 3 top cards + the fourth paper


def test_most_upvoted_first_only_when_upvotes_are_known() -> None:
    with_votes = sample_digest(topics=["video-generation"])
    assert "most upvoted first" in rendered_for(with_votes)[0]
    no_votes = replace(with_votes, top=tuple(replace(p, upvotes=None) for p in with_votes.top),
                       sections=tuple(replace(s, papers=tuple(replace(p, upvotes=None) for p in s.papers))
                                      for s in with_votes.sections))
    html, text = rendered_for(no_votes)
    assert "upvoted" not in html and "upvoted" not in text
