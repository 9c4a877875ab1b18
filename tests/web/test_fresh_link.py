"""An expired or invalid link gets a page with an email field, "send me a fresh link": a reader gets working
links by email, a pending sign-up its confirmation again, anyone else nothing, and always the same answer;
rate-limited with the subscribe form's own limits, and CSRF-protected like every form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from web_support import csrf_of, link_in, outbox, text_of, token_of

from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_BOUNCED, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED

EMAIL = "ada@example.org"


def expired_page(web: Any, client: Any) -> str:
    reader = web.store.subscriber(EMAIL) if any(s.email == EMAIL for s in web.store.subscribers()) else \
        web.store.add_subscriber(EMAIL)
    response = client.get(f"/preferences?token={web.token('preferences', reader.id, age=timedelta(days=91))}")
    assert response.status_code == 400
    return str(response.text)


def ask(web: Any, client: Any, email: str) -> Any:
    csrf = csrf_of(expired_page(web, client))
    return client.post("/fresh-link", data={"csrf_token": csrf, "email": email})


def test_an_expired_link_offers_a_fresh_one(web: Any) -> None:
    page = expired_page(web, web.client())
    assert "This link is invalid or has expired." in page and "ERROR 400" not in page
    assert 'action="/fresh-link"' in page and 'type="email"' in page and "Send me a fresh link" in page


def test_an_active_reader_gets_working_links(web: Any) -> None:
    web.store.add_subscriber(EMAIL)
    client = web.client()
    answer = ask(web, client, " Ada@Example.org ")
    assert answer.status_code == 200 and "Check your email" in answer.text
    [mail] = outbox(web.settings)
    assert mail["To"] == EMAIL and mail["Subject"].startswith("Your links for")
    assert "You are subscribed." in text_of(mail)
    prefs = link_in(mail, "/preferences")
    assert web.client().get(prefs.replace(web.settings.site_url, "")).status_code == 200
    unsub = link_in(mail, "/unsubscribe")
    done = web.client().post(unsub.replace(web.settings.site_url, ""), data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED
    assert token_of(prefs) not in answer.text  # the links go only to the mailbox


def test_an_unsubscribed_reader_gets_a_link_to_come_back(web: Any) -> None:
    web.store.add_subscriber(EMAIL, status=SUBSCRIBER_UNSUBSCRIBED)
    ask(web, web.client(), EMAIL)
    [mail] = outbox(web.settings)
    assert "not subscribed at the moment" in text_of(mail) and "/unsubscribe?" not in text_of(mail)
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED  # asking changes nothing


def test_a_pending_sign_up_gets_its_confirmation_again_within_the_window_rule(web: Any) -> None:
    client = web.client()
    csrf = csrf_of(client.get("/").text)
    topics = web.settings.topic_slugs()[:1]
    sent = client.post("/subscribe", data={"csrf_token": csrf, "email": EMAIL, "cadence": "weekly", "topics": topics})
    assert sent.status_code == 200 and len(outbox(web.settings)) == 1
    ask(web, client, EMAIL)
    assert len(outbox(web.settings)) == 1  # within the confirmation window: not again
    web.clock.advance(minutes=20)
    ask(web, client, EMAIL)
    mails = outbox(web.settings)
    assert len(mails) == 2 and "/confirm?token=" in text_of(mails[1])
    confirm = link_in(mails[1], "/confirm")
    page = client.get(confirm.replace(web.settings.site_url, ""))
    client.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(confirm)})
    reader = web.store.subscriber(EMAIL)
    assert (reader.status, reader.cadence, list(reader.topics or ())) == (SUBSCRIBER_ACTIVE, "weekly", topics)  # the choices of the sign-up kept


def test_the_same_answer_for_unknown_and_bounced_addresses_and_no_email(web: Any) -> None:
    web.store.add_subscriber(EMAIL)
    web.store.add_subscriber("bounced@example.org", status=SUBSCRIBER_BOUNCED)
    client = web.client()
    known = ask(web, client, EMAIL)
    outbox_after_known = len(outbox(web.settings))
    answers = {ask(web, client, e).text.replace(e, "ADDRESS") for e in ("nobody@example.org", "bounced@example.org")}
    answers.add(known.text.replace(EMAIL, "ADDRESS"))
    assert len(answers) == 1
    assert len(outbox(web.settings)) == outbox_after_known == 1
    assert [s.status for s in web.store.subscribers() if s.email != EMAIL] == [SUBSCRIBER_BOUNCED]  # nobody added


def test_a_malformed_address_is_shown_again_with_the_reason(web: Any) -> None:
    client = web.client()
    answer = ask(web, client, "not an address")
    assert answer.status_code == 400 and "not a valid email address" in answer.text
    assert 'value="not an address"' in answer.text and outbox(web.settings) == []


def test_fresh_links_share_the_subscribe_rate_limits(make_web: Any) -> None:
    web = make_web(web={"subscribe_per_address": 2, "subscribe_per_ip": 4})
    web.store.add_subscriber(EMAIL)
    client = web.client()
    assert ask(web, client, EMAIL).status_code == 200
    csrf = csrf_of(client.get("/").text)
    subscribed = client.post("/subscribe", data={"csrf_token": csrf, "email": EMAIL,  # the same bucket
                                                 "topics": web.settings.topic_slugs()[:1]})
    assert subscribed.status_code == 200
    limited = ask(web, client, EMAIL)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert ask(web, client, "bob@example.org").status_code == 200  # the 4th request from this IP
    assert ask(web, client, "carol@example.org").status_code == 429  # the 5th
    assert ask(web, web.client(ip="203.0.113.9"), "carol@example.org").status_code == 200
    assert len(outbox(web.settings)) == 2  # the fresh links and the subscribe form's email; nothing to strangers


def test_the_form_needs_its_csrf_token(web: Any) -> None:
    web.store.add_subscriber(EMAIL)
    response = web.client().post("/fresh-link", data={"email": EMAIL})
    assert response.status_code == 403 and outbox(web.settings) == []
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE
    assert SUBSCRIBER_PENDING not in {s.status for s in web.store.subscribers()}
