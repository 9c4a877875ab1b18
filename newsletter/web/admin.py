"""The operator's pages under ``/admin``: editions with their live state and pause, resume and cancel buttons,
each edition's report with a plot of sends over time (server-side SVG), and a reader search.

Off unless ``admin.password_hash`` is set: then everything under /admin answers 404. Logging in checks the
password (argon2) and is rate-limited per IP (``admin.login_attempts`` per ``admin.login_window_minutes``, the
database's rate buckets); the session is a signed cookie (``admin_auth.Sessions``); every POST carries the
session's CSRF token; every answer is ``Cache-Control: no-store``. No page loads anything from elsewhere, and
none needs JavaScript (the site's Content-Security-Policy allows none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..errors import NewsletterError, NotFound
from ..models import EDITION_STATES, SUBSCRIBER_STATUSES
from ..store.control import change_state, edition_states
from ..store.readers import search_readers
from ..store.reports import DomainStats, SendsOverTime, bucket_times, edition_report, sends_over_time
from .admin_auth import LOGOUT_STATE, Session, Sessions, check_password, waste_time
from .app import Web
from .pages import read_form, web_of
from .security import RateLimited, SharedTokenBucket, client_ip, no_store

READERS_PAGE = 50


@dataclass
class Admin:
    """What the admin pages keep on ``app.state.admin``."""

    sessions: Sessions
    logins: SharedTokenBucket


def admin_of(request: Request) -> Admin:
    admin: Admin | None = getattr(request.app.state, "admin", None)
    if admin is None:  # admin.password_hash is not set: there are no admin pages
        raise HTTPException(404)
    return admin


def install(app: FastAPI, web: Web, key: bytes, clock: Callable[[], float]) -> None:
    """Turn the pages on when admin.password_hash is set."""
    settings = web.settings
    app.state.admin = None
    if settings.admin.password_hash:
        secure = settings.site_url.startswith("https://")
        app.state.admin = Admin(
            Sessions(key, settings.admin.password_hash, hours=settings.admin.session_hours, secure=secure,
                     clock=clock),
            SharedTokenBucket(web.store, "admin-login", settings.admin.login_attempts,
                              settings.admin.login_window_minutes * 60, clock=clock))
    app.include_router(router)


router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(admin_of)])


def _session(request: Request, admin: Admin) -> Session | None:
    web = web_of(request)
    valid_after = int(web.store.get_state(LOGOUT_STATE) or 0)
    return admin.sessions.read(request.cookies.get(admin.sessions.cookie), valid_after)


def _to(request: Request, path: str, query: str = "") -> Response:
    """A 303 (a POST's answer is fetched with GET) to a path of this site, built from site_url."""
    url = web_of(request).settings.site_url.rstrip("/") + path + (f"?{query}" if query else "")
    return no_store(RedirectResponse(url, 303))


def _page(request: Request, session: Session | None, name: str, context: dict[str, Any], status: int = 200) -> Response:
    web = web_of(request)
    admin = admin_of(request)
    values = {"admin_csrf": admin.sessions.csrf(session) if session else "", "logged_in": session is not None,
              **context}
    return web.render(request, f"admin/{name}", values, status=status, private=True)


async def _posted(request: Request, admin: Admin) -> tuple[Session, Any]:
    """A POST's session and form; a missing session or a wrong CSRF token is refused (403)."""
    session = _session(request, admin)
    form = await read_form(request)
    if session is None or not admin.sessions.csrf_valid(session, str(form.get("csrf_token") or "")):
        raise HTTPException(403, "The form has expired or was not sent from this site; log in and try again.")
    return session, form


# --- log in and out --------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, admin: Admin = Depends(admin_of)) -> Response:
    if _session(request, admin):
        return _to(request, "/admin")
    return _page(request, None, "login.html", {"error": None})


@router.post("/login")
async def login(request: Request, admin: Admin = Depends(admin_of)) -> Response:
    web = web_of(request)
    if wait := await run_in_threadpool(admin.logins.take, client_ip(request)):
        raise RateLimited(wait)
    form = await read_form(request)
    password = str(form.get("password") or "")
    if not web.csrf.valid(request, str(form.get(web.csrf.field) or "")):
        await run_in_threadpool(waste_time, password)
        return _page(request, None, "login.html", {"error": "The form expired; please try again."}, status=403)
    hashed = web.settings.admin.password_hash or ""
    if not await run_in_threadpool(check_password, hashed, password):
        return _page(request, None, "login.html", {"error": "That password is not right."}, status=401)
    response = _to(request, "/admin")
    response.set_cookie(admin.sessions.cookie, admin.sessions.issue(), max_age=admin.sessions.max_age, path="/",
                        secure=admin.sessions.secure, httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request, admin: Admin = Depends(admin_of)) -> Response:
    session, _ = await _posted(request, admin)
    # Every session issued until now ends, in every worker (the cookie alone could be replayed).
    web_of(request).store.set_state(LOGOUT_STATE, str(int(admin.sessions.clock() * 1000)))
    response = _to(request, "/admin/login")
    response.delete_cookie(admin.sessions.cookie, path="/", secure=admin.sessions.secure, httponly=True,
                           samesite="strict")
    return response


# --- editions ---------------------------------------------------------------------------------------------


@router.get("")
def editions_page(request: Request, admin: Admin = Depends(admin_of)) -> Response:
    session = _session(request, admin)
    if session is None:
        return _to(request, "/admin/login")
    state = request.query_params.get("state")
    rows = edition_states(web_of(request).store.engine, state=state if state in EDITION_STATES else None, limit=50)
    return _page(request, session, "editions.html", {"editions": rows, "state": state, "states": EDITION_STATES,
                                                      "done": request.query_params.get("done")})


@router.post("/editions/{edition_id}/{action}")
async def edition_action(request: Request, edition_id: int, action: str, admin: Admin = Depends(admin_of)) -> Response:
    await _posted(request, admin)
    if action not in ("pause", "resume", "cancel") or not 0 < edition_id < 2**31:
        raise HTTPException(404)
    try:
        done = await run_in_threadpool(change_state, web_of(request).store.engine, edition_id, action)
    except NotFound:
        raise HTTPException(404) from None
    except NewsletterError as exc:
        raise HTTPException(409, exc.message) from None
    return _to(request, "/admin", f"done={done.after}-{edition_id}")


@router.get("/editions/{edition_id}")
def report_page(request: Request, edition_id: int, admin: Admin = Depends(admin_of)) -> Response:
    session = _session(request, admin)
    if session is None:
        return _to(request, "/admin/login")
    engine = web_of(request).store.engine
    try:
        report = edition_report(engine, edition_id)
    except NotFound:
        raise HTTPException(404) from None
    series = sends_over_time(engine, edition_id)
    return _page(request, session, "report.html", {"r": report, "plot": sends_svg(series),
                                                    "smtp_plot": smtp_svg(report.slowest_domains)})


# --- readers ----------------------------------------------------------------------------------------------


@router.get("/readers")
def readers_page(request: Request, admin: Admin = Depends(admin_of)) -> Response:
    session = _session(request, admin)
    if session is None:
        return _to(request, "/admin/login")
    params = request.query_params
    query = (params.get("q") or "").strip()[:320]
    status = params.get("status") if params.get("status") in SUBSCRIBER_STATUSES else None
    after = params.get("after") or ""
    page = search_readers(web_of(request).store, query=query or None, status=status,
                          after=int(after) if after.isdigit() and len(after) < 12 else None, limit=READERS_PAGE)
    return _page(request, session, "readers.html", {"page": page, "q": query, "status": status or "",
                                                     "statuses": SUBSCRIBER_STATUSES})


# --- the plot ---------------------------------------------------------------------------------------------


def sends_svg(series: SendsOverTime, width: int = 640, height: int = 180) -> Markup:
    """Messages accepted per interval as an SVG bar chart (no script, no style attribute: the CSP allows
    neither), with the first and last times and the busiest interval's count as labels."""
    if not series.counts:
        return Markup("")
    left, bottom, top = 40, 24, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(series.counts) or 1
    n = len(series.counts)
    bar = plot_w / n
    times = bucket_times(series)
    end = series.end or times[-1]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-labelledby="plot-title">',
             f'<title id="plot-title">Messages sent per {series.bucket_seconds} s, from '
             f'{times[0]:%H:%M:%S} to {end:%H:%M:%S} UTC; at most {peak} in one interval</title>',
             f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
             f'<text class="label" x="{left - 6}" y="{top + 10}" text-anchor="end">{peak}</text>',
             f'<text class="label" x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, count in enumerate(series.counts):
        if not count:
            continue
        h = plot_h * count / peak
        parts.append(f'<rect class="bar" x="{left + i * bar + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                     f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}"><title>{escape(f"{times[i]:%H:%M:%S}")}: '
                     f'{count}</title></rect>')
    parts.append(f'<text class="label" x="{left}" y="{height - 6}">{times[0]:%H:%M:%S}</text>')
    parts.append(f'<text class="label" x="{width - 8}" y="{height - 6}" text-anchor="end">'
                 f'{end:%H:%M:%S} UTC</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def smtp_svg(domains: list[DomainStats], width: int = 640) -> Markup:
    """The slowest domains' p95 SMTP time as horizontal bars, their median as a tick on each: which domain
    holds the send back, at a glance. No script, no style attribute (the CSP allows neither)."""
    rows = [d for d in domains if d.smtp_p95_ms is not None]
    if not rows:
        return Markup("")
    left, right, row_h, top = 180, 90, 22, 8
    height = top + row_h * len(rows) + 8
    peak = max(d.smtp_p95_ms or 0.0 for d in rows) or 1.0
    span = width - left - right

    def label(ms: float) -> str:
        if ms >= 1000:
            return f"{ms / 1000:.2f} s"
        return f"{ms:.1f} ms" if ms % 1 else f"{int(ms)} ms"  # as the tables write them

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-labelledby="smtp-plot-title">',
             '<title id="smtp-plot-title">p95 SMTP time per message of the slowest domains, their median '
             'marked</title>']
    for i, d in enumerate(rows):
        y = top + i * row_h
        p95 = d.smtp_p95_ms or 0.0
        w = max(span * p95 / peak, 1.0)
        name = escape(d.domain if len(d.domain) <= 28 else d.domain[:27] + "…")
        parts.append(f'<text class="label" x="{left - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        parts.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}">'
                     f'<title>{escape(d.domain)}: p95 {label(p95)}, median {label(d.smtp_median_ms or 0.0)}, '
                     f'{d.timed} timed</title></rect>')
        if d.smtp_median_ms is not None:
            x = left + span * d.smtp_median_ms / peak
            parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + row_h - 3}"/>')
        parts.append(f'<text class="label" x="{left + w + 6:.1f}" y="{y + 14}">{label(p95)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
