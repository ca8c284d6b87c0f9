"""What a tenant's key opens besides chat: its models, its usage, feedback on its answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from router.http.auth import CallingTenant
from router.http.body import read_json
from router.http.jsonio import JSONResponse
from router.http.openapi import json_body
from router.http.services import AppServices
from router.proxy import AUTO_MODELS
from router.state.feedback import FEEDBACK_SCHEMA, parse_feedback, record_feedback

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/feedback", openapi_extra=json_body(FEEDBACK_SCHEMA))
async def feedback(
    request: Request,
    tenant: CallingTenant,
    found: AppServices,
) -> Response:
    """Score the answer to one of the tenant's past requests (see router.state.feedback)."""
    scored = parse_feedback(await read_json(request))
    return JSONResponse(await record_feedback(found.decisions, tenant, scored))


@router.get("/v1/models")
async def models(tenant: CallingTenant, found: AppServices) -> Response:
    names = list(AUTO_MODELS) + [
        m.model_name
        for m in found.router.config.model_list
        if tenant.allowed_models is None or m.model_name in tenant.allowed_models
    ]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "thinkroute"} for n in names]
    return JSONResponse({"object": "list", "data": data})


@router.get("/v1/usage")
async def usage(tenant: CallingTenant, found: AppServices) -> Response:
    figures = await found.budgets().usage(tenant)
    if found.router.shadows is not None:  # live quality from shadow comparisons
        figures["quality"] = await found.router.shadows.quality(tenant)
    return JSONResponse(figures)
