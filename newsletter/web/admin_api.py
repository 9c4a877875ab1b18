"""The operator API under ``/api/admin``: editions with their state, pause, resume and cancel, and each
edition's report. Every call needs ``Authorization: Bearer <admin.api_token>`` (401 without it or with a wrong
one); without ``admin.api_token`` the whole API answers 404, as if it did not exist.

A bearer token is not sent by a browser on its own, so these POSTs need no CSRF token.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..errors import NewsletterError, NotFound
from ..store.control import change_state, edition_states
from ..store.deliveries import as_utc
from ..store.reports import edition_report
from .admin_auth import token_matches
from .api import Error, Responses
from .pages import web_of

_scheme = HTTPBearer(auto_error=False, description="The operator token: admin.api_token.")


class Unauthorized(Exception):
    """No operator token, or a wrong one: 401."""


class Off(Exception):
    """admin.api_token is not set: the operator API answers 404."""


def operator(request: Request, response: Response,
             credentials: HTTPAuthorizationCredentials | None = Depends(_scheme)) -> None:
    response.headers["cache-control"] = "no-store"  # nothing of the operator's is kept by a cache
    expected = web_of(request).settings.admin.api_token
    if not expected:
        raise Off()
    if credentials is None or not token_matches(expected, credentials.credentials):
        raise Unauthorized()


router = APIRouter(prefix="/api/admin", tags=["operator"], dependencies=[Depends(operator)],
                   responses={401: {"model": Error, "description": "No operator token, or a wrong one."},
                              404: {"model": Error, "description": "No such edition, or the operator API is "
                                    "off (admin.api_token is not set)."}})

EditionId = Path(ge=1, le=2**31 - 1, description="The edition's id (see GET /api/admin/editions).")


class EditionStateOut(BaseModel):
    id: int
    cadence: str
    period: str
    day: date
    subject: str
    state: Literal["active", "paused", "cancelled"]
    deliveries: dict[str, int]
    created_at: datetime | None


class StateChangeOut(BaseModel):
    edition_id: int
    before: str
    after: str
    cancelled: int


class DomainOut(BaseModel):
    domain: str
    readers: int
    sent: int
    failed: int
    deferred: int
    bounced: int
    timed: int
    smtp_median_ms: float | None
    smtp_p95_ms: float | None


class PaperOut(BaseModel):
    paper_id: int
    title: str
    arxiv_id: str | None
    readers: int


class ReportOut(BaseModel):
    edition_id: int
    cadence: str
    period: str
    day: date
    subject: str
    state: str
    created_at: datetime | None
    readers: int
    deliveries: dict[str, int]
    sent: int
    failed: int
    waiting: int
    deferred: int
    bounced: int
    hard_bounced: int
    complaints: int
    unsubscribes: int
    first_sent: datetime | None
    last_sent: datetime | None
    send_seconds: float | None
    domains: list[DomainOut]
    slowest_domains: list[DomainOut]
    top_papers: list[PaperOut]


CONFLICT: Responses = {409: {"model": Error, "description": "The edition was cancelled; it cannot be paused or "
                             "resumed."}}


@router.get("/editions", response_model=list[EditionStateOut])
def editions(request: Request, state: Literal["active", "paused", "cancelled"] | None = None,
             limit: int = Query(20, ge=1, le=500)) -> Any:
    """The newest editions with their state and their deliveries counted by state."""
    return [{**vars(e), "created_at": as_utc(e.created_at)}  # SQLite hands back naive UTC times
            for e in edition_states(web_of(request).store.engine, state=state, limit=limit)]


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": "not_found", "message": message}, status_code=404,
                        headers={"cache-control": "no-store"})


async def _change(request: Request, edition_id: int, action: str) -> Any:
    try:
        done = await run_in_threadpool(change_state, web_of(request).store.engine, edition_id, action)
    except NotFound as exc:
        return _not_found(exc.message)
    except NewsletterError as exc:
        return JSONResponse({"error": "conflict", "message": exc.message}, status_code=409,
                            headers={"cache-control": "no-store"})
    return vars(done)


@router.post("/editions/{edition_id}/pause", response_model=StateChangeOut, responses=CONFLICT)
async def pause(request: Request, edition_id: int = EditionId) -> Any:
    """Hold an edition's deliveries back: a running sender stops within its batch; nothing of it is claimed
    until it is resumed. Pausing twice changes nothing."""
    return await _change(request, edition_id, "pause")


@router.post("/editions/{edition_id}/resume", response_model=StateChangeOut, responses=CONFLICT)
async def resume(request: Request, edition_id: int = EditionId) -> Any:
    """Let a paused edition's deliveries go again (with the next retry, send or scheduled run)."""
    return await _change(request, edition_id, "resume")


@router.post("/editions/{edition_id}/cancel", response_model=StateChangeOut)
async def cancel(request: Request, edition_id: int = EditionId) -> Any:
    """Call off what an edition has not sent; its unsent papers stay eligible for the next edition."""
    return await _change(request, edition_id, "cancel")


@router.get("/editions/{edition_id}/report", response_model=ReportOut)
def report(request: Request, edition_id: int = EditionId) -> Any:
    """How the edition went: readers, sent, failed, bounced, complaints, unsubscribes within 7 days, the time
    to send, the failing and slowest domains (median and p95 SMTP time per message), the papers most readers
    received."""
    try:
        r = edition_report(web_of(request).store.engine, edition_id)
    except NotFound as exc:
        return _not_found(exc.message)
    return {**vars(r), "domains": [vars(d) for d in r.domains], "slowest_domains": [vars(d) for d in r.slowest_domains],
            "top_papers": [vars(p) for p in r.top_papers]}
