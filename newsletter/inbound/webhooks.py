"""Verification of the sending services' webhook requests, each the provider's own way. Pure apart from the
SNS certificate fetch (done through an injected function).

- SES through SNS: the message's ``SigningCertURL`` must match ``webhooks.sns_cert_url`` (https and an
  ``sns.<region>.amazonaws.com`` host in production), the certificate fetched from it must verify the
  ``Signature`` (SignatureVersion 1: SHA1withRSA; 2: SHA256withRSA) over the canonical string of the
  message's fields, the ``TopicArn`` must be one of ``webhooks.ses_topic_arns``, and the ``Timestamp``
  recent. A SubscriptionConfirmation is confirmed by fetching its SubscribeURL, only on the certificate's
  host. (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html)
- Mailgun: HMAC-SHA256 of ``timestamp + token`` under the webhook signing key, hex, in
  ``signature.signature``. (https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/)
- SendGrid: ECDSA P-256/SHA-256 over ``timestamp + body``; the base64 DER signature and the timestamp in the
  ``X-Twilio-Email-Event-Webhook-Signature`` and ``-Timestamp`` headers, checked with the public key from
  SendGrid's settings page. (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features)
- Postmark: HTTP basic auth with the user and password set in its webhook URL.

A request that fails any check raises ``WebhookRefused`` (401 when a credential is missing, 403 when it is
wrong) and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit


class WebhookRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _age_ok(sent: datetime, now: datetime, max_age: int) -> bool:
    return abs((now - sent).total_seconds()) <= max_age


# --- SES through SNS --------------------------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise WebhookRefused(403, "unknown SNS message type")
    out = []
    for name in fields:
        if name == "Subject" and message.get("Subject") is None:
            continue  # optional, and left out of the string when absent
        if message.get(name) is None:
            raise WebhookRefused(403, f"SNS message without {name}")
        out.append(f"{name}\n{message[name]}\n")
    return "".join(out).encode("utf-8")


def verify_sns(message: Mapping[str, Any], *, cert_url_pattern: str, topic_arns: tuple[str, ...],
               fetch_cert: Callable[[str], bytes], max_age: int, now: datetime | None = None) -> None:
    """Raises WebhookRefused unless ``message`` is a genuine, recent SNS message of an allowed topic."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if not message.get("Signature") or not message.get("SigningCertURL"):
        raise WebhookRefused(401, "SNS message without a signature")
    cert_url = str(message["SigningCertURL"])
    if not re.fullmatch(cert_url_pattern, cert_url):
        raise WebhookRefused(403, "SigningCertURL is not on an allowed SNS host")
    if str(message.get("TopicArn")) not in topic_arns:
        raise WebhookRefused(403, "TopicArn is not one of webhooks.ses_topic_arns")
    version = str(message.get("SignatureVersion", "1"))
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
    if digest is None:
        raise WebhookRefused(403, "unknown SignatureVersion")
    try:
        sent = datetime.fromisoformat(str(message.get("Timestamp")).replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRefused(403, "SNS message with a bad Timestamp") from None
    if not _age_ok(sent, now or datetime.now(timezone.utc), max_age):
        raise WebhookRefused(403, "SNS message too old (or from the future)")
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
        cert = x509.load_pem_x509_certificate(fetch_cert(cert_url))
    except (ValueError, binascii.Error) as exc:
        raise WebhookRefused(403, f"SNS signature or certificate unreadable: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(403, "SNS certificate without an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), digest)
    except InvalidSignature:
        raise WebhookRefused(403, "SNS signature does not match") from None


def subscribe_url_allowed(message: Mapping[str, Any]) -> bool:
    """A SubscribeURL is fetched only on the (already verified) certificate's scheme and host."""
    a, b = urlsplit(str(message.get("SubscribeURL", ""))), urlsplit(str(message.get("SigningCertURL", "")))
    return bool(a.scheme and a.scheme == b.scheme and a.netloc == b.netloc)


# --- Mailgun ----------------------------------------------------------------------------------------------


def verify_mailgun(body: Mapping[str, Any], key: str, *, max_age: int, now: datetime | None = None) -> None:
    sig = body.get("signature") if isinstance(body, Mapping) else None
    if not isinstance(sig, Mapping) or not sig.get("signature"):
        raise WebhookRefused(401, "Mailgun request without a signature")
    timestamp, token = str(sig.get("timestamp", "")), str(sig.get("token", ""))
    expected = hmac.new(key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(sig["signature"])):
        raise WebhookRefused(403, "Mailgun signature does not match")
    try:
        sent = datetime.fromtimestamp(int(float(timestamp)), timezone.utc)
    except (ValueError, OverflowError):
        raise WebhookRefused(403, "Mailgun timestamp unreadable") from None
    if not _age_ok(sent, now or datetime.now(timezone.utc), max_age):
        raise WebhookRefused(403, "Mailgun request too old")


# --- SendGrid ---------------------------------------------------------------------------------------------

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def verify_sendgrid(raw: bytes, headers: Mapping[str, str], public_key: str, *, max_age: int,
                    now: datetime | None = None) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRefused(401, "SendGrid request without a signature")
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
    except (ValueError, binascii.Error):
        raise WebhookRefused(403, "webhooks.sendgrid_public_key is not a base64 public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRefused(403, "webhooks.sendgrid_public_key is not an ECDSA key")
    try:
        key.verify(base64.b64decode(signature), timestamp.encode("utf-8") + raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise WebhookRefused(403, "SendGrid signature does not match") from None
    try:
        sent = datetime.fromtimestamp(int(timestamp), timezone.utc)
    except (ValueError, OverflowError):
        raise WebhookRefused(403, "SendGrid timestamp unreadable") from None
    if not _age_ok(sent, now or datetime.now(timezone.utc), max_age):
        raise WebhookRefused(403, "SendGrid request too old")


# --- Postmark ---------------------------------------------------------------------------------------------


def verify_basic_auth(header: str | None, username: str, password: str) -> None:
    if not header or not header.lower().startswith("basic "):
        raise WebhookRefused(401, "Postmark request without credentials")
    try:
        user, _, given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise WebhookRefused(401, "unreadable basic auth") from None
    ok_user = hmac.compare_digest(user.encode("utf-8"), username.encode("utf-8"))
    ok_pass = hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))
    if not (ok_user and ok_pass):
        raise WebhookRefused(403, "wrong Postmark credentials")
