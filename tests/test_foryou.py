"""The personal kit (issue 15, ``newsletter/render/foryou.py``): a reader with signals gets the shared digest's
encoded chunks in their own order, with their For you block, and no render of their own. Checked against
rendering the reader's own content whole, at the size guard's edge, and with templates that lack the marks."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

from render_sample import ROOT, sample_digest, settings

from newsletter.relevance import Signal, train
from newsletter.relevance.personal import Ranker
from newsletter.render import SIZE_LIMIT, listed_ids, render_digest
from newsletter.render.foryou import (
    REASON_BYTES,
    PersonalKit,
    kit_layout,
    personal_content,
    reason_text,
    render_shared,
)
from newsletter.render.links import ReaderLinks
from newsletter.render.message import MessageFactory, Recipient, build_message
from newsletter.tokens import CARD_TOKEN_CHARS

EDITION = "https://papers.example.org/editions/7"
NOW = datetime(2025, 3, 14, 7, tzinfo=timezone.utc)
TOKEN = re.compile(r"/more/(T\d{%d})" % (CARD_TOKEN_CHARS - 1))


def links() -> ReaderLinks:
    return ReaderLinks("https://papers.example.org/preferences?token=P", "https://papers.example.org/u?token=U",
                       "mailto:u@example.org", EDITION + "/yours?token=W", card=lambda pid: f"T{pid:0{CARD_TOKEN_CHARS - 1}d}")


def recipient() -> Recipient:
    return Recipient("ada@example.org", "<7.1@example.org>", links(), "Ada")


def parts(raw: bytes) -> tuple[str, str]:
    message = message_from_bytes(raw, policy=policy.default)
    return (message.get_body(("html",)).get_content().replace("\r\n", "\n"),
            message.get_body(("plain",)).get_content().replace("\r\n", "\n"))


def cards(text: str) -> list[int]:
    """The paper of every card of a part, in order (its "More like this" link)."""
    return [int(t[1:]) for t in TOKEN.findall(text)]


def reader(content, liked_topic="3d"):  # type: ignore[no-untyped-def]
    ranker = Ranker(None, 5)
    liked = [p for p in content.papers if p.topic == liked_topic][:5]
    model = train([Signal(p.id, ranker.vector(p), "more", NOW) for p in liked])
    return ranker, model


def test_the_kit_writes_what_rendering_the_readers_own_content_writes() -> None:
    content = sample_digest()
    s = settings()
    shared = render_digest(content, s, EDITION, size_limit=300_000)  # every paper listed: no guard in the way
    factory = MessageFactory(s)
    prepared = factory.prepare(shared)
    kit = PersonalKit.build(prepared, content, shared.listed, s, factory.lines, size_limit=300_000)
    assert kit is not None
    ranker, model = reader(content)
    order, picks = ranker.choose(model, kit.content)
    assert len(picks) == 5 and not {pid for pid, _r in picks} & {p.id for p in content.top}
    html, text = parts(kit.message(recipient(), NOW, order, picks))
    # The oracle: the reader's own content rendered whole and built by the email package.
    mine = personal_content(kit.content, order, picks)
    own = render_digest(mine, s, EDITION, size_limit=10**9)
    own_html, own_text = parts(build_message(own, recipient(), s, NOW))
    assert text == own_text  # byte for byte
    assert re.sub(r">\s+<", "><", html) == re.sub(r">\s+<", "><", own_html)  # line breaks between tags aside
    assert "%%nl" not in html + text and "\u2116" not in html + text
    # Each paper once as a card; For you first, in the model's order; the others in the reader's order.
    listed = cards(text)
    assert sorted(listed) == sorted(set(listed)) == sorted(shared.listed)
    assert listed[:5] == [pid for pid, _r in picks]
    assert [f"-> For you {n}: " in text for n in range(1, 6)] == [True] * 5
    assert all(reason in text for _pid, reason in picks) and cards(html) == listed
    # What the email lists is what the shared email lists (what is recorded as sent).
    assert set(listed_ids(mine)) == set(shared.listed)


def test_without_picks_in_todays_order_the_kit_writes_the_shared_email() -> None:
    content = sample_digest()
    s = settings()
    shared = render_digest(content, s, EDITION)
    factory = MessageFactory(s)
    prepared = factory.prepare(shared)
    kit = PersonalKit.build(prepared, content, shared.listed, s, factory.lines)
    assert kit is not None
    today = [p.id for p in kit.content.papers]
    mine_html, mine_text = parts(kit.message(recipient(), NOW, today, []))
    html, text = parts(prepared.message(recipient(), NOW))
    assert mine_text == text
    assert re.sub(r">\s+<", "><", mine_html) == re.sub(r">\s+<", "><", html)


def test_the_variant_stays_within_the_size_guard_at_its_edge() -> None:
    """The sample digest fills the size guard (it is shortened). Rendered as a shared digest for readers with
    signals, it keeps room for the largest For you block: the worst variant (the five papers whose For you card
    adds most, reasons at their longest) is within the limit. Without that room it would not be, and the kit
    then sends the shared email rather than pass the limit."""
    content = sample_digest()
    s = settings()
    plain = render_digest(content, s, EDITION)
    assert plain.shortened
    tight = kit_layout(plain, content, plain.listed, s)
    assert tight is not None and not tight.fits(5)  # the room is needed here
    shared = render_shared(content, s, EDITION, 5)
    layout = kit_layout(shared, content, shared.listed, s)
    assert layout is not None and layout.fits(5)
    assert len(shared.listed) < len(plain.listed)  # the room was made by listing less (still eligible)
    worst = sorted(layout.extra_of, key=layout.extra_of.get, reverse=True)[:5]
    long_title = "Ünïcode & <markup> " * 20
    reason = reason_text(long_title)
    assert len(str(reason).encode()) <= REASON_BYTES
    for rendered, fits in ((shared, True), (plain, False)):
        factory = MessageFactory(s)
        kit = PersonalKit.build(factory.prepare(rendered), content, rendered.listed, s, factory.lines)
        assert kit is not None
        order = [p.id for p in kit.content.papers][::-1]
        chosen = worst if fits else sorted(tight.extra_of, key=tight.extra_of.get, reverse=True)[:5]
        html, text = parts(kit.message(recipient(), NOW, order, [(pid, reason) for pid in chosen]))
        assert len(html.encode("utf-8")) <= SIZE_LIMIT
        assert ("\nFor you\n=======\n" in text) is fits  # past the guard: the shared email, no For you block
        assert sorted(cards(text)) == sorted(rendered.listed)


def test_templates_without_the_marks_give_no_kit(tmp_path: Path) -> None:
    own = tmp_path / "templates"
    own.mkdir()
    section = (ROOT / "templates" / "email" / "_section.mjml").read_text()
    assert '{{ mark("p", paper) }}' in section
    (own / "_section.mjml").write_text(section.replace('{{ mark("p", paper) }}', ""))
    shutil.copy(ROOT / "templates" / "email" / "_card.mjml", own / "_card.mjml")
    s = settings(templates_dir=str(own))
    content = sample_digest()
    shared = render_digest(content, s, EDITION)
    assert PersonalKit.build(MessageFactory(s).prepare(shared), content, shared.listed, s) is None
    # The shipped templates give one, and their emails are unchanged by the marks (they write nothing).
    shipped = render_digest(content, settings(), EDITION)
    assert shipped.html == shared.html and "%%nlk" not in shipped.html + shipped.text
