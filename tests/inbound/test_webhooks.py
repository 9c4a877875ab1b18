"""POST /webhooks/{ses,postmark,sendgrid,mailgun}: payloads in each provider's documented shape, signed with
a test key the way the provider signs. A request that fails verification gets 401 or 403 and changes
nothing; a genuine one takes effect once, however often the provider retries it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from newsletter.inbound.webhooks import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, sns_string_to_sign
from newsletter.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_BOUNCED, SUBSCRIBER_UNSUBSCRIBED
from newsletter.store.inbound import events
from newsletter.web.app import create_app

from inbound_support import World, make_world

READERS = ("ada@example.org", "bob@example.org", "cy@example.org", "dan@example.org")
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
MAILGUN_KEY = "key-mailgun-test-0123456789abcdef"


@pytest.fixture
def sendgrid_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sns_cert(test_ca, httpserver) -> Iterator[tuple[Any, str]]:  # type: ignore[no-untyped-def]
    """An SNS-like signing certificate from the test CA, served over HTTP on loopback."""
    cert_file, _key_file, key = test_ca.issue("sns-signing", hosts=("sns.us-east-1.amazonaws.com",))
    # A fresh name per certificate, as SNS does (the app caches a certificate by its URL).
    path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    httpserver.expect_request(path).respond_with_data(cert_file.read_bytes(), content_type="application/x-pem-file")
    yield key, httpserver.url_for(path)


@pytest.fixture
def world(tmp_path: Path, sendgrid_key: Any) -> Iterator[World]:
    from cryptography.hazmat.primitives import serialization

    public = base64.b64encode(sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    w = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", READERS,
                   environ={"PM_PASSWORD": "pm-secret", "MG_KEY": MAILGUN_KEY},
                   delivery={"bounce_limit": 1},
                   webhooks={"ses_topic_arns": [TOPIC],
                             # Tests allow the loopback certificate server; production allows only SNS hosts.
                             "sns_cert_url": r"^http://127\.0\.0\.1:\d+/SimpleNotificationService-[0-9a-f]+\.pem$",
                             "postmark_username": "postmark", "postmark_password": "${PM_PASSWORD}",
                             "sendgrid_public_key": public, "mailgun_signing_key": "${MG_KEY}"})
    yield w
    w.nl.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.nl.settings, world.nl.store, production=False, environ={})  # type: ignore[attr-defined]
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def status(world: World, email: str) -> str:
    return world.subscriber(email).status  # type: ignore[attr-defined,no-any-return]


def nothing_changed(world: World) -> bool:
    return events(world.nl.store) == [] and all(status(world, e) == SUBSCRIBER_ACTIVE for e in READERS)  # type: ignore[attr-defined]


# --- SES through SNS -------------------------------------------------------------------------------------


def sns_message(key: Any, cert_url: str, inner: dict[str, Any], *, version: str = "2",
                when: datetime | None = None, **fields: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    msg = {"Type": "Notification", "MessageId": f"sns-{time.time_ns()}", "TopicArn": TOPIC,
           "Message": json.dumps(inner), "Timestamp": (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
           "SignatureVersion": version, "SigningCertURL": cert_url,
           "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe", **fields}
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()
    msg["Signature"] = base64.b64encode(key.sign(sns_string_to_sign(msg), padding.PKCS1v15(), digest)).decode()
    return msg


def ses_bounce(world: World, email: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    sent = world.sent[email]
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General" if bounce_type == "Permanent" else "MailboxFull",
                       "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                       "timestamp": "2026-12-01T10:00:00.000Z", "feedbackId": "0100-feedback"},
            "mail": {"timestamp": "2026-12-01T09:59:58.000Z", "source": sent.return_path,
                     "messageId": "0100018c-ses-id", "destination": [email],
                     "commonHeaders": {"messageId": sent.message_id, "to": [email]}}}


def test_ses_bounces_and_complaints_through_sns_take_effect(world: World, client: TestClient, sns_cert) -> None:  # type: ignore[no-untyped-def]
    key, url = sns_cert
    msg = sns_message(key, url, ses_bounce(world, "ada@example.org"))
    r = client.post("/webhooks/ses", content=json.dumps(msg), headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json()["effects"] == {"bounced": 1}
    assert status(world, "ada@example.org") == SUBSCRIBER_BOUNCED
    # SNS retries a delivery it did not see acknowledged: the same message has no second effect.
    assert client.post("/webhooks/ses", content=json.dumps(msg)).json()["effects"] == {"duplicate": 1}
    # A transient bounce (SignatureVersion 1, SHA1withRSA) is recorded and counts nothing.
    soft = sns_message(key, url, ses_bounce(world, "bob@example.org", "Transient"), version="1")
    assert client.post("/webhooks/ses", content=json.dumps(soft)).json()["effects"] == {"recorded": 1}
    complaint = {"notificationType": "Complaint",
                 "complaint": {"complainedRecipients": [{"emailAddress": "cy@example.org"}],
                               "complaintFeedbackType": "abuse", "userAgent": "Yahoo!-Mail-Feedback/2.0"},
                 "mail": {"source": world.sent["cy@example.org"].return_path,
                          "commonHeaders": {"messageId": world.sent["cy@example.org"].message_id}}}
    r = client.post("/webhooks/ses", content=json.dumps(sns_message(key, url, complaint)))
    assert r.json()["effects"] == {"unsubscribed": 1} and status(world, "cy@example.org") == SUBSCRIBER_UNSUBSCRIBED
    assert status(world, "bob@example.org") == SUBSCRIBER_ACTIVE


def test_sns_requests_that_fail_verification_change_nothing(world: World, client: TestClient, sns_cert,
                                                            test_ca) -> None:  # type: ignore[no-untyped-def]
    key, url = sns_cert
    inner = ses_bounce(world, "ada@example.org")
    good = sns_message(key, url, inner)
    tampered = {**good, "Message": good["Message"].replace("ada@example.org", "bob@example.org")}
    _c, _k, other_key = test_ca.issue("not-sns")
    cases = {
        "tampered message": (tampered, 403),
        "signed by another key": (sns_message(other_key, url, inner), 403),
        "certificate off the allowed hosts": (sns_message(key, url.replace("127.0.0.1", "localhost"), inner), 403),
        "https certificate URL on another path": (sns_message(key, url.replace(".pem", ".txt"), inner), 403),
        "another topic": (sns_message(key, url, inner, TopicArn="arn:aws:sns:us-east-1:999:evil"), 403),
        "an old message": (sns_message(key, url, inner, when=datetime.now(timezone.utc) - timedelta(hours=2)), 403),
        "no signature": ({k: v for k, v in good.items() if k != "Signature"}, 401),
    }
    for name, (msg, code) in cases.items():
        r = client.post("/webhooks/ses", content=json.dumps(msg))
        assert r.status_code == code, name
        assert "ada@example.org" not in r.text  # nothing echoed
    assert nothing_changed(world)


def test_an_sns_subscription_is_confirmed_only_on_the_certificates_host(world: World, client: TestClient,
                                                                        sns_cert, httpserver) -> None:  # type: ignore[no-untyped-def]
    key, url = sns_cert
    httpserver.expect_request("/", query_string={"Action": "ConfirmSubscription", "Token": "t0k"}).respond_with_data("ok")
    confirm = httpserver.url_for("/") + "?Action=ConfirmSubscription&Token=t0k"
    msg = sns_message(key, url, {}, Type="SubscriptionConfirmation", Token="t0k", SubscribeURL=confirm,
                      Message="You have chosen to subscribe to the topic")
    r = client.post("/webhooks/ses", content=json.dumps(msg))
    assert r.status_code == 200 and r.json() == {"confirmed": TOPIC}
    assert any(req.args.get("Token") == "t0k" for req, _ in httpserver.log)
    elsewhere = sns_message(key, url, {}, Type="SubscriptionConfirmation", Token="t0k",
                            SubscribeURL="http://localhost:9/?Action=ConfirmSubscription", Message="x")
    assert client.post("/webhooks/ses", content=json.dumps(elsewhere)).status_code == 403


# --- Postmark --------------------------------------------------------------------------------------------


def test_postmark_takes_basic_auth_from_the_settings(world: World, client: TestClient) -> None:
    bounce = {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
              "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
              "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
              "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
              "Email": "bob@example.org", "From": "papers@example.org", "BouncedAt": "2026-12-01T10:00:00Z",
              "Inactive": True, "CanActivate": True, "Subject": "Trending papers", "MessageStream": "outbound"}
    assert client.post("/webhooks/postmark", json=bounce).status_code == 401
    assert client.post("/webhooks/postmark", json=bounce, auth=("postmark", "wrong")).status_code == 403
    assert client.post("/webhooks/postmark", json=bounce, auth=("someone", "pm-secret")).status_code == 403
    assert nothing_changed(world)
    r = client.post("/webhooks/postmark", json=bounce, auth=("postmark", "pm-secret"))
    assert r.status_code == 200 and r.json()["effects"] == {"bounced": 1}
    assert status(world, "bob@example.org") == SUBSCRIBER_BOUNCED
    spam = {"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
            "Email": "dan@example.org", "Details": "Test spam complaint details", "MessageStream": "outbound"}
    assert client.post("/webhooks/postmark", json=spam, auth=("postmark", "pm-secret")).json()["effects"] == {"unsubscribed": 1}
    assert status(world, "dan@example.org") == SUBSCRIBER_UNSUBSCRIBED


# --- SendGrid --------------------------------------------------------------------------------------------


def sendgrid_headers(key: Any, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(sig).decode(), SENDGRID_TIMESTAMP: ts,
            "content-type": "application/json"}


def test_sendgrid_events_are_verified_with_its_ecdsa_public_key(world: World, client: TestClient,
                                                               sendgrid_key: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    batch = [
        {"email": "cy@example.org", "timestamp": 1733040000, "smtp-id": world.sent["cy@example.org"].message_id,
         "event": "bounce", "category": ["digest"], "sg_event_id": "sg-bounce-1", "sg_message_id": "sgm1.filter0001",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist.", "status": "5.1.1",
         "type": "bounce"},
        {"email": "dan@example.org", "timestamp": 1733040001, "event": "spamreport", "sg_event_id": "sg-spam-1",
         "sg_message_id": "sgm2.filter0001"},
        {"email": "ada@example.org", "timestamp": 1733040002, "event": "deferred", "sg_event_id": "sg-def-1",
         "response": "400 try again later", "attempt": "5"},
        {"email": "bob@example.org", "timestamp": 1733040003, "event": "delivered", "sg_event_id": "sg-del-1"},
    ]
    body = json.dumps(batch).encode()
    assert client.post("/webhooks/sendgrid", content=body, headers={"content-type": "application/json"}).status_code == 401
    forged = sendgrid_headers(ec.generate_private_key(ec.SECP256R1()), body)
    assert client.post("/webhooks/sendgrid", content=body, headers=forged).status_code == 403
    altered = sendgrid_headers(sendgrid_key, body)
    assert client.post("/webhooks/sendgrid", content=body.replace(b"cy@", b"ad@"), headers=altered).status_code == 403
    stale = sendgrid_headers(sendgrid_key, body, int(time.time()) - 7200)
    assert client.post("/webhooks/sendgrid", content=body, headers=stale).status_code == 403
    assert nothing_changed(world)
    r = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(sendgrid_key, body))
    assert r.status_code == 200 and r.json() == {"recorded": 3, "effects": {"bounced": 1, "unsubscribed": 1, "recorded": 1}}
    assert status(world, "cy@example.org") == SUBSCRIBER_BOUNCED
    assert status(world, "dan@example.org") == SUBSCRIBER_UNSUBSCRIBED
    assert status(world, "ada@example.org") == SUBSCRIBER_ACTIVE  # a deferral is no bounce


# --- Mailgun ---------------------------------------------------------------------------------------------


def mailgun_body(event: dict[str, Any], *, key: str = MAILGUN_KEY, timestamp: int | None = None) -> dict[str, Any]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    token = hashlib.sha256(f"{ts}{event.get('id')}".encode()).hexdigest()[:50]
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": event}


def test_mailgun_events_are_verified_by_hmac(world: World, client: TestClient) -> None:
    failed = {"id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": 1733040000.0, "event": "failed", "severity": "permanent",
              "reason": "bounce", "recipient": "ada@example.org",
              "envelope": {"sender": world.sent["ada@example.org"].return_path, "transport": "smtp"},
              "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "attempt-no": 1,
                                  "message": "5.1.1 The email account that you tried to reach does not exist",
                                  "description": ""},
              "message": {"headers": {"message-id": world.sent["ada@example.org"].message_id.strip("<>"),
                                      "to": "ada@example.org", "from": "papers@example.org"}}}
    assert client.post("/webhooks/mailgun", json={"event-data": failed}).status_code == 401
    assert client.post("/webhooks/mailgun", json=mailgun_body(failed, key="not-the-key")).status_code == 403
    assert client.post("/webhooks/mailgun", json=mailgun_body(failed, timestamp=int(time.time()) - 7200)).status_code == 403
    assert nothing_changed(world)
    r = client.post("/webhooks/mailgun", json=mailgun_body(failed))
    assert r.status_code == 200 and r.json()["effects"] == {"bounced": 1}
    (event,) = events(world.nl.store)  # type: ignore[attr-defined]
    assert event.delivery_id == world.sent["ada@example.org"].delivery_id and "5.1.1" in event.reason
    complained = {"id": "-Agny091SquKnsrW2NEKUA", "event": "complained", "recipient": "bob@example.org",
                  "message": {"headers": {"message-id": "x@example.org"}}}
    assert client.post("/webhooks/mailgun", json=mailgun_body(complained)).json()["effects"] == {"unsubscribed": 1}
    temporary = {"id": "t1", "event": "failed", "severity": "temporary", "reason": "generic", "recipient": "cy@example.org",
                 "delivery-status": {"code": 452, "message": "4.2.2 mailbox full"}}
    assert client.post("/webhooks/mailgun", json=mailgun_body(temporary)).json()["effects"] == {"recorded": 1}
    assert status(world, "cy@example.org") == SUBSCRIBER_ACTIVE


def test_an_endpoint_without_its_setting_is_not_there(tmp_path: Path) -> None:
    w = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",))
    try:
        app = create_app(w.nl.settings, w.nl.store, production=False, environ={})  # type: ignore[attr-defined]
        with TestClient(app, base_url="http://127.0.0.1:8000") as c:
            for provider in ("ses", "postmark", "sendgrid", "mailgun"):
                assert c.post(f"/webhooks/{provider}", json={}).status_code == 404
    finally:
        w.nl.close()
