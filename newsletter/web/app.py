"""The web app: subscribe, confirm, preferences, one-click unsubscribe, the archive and its feeds, a JSON API.

``create_app(settings)`` builds it; ``newsletter serve`` runs it with uvicorn (and the scheduler). Pages are
server-rendered Jinja2 (``templates/web/``) and work without JavaScript; the JSON API under ``/api`` does the
same actions and is described at ``/api/openapi.json``. Both call ``newsletter.subscriptions``.

Example::

    import uvicorn
    from newsletter.config import load
    from newsletter.web import create_app
    uvicorn.run(create_app(load("config.yaml")), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit

import jinja2
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..render.textfilters import clean, format_day, meta_items, paper_links, plural, safe_url, shorten, summary
from ..store import Store
from ..subscriptions import InvalidLink, SendFailed, Subscriptions, is_production
from .cache import PRIVATE, Page, PageCache, fingerprint, respond
from .security import (
    SECURITY_HEADERS,
    BodyLimitMiddleware,
    Csrf,
    FormExpired,
    RateLimited,
    RateLimits,
    SecurityHeadersMiddleware,
    TrustedHostMiddleware,
    allowed_hosts,
    no_store,
)

log = logging.getLogger(__name__)


def shipped_web_templates() -> Path:
    """``newsletter/templates/web`` inside an installed wheel, else ``templates/web`` of the source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "templates" / "web"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent.parent / "templates" / "web"


@dataclass
class Web:
    """What every handler needs, kept on ``app.state.web``."""

    settings: Settings
    store: Store
    subscriptions: Subscriptions
    csrf: Csrf
    limits: RateLimits
    templates: jinja2.Environment
    production: bool
    pages: PageCache  # rendered public pages (and web copies, per digest): see web/cache.py
    fingerprint: str  # of the settings and templates the cached pages are rendered with

    def cached(self, request: Request, key: tuple[Any, ...], make: Callable[[], bytes | str], *,
               media_type: str = "text/html; charset=utf-8", private: bool = False) -> Response:
        """The page of ``key`` (everything it is made of), rendered by ``make`` on a miss; answered with ETag,
        304, gzip and, unless ``private``, a public Cache-Control. No CSRF cookie: these pages hold no form."""
        # With the cache off (web.page_cache_mb 0) a page serves one answer: not worth gzipping at level 9.
        page = self.pages.page((self.fingerprint, *key),
                               lambda: Page.of(make(), media_type, compress=self.pages.max_bytes > 0))
        max_age = self.settings.web.cache_max_age
        return respond(request, page, cache_control=PRIVATE if private else f"public, max-age={max_age}")

    def html(self, request: Request, name: str, context: Mapping[str, Any]) -> str:
        """A page with no form (so no CSRF token): what ``cached`` keeps."""
        return self.templates.get_template(name).render({"request": request, **context})

    def render(self, request: Request, name: str, context: Mapping[str, Any] | None = None, *,
               status: int = 200, private: bool = False, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """A page; ``private`` for pages reached with a token (never cached)."""
        values = {"request": request, "csrf_token": self.csrf.form_token(request), **(context or {})}
        html = self.templates.get_template(name).render(values)
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        self.csrf.set_cookie(request, response)
        if private:
            no_store(response)
        return response

    def error(self, request: Request, status: int, title: str, message: str, *,
              headers: Mapping[str, str] | None = None) -> Response:
        if _machine(request):
            return JSONResponse({"error": _slug(title), "message": message}, status_code=status, headers=dict(headers or {}))
        return self.render(request, "error.html", {"title": title, "message": message, "status": status},
                           status=status, private=True, headers=headers)


    def too_large(self, request: Request) -> Response:
        limit = self.settings.web.max_body_bytes
        size = f"{limit // 1024} KB" if limit >= 1024 else f"{limit} bytes"
        return self.error(request, 413, "Request too large", f"The request is larger than this site accepts ({size}).",
                          headers={"connection": "close"})

    def unknown_host(self, request: Request) -> Response:
        return self.error(request, 400, "Bad request", "This site is not served under that name.")

    def site_redirect(self, path: str, query: str = "") -> Response:
        """A redirect to ``path`` of this site, built from site_url (never from the request's Host header)."""
        return RedirectResponse(self.settings.site_url.rstrip("/") + path + (f"?{query}" if query else ""), 307)


def _machine(request: Request) -> bool:
    """The API and the webhooks answer errors as JSON; the pages as a page."""
    return request.url.path.startswith(("/api/", "/webhooks/"))


def _slug(title: str) -> str:
    return "_".join(title.lower().replace("'", "").split())[:40]


def create_app(settings: Settings, store: Store | None = None, *, production: bool | None = None,
               environ: Mapping[str, str] | None = None, clock: Callable[[], datetime] | None = None,
               monotonic: Callable[[], float] = time.time,
               messenger_factory: Callable[[], object] | None = None) -> FastAPI:
    """The ASGI app. Raises ConfigError in production mode without a signing key from the environment.

    ``store`` defaults to the configured database (opened now, closed when the app shuts down); ``clock``
    and ``monotonic`` (the rate limits' seconds clock: wall-clock time, as every worker process shares the
    buckets in the database) and ``messenger_factory`` are for tests.
    """
    environ = os.environ if environ is None else environ
    production = is_production(settings, environ) if production is None else production
    own_store = store is None
    store = store or Store.open(settings.resolved_database_url)
    subs = Subscriptions(settings, store, clock=clock, production=production, messenger_factory=messenger_factory)
    secure = production or settings.site_url.startswith("https://")
    web = Web(settings, store, subs, Csrf(subs.key, secure=secure),
              RateLimits.from_settings(settings.web, clock=monotonic, store=store), _environment(settings), production,
              PageCache(int(settings.web.page_cache_mb * 1024 * 1024)),
              fingerprint(settings, shipped_web_templates()))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_store:
            store.close()

    app = FastAPI(
        title=f"{settings.list_name} API", version="1",
        description="Subscribe (double opt-in), confirm, change preferences, unsubscribe and read the archive. "
        "Actions on a subscription take the signed token from the reader's emails.",
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None, lifespan=lifespan,
    )
    app.state.web = web
    # Starlette's own trailing-slash redirect builds its Location from the Host header; ours uses site_url.
    app.router.redirect_slashes = False
    # add_middleware wraps what is there: the last one added runs first, so the security headers go on every
    # answer, the Host check comes before anything else, and no body is read before its size is checked.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.web.max_body_bytes, refuse=web.too_large)
    app.add_middleware(TrustedHostMiddleware, hosts=allowed_hosts(settings.site_url, settings.web.trusted_hosts),
                       refuse=web.unknown_host)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.site_url.startswith("https://"))
    app.mount("/static", StaticFiles(directory=shipped_web_templates() / "static"), name="static")
    _exception_handlers(app, web)

    from . import admin, admin_api, api, monitor, pages, relevance, webhooks

    app.include_router(monitor.router)  # /healthz and /metrics
    app.include_router(pages.router)
    app.include_router(relevance.router)  # more / fewer like this, tracked clicks, signals and seeds (issue 15)
    app.include_router(api.router)
    app.include_router(admin_api.router)  # the operator API: off (404) without admin.api_token
    app.include_router(webhooks.router)  # bounce and complaint webhooks of sending services
    admin.install(app, web, subs.key, monotonic)  # the /admin pages: off (404) without admin.password_hash
    return app


def _environment(settings: Settings) -> jinja2.Environment:
    # Templates are read once (no auto_reload): the page cache's fingerprint is of the files as they were at start.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(shipped_web_templates())), auto_reload=False,
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    base = urlsplit(settings.site_url).path.rstrip("/")
    env.globals.update(list_name=settings.list_name, site_url=settings.site_url, base=base,
                       postal_address=settings.postal_address, topics=settings.topics,
                       topic_names={t.slug: t.name for t in settings.topics},
                       form_version=settings.web.form_version)
    env.filters.update(clean=clean, shorten=shorten, safe_url=safe_url, day=format_day, summary=summary,
                       meta_items=meta_items, paper_links=paper_links, plural=plural)
    return env


def _allowed_methods(app: FastAPI, path: str) -> str:
    """Every method some route accepts at this path (routers included into the app are looked into)."""

    def routes(router: Any) -> Any:
        for route in getattr(router, "routes", ()):
            inner = getattr(route, "original_router", None)
            yield from routes(inner) if inner is not None else (route,)

    methods: set[str] = set()
    for route in routes(app.router):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _exception_handlers(app: FastAPI, web: Web) -> None:
    def bad_link(request: Request) -> Response:
        # One answer for every bad token: empty, over-long, malformed, forged, expired, wrong purpose, or for a
        # reader who is gone. It never repeats the token.
        message = InvalidLink().message + " Use the link in your most recent email."
        if _machine(request):
            return web.error(request, 400, "Invalid link", message)
        # A page offering a fresh link by email (POST /fresh-link), never a bare error.
        return web.render(request, "fresh_link.html", {"state": "ask", "message": message, "email": "",
                                                       "error": None}, status=400, private=True)

    @app.exception_handler(InvalidLink)
    async def invalid_link(request: Request, exc: InvalidLink) -> Response:
        return bad_link(request)

    @app.exception_handler(FormExpired)
    async def form_expired(request: Request, exc: FormExpired) -> Response:
        return web.error(request, 403, "Form expired",
                         "This form has expired or was not sent from this site. Go back, reload the page and try again.")

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        minutes = max(1, round(exc.retry_after / 60))
        return web.error(request, 429, "Too many requests",
                         f"Too many requests. Please try again in {plural(minutes, 'minute')}.",
                         headers={"Retry-After": str(exc.retry_after)})

    from .admin_api import Off, Unauthorized

    @app.exception_handler(Off)
    async def operator_api_off(request: Request, exc: Off) -> Response:
        return JSONResponse({"error": "not_found", "message": "Not Found"}, status_code=404)

    @app.exception_handler(Unauthorized)
    async def operator_unauthorized(request: Request, exc: Unauthorized) -> Response:
        return JSONResponse({"error": "unauthorized", "message": "This needs the operator token: "
                             "Authorization: Bearer <admin.api_token>."}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="operator"', "cache-control": "no-store"})

    @app.exception_handler(SendFailed)
    async def send_failed(request: Request, exc: SendFailed) -> Response:
        return web.error(request, 503, "Email not sent", f"{exc.message} Please try again in a few minutes.",
                         headers={"Retry-After": "300"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if any("token" in error.get("loc", ()) for error in exc.errors()):
            return bad_link(request)  # a token the schema refuses (empty, too long, not a string) is a bad token
        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        return web.error(request, 400, "Bad request", "The request was not understood.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 404 and len(path) > 1 and path.endswith("/") and _allowed_methods(app, path.rstrip("/")):
            return web.site_redirect(path.rstrip("/"), request.url.query)
        if exc.status_code == 413:
            return web.too_large(request)
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(app, request.url.path)}
        if _machine(request):  # the API's one error shape: {"error", "message"}
            error = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
            return JSONResponse({"error": error, "message": str(exc.detail)}, status_code=exc.status_code,
                                headers=exc.headers)
        titles = {404: "Page not found", 405: "Method not allowed"}
        messages = {404: "There is no page at this address.", 405: "This page cannot be used that way."}
        title = titles.get(exc.status_code, "Request refused")
        return web.error(request, exc.status_code, title, messages.get(exc.status_code, str(exc.detail)),
                         headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        # Runs outside the middleware stack (Starlette's ServerErrorMiddleware), so add the headers here.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return HTMLResponse("<!doctype html><title>Server error</title><h1>Something went wrong</h1>"
                            "<p>Please try again later.</p>", status_code=500,
                            headers={**SECURITY_HEADERS, "cache-control": "no-store"})
