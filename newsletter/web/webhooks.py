"""``POST /webhooks/{ses,postmark,sendgrid,mailgun}``: bounce and complaint notifications of sending services.

Each request is verified the provider's way (``newsletter/inbound/webhooks.py``) before anything is read; a
request that fails gets 401 (no credential) or 403 (a wrong one) and changes nothing. An endpoint whose
setting is empty answers 404. Each event is stored once (its key is the provider's event id, or a hash of
it), so the provider's retries of a request have no second effect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..inbound import InboundProcessor
from ..inbound import providers
from ..inbound.classify import InboundEvent
from ..inbound.webhooks import (
    WebhookRefused,
    subscribe_url_allowed,
    verify_basic_auth,
    verify_mailgun,
    verify_sendgrid,
    verify_sns,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", include_in_schema=False)

MAX_BODY = 1024 * 1024  # a provider's batch of events is far smaller
_CERTS: "OrderedDict[str, bytes]" = OrderedDict()  # SNS signing certificates by URL (a handful in practice)
_CERTS_LOCK = threading.Lock()


def fetch_cert(url: str) -> bytes:
    """The SNS signing certificate at ``url`` (already checked against webhooks.sns_cert_url), cached."""
    with _CERTS_LOCK:
        if url in _CERTS:
            _CERTS.move_to_end(url)
            return _CERTS[url]
    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=False) as response:
            if response.status_code != 200:
                raise WebhookRefused(403, f"SigningCertURL answered {response.status_code}")
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > 65536:
                    raise WebhookRefused(403, "SigningCertURL is too large for a certificate")
    except httpx.HTTPError as exc:
        raise WebhookRefused(403, f"SigningCertURL could not be fetched: {exc}") from None
    with _CERTS_LOCK:
        _CERTS[url] = data
        while len(_CERTS) > 32:
            _CERTS.popitem(last=False)
    return data


def _processor(request: Request) -> InboundProcessor:
    state = request.app.state
    found = getattr(state, "inbound_processor", None)
    if found is None:
        web = state.web
        found = state.inbound_processor = InboundProcessor(web.settings, web.store)
    return found  # type: ignore[no-any-return]


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise WebhookRefused(413, "request too large")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise WebhookRefused(413, "request too large")
    return data


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise WebhookRefused(400, "the body is not JSON") from None


def _refused(exc: WebhookRefused) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if exc.status == 401 else None
    return JSONResponse({"error": "refused" if exc.status in (401, 403) else "bad_request", "message": exc.message},
                        status_code=exc.status, headers=headers)


def _not_configured(provider: str) -> JSONResponse:
    return JSONResponse({"error": "not_found", "message": f"the {provider} webhook is not configured"},
                        status_code=404)


def _record(request: Request, source: str, items: list[tuple[str, InboundEvent]]) -> JSONResponse:
    processor = _processor(request)
    effects: dict[str, int] = {}
    for key, event in items:
        done = processor.handle(event, key=f"{source}:{key}"[:128], source=source)
        effects[done.effect] = effects.get(done.effect, 0) + 1
    return JSONResponse({"recorded": len(items), "effects": effects})


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:40]


@router.post("/ses")
async def ses(request: Request) -> JSONResponse:
    conf = request.app.state.web.settings.webhooks
    if not conf.ses_topic_arns:
        return _not_configured("ses")
    try:
        raw = await _body(request)
        message = _json(raw)
        if not isinstance(message, dict):
            raise WebhookRefused(400, "an SNS message is a JSON object")
        await run_in_threadpool(verify_sns, message, cert_url_pattern=conf.sns_cert_url,
                                topic_arns=tuple(conf.ses_topic_arns), fetch_cert=fetch_cert,
                                max_age=conf.max_age_seconds)
    except WebhookRefused as exc:
        log.warning("SES webhook refused: %s", exc.message)
        return _refused(exc)
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        if not subscribe_url_allowed(message):
            return _refused(WebhookRefused(403, "SubscribeURL is not on the certificate's host"))
        try:
            await run_in_threadpool(lambda: httpx.get(str(message["SubscribeURL"]), timeout=10.0,
                                                      follow_redirects=False).raise_for_status())
        except httpx.HTTPError as exc:
            return JSONResponse({"error": "confirmation_failed", "message": str(exc)}, status_code=502)
        log.info("SES webhook: subscribed to %s", message.get("TopicArn"))
        return JSONResponse({"confirmed": message.get("TopicArn")})
    if kind != "Notification":
        return JSONResponse({"recorded": 0})
    try:
        inner = json.loads(str(message.get("Message", "")))
    except ValueError:
        return _refused(WebhookRefused(400, "the SNS Message is not an SES notification"))
    events = providers.ses_events(inner) if isinstance(inner, dict) else []
    items = [(f"{message.get('MessageId')}:{i}", e) for i, e in enumerate(events)]
    return await run_in_threadpool(_record, request, "ses", items)


@router.post("/postmark")
async def postmark(request: Request) -> JSONResponse:
    conf = request.app.state.web.settings.webhooks
    if not (conf.postmark_username and conf.postmark_password):
        return _not_configured("postmark")
    try:
        verify_basic_auth(request.headers.get("authorization"), conf.postmark_username, conf.postmark_password)
        raw = await _body(request)
        data = _json(raw)
    except WebhookRefused as exc:
        return _refused(exc)
    events = providers.postmark_events(data) if isinstance(data, dict) else []
    key = data.get("ID") if isinstance(data, dict) else None
    items = [(f"{data.get('RecordType')}:{key or _digest(raw)}:{i}", e) for i, e in enumerate(events)]
    return await run_in_threadpool(_record, request, "postmark", items)


@router.post("/sendgrid")
async def sendgrid(request: Request) -> JSONResponse:
    conf = request.app.state.web.settings.webhooks
    if not conf.sendgrid_public_key:
        return _not_configured("sendgrid")
    try:
        raw = await _body(request)
        verify_sendgrid(raw, request.headers, conf.sendgrid_public_key, max_age=conf.max_age_seconds)
        data = _json(raw)
    except WebhookRefused as exc:
        return _refused(exc)
    items = [(event_id or _digest(raw, i), e) for i, (event_id, e) in enumerate(providers.sendgrid_events(data))]
    return await run_in_threadpool(_record, request, "sendgrid", items)


@router.post("/mailgun")
async def mailgun(request: Request) -> JSONResponse:
    conf = request.app.state.web.settings.webhooks
    if not conf.mailgun_signing_key:
        return _not_configured("mailgun")
    try:
        raw = await _body(request)
        data = _json(raw)
        if not isinstance(data, dict):
            raise WebhookRefused(401, "Mailgun request without a signature")
        verify_mailgun(data, conf.mailgun_signing_key, max_age=conf.max_age_seconds)
    except WebhookRefused as exc:
        return _refused(exc)
    event_id = (data.get("event-data") or {}).get("id") or data["signature"].get("token")
    items = [(f"{event_id}:{i}", e) for i, e in enumerate(providers.mailgun_events(data))]
    return await run_in_threadpool(_record, request, "mailgun", items)
