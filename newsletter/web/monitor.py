"""``GET /healthz`` and ``GET /metrics`` (``newsletter/monitor``): thin shells over the monitor package.

``/metrics`` answers loopback clients only, unless ``metrics.token`` is set: then any client with
``Authorization: Bearer <token>``, and nobody without it. Behind the reverse proxy the client is the one
``X-Forwarded-For`` names, so the proxy does not make every scraper look local.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import sys

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..monitor.health import health

router = APIRouter()
DATABASE_TIMEOUT = 5.0  # seconds /healthz waits for the database before it answers 503


def _scheduler_here() -> bool:
    schedule = sys.modules.get("newsletter.schedule")  # not imported: no scheduler runs in this process
    return bool(schedule is not None and getattr(schedule, "_active", None) is not None)


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> Response:
    engine = request.app.state.web.store.engine
    try:
        status, body = await asyncio.wait_for(
            asyncio.to_thread(health, engine, scheduler_in_process=_scheduler_here()), DATABASE_TIMEOUT)
    except asyncio.TimeoutError:
        status, body = 503, {"database": f"error: no answer within {DATABASE_TIMEOUT:g} s",
                             "scheduler": {"status": "unknown", "in_process": _scheduler_here()},
                             "last_fetch": None, "last_send": None}
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    web = request.app.state.web
    token = web.settings.metrics.token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return JSONResponse({"error": "unauthorized", "message": "GET /metrics needs the metrics.token bearer token."},
                                status_code=401, headers={"www-authenticate": "Bearer", "cache-control": "no-store"})
    elif not _loopback(request.client.host if request.client else None):
        return JSONResponse({"error": "forbidden", "message": "/metrics answers this machine only; set metrics.token "
                             "to scrape it from elsewhere."}, status_code=403, headers={"cache-control": "no-store"})
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = _registry(request)
    try:
        output = await asyncio.wait_for(asyncio.to_thread(generate_latest, registry), DATABASE_TIMEOUT * 2)
    except Exception as exc:  # noqa: BLE001 - the database is down (or slow): say so, as /healthz does
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300] or type(exc).__name__
        return JSONResponse({"error": "unavailable", "message": f"database: {reason}"}, status_code=503,
                            headers={"cache-control": "no-store"})
    return Response(output, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


def _registry(request: Request):  # type: ignore[no-untyped-def]
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        from prometheus_client import CollectorRegistry

        from ..monitor.metrics import MetricsCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(request.app.state.web.store.engine))
        request.app.state.metrics_registry = registry
    return registry
