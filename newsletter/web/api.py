"""The JSON API: the pages' actions for programs, described by OpenAPI at ``/api/openapi.json``.

Request bodies must be ``application/json`` (FastAPI refuses other content types), which a cross-site HTML
form cannot send, so the API needs no CSRF token; actions on a subscription take its signed token.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ..models import Subscriber
from ..readers import InvalidReader
from ..store.subscriptions import EditionInfo, published_editions
from .feeds import edition_title, edition_url, edition_view, paper_json
from .pages import meta_of, web_of
from .security import RateLimited, client_ip

router = APIRouter(prefix="/api", tags=["readers"])

Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Keyword = Annotated[str, StringConstraints(max_length=60)]
TOKEN = Field(min_length=1, max_length=400, description="The signed token from the link in the reader's email.")
TOPICS = Field(None, min_length=1, max_length=100, description="Topic slugs (see GET /api/topics); null for every topic.")
KEYWORDS: Any = Field(default_factory=list, max_length=20, description="Leave out papers mentioning any of these words.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscribeIn(_In):
    email: str = Field(max_length=254, description="The address to subscribe; a confirmation link is sent there.",
                       json_schema_extra={"format": "email"})
    cadence: Literal["daily", "weekly"] = "daily"
    topics: list[Slug] | None = TOPICS
    excluded_keywords: list[Keyword] = KEYWORDS
    website: str | None = Field(None, max_length=200, description="Leave empty: a trap for bots.")


class TokenIn(_In):
    token: str = TOKEN


class PreferencesIn(_In):
    token: str = TOKEN
    cadence: Literal["daily", "weekly"] = "daily"
    topics: list[Slug] | None = TOPICS
    excluded_keywords: list[Keyword] = KEYWORDS


class Accepted(BaseModel):
    status: Literal["check_email"] = "check_email"
    message: str


class Reader(BaseModel):
    email: str
    status: str
    cadence: str
    topics: list[str] | None
    excluded_keywords: list[str]


class Error(BaseModel):
    error: str
    message: str


class TopicOut(BaseModel):
    slug: str
    name: str
    description: str


class EditionOut(BaseModel):
    id: int
    cadence: str
    period: str
    day: date
    title: str
    url: str
    paper_count: int
    published: datetime


class PaperOut(BaseModel):
    id: int
    title: str
    url: str | None
    pdf_url: str | None
    arxiv_id: str | None
    authors: list[str]
    summary: str
    upvotes: int | None
    code_url: str | None


class SectionOut(BaseModel):
    slug: str
    name: str
    papers: list[PaperOut]


class EditionDetail(EditionOut):
    topic_count: int
    sections: list[SectionOut]


BAD_TOKEN: Responses = {400: {"model": Error, "description": "The token is invalid or has expired (one answer for every case: empty, "
                   "too long, forged, expired or for another purpose; the token is never repeated), "
                   "or the body is not valid JSON."}}
Responses = dict[int | str, dict[str, Any]]
MALFORMED: Responses = {400: {"model": Error, "description": "The body is not valid JSON."}}
LIMITED: Responses = {429: {"model": Error, "description": "Too many requests from this address, or for this email address."}}

CHECK_EMAIL = ("If the address can receive mail, a confirmation link is on its way (at most one every few minutes). "
               "The subscription starts when the link is followed.")


def _reader(s: Subscriber) -> Reader:
    return Reader(email=s.email, status=s.status, cadence=s.cadence,
                  topics=list(s.topics) if s.topics is not None else None, excluded_keywords=list(s.excluded_keywords))


def _invalid(exc: InvalidReader, field: str) -> JSONResponse:
    """A semantic input error (unknown topic, undeliverable address) in FastAPI's own 422 shape."""
    return JSONResponse({"detail": [{"loc": ["body", field], "msg": exc.message, "type": "value_error"}]},
                        status_code=422)


@router.post("/subscriptions", status_code=202, response_model=Accepted,
             responses={**MALFORMED, **LIMITED, 503: {"model": Error, "description": "The email could not be sent."}})
async def subscribe(body: SubscribeIn, request: Request) -> Any:
    """Ask to subscribe. The same answer whether or not the address is already subscribed."""
    web = web_of(request)
    if wait := web.limits.per_ip.take(client_ip(request)):
        raise RateLimited(wait)
    if body.website:
        return Accepted(message=CHECK_EMAIL)
    subs = web.subscriptions
    try:
        email = subs.normalize(body.email)
    except InvalidReader as exc:
        return _invalid(exc, "email")
    try:
        choices = subs.choices(body.cadence, body.topics, body.excluded_keywords)
    except InvalidReader as exc:
        return _invalid(exc, "topics" if "topic" in exc.message else "excluded_keywords")
    if wait := web.limits.per_address.take(email):
        raise RateLimited(wait)
    await run_in_threadpool(subs.subscribe, email, choices, meta_of(request))
    return Accepted(message=CHECK_EMAIL)


@router.post("/confirm", response_model=Reader, responses=BAD_TOKEN)
async def confirm(body: TokenIn, request: Request) -> Any:
    """Confirm a subscription with the token of the confirmation email; it starts now."""
    reader = await run_in_threadpool(web_of(request).subscriptions.confirm, body.token, meta_of(request))
    return _reader(reader)


@router.get("/preferences", response_model=Reader, responses=BAD_TOKEN)
def get_preferences(request: Request, token: str = Query(min_length=1, max_length=400)) -> Any:
    """What a reader receives (preferences token)."""
    return _reader(web_of(request).subscriptions.reader(token, ("preferences",)))


@router.put("/preferences", response_model=Reader, responses=BAD_TOKEN)
def put_preferences(body: PreferencesIn, request: Request) -> Any:
    """Change topics, cadence and excluded keywords (preferences token)."""
    subs = web_of(request).subscriptions
    subs.reader(body.token, ("preferences",))  # a bad token answers 400 before any input error
    try:
        choices = subs.choices(body.cadence, body.topics, body.excluded_keywords)
    except InvalidReader as exc:
        return _invalid(exc, "topics" if "topic" in exc.message else "excluded_keywords")
    return _reader(subs.update_preferences(body.token, choices))


@router.post("/unsubscribe", response_model=Reader, responses=BAD_TOKEN)
def unsubscribe(body: TokenIn, request: Request) -> Any:
    """Unsubscribe at once (unsubscribe or preferences token). Repeating it changes nothing."""
    reader, _changed = web_of(request).subscriptions.unsubscribe(body.token, meta_of(request))
    return _reader(reader)


@router.post("/resubscribe", response_model=Reader, responses=BAD_TOKEN)
def resubscribe(body: TokenIn, request: Request) -> Any:
    """Subscribe again with the previous choices (unsubscribe or preferences token)."""
    return _reader(web_of(request).subscriptions.resubscribe(body.token, meta_of(request)))


@router.get("/topics", response_model=list[TopicOut], tags=["archive"])
def topics(request: Request) -> Any:
    """The topics a reader can choose."""
    return [TopicOut(slug=t.slug, name=t.name, description=t.description) for t in web_of(request).settings.topics]


def _edition(info: EditionInfo, request: Request) -> dict[str, Any]:
    return {"id": info.id, "cadence": info.cadence, "period": info.period, "day": info.day,
            "title": edition_title(info), "url": edition_url(web_of(request).settings, info.id),
            "paper_count": info.paper_count, "published": info.created_at}


@router.get("/editions", response_model=list[EditionOut], tags=["archive"])
def editions(request: Request, limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=100_000),
             cadence: Literal["daily", "weekly"] | None = None) -> Any:
    """Published editions, newest first."""
    return [_edition(e, request) for e in published_editions(web_of(request).store, limit=limit, offset=offset,
                                                              cadence=cadence)]


@router.get("/editions/{edition_id}", response_model=EditionDetail, tags=["archive"],
            responses={404: {"model": Error, "description": "No such edition."}})
def edition(request: Request, edition_id: int = Path(ge=1, le=2**31 - 1)) -> Any:
    """One edition with its papers grouped by topic."""
    web = web_of(request)
    view = edition_view(web.store, web.settings, edition_id)
    if view is None:
        return JSONResponse({"error": "not_found", "message": "No such edition."}, status_code=404)
    # The title and the counts are those of the sections below (the edition page says the same).
    return {**_edition(view.info, request), "title": view.title, "paper_count": view.paper_count,
            "topic_count": view.topic_count,
            "sections": [{"slug": s.slug, "name": s.name, "papers": [paper_json(p) for p in s.papers]}
                         for s in view.sections]}
