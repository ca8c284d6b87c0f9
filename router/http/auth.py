"""Who may call a route, as FastAPI dependencies: a tenant's key, the admin key, the metrics key.

Each route states its check in its signature or its router's ``dependencies``;
nothing is checked by path prefix, so no spelling of a path skips a check.
The chat routes authenticate in their own dialect instead (Anthropic's
``x-api-key``), so that a refusal comes in that dialect's error shape.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from router.config import TenantConfig, hash_api_key
from router.errors import AuthenticationError, PermissionDeniedError
from router.http.services import services
from router.state.tenants import bearer_key

__all__ = ["CallingTenant", "require_admin", "require_scraper", "tenant"]


async def tenant(request: Request) -> TenantConfig:
    """The tenant whose key is in ``Authorization: Bearer``, or a 401."""
    key = bearer_key(request.headers.get("authorization"))
    return await services(request).directory.authenticate(key)


def require_admin(request: Request) -> None:
    """Pass only with the admin key; a 403 when the server has none (the admin API is off)."""
    digest = services(request).admin_digest
    if digest is None:
        raise PermissionDeniedError(
            "the admin API is off: set THINKROUTE_ADMIN_KEY", code="admin_disabled"
        )
    if not _holds_key(request, digest):
        raise AuthenticationError("this route needs the admin key", code="admin_key_required")


def require_scraper(request: Request) -> None:
    """Pass with the metrics key or the admin key: the metrics name tenants and their spend."""
    found = services(request)
    digests = [d for d in (found.metrics_digest, found.admin_digest) if d]
    if not digests:
        raise PermissionDeniedError(
            "GET /metrics needs a key: set THINKROUTE_METRICS_KEY (or THINKROUTE_ADMIN_KEY)",
            code="metrics_key_required",
        )
    if not any(_holds_key(request, digest) for digest in digests):
        raise AuthenticationError(
            "GET /metrics needs the metrics key or the admin key", code="metrics_key_required"
        )


def _holds_key(request: Request, digest: str) -> bool:
    sent = hash_api_key(bearer_key(request.headers.get("authorization")))
    return hmac.compare_digest(sent, digest)


# A route's parameter ``tenant: CallingTenant`` is the tenant of the Bearer key (or a 401).
CallingTenant = Annotated[TenantConfig, Depends(tenant)]
