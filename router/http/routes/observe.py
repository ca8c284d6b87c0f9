"""Health, readiness and Prometheus metrics: what orchestrators and scrapers call."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from router.errors import StoreUnavailableError
from router.http.auth import require_scraper
from router.http.jsonio import JSONResponse
from router.http.services import AppServices

__all__ = ["metrics_router", "router"]

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(found: AppServices) -> Response:
    """Ready once the classifier is loaded; says whether Redis answers, never where it is."""
    router_ = found.router
    classifier_loaded = router_.is_classifier_loaded
    if router_.store is None:
        redis_state = "not configured: no budgets, usage or admin API"
    elif await router_.store.ping():
        redis_state = "ok"
    else:
        redis_state = (
            "unavailable: degraded, tenants that fail open are served without budgets, "
            "those that fail closed are refused"
        )
    body = {
        "status": "ready" if classifier_loaded else "loading",
        "classifier": "loaded" if classifier_loaded else "not loaded",
        "upstreams": "configured" if router_.is_dispatch_configured else "none configured",
        "redis": redis_state,
    }
    return JSONResponse(body, status_code=200 if classifier_loaded else 503)


# Included only when ``server.metrics`` is on; otherwise /metrics is a plain 404.
metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_scraper)])
async def prometheus_metrics(found: AppServices) -> Response:
    assert found.metrics is not None  # the router is included only with metrics on
    shadows = found.router.shadows
    if shadows is not None:  # live quality lives in Redis: read at scrape time
        for tenant in found.router.config.tenants:
            if found.router.config.shadow_for(tenant).rate > 0:
                # Without Redis the figures are not known: the process's own metrics still are.
                with contextlib.suppress(StoreUnavailableError):
                    found.metrics.set_quality(tenant.name, await shadows.quality(tenant))
    body, content_type = found.metrics.render()
    return Response(body, media_type=content_type)
