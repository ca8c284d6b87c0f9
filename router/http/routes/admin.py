"""Tenant management and the API description, behind the admin key.

Every route here depends on :func:`router.http.auth.require_admin` (through
the router's ``dependencies``), so a route added to this router is shut to
anyone without the admin key.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from classifier.model import DifficultyClassifier
from router import heads
from router.errors import InvalidRequestError
from router.http.auth import require_admin
from router.http.body import read_json
from router.http.jsonio import JSONResponse
from router.http.openapi import json_body, tenant_body
from router.http.services import AppServices, Services
from router.state.tenants import describe

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_admin)])


@router.get("/openapi.json", include_in_schema=False)
async def openapi_document(request: Request) -> Response:
    """The OpenAPI document: it names every model and policy field, so it is not public."""
    return JSONResponse(request.app.openapi())


@router.get("/v1/tenants")
async def list_tenants(found: AppServices) -> Response:
    return JSONResponse({"object": "list", "data": await found.directory.list_tenants()})


@router.post("/v1/tenants", openapi_extra=json_body(tenant_body(partial=False)))
async def create_tenant(request: Request, found: AppServices) -> Response:
    tenant = await found.directory.create(await read_json(request))
    return JSONResponse(describe(tenant, "api"), status_code=201)


@router.get("/v1/tenants/{name}")
async def get_tenant(name: str, found: AppServices) -> Response:
    tenant = await found.directory.get(name)
    source = "config" if name in found.directory.config_tenants else "api"
    return JSONResponse(describe(tenant, source))


@router.patch("/v1/tenants/{name}", openapi_extra=json_body(tenant_body(partial=True)))
async def update_tenant(name: str, request: Request, found: AppServices) -> Response:
    tenant = await found.directory.update(name, await read_json(request))
    return JSONResponse(describe(tenant, "api"))


@router.delete("/v1/tenants/{name}")
async def delete_tenant(name: str, found: AppServices) -> Response:
    """Delete the tenant, its keys and everything kept under its name (see TenantDirectory)."""
    await found.directory.delete(name)
    return JSONResponse({"deleted": name})


@router.post("/v1/tenants/{name}/keys")
async def issue_key(name: str, found: AppServices) -> Response:
    issued = await found.directory.issue_key(name)
    body = {"tenant": issued.tenant, "id": issued.key_id, "key": issued.key,
            "note": "the key is shown only now; it is stored as a hash"}  # fmt: skip
    return JSONResponse(body, status_code=201)


@router.get("/v1/tenants/{name}/keys")
async def list_keys(name: str, found: AppServices) -> Response:
    return JSONResponse({"object": "list", "data": await found.directory.list_keys(name)})


@router.delete("/v1/tenants/{name}/keys/{key_id}")
async def revoke_key(name: str, key_id: str, found: AppServices) -> Response:
    await found.directory.revoke_key(name, key_id)
    return JSONResponse({"revoked": key_id})


@router.get("/v1/tenants/{name}/usage")
async def tenant_usage(name: str, found: AppServices) -> Response:
    return JSONResponse(await found.usage(await found.directory.get(name)))


# -- the tenant's own head (router.heads; `thinkroute heads` is the same from a shell) -------


@router.get("/v1/tenants/{name}/heads")
async def list_heads(name: str, found: AppServices) -> Response:
    tenant = await found.directory.get(name)
    return JSONResponse(await heads.list_heads(found.store(), tenant.name))


@router.post("/v1/tenants/{name}/heads/train")
async def train_head(name: str, request: Request, found: AppServices) -> Response:
    """Fit a challenger; it is activated only if it beats the current head (the report says)."""
    tenant = await found.directory.get(name)
    options = await _options(request, {"activate": True})
    report = await heads.train(found.store(), await _classifier(found), tenant.name,
                               is_activating=options["activate"])  # fmt: skip
    return JSONResponse(report, status_code=201)


@router.post("/v1/tenants/{name}/heads/{version}/activate")
async def activate_head(name: str, version: str, request: Request, found: AppServices) -> Response:
    tenant = await found.directory.get(name)
    options = await _options(request, {"force": False})
    report = await heads.activate(found.store(), await _classifier(found), tenant.name, version,
                                  force=options["force"])  # fmt: skip
    return JSONResponse(report)


@router.post("/v1/tenants/{name}/heads/rollback")
async def rollback_head(name: str, found: AppServices) -> Response:
    tenant = await found.directory.get(name)
    return JSONResponse(await heads.rollback(found.store(), await _classifier(found), tenant.name))


async def _options(request: Request, defaults: dict[str, bool]) -> dict[str, bool]:
    """Optional JSON flags (an empty body takes the defaults); anything else is a 400."""
    body = await read_json(request) if await request.body() else {}
    if not isinstance(body, dict) or set(body) - set(defaults):
        raise InvalidRequestError(f"expected a JSON object with at most {sorted(defaults)}")
    if not all(isinstance(body.get(k, v), bool) for k, v in defaults.items()):
        raise InvalidRequestError(f"{sorted(defaults)} take true or false")
    return {k: bool(body.get(k, v)) for k, v in defaults.items()}


async def _classifier(found: Services) -> DifficultyClassifier:
    router_ = found.router
    if not router_.is_classifier_loaded:
        await asyncio.to_thread(lambda: router_.classifier)
    return router_.classifier
