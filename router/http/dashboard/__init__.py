"""``GET /dashboard``: a live page of routing, spend, latency and cache figures.

Authentication. A browser's navigation cannot send an ``Authorization``
header, so the page is split in two:

- ``GET /dashboard`` and its script and style sheet are a shell that holds no
  data and no secret; they are served without a key, from this package's
  files (no CDN, no external fonts: the network may be closed).
- ``GET /v1/dashboard/summary`` holds every figure and takes the Bearer key
  like every API route: the admin key sees all tenants, a tenant key only its
  own tenant, no key or a wrong one is a 401 in OpenAI's shape.

The page asks for the key in a form (or takes it from the URL fragment
``#key=...``, which browsers never send to a server, and clears the fragment),
keeps it in ``sessionStorage`` (this tab only, gone when it closes) and sends
it to this origin only. A strict Content-Security-Policy lets the page run its
own script only and talk only to its own origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import Response

from router.config import TenantConfig
from router.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from router.http.dashboard.summary import summarize
from router.http.jsonio import JSONResponse
from router.proxy import Router
from router.state.decision_log import DecisionLog
from router.state.tenants import TenantDirectory

__all__ = ["install"]

WINDOW_S = (60, 86_400)  # the widths a client may ask for
DEFAULT_WINDOW_S = 900
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def install(
    app: FastAPI,
    *,
    router: Router,
    directory: TenantDirectory,
    decisions: DecisionLog | None,
    authenticate: Callable[[Request], Awaitable[TenantConfig]],
    require_admin: Callable[[Request], None],
) -> None:
    """Add the dashboard's page, its assets and its summary route to ``app``.

    ``authenticate`` and ``require_admin`` are the server's own key checks.
    """
    files = resources.files(__package__) / "static"
    assets = {name: (files / name).read_bytes() for name in ASSETS}

    def asset(name: str) -> Response:
        return Response(assets[name], media_type=ASSETS[name], headers=PAGE_HEADERS)

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> Response:
        return asset("index.html")

    @app.get("/dashboard/dashboard.js", include_in_schema=False)
    async def dashboard_script() -> Response:
        return asset("dashboard.js")

    @app.get("/dashboard/dashboard.css", include_in_schema=False)
    async def dashboard_style() -> Response:
        return asset("dashboard.css")

    async def visible_tenants(request: Request) -> tuple[str, list[TenantConfig]]:
        """``("admin", every tenant)`` for the admin key, ``("tenant", [it])`` for a tenant's."""
        try:
            require_admin(request)
        except (AuthenticationError, PermissionDeniedError):
            return "tenant", [await authenticate(request)]  # a 401 unless a tenant's key
        tenants = []
        for row in await directory.list_tenants():
            try:
                tenants.append(await directory.get(row["name"]))
            except NotFoundError:  # deleted since it was listed
                continue
        return "admin", tenants

    @app.get("/v1/dashboard/summary")
    async def dashboard_summary(request: Request) -> Response:
        """The dashboard's figures for the tenants this key may see."""
        viewer, tenants = await visible_tenants(request)
        if router.store is None:
            raise StoreUnavailableError(
                "the dashboard reads the fleet's figures from Redis, and none is configured"
            )
        body = await summarize(
            tenants,
            log_store=decisions.store if decisions is not None else None,
            budgets=router.budgets,
            window_s=_window_s(request.query_params.get("window_s")),
            quality=router.shadows.quality if router.shadows is not None else None,
        )
        return JSONResponse({**body, "viewer": viewer}, headers={"cache-control": "no-store"})


def _window_s(value: str | None) -> int:
    if value is None:
        return DEFAULT_WINDOW_S
    low, high = WINDOW_S
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidRequestError(
            f"window_s must be a whole number of seconds from {low} to {high}", param="window_s"
        )
    return int(value)
