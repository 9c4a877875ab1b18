"""The HTML pages: subscribe, confirm, preferences, unsubscribe (RFC 8058 one-click), archive, editions, feeds.

Every form carries a CSRF token except the one-click unsubscribe, whose signed token is its authentication.
A GET never changes anything: mail security scanners fetch every link in a message, so confirming,
unsubscribing and saving all take a POST.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ..models import EDITION_CANCELLED, SUBSCRIBER_ACTIVE, SUBSCRIBER_UNSUBSCRIBED, Subscriber
from ..readers import InvalidReader
from ..store.editions import delivery_digest_id
from ..store.subscriptions import RequestMeta, edition_version, published_editions, published_versions
from ..subscriptions import InvalidLink
from .app import Web
from .feeds import FEED_SIZE, atom_feed, edition_view, json_feed
from .security import FormExpired, RateLimited, client_ip

router = APIRouter(include_in_schema=False)


def page(path: str) -> Any:
    """A GET route that answers HEAD too (link checkers and some mail scanners send HEAD)."""
    return router.api_route(path, methods=["GET", "HEAD"])


ARCHIVE_PAGE = 30
MAX_FORM_FIELDS = 100


def web_of(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]


def meta_of(request: Request) -> RequestMeta:
    return RequestMeta(client_ip(request), request.headers.get("user-agent"))


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


async def checked_form(web: Web, request: Request) -> FormData:
    """The posted form, once its CSRF token checks out; raises FormExpired (a 403 page) otherwise."""
    form = await read_form(request)
    if not web.csrf.valid(request, str(form.get(web.csrf.field) or "")):
        raise FormExpired()
    return form


def _form_values(form: FormData | None, reader: Subscriber | None = None) -> dict[str, Any]:
    """What the subscribe and preferences forms show: what was sent, else the reader's choices, else defaults."""
    if form is not None:
        return {"email": str(form.get("email") or "")[:320], "cadence": str(form.get("cadence") or "daily"),
                "topics": [str(t) for t in form.getlist("topics")],
                "excluded_keywords": str(form.get("excluded_keywords") or "")[:1500]}
    if reader is not None:
        return {"email": reader.email, "cadence": reader.cadence,
                "topics": list(reader.topics) if reader.topics is not None else None,
                "excluded_keywords": ", ".join(reader.excluded_keywords)}
    return {"email": "", "cadence": "daily", "topics": None, "excluded_keywords": ""}


# --- subscribe and confirm ------------------------------------------------------------------------------


@page("/")
@page("/subscribe")
def subscribe_page(request: Request) -> Response:
    web = web_of(request)
    latest = published_editions(web.store, limit=3)
    return web.render(request, "subscribe.html", {"values": _form_values(None), "error": None, "latest": latest})


@router.post("/subscribe")
async def subscribe(request: Request) -> Response:
    web = web_of(request)
    form = await checked_form(web, request)
    if wait := web.limits.per_ip.take(client_ip(request)):
        raise RateLimited(wait)
    values = _form_values(form)
    if form.get("website"):  # the honeypot: people never see it, form-filling bots fill it in
        return web.render(request, "check_email.html", {"email": values["email"]})
    subs = web.subscriptions
    try:
        email = subs.normalize(values["email"])
        choices = subs.choices(values["cadence"], values["topics"], values["excluded_keywords"])
    except InvalidReader as exc:
        return web.render(request, "subscribe.html", {"values": values, "error": exc.message, "latest": []},
                          status=400)
    if wait := web.limits.per_address.take(email):
        raise RateLimited(wait)
    # New address, pending, active or unsubscribed: the same answer (no way to learn who is subscribed).
    await run_in_threadpool(subs.subscribe, email, choices, meta_of(request))
    return web.render(request, "check_email.html", {"email": email})


def _used_confirmation(web: Web, request: Request, reader: Subscriber) -> Response:
    """A confirmation link used before, by a reader who has unsubscribed (or bounced) since: it does not
    subscribe them again (that consent was withdrawn), it says so and offers to subscribe again."""
    return web.render(request, "unsubscribe.html", {"state": "used", "reader": reader, "token": "",
                                                    "links": web.subscriptions.tokens_for(reader.id)}, private=True)


@page("/confirm")
def confirm_page(request: Request, token: str = "") -> Response:
    web = web_of(request)
    reader, used = web.subscriptions.confirmation(token)  # checks the token only; a GET confirms nothing
    if used and reader.status != SUBSCRIBER_ACTIVE:
        return _used_confirmation(web, request, reader)
    return web.render(request, "confirm.html", {"token": token, "email": reader.email}, private=True)


@router.post("/confirm")
async def confirm(request: Request) -> Response:
    web = web_of(request)
    form = await checked_form(web, request)
    token = str(form.get("token") or request.query_params.get("token") or "")
    reader = await run_in_threadpool(web.subscriptions.confirm, token, meta_of(request))
    if reader.status != SUBSCRIBER_ACTIVE:  # the request was confirmed before; the reader left since
        return _used_confirmation(web, request, reader)
    links = web.subscriptions.tokens_for(reader.id)
    return web.render(request, "confirmed.html", {"reader": reader, "links": links}, private=True)


# --- preferences ----------------------------------------------------------------------------------------


def _preferences(web: Web, request: Request, reader: Subscriber, *, form: FormData | None = None,
                 error: str | None = None, saved: bool = False, status: int = 200, notice: str | None = None,
                 seed_error: str | None = None, seeded: Any = ()) -> Response:
    from ..store.signals import reader_signals

    return web.render(request, "preferences.html", {
        "reader": reader, "values": _form_values(form, reader), "links": web.subscriptions.tokens_for(reader.id),
        "error": error, "saved": saved, "signals": reader_signals(web.store.engine, reader.id), "notice": notice,
        "seed_error": seed_error, "seeded": list(seeded),
        "seed_cap_kb": web.settings.web.max_body_bytes // 1024}, status=status, private=True)


@page("/preferences")
def preferences_page(request: Request, token: str = "") -> Response:
    web = web_of(request)
    return _preferences(web, request, web.subscriptions.reader(token, ("preferences",)))


@router.post("/preferences")
async def preferences(request: Request) -> Response:
    web = web_of(request)
    form = await checked_form(web, request)
    subs = web.subscriptions
    token = str(form.get("token") or request.query_params.get("token") or "")
    reader = subs.reader(token, ("preferences",))
    values = _form_values(form)
    try:
        choices = subs.choices(values["cadence"], values["topics"], values["excluded_keywords"])
    except InvalidReader as exc:
        return _preferences(web, request, reader, form=form, error=exc.message, status=400)
    reader = await run_in_threadpool(subs.update_preferences, token, choices)
    return _preferences(web, request, reader, saved=True)


# --- unsubscribe ----------------------------------------------------------------------------------------


@page("/unsubscribe")
def unsubscribe_page(request: Request, token: str = "") -> Response:
    """One button. Nothing changes on a GET: link scanners fetch every URL in a message."""
    web = web_of(request)
    reader = web.subscriptions.reader(token, ("unsubscribe", "preferences"))
    state = "done" if reader.status == SUBSCRIBER_UNSUBSCRIBED else "ask"
    return web.render(request, "unsubscribe.html", {"state": state, "reader": reader, "token": token,
                                                    "links": web.subscriptions.tokens_for(reader.id)}, private=True)


# RFC 8058 one-click unsubscribe: the List-Unsubscribe URL, POSTed by the mail client with the body
# "List-Unsubscribe=One-Click". No cookie, no CSRF token, no confirmation step and no redirect: the signed
# token in the URL is the authentication, and the reader is unsubscribed by this request. Repeating it
# changes nothing and answers the same. The page's own button posts the same form.
@router.post("/unsubscribe")
async def unsubscribe(request: Request) -> Response:
    web = web_of(request)
    form = await read_form(request)
    token = request.query_params.get("token") or str(form.get("token") or "")
    reader, _changed = await run_in_threadpool(web.subscriptions.unsubscribe, token, meta_of(request))
    return web.render(request, "unsubscribe.html", {"state": "done", "reader": reader, "token": token,
                                                    "links": web.subscriptions.tokens_for(reader.id)}, private=True)


@router.post("/resubscribe")
async def resubscribe(request: Request) -> Response:
    web = web_of(request)
    form = await checked_form(web, request)
    token = str(form.get("token") or "")
    reader = await run_in_threadpool(web.subscriptions.resubscribe, token, meta_of(request))
    return web.render(request, "unsubscribe.html", {"state": "back", "reader": reader, "token": token,
                                                    "links": web.subscriptions.tokens_for(reader.id)}, private=True)


@router.post("/fresh-link")
async def fresh_link(request: Request) -> Response:
    """The form of an expired or invalid link's page: new links by email, rate-limited like subscribing (the
    same buckets), with the same answer whether or not the address is on the list."""
    web = web_of(request)
    form = await checked_form(web, request)
    if wait := web.limits.per_ip.take(client_ip(request)):
        raise RateLimited(wait)
    subs = web.subscriptions
    typed = str(form.get("email") or "")[:320]
    try:
        email = subs.normalize(typed)
    except InvalidReader as exc:
        return web.render(request, "fresh_link.html", {"state": "ask", "email": typed, "error": exc.message,
                                                       "message": InvalidLink().message},
                          status=400, private=True)
    if wait := web.limits.per_address.take(email):
        raise RateLimited(wait)
    await run_in_threadpool(subs.fresh_link, email, meta_of(request))
    return web.render(request, "fresh_link.html", {"state": "sent", "email": email}, private=True)


# --- archive ------------------------------------------------------------------------------------------


@page("/editions")
def archive(request: Request, page: str = "1") -> Response:
    web = web_of(request)
    number = int(page) if page.isdigit() and 0 < int(page) <= 10_000 else 1
    found = published_editions(web.store, limit=ARCHIVE_PAGE + 1, offset=(number - 1) * ARCHIVE_PAGE)
    # The rows shown are the key: a new, cancelled or renamed edition is a new page.
    return web.cached(request, ("archive", number, tuple(found)), lambda: web.html(
        request, "archive.html", {"editions": found[:ARCHIVE_PAGE], "page": number, "more": len(found) > ARCHIVE_PAGE}))


class _Gone(Exception):
    """The edition went (cancelled, or its reader's delivery erased) between its key and its rendering."""


def _edition_number(edition_id: str) -> int | None:
    return int(edition_id) if edition_id.isdigit() and len(edition_id) < 10 else None


@page("/editions/{edition_id}")
def edition(request: Request, edition_id: str) -> Response:
    """An edition's public page, rendered once per version of what it shows (web/cache.py)."""
    web = web_of(request)
    number = _edition_number(edition_id)
    version = edition_version(web.store, number) if number else None
    if version is None or version[1] == EDITION_CANCELLED:
        return web.error(request, 404, "Edition not found", "There is no edition at this address.")

    def render() -> str:
        view = edition_view(web.store, web.settings, version[0])
        if view is None:
            raise _Gone()
        return web.html(request, "edition.html", {"view": view})

    try:
        return web.cached(request, ("edition", version), render)
    except _Gone:
        return web.error(request, 404, "Edition not found", "There is no edition at this address.")


@page("/editions/{edition_id}/yours")
def web_copy(request: Request, edition_id: str, token: str = "") -> Response:
    """A reader's web copy of their digest (the email's "view in browser" and "N more" links): exactly the papers
    of their digest, also those the email cut, which are marked. The signed token says whose it is."""
    web = web_of(request)
    reader = web.subscriptions.reader(token, ("web-copy",))  # checked on every request, cached or not
    number = _edition_number(edition_id)
    version = edition_version(web.store, number) if number else None
    digest_id = delivery_digest_id(web.store.engine, number, reader.id) if version else None
    from ..store.signals import model_version

    trained = model_version(web.store.engine, reader.id) if digest_id is not None else None

    def render() -> str:
        view = edition_view(web.store, web.settings, version[0], subscriber_id=reader.id)
        if view is None:
            raise _Gone()
        if trained is not None:  # a reader with signals: their own order and For you block (issue 15)
            from .feeds import personal_web_copy

            view = personal_web_copy(web.store, web.settings, view, reader)
        return web.html(request, "edition.html", {"view": view})

    if digest_id is not None:
        # The page shows the digest's papers and nothing else of the reader's: readers of one digest share it;
        # a reader with signals has their own (in their order), kept per state of their model.
        key = ("yours", version, digest_id) if trained is None else ("yours", version, digest_id, reader.id, trained)
        try:
            return web.cached(request, key, render, private=True)
        except _Gone:
            pass
    return web.error(request, 404, "Edition not found", "There is no digest for you at this address.")


@page("/feed.atom")
def feed_atom(request: Request) -> Response:
    web = web_of(request)
    return web.cached(request, ("atom", tuple(published_versions(web.store, FEED_SIZE))),
                      lambda: atom_feed(web.store, web.settings), media_type="application/atom+xml; charset=utf-8")


@page("/feed.json")
def feed_json(request: Request) -> Response:
    web = web_of(request)

    def render() -> bytes:  # as JSONResponse renders it
        return json.dumps(json_feed(web.store, web.settings), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")

    return web.cached(request, ("json", tuple(published_versions(web.store, FEED_SIZE))), render,
                      media_type="application/feed+json")

