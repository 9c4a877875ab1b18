"""Signed link tokens and the URLs built from them."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from newsletter.render.links import LinkMaker, edition_url
from newsletter.store import Store
from newsletter.tokens import DAY, MAX_AGE_SECONDS, ExpiredToken, InvalidToken, Signer, signing_key

KEY = b"0123456789abcdef0123456789abcdef"
T0 = 1_741_939_200  # 2025-03-14 08:00 UTC


def test_round_trip_carries_purpose_subscriber_and_time() -> None:
    signer = Signer(KEY)
    for purpose in ("confirm", "preferences", "unsubscribe"):
        token = signer.sign(purpose, 42, T0)
        claims = signer.verify(token, purpose, now=T0 + 60)
        assert (claims.purpose, claims.subscriber_id, claims.issued_at) == (purpose, 42, T0)
        assert token.isascii() and "=" not in token and "+" not in token and "/" not in token  # base64url


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    signer = Signer(KEY)
    with pytest.raises(InvalidToken):
        signer.verify(signer.sign("preferences", 42, T0), "unsubscribe", now=T0)


def test_tampering_and_other_keys_are_refused() -> None:
    signer = Signer(KEY)
    token = signer.sign("unsubscribe", 42, T0)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[12] ^= 1  # change the subscriber id or the time, keep the tag
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in (forged, token[:-2], "", "not a token!", "A" * 500, token + "x"):
        with pytest.raises(InvalidToken):
            signer.verify(bad, "unsubscribe", now=T0)
    with pytest.raises(InvalidToken):
        Signer(b"another key, also long enough!!").verify(token, "unsubscribe", now=T0)


def test_every_edit_of_a_token_is_refused_even_one_that_decodes_to_the_same_bytes() -> None:
    # The last base64 character carries spare low bits: "...Aw" and "...Ax" can decode alike. A token
    # edited in any one character must still be refused (a CI run once let "...88xx" through).
    signer = Signer(KEY)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for subscriber in range(1, 40):
        token = signer.sign("web-copy", subscriber, T0 + subscriber)
        for position in (len(token) - 1, len(token) - 2, len(token) // 2, 0):
            for char in alphabet:
                if char == token[position]:
                    continue
                edited = token[:position] + char + token[position + 1:]
                with pytest.raises(InvalidToken):
                    signer.verify(edited, "web-copy", now=T0 + 60)


def test_unsubscribe_links_work_for_at_least_30_days_then_expire_by_the_verifiers_rule() -> None:
    signer = Signer(KEY)
    token = signer.sign("unsubscribe", 7, T0)
    assert signer.verify(token, "unsubscribe", now=T0 + 31 * DAY).subscriber_id == 7
    with pytest.raises(ExpiredToken):
        signer.verify(token, "unsubscribe", now=T0 + 400 * DAY)
    with pytest.raises(ExpiredToken):  # the verifier decides the age limit
        signer.verify(token, "unsubscribe", now=T0 + 2 * DAY, max_age_seconds=DAY)
    confirm = signer.sign("confirm", 7, T0)
    with pytest.raises(ExpiredToken):
        signer.verify(confirm, "confirm", now=T0 + 8 * DAY)


def test_tokens_from_the_future_are_refused() -> None:
    signer = Signer(KEY)
    with pytest.raises(InvalidToken):
        signer.verify(signer.sign("unsubscribe", 7, T0 + DAY), "unsubscribe", now=T0)


def test_short_keys_are_refused() -> None:
    with pytest.raises(Exception, match="too short"):
        Signer(b"short")


def test_without_a_configured_key_one_is_generated_once_and_kept_in_the_database(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        first = signing_key(None, store.get_state, store.add_state)
        assert len(first) >= 32
        assert signing_key(None, store.get_state, store.add_state) == first
        assert signing_key("from-the-environment-variable", store.get_state, store.add_state) == b"from-the-environment-variable"
    finally:
        store.close()


def test_reader_links_have_the_documented_shapes() -> None:
    maker = LinkMaker("https://papers.example.org/", "papers@example.org", Signer(KEY))
    links = maker.for_reader(42, datetime.fromtimestamp(T0, timezone.utc))
    assert links.preferences.startswith("https://papers.example.org/preferences?token=")
    assert links.unsubscribe.startswith("https://papers.example.org/unsubscribe?token=")
    token = links.unsubscribe.rpartition("=")[2]
    assert links.unsubscribe_mailto == f"mailto:papers+unsubscribe@example.org?subject=unsubscribe%20{token}"
    assert maker.signer.verify(token, "unsubscribe", now=T0).subscriber_id == 42
    assert edition_url("https://papers.example.org", 7) == "https://papers.example.org/editions/7"
    assert maker.edition(None) == "https://papers.example.org/editions"


def test_a_link_is_valid_to_the_last_second_of_its_age_limit_and_a_little_clock_skew_is_forgiven() -> None:
    signer = Signer(KEY)
    token = signer.sign("unsubscribe", 7, T0)
    limit = MAX_AGE_SECONDS["unsubscribe"]
    assert signer.verify(token, "unsubscribe", now=T0 + limit).subscriber_id == 7  # the last second
    with pytest.raises(ExpiredToken):
        signer.verify(token, "unsubscribe", now=T0 + limit + 1)
    # Signed on a machine whose clock is ahead: up to 5 minutes is skew, more is not a token of ours.
    assert signer.verify(signer.sign("unsubscribe", 7, T0 + 300), "unsubscribe", now=T0).issued_at == T0 + 300
    with pytest.raises(InvalidToken):
        signer.verify(signer.sign("unsubscribe", 7, T0 + 301), "unsubscribe", now=T0)


def test_times_may_be_given_as_datetimes_or_left_to_the_clock() -> None:
    signer = Signer(KEY)
    at = datetime.fromtimestamp(T0, timezone.utc)
    token = signer.sign("confirm", 3, at)
    assert signer.verify(token, "confirm", now=at + timedelta(days=6)).issued_at == T0
    with pytest.raises(ExpiredToken):
        signer.verify(token, "confirm", now=at + timedelta(days=8))
    fresh = signer.sign("confirm", 3)  # now, by the clock
    assert signer.verify(fresh, "confirm").subscriber_id == 3
    with pytest.raises(ExpiredToken):  # the clock is used when no time is given: T0 was long ago
        signer.verify(token, "confirm")


# --- card tokens (issue 15) ----------------------------------------------------------------------------------

from newsletter.tokens import CARD_TOKEN_CHARS, CardSigner  # noqa: E402


def test_a_card_token_is_short_fixed_length_and_names_its_reader_and_paper() -> None:
    cards = CardSigner(b"card signing key, long enough!!")
    now = 1_741_939_200  # 2025-03-14
    small, big = cards.sign(1, 2, now), cards.sign(4_000_000_000, 3_000_000_000, now)
    assert len(small) == len(big) == CARD_TOKEN_CHARS == 24
    assert all(c.isalnum() or c in "-_" for c in small + big)  # safe in a URL path and in quoted-printable
    claims = cards.verify(small, now=now)
    assert (claims.subscriber_id, claims.paper_id, claims.issued_day) == (1, 2, now // 86_400)
    assert cards.for_reader(1, now // 86_400)(2) == small  # the per-message signer gives the same token


def test_a_forged_edited_foreign_or_expired_card_token_is_refused() -> None:
    cards = CardSigner(b"card signing key, long enough!!")
    now = 1_741_939_200
    token = cards.sign(7, 9, now)
    other = CardSigner(b"another key, also long enough!!").sign(7, 9, now)
    with pytest.raises(InvalidToken):
        cards.verify(other, now=now)
    for i in range(len(token)):  # every one-character edit
        edited = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        with pytest.raises(InvalidToken):
            cards.verify(edited, now=now)
    for bad in ("", "x" * 24, token[:-1], token + "A", "é" * 24):
        with pytest.raises(InvalidToken):
            cards.verify(bad, now=now)
    with pytest.raises(ExpiredToken):
        cards.verify(token, now=now + 366 * 86_400)
    unsub = Signer(b"card signing key, long enough!!").sign("unsubscribe", 7, now)
    with pytest.raises(InvalidToken):
        cards.verify(unsub, now=now)  # another family's token is not a card token
