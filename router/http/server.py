"""The HTTP face: OpenAI's and Anthropic's wire formats over :class:`router.proxy.Router`.

:func:`create_app` builds the shared :class:`~router.http.services.Services`
and includes one router per concern (``router.http.routes``): chat, planning,
the tenant API, admin, health and metrics, and the dashboard. Who may call a
route is a FastAPI dependency (``router.http.auth``); bodies are read by one
size-limited reader and decoded by one strict JSON step (``router.http.body``,
``router.http.jsonio``); every error leaves in OpenAI's shape (or the chat
dialect's), and nothing a client sends can produce a traceback in a response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router.config import hash_api_key
from router.http.auth import require_admin
from router.http.auth import tenant as bearer_tenant
from router.http.dashboard import install as install_dashboard
from router.http.errors import install_error_handlers
from router.http.responses.routes import responses_routes
from router.http.routes import admin, chat, observe, planning, tenant_api
from router.http.routes.chat import LATENCY_LIMIT_HEADER
from router.http.services import Services
from router.observe.metrics import Metrics
from router.observe.tracing import install as install_tracing
from router.proxy import AUTO_MODELS, Router
from router.state.decision_log import DecisionLog
from router.state.store import Store
from router.state.tenants import TenantDirectory

__all__ = ["LATENCY_LIMIT_HEADER", "app_from_environment", "create_app"]

# What `thinkroute serve --workers N` hands each worker process.
WORKER_CONFIG = "THINKROUTE_WORKER_CONFIG"
WORKER_REDIS_URL = "THINKROUTE_WORKER_REDIS_URL"
WORKER_LOG = "THINKROUTE_WORKER_LOG"


def create_app(
    router: Router,
    *,
    load_classifier: bool = True,
    admin_key: str | None = None,
    metrics_key: str | None = None,
) -> FastAPI:
    """The ASGI app; ``load_classifier`` loads the model at startup instead of first use.

    ``admin_key`` (``THINKROUTE_ADMIN_KEY`` when served from the CLI) opens the
    tenant management routes and ``GET /openapi.json``; without one they answer
    403. ``GET /metrics`` (Prometheus, unless ``server.metrics`` is off) takes
    ``metrics_key`` (``THINKROUTE_METRICS_KEY``), a scrape-only key, or the admin key.
    """
    found = _services(router, admin_key=admin_key, metrics_key=metrics_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_classifier:
            await asyncio.to_thread(lambda: router.classifier)
        yield
        if found.decisions is not None:
            await found.decisions.aclose()  # what is queued, before the store closes
        await router.aclose()

    # No /docs or /redoc: they load their script from a third-party CDN into the
    # dashboard's origin. The OpenAPI document is served behind the admin key (routes.admin).
    app = FastAPI(
        title="thinkroute", version="0.1.0", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    # No redirect from /path/ to /path: Starlette builds its Location from the Host header.
    app.router.redirect_slashes = False
    app.state.services = found
    install_tracing(app, router.tracing)  # a span per request, when server.tracing is on
    # One line per concern; a new API (e.g. OpenAI's Responses) adds its router here.
    app.include_router(chat.router)
    app.include_router(responses_routes(chat.serve_chat, list(AUTO_MODELS)))
    app.include_router(planning.router)
    app.include_router(tenant_api.router)
    app.include_router(admin.router)
    app.include_router(observe.router)
    if found.metrics is not None:
        app.include_router(observe.metrics_router)
    install_dashboard(app, router=router, directory=found.directory, decisions=found.decisions,
                      authenticate=bearer_tenant, require_admin=require_admin)  # fmt: skip
    install_error_handlers(app)
    return app


def _services(router: Router, *, admin_key: str | None, metrics_key: str | None) -> Services:
    settings = router.config.server
    decisions = None
    if router.store is not None and settings.decision_log:
        # A breaker of its own over the shared client: a lost log entry never trips the
        # breaker that budgets and the cache rely on.
        log_store = Store(router.store.client, description=router.store.description)
        decisions = DecisionLog(log_store, max_entries=settings.decision_log_max_entries)
    return Services(
        router=router,
        directory=TenantDirectory(router.config.tenants, router.store),
        decisions=decisions,
        metrics=Metrics() if settings.metrics else None,
        admin_digest=hash_api_key(admin_key) if admin_key else None,
        metrics_digest=hash_api_key(metrics_key) if metrics_key else None,
    )


def app_from_environment() -> FastAPI:
    """The app of one ``thinkroute serve --workers N`` worker, built from its environment."""
    import os

    from router.config import config_from_environment, load_config
    from router.observe.logs import configure_logging

    log_format, _, log_level = os.environ.get(WORKER_LOG, "json:info").partition(":")
    configure_logging("text" if log_format == "text" else "json", log_level)
    path = os.environ.get(WORKER_CONFIG)
    config = load_config(path, os.environ) if path else config_from_environment(os.environ)[0]
    router = Router.from_config(config, redis_url=os.environ.get(WORKER_REDIS_URL) or None)
    keys = operator_keys(os.environ)
    return create_app(router, admin_key=keys["admin_key"], metrics_key=keys["metrics_key"])


def operator_keys(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The admin and metrics keys ``thinkroute serve`` takes from its environment."""
    return {
        "admin_key": environ.get("THINKROUTE_ADMIN_KEY") or None,
        "metrics_key": environ.get("THINKROUTE_METRICS_KEY") or None,
    }
