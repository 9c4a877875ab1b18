"""Every page in-process: subscribe (double opt-in with a consent record), confirm, preferences, unsubscribe and
resubscribe, the archive, an edition, the feeds, errors; and the app's start-up rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from markupsafe import escape
from support import ROOT, write_config
from web_support import add_edition, csrf_of, free_port, link_in, make_settings, outbox, text_of, token_of

from newsletter.deliver import TemporaryFailure
from newsletter.errors import ConfigError, NotFound
from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING, SUBSCRIBER_UNSUBSCRIBED
from newsletter.store import Store
from newsletter.store.subscriptions import consents
from newsletter.web import create_app

EMAIL = "ada@example.org"


def subscribe(client: Any, email: str = EMAIL, **fields: Any) -> Any:
    page = client.get("/subscribe")
    data = {"csrf_token": csrf_of(page.text), "email": email, "cadence": "daily", **fields}
    return client.post("/subscribe", data=data)


def test_subscribe_page_offers_every_topic_ticked_daily_and_a_hidden_honeypot(web: Any) -> None:
    page = web.client().get("/")
    assert page.status_code == 200
    for topic in web.settings.topics:
        assert f'name="topics" value="{topic.slug}" checked' in page.text
    assert 'name="cadence" value="daily" checked' in page.text
    assert 'name="excluded_keywords"' in page.text
    assert '<div class="hp" aria-hidden="true">' in page.text and 'tabindex="-1"' in page.text
    assert "<script" not in page.text
    assert web.client().get("/subscribe").status_code == 200


def test_subscribe_makes_a_pending_reader_with_a_consent_record_and_sends_one_confirmation(web_db: Any) -> None:
    web = web_db
    slugs = web.settings.topic_slugs()
    response = subscribe(web.client(), "Ada@Example.org", cadence="weekly", topics=slugs[:2],
                         excluded_keywords="survey, benchmark", )
    assert response.status_code == 200
    assert "Check your email" in response.text
    reader = web.store.subscriber(EMAIL)
    assert (reader.status, reader.cadence, reader.topics, reader.excluded_keywords) == (
        SUBSCRIBER_PENDING, "weekly", tuple(slugs[:2]), ("survey", "benchmark"))
    [consent] = consents(web.store, reader.id)
    assert (consent.action, consent.ip, consent.form_version, consent.confirmed_at) == (
        "subscribe", "198.51.100.7", "test-v1", None)
    assert consent.user_agent and consent.requested_at == web.clock.now
    [mail] = outbox(web.settings)
    assert mail["To"] == EMAIL and "Confirm your subscription" in mail["Subject"]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_body(("html",)) is not None
    assert link_in(mail, "/confirm").startswith(web.settings.site_url + "/confirm?token=")


def test_confirm_link_shows_a_button_and_only_the_post_starts_the_subscription(web_db: Any) -> None:
    web = web_db
    slugs = web.settings.topic_slugs()
    subscribe(web.client(), topics=slugs[2:4])
    url = link_in(outbox(web.settings)[0], "/confirm")
    person = web.client(ip="203.0.113.5")
    page = person.get(url)
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_PENDING  # a link scanner's GET changes nothing
    web.clock.advance(minutes=5)
    done = person.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(url)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    reader = web.store.subscriber(EMAIL)
    assert (reader.status, reader.topics) == (SUBSCRIBER_ACTIVE, tuple(slugs[2:4]))
    [consent] = consents(web.store, reader.id)
    assert (consent.confirmed_at, consent.confirm_ip) == (web.clock.now, "203.0.113.5")
    again = person.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(url)})
    assert again.status_code == 200 and "You are subscribed" in again.text
    assert consents(web.store, reader.id)[0].confirmed_at == consent.confirmed_at


def test_a_subscribed_reader_keeps_their_choices_until_the_new_request_is_confirmed(web: Any) -> None:
    slugs = web.settings.topic_slugs()
    web.store.add_subscriber(EMAIL, topics=[slugs[0]])
    assert subscribe(web.client(), topics=[slugs[5]], cadence="weekly").status_code == 200
    assert web.store.subscriber(EMAIL).topics == (slugs[0],)  # a stranger cannot change them
    [mail] = outbox(web.settings)
    assert "You are subscribed already" in text_of(mail)
    url = link_in(mail, "/confirm")
    client = web.client()
    client.post("/confirm", data={"csrf_token": csrf_of(client.get(url).text), "token": token_of(url)})
    reader = web.store.subscriber(EMAIL)
    assert (reader.status, reader.topics, reader.cadence) == (SUBSCRIBER_ACTIVE, (slugs[5],), "weekly")


def test_ticking_every_topic_means_every_topic_and_ticking_none_is_refused(web: Any) -> None:
    assert subscribe(web.client(), topics=web.settings.topic_slugs()).status_code == 200
    assert web.store.subscriber(EMAIL).topics is None  # topics added later are included too
    refused = subscribe(web.client(), "bob@example.org")  # no topics field at all: nothing ticked
    assert refused.status_code == 400 and "Choose at least one topic" in refused.text
    assert 'value="bob@example.org"' in refused.text  # the form keeps what was typed
    with pytest.raises(NotFound):
        web.store.subscriber("bob@example.org")


@pytest.mark.parametrize("address", ["not-an-address", "ada@localhost", "ada@@example.org", "ada@example",
                                     "ada@example.org\r\nBcc: eve@example.org", "\"ada\"@example.org",
                                     "ädä@example.org", "a" * 300 + "@example.org"])
def test_malformed_addresses_are_refused_and_nothing_is_sent(web: Any, address: str) -> None:
    response = subscribe(web.client(), address, topics=web.settings.topic_slugs()[:1])
    assert response.status_code == 400
    assert ("too long" if len(address) > 254 else "valid email address") in response.text, response.text[-2000:]
    assert outbox(web.settings) == [] and web.store.subscribers() == []


def test_preferences_page_shows_the_readers_choices_and_saves_changes(web_db: Any) -> None:
    web = web_db
    slugs = web.settings.topic_slugs()
    reader = web.store.add_subscriber(EMAIL, topics=slugs[:2], excluded_keywords=["survey"])
    token = web.token("preferences", reader.id)
    client = web.client()
    page = client.get(f"/preferences?token={token}")
    assert page.status_code == 200 and EMAIL in page.text and page.headers["cache-control"] == "no-store"
    assert f'value="{slugs[0]}" checked' in page.text and f'value="{slugs[2]}">' in page.text
    assert 'value="survey"' in page.text
    saved = client.post("/preferences", data={"csrf_token": csrf_of(page.text), "token": token,
                                              "topics": [slugs[3]], "cadence": "weekly", "excluded_keywords": ""})
    assert saved.status_code == 200 and "Saved" in saved.text
    after = web.store.subscriber(EMAIL)
    assert (after.topics, after.cadence, after.excluded_keywords, after.status) == (
        (slugs[3],), "weekly", (), SUBSCRIBER_ACTIVE)
    bad = client.post("/preferences", data={"csrf_token": csrf_of(page.text), "token": token, "cadence": "hourly",
                                            "topics": [slugs[0]]})
    assert bad.status_code == 400 and "Cadence must be daily or weekly" in bad.text
    assert web.store.subscriber(EMAIL).cadence == "weekly"


def test_unsubscribe_page_has_one_button_its_post_unsubscribes_and_the_reader_can_come_back(web_db: Any) -> None:
    web = web_db
    reader = web.store.add_subscriber(EMAIL)
    url = f"/unsubscribe?token={web.token('unsubscribe', reader.id)}"
    client = web.client()
    page = client.get(url)
    assert page.status_code == 200 and page.text.count("<button") == 1 and "Unsubscribe" in page.text
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE
    done = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED
    assert "already" not in client.get(url).text and "You are unsubscribed" in client.get(url).text
    back = client.post("/resubscribe", data={"csrf_token": csrf_of(done.text),
                                             "token": token_of(url)})
    assert back.status_code == 200 and "Welcome back" in back.text
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE
    assert [c.action for c in consents(web.store, reader.id)] == ["unsubscribe", "resubscribe"]


def test_the_confirmation_link_after_a_one_click_unsubscribe_says_unsubscribed_and_offers_to_come_back(
        web_db: Any) -> None:
    web = web_db
    subscribe(web.client(), topics=web.settings.topic_slugs())
    url = link_in(outbox(web.settings)[0], "/confirm")
    person = web.client(ip="203.0.113.5")
    person.post("/confirm", data={"csrf_token": csrf_of(person.get(url).text), "token": token_of(url)})
    reader = web.store.subscriber(EMAIL)
    assert reader.status == SUBSCRIBER_ACTIVE
    web.clock.advance(minutes=30)
    # RFC 8058: the mail client POSTs the List-Unsubscribe URL, no cookie, no CSRF token.
    one_click = web.client(ip="192.0.2.44").post(f"/unsubscribe?token={web.token('unsubscribe', reader.id)}",
                                                 data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED
    web.clock.advance(minutes=30)

    page = person.get(url)  # the old confirmation email, opened again
    assert page.status_code == 200 and "You are unsubscribed" in page.text
    assert "Yes, subscribe me" not in page.text and "You are subscribed" not in page.text
    assert "Subscribe again" in page.text and page.headers["cache-control"] == "no-store"
    pressed = person.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(url)})
    assert pressed.status_code == 200 and "You are unsubscribed" in pressed.text
    assert "You are subscribed" not in pressed.text
    api = person.post("/api/confirm", json={"token": token_of(url)})
    assert api.status_code == 200 and api.json()["status"] == SUBSCRIBER_UNSUBSCRIBED
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_UNSUBSCRIBED  # what the pages say is what holds
    assert [c.action for c in consents(web.store, reader.id)] == ["subscribe", "unsubscribe"]

    back = person.post("/resubscribe", data={"csrf_token": csrf_of(pressed.text),
                                             "token": pressed.text.split('name="token" value="')[-1].split('"')[0]})
    assert back.status_code == 200 and "Welcome back" in back.text
    assert web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE
    assert [c.action for c in consents(web.store, reader.id)] == ["subscribe", "unsubscribe", "resubscribe"]
    assert "Yes, subscribe me" in person.get(url).text  # subscribed again: the link is an ordinary one again


def test_the_confirmation_link_of_a_reader_who_bounced_since_says_they_are_not_subscribed(web: Any) -> None:
    from sqlalchemy import update

    from newsletter.models import SUBSCRIBER_BOUNCED
    from newsletter.store.schema import SubscriberRow

    subscribe(web.client(), topics=web.settings.topic_slugs())
    url = link_in(outbox(web.settings)[0], "/confirm")
    person = web.client()
    person.post("/confirm", data={"csrf_token": csrf_of(person.get(url).text), "token": token_of(url)})
    with web.store.session() as s, s.begin():  # what the send loop does after delivery.bounce_limit bounces
        s.execute(update(SubscriberRow).where(SubscriberRow.email == EMAIL).values(status=SUBSCRIBER_BOUNCED))
    page = person.get(url)
    assert "You are not subscribed" in page.text and "bounced" in page.text and "Yes, subscribe me" not in page.text
    pressed = person.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(url)})
    assert "You are subscribed" not in pressed.text and web.store.subscriber(EMAIL).status == SUBSCRIBER_BOUNCED


def test_an_unconfirmed_request_made_before_unsubscribing_still_confirms(web: Any) -> None:
    # A request the reader has not confirmed yet is a fresh choice when they press the button: it subscribes.
    reader = web.store.add_subscriber(EMAIL)
    subscribe(web.client(), cadence="weekly", topics=web.settings.topic_slugs())
    url = link_in(outbox(web.settings)[0], "/confirm")
    web.client().post(f"/unsubscribe?token={web.token('unsubscribe', reader.id)}", data={"List-Unsubscribe": "One-Click"})
    person = web.client()
    page = person.get(url)
    assert "Yes, subscribe me" in page.text
    done = person.post("/confirm", data={"csrf_token": csrf_of(page.text), "token": token_of(url)})
    assert "You are subscribed" in done.text
    assert (web.store.subscriber(EMAIL).status, web.store.subscriber(EMAIL).cadence) == (SUBSCRIBER_ACTIVE, "weekly")


def test_preferences_page_of_an_unsubscribed_reader_offers_to_subscribe_again(web: Any) -> None:
    reader = web.store.add_subscriber(EMAIL, status=SUBSCRIBER_UNSUBSCRIBED)
    client = web.client()
    page = client.get(f"/preferences?token={web.token('preferences', reader.id)}")
    assert "You are unsubscribed" in page.text and "Subscribe again" in page.text
    token = page.text.split('name="token" value="')[-1].split('"')[0]
    back = client.post("/resubscribe", data={"csrf_token": csrf_of(page.text), "token": token})
    assert back.status_code == 200 and web.store.subscriber(EMAIL).status == SUBSCRIBER_ACTIVE


def test_archive_lists_editions_and_an_edition_page_groups_its_papers_by_topic(web_db: Any) -> None:
    web = web_db
    topics = web.settings.topics
    first = add_edition(web.store, web.settings)
    archive = web.client().get("/editions")
    assert archive.status_code == 200 and "Trending papers, 14 Mar 2025" in archive.text
    assert f'href="/editions/{first}"' in archive.text and "3 papers" in archive.text
    page = web.client().get(f"/editions/{first}")
    assert page.status_code == 200
    body = page.text.split("</h1>", 1)[1]  # the title names the top paper (digest.subject's {top_title})
    first_topic, second_topic = (f'<h2 id="topic-{t.slug}">{escape(t.name)}' for t in topics[:2])
    assert body.index(first_topic) < body.index("Fast KV caches") < body.index(second_topic) < body.index("Robot hands")
    assert f'id="topic-{topics[0].slug}"' in body  # the anchors the email's "more papers" links use
    assert 'href="https://arxiv.org/pdf/2503.00000"' in body and "Ada Lovelace, Alan Turing" in body
    assert web.client().get("/").text.count(f"/editions/{first}") == 1  # the latest editions on the start page


def test_edition_page_escapes_paper_text(web: Any) -> None:
    eid = add_edition(web.store, web.settings, titles=("<script>alert(1)</script> attention", "B", "C"))
    body = web.client().get(f"/editions/{eid}").text
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt; attention" in body


@pytest.mark.parametrize("path", ["/editions/999", "/editions/abc", "/editions/99999999999999999999", "/nope"])
def test_missing_pages_answer_404_with_the_error_page(web: Any, path: str) -> None:
    response = web.client().get(path)
    assert response.status_code == 404 and "<h1>" in response.text and "text/html" in response.headers["content-type"]


def test_atom_and_json_feeds_list_the_editions(web: Any) -> None:
    eid = add_edition(web.store, web.settings, titles=("A & B <i>", "C", "D"))
    atom = web.client().get("/feed.atom")
    assert atom.status_code == 200 and atom.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(atom.content)
    [entry] = root.findall("a:entry", ns)
    assert entry.find("a:id", ns).text == f"{web.settings.site_url}/editions/{eid}"  # type: ignore[union-attr]
    assert entry.find("a:link", ns).get("href") == f"{web.settings.site_url}/editions/{eid}"  # type: ignore[union-attr]
    assert "A &amp; B &lt;i&gt;" in entry.find("a:content", ns).text  # type: ignore[operator,union-attr]
    feed = web.client().get("/feed.json")
    assert feed.headers["content-type"].startswith("application/feed+json")
    data = json.loads(feed.text)
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["url"] for i in data["items"]] == [f"{web.settings.site_url}/editions/{eid}"]


def test_static_stylesheet_is_served_and_pages_link_it(web: Any) -> None:
    css = web.client().get("/static/site.css")
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text
    assert 'href="/static/site.css"' in web.client().get("/editions").text


def test_a_failed_confirmation_email_answers_503_and_frees_the_address_for_a_retry(make_web: Any) -> None:
    class Down:
        def send(self, message: Any) -> None:
            raise TemporaryFailure("451 try later")

        def close(self) -> None:
            pass

    web = make_web(messenger_factory=Down)
    response = subscribe(web.client(), topics=web.settings.topic_slugs()[:1])
    assert response.status_code == 503 and response.headers["retry-after"]
    reader = web.store.subscriber(EMAIL)
    assert consents(web.store, reader.id) == []
    web.subs._messenger_factory = None  # the transport is back: the configured outbox
    assert subscribe(web.client(), topics=web.settings.topic_slugs()[:1]).status_code == 200
    assert len(outbox(web.settings)) == 1


def test_production_mode_refuses_to_start_without_a_signing_key(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    store = Store.open(settings.resolved_database_url)
    try:
        with pytest.raises(ConfigError, match="signing key"):
            create_app(settings, store, environ={"NEWSLETTER_ENV": "production"})
        with pytest.raises(ConfigError, match="NEWSLETTER_SIGNING_KEY"):
            create_app(settings, store, production=True)
        https = settings.model_copy(update={"site_url": "https://papers.example.org"})
        with pytest.raises(ConfigError):
            create_app(https, store, environ={})
        keyed = settings.model_copy(update={"signing_key": "k" * 40})
        assert create_app(keyed, store, production=True).state.web.production
        assert not create_app(settings, store, environ={}).state.web.production  # local: a stored key
    finally:
        store.close()


def test_a_config_without_topics_offers_the_built_in_topics_and_its_form_can_be_sent(tmp_path: Any) -> None:
    import yaml
    from fastapi.testclient import TestClient

    from newsletter import config

    path = write_config(tmp_path, outbox_dir=str(tmp_path / "outbox"), messenger="outbox")
    data = yaml.safe_load(path.read_text())
    del data["topics"]
    path.write_text(yaml.safe_dump(data))
    settings = config.load(path, {})
    store = Store.open(settings.resolved_database_url)
    try:
        with TestClient(create_app(settings, store, production=False, environ={}),
                        base_url="http://127.0.0.1:8000") as client:
            page = client.get("/subscribe")
            offered = page.text.count('name="topics" value="')
            assert offered == len(config.default_topics()) > 1
            done = client.post("/subscribe", data={"csrf_token": csrf_of(page.text), "email": EMAIL,
                                                   "cadence": "daily",
                                                   "topics": [t.slug for t in config.default_topics()]})
            assert done.status_code == 200 and "Check your email" in done.text
        assert store.subscriber(EMAIL).status == SUBSCRIBER_PENDING and len(outbox(settings)) == 1
    finally:
        store.close()


def test_the_confirmation_email_text(web: Any) -> None:
    subscribe(web.client(), topics=web.settings.topic_slugs()[:1])
    text = text_of(outbox(web.settings)[0])
    assert "works for 7 days" in text and web.settings.postal_address in text
    assert "To start your subscription" in text and "already" not in text


def test_serve_command_is_registered_with_an_example() -> None:
    from newsletter.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--no-scheduler" in result.output


def test_serve_runs_the_pages_and_the_scheduler_until_sigterm(tmp_path: Any) -> None:
    port = free_port()
    cfg = write_config(tmp_path, site_url=f"http://127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(cfg), "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        assert page.status_code == 200 and "Subscribe" in page.text
        store = Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")
        with store.engine.connect() as conn:
            jobs = {row[0] for row in conn.exec_driver_sql("SELECT id FROM apscheduler_jobs")}
        store.close()
        assert jobs == {"digest-daily", "digest-weekly"}
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output


def test_the_web_copy_link_shows_that_readers_own_papers_including_those_the_email_cut(make_web: Any) -> None:
    """The email's "view in browser" and "N more" links lead to the reader's own web copy: exactly the papers
    of their digest (also those the caps cut, marked, and not counted as sent), not a shared page."""
    import re
    from datetime import date

    from support import PAGES

    from newsletter.pipeline import Newsletter

    web = make_web(digest={"max_papers": 10, "max_per_topic": 4, "top_papers": 3,
                           "subject": "{count} new in {topics} topics"})
    nl = Newsletter(web.settings, web.store)
    nl.import_file(PAGES["mar14"], date(2025, 3, 14))
    ada = web.store.add_subscriber("ada@example.org", topics=["quantization", "llm-inference"])
    web.store.add_subscriber("bob@example.org")
    report = nl.send("daily", date(2025, 3, 14), fetch=False)
    mails = {str(m["To"]): m for m in outbox(web.settings)}
    mail = mails["ada@example.org"]
    assert mail["Subject"] == "8 new in 2 topics"  # digest.max_per_topic: 4 in each
    link = link_in(mail, f"/editions/{report.edition_id}/yours")
    assert link in text_of(mail).split("View in browser:", 1)[1]  # "view in browser" is the reader's copy
    assert re.search(r"\d+ more papers? on .+ in your web copy:\n" + re.escape(link) + "#topic-", text_of(mail))

    from datetime import datetime, timezone

    web.clock.now = datetime.now(timezone.utc)  # the links were signed when the digest was queued: now
    page = web.client().get(link.replace(web.settings.site_url, ""))
    assert page.status_code == 200 and "no-store" in page.headers["cache-control"]
    sent = set(web.store.delivered_papers(ada.id))
    assert len(sent) == 8
    mine = {p.id for p in web.store.papers() if {"quantization", "llm-inference"} & set(p.topics)}
    body = page.text
    titles = {p.id: str(escape(p.title)) for p in web.store.papers()}
    assert all(titles[pid] in body for pid in mine)  # every paper of their digest ...
    others = [pid for pid in titles if pid not in mine]
    assert not any(f">{titles[pid]}</a>" in body for pid in others)  # ... and only those
    assert body.count("Not in the email") == len(mine) - len(sent) > 0
    articles = [a.split("</article>", 1)[0] for a in body.split('<article class="paper">')[1:]]
    assert len(articles) == len(mine)
    for pid in sent:  # what the email listed is not marked
        [card] = [a for a in articles if f'dir="auto">{titles[pid]}' in a or f">{titles[pid]}</a>" in a]
        assert "Not in the email" not in card
    heading = re.search(r"<h1>([^<]+)</h1>", body).group(1)  # type: ignore[union-attr]
    assert heading == f"{len(mine)} new in 2 topics"
    assert f"{len(mine)} new papers in 2 topics." in body and "Your email listed 8 of them" in body
    # The cut papers were not counted as sent: the next day's plan offers them to Ada again.
    again = {r.subscriber.id: r for r in nl.plan("daily", date(2025, 3, 15)).readers}
    assert {p.id for p in again[ada.id].papers} >= mine - sent

    # Bob's token opens Bob's copy; a forged or another purpose's token gets the one bad-link answer.
    bob = web.store.subscriber("bob@example.org")
    bob_page = web.client().get(f"/editions/{report.edition_id}/yours?token={web.token('web-copy', bob.id)}")
    assert bob_page.status_code == 200 and bob_page.text.count("Not in the email") == 85 - 10
    own = token_of(link)
    forged = own[:-2] + ("yy" if own.endswith("xx") else "xx")
    for bad in (web.token("unsubscribe", ada.id), forged, ""):
        assert web.client().get(f"/editions/{report.edition_id}/yours?token={bad}").status_code == 400
    nl.close()


def test_an_edition_page_and_the_api_count_what_they_show(web: Any) -> None:
    """The edition page's title, the line under it, its contents and the API say the same numbers."""
    import re

    eid = add_edition(web.store, web.settings, subject="Trending papers, 14 Mar 2025: 210 new in 12 topics")
    body = web.client().get(f"/editions/{eid}").text
    heading = re.search(r"<h1>([^<]+)</h1>", body).group(1)  # type: ignore[union-attr]
    assert heading.endswith("3 new in 2 topics, Mar 14") and "3 new papers in 2 topics." in body
    assert "210" not in heading
    api = web.client().get(f"/api/editions/{eid}").json()
    assert (api["title"], api["paper_count"], api["topic_count"]) == (heading, 3, 2)
    assert sum(len(s["papers"]) for s in api["sections"]) == 3
