"""The message: headers (RFC 2369, 2919, 8058), sanitising, multipart order, CRLF, and the fast path giving the
same bytes as the email package end to end."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import pytest
from render_sample import DAY, sample_digest, settings
from test_render import hostile_digest

from newsletter.errors import DeliveryError
from newsletter.render.links import LinkMaker
from newsletter.render.message import (
    MessageFactory,
    Recipient,
    _fold,
    address,
    build_message,
    check_address,
    date_field,
    message_id_field,
    preparer,
    sanitize_header_text,
    to_field,
)
from newsletter.render import render_digest
from newsletter.tokens import Signer

EDITION = "https://papers.example.org/editions/7"
WHEN = datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)
LINKS = LinkMaker("https://papers.example.org", "papers@example.org", Signer(b"k" * 32))


def recipient(i: int = 1, name: str | None = "Ada Lovelace", email: str | None = None) -> Recipient:
    return Recipient(f"reader{i}@example.org" if email is None else email, f"<7.{i}.daily.2025-03-14@example.org>",
                     LINKS.for_reader(i, 1_741_939_200), name)


@pytest.fixture(scope="module")
def rendered():  # type: ignore[no-untyped-def]
    return render_digest(sample_digest(), settings(), EDITION)


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def test_headers_and_structure(rendered) -> None:  # type: ignore[no-untyped-def]
    r = recipient()
    raw = build_message(rendered, r, settings(), WHEN)
    msg = parse(raw)
    assert msg["From"] == "Trending Papers <papers@example.org>"
    assert msg["To"] == "Ada Lovelace <reader1@example.org>"
    assert msg["Subject"] == rendered.subject
    assert msg["Date"] == "Fri, 14 Mar 2025 08:00:00 +0000"
    assert msg["Message-ID"] == "<7.1.daily.2025-03-14@example.org>"
    assert msg["List-Id"] == "Trending Papers <trending-papers.example.org>"
    assert msg["List-Unsubscribe"] == f"<{r.links.unsubscribe}>, <{r.links.unsubscribe_mailto}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]  # the preferred part last
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    text, html = parts[0].get_content(), parts[1].get_content()
    assert r.links.unsubscribe in text and r.links.preferences in text
    assert r.links.unsubscribe in html and "Hi Ada," in html and "Hi Ada," in text
    assert "%%nl-" not in text and "%%nl-" not in html


def test_list_unsubscribe_is_a_list_of_urls_never_encoded_words(rendered) -> None:  # type: ignore[no-untyped-def]
    raw = build_message(rendered, recipient(), settings(), WHEN)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    field = re.search(r"^List-Unsubscribe: .*?(?=\r\n\S)", head, re.M | re.S)
    assert field and "=?" not in field.group(0)
    assert re.fullmatch(r"List-Unsubscribe: <https://[^>\s]+>,\r\n <mailto:[^>\s]+>", field.group(0))


def test_crlf_line_endings_and_line_lengths(rendered) -> None:  # type: ignore[no-untyped-def]
    raw = build_message(rendered, recipient(), settings(), WHEN)
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert raw.endswith(b"\r\n")
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045 quoted-printable lines
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw.isascii()


@pytest.mark.parametrize("evil", [
    "=?UTF-8?Q?=0A?=Bcc: evil@example.net",
    "x =?UTF-8?Q?=0D=0ABcc:_evil@example.net?= y",
    "Hello\r\nBcc: evil@example.net",
    "Hello\nBcc: evil@example.net",
    "Hello\rBcc: evil@example.net",
    "Tab\tand\x00nul\x1b[31m and \u2028 separator \u202e bidi",
    "=?utf-8?b?DQpCY2M6IGV2aWxAZXhhbXBsZS5uZXQ=?=",
])
def test_subject_and_display_names_cannot_inject_headers(rendered, evil: str) -> None:  # type: ignore[no-untyped-def]
    hostile = replace(rendered, subject=f"Trending {evil}")
    raw = build_message(hostile, recipient(name=evil), settings(sender={"name": evil, "email": "papers@example.org"}), WHEN)
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]
    assert b"Bcc" not in names and len(names) == len(set(names))
    msg = parse(raw)
    assert msg["Bcc"] is None
    for header in ("Subject", "To", "From"):
        value = str(msg[header])
        assert "\n" not in value and "\r" not in value  # "Bcc:" may remain, as text inside the value
    assert msg["To"].addresses[0].addr_spec == "reader1@example.org"
    assert msg["From"].addresses[0].addr_spec == "papers@example.org"


def test_sanitize_header_text() -> None:
    assert sanitize_header_text("a\r\nb\x00c\u202ed\u200be") == "a b c d e"
    assert sanitize_header_text("=?UTF-8?Q?=0A?=") == "= ?UTF-8?Q?=0A?="
    assert "=?" not in sanitize_header_text("==?=?=??x")
    long = sanitize_header_text("word " * 100, 50)
    assert len(long) <= 50 and long.endswith("…")
    assert sanitize_header_text("Zoë Ångström") == "Zoë Ångström"
    assert sanitize_header_text(None) == ""


def test_recipient_addresses_must_be_plain(rendered) -> None:  # type: ignore[no-untyped-def]
    for bad in ("ada@example.org\r\nBcc: x@example.net", "ada@exa mple.org", "not-an-address", "zoë@example.org",
                "a@b@c.org", ""):
        with pytest.raises(DeliveryError):
            build_message(rendered, recipient(email=bad), settings(), WHEN)


def test_an_address_goes_in_a_header_only_when_plain_ascii_and_at_most_320_characters() -> None:
    longest = "a" * 308 + "@example.org"  # 320 characters: RFC 3696's longest address
    assert check_address(longest) == longest
    for bad in (longest + "x", "zoë@example.org", "ada@exämple.org", "李雷@example.org"):
        with pytest.raises(DeliveryError, match="not a plain ASCII email address") as refused:
            check_address(bad)
        hint = refused.value.hint or ""  # the operator is told what to do
        assert hint.startswith("fix or remove the subscriber") and "(SMTPUTF8) are not supported" in hint


NAMES = [None, "", "Ada Lovelace", "Ada", "Dr. Ada Lovelace", "O'Brien", "Zoë Ångström", "李雷", "Ada \"The\" Countess",
         "Lovelace, Ada", "Ada (Countess)", "a" * 100, "Ada Lovelace " * 8, "=?UTF-8?Q?=0A?=Bcc: x@example.net",
         "Eve\r\nBcc: x@example.net", "back\\slash", "semi;colon", "<angle>", "x@y.org", "#!$%&'*+/^_`{|}~-",
         "  spaced   out  ", "\u202eevil", "😀 emoji"]
EMAILS = ["ada@example.org", "ada+news@mail.example.co.uk", "a.b-c_d@sub-domain.example.org",
          "very.long.local.part.of.an.address.that.keeps.going@an.equally.long.domain.example.org",
          "UPPER@EXAMPLE.ORG", "o'brien@example.ie", "x@localhost.localdomain"]


def test_the_fast_path_gives_the_same_bytes_as_the_email_package() -> None:
    factory = MessageFactory(settings())
    # Every name and address on small digests; a spread of them on the full one (its slow build takes longest).
    digests = [(sample_digest(topics=["3d"], top=0), NAMES, EMAILS), (hostile_digest(), NAMES, EMAILS[:2]),
               (sample_digest(), NAMES[::4], EMAILS[::3])]
    for content, names, emails in digests:
        rendered = render_digest(content, settings(), EDITION)
        prepared = factory.prepare(rendered)
        for i, name in enumerate(names):
            for j, email in enumerate(emails):
                when = WHEN + timedelta(minutes=7 * i, seconds=j)
                r = Recipient(email, f"<{i}.{j}.daily.2025-03-14@example.org>", LINKS.for_reader(i * 10 + j, 1_741_939_200), name)
                assert prepared.message(r, when) == build_message(rendered, r, settings(), when), (name, email)


def test_the_fast_path_header_shortcuts_match_the_email_package() -> None:
    for name in NAMES:
        for email in EMAILS:
            assert to_field(name, email) == _fold("To", address(name, email)), (name, email)
    # Fuzz: names of every kind of character and length, with addresses of every length around the fold.
    rng = random.Random(5)
    alphabet = "abcXYZ019 .,;:\"'()<>@[]\\!#$%&*+/=?^_`{|}~-éüßøЖжλ中文😀\u00a0\t=?"
    for _ in range(1000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        email = "r" * rng.randint(1, 40) + "@" + "d" * rng.randint(1, 20) + ".org"
        assert to_field(name, email) == _fold("To", address(name, email)), (name, email)
    for message_id in ("<1.2.daily.2025-03-14@example.org>", "<a@b>", "<" + "x" * 80 + "@example.org>",
                       "<1.2.weekly.2025-W11@mail.example.org>",
                       "<1.2 daily@example.org>", "<1.2\tdaily@example.org>",  # not simple: the long way
                       "<" + "x" * 49 + "@example.org>", "<" + "x" * 50 + "@example.org>"):  # 64, 65 chars
        assert message_id_field(message_id) == _fold("Message-ID", message_id)
    for when in (WHEN, datetime(2025, 1, 2, 3, 4, 5), datetime(2025, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))):
        assert date_field(when) == _fold("Date", __import__("email.utils").utils.format_datetime(
            when if when.tzinfo else when.replace(tzinfo=timezone.utc)))


def test_reply_to_and_other_settings_flow_into_both_paths() -> None:
    s = settings(sender={"name": "Papers Bot", "email": "bot@news.example.org", "reply_to": "editor@example.org"},
                 list_name="ML Papers: Daily!")
    rendered = render_digest(sample_digest(), s, EDITION)
    r = recipient()
    raw = build_message(rendered, r, s, WHEN)
    assert raw == MessageFactory(s).prepare(rendered).message(r, WHEN)
    msg = parse(raw)
    assert msg["Reply-To"] == "editor@example.org"
    assert msg["List-Id"] == "ML Papers: Daily! <ml-papers-daily.news.example.org>"


def test_the_same_delivery_gives_the_same_message_on_every_retry(rendered) -> None:  # type: ignore[no-untyped-def]
    prepared = MessageFactory(settings()).prepare(rendered)
    assert prepared.message(recipient(), WHEN) == prepared.message(recipient(), WHEN)
    later = parse(prepared.message(recipient(), WHEN + timedelta(hours=3)))
    assert later["Message-ID"] == "<7.1.daily.2025-03-14@example.org>"


def test_the_send_loop_preparer_builds_each_readers_message_from_the_store(tmp_path: Path) -> None:
    from support import PAGES

    from newsletter import config
    from newsletter.pipeline import Newsletter

    s = config.from_mapping({"database_url": f"sqlite:///{tmp_path / 'nl.db'}", "site_url": "https://papers.example.org",
                             "sources": [{"type": "hf-page", "path": str(PAGES["mar14"])}],
                             "topics": [t.model_dump() for t in settings().topics]}, environ={})
    nl = Newsletter(s)
    try:
        nl.import_file(PAGES["mar14"], DAY)
        nl.store.add_subscribers([
            {"email": "all@example.org", "name": "Ada Lovelace"},
            {"email": "all2@example.org"},
            {"email": "quant@example.org", "topics": ["quantization"]},
        ])
        plan = nl.plan("daily", DAY)
        edition = nl.record_edition(plan, subject="x")
        with nl.store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT d.id, d.edition_id, d.subscriber_id, d.digest_id, d.message_id, s.email, "
                                        "s.name, d.created_at, s.topics, s.excluded_keywords FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                                        f"WHERE d.edition_id = {edition} ORDER BY s.email").fetchall()
        prepare = preparer(nl)
        prepare.clock = lambda: WHEN
        out = {}
        for row in rows:
            delivery = SimpleNamespace(id=row[0], edition_id=row[1], subscriber_id=row[2], digest_id=row[3],
                                       message_id=row[4], email=row[5], name=row[6],
                                       created_at=datetime.fromisoformat(str(row[7])).replace(tzinfo=timezone.utc),
                                       # the claim hands the reader's topics and keywords with the delivery
                                       topics=tuple(json.loads(row[8]) or ()) if json.loads(row[8] or "null") is not None else None,
                                       excluded_keywords=tuple(json.loads(row[9] or "[]") or ()))
            outgoing = prepare(delivery)
            assert outgoing.recipient == row[5] and outgoing.message_id == row[4]
            # inbound.verp (on by default): the envelope sender names the delivery, with a tag only we can make
            local, _, domain = s.sender.email.partition("@")
            assert outgoing.envelope_from.startswith(f"{local}+b-{row[0]}-") and outgoing.envelope_from.endswith(f"@{domain}")
            assert prepare.verp.delivery_id([(row[0], outgoing.envelope_from.split("-")[-1].split("@")[0])]) == row[0]
            out[row[5]] = parse(outgoing.data)
            assert prepare(delivery).data == outgoing.data  # a retry: same bytes (same Date here), same links
        assert out["all@example.org"]["To"] == "Ada Lovelace <all@example.org>"
        assert len(prepare._prepared) == 2  # two readers of every topic share one prepared digest
        # The caches are bounded: with room for one encoded digest, each reader in turn pushes the other's
        # out, and it is prepared again from its saved render, to the same bytes.
        small = preparer(nl)
        small.clock = prepare.clock
        small._prepared.size = 1
        for _ in range(2):
            for row in rows:
                delivery = SimpleNamespace(id=row[0], edition_id=row[1], subscriber_id=row[2], digest_id=row[3],
                                           message_id=row[4], email=row[5], name=row[6],
                                           created_at=datetime.fromisoformat(str(row[7])).replace(tzinfo=timezone.utc),
                                           topics=("quantization",) if row[5].startswith("quant") else None,
                                           excluded_keywords=())
                assert parse(small(delivery).data).as_bytes() == out[row[5]].as_bytes()
                assert len(small._prepared) == 1
        quant_html = out["quant@example.org"].get_body(("html",)).get_content()
        all_html = out["all@example.org"].get_body(("html",)).get_content()
        assert len(quant_html) < len(all_html) and "Quantization" in quant_html
        assert f"{s.site_url}/editions/{edition}" in all_html
    finally:
        nl.close()
