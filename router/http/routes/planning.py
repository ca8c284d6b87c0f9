"""Deciding without answering: ``/v1/route`` and Anthropic's ``/v1/messages/count_tokens``.

Both are rate-limited like a chat (a request against the tenant's
requests-per-minute, nothing charged), and both do their CPU work (the
classifier, the token count) in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from router.accounting import tolerant
from router.config import TenantConfig
from router.errors import BudgetExceededError, InvalidRequestError, ThinkrouteError
from router.http.auth import CallingTenant
from router.http.body import read_json
from router.http.jsonio import JSONResponse
from router.http.openapi import chat_completions_body, json_body
from router.http.routes.chat import MESSAGES_BODY, latency_limit, with_session
from router.http.services import AppServices, Services
from router.http.wire import ANTHROPIC_WIRE
from router.policy import explain
from router.proxy import AUTO_MODELS
from router.requests import parse_chat_request
from router.upstream.dispatch import count_prompt_tokens

__all__ = ["router"]

router = APIRouter()

# A chat body, plus the one field of /v1/route's own.
_ROUTE_SCHEMA = chat_completions_body(list(AUTO_MODELS))
_ROUTE_SCHEMA["properties"]["explain"] = {
    "type": "boolean",
    "description": "also return score_evidence: the structural cues that fired and the kinds "
    "of training prompts the chat sits nearest to (names and figures, never their text)",
}
ROUTE_BODY = json_body(_ROUTE_SCHEMA)


@router.post("/v1/route", openapi_extra=ROUTE_BODY)
async def route(request: Request, tenant: CallingTenant, found: AppServices) -> Response:
    """The decision a chat would get, with no model called."""
    body = await read_json(request)
    wants_evidence = _pop_explain(body)
    chat = with_session(parse_chat_request(body), request)
    latency_limit_s = latency_limit(request)
    await _count_request(found, tenant)
    decision = await found.router.plan_route(chat, tenant, latency_limit_s=latency_limit_s)
    answer = {**decision.as_dict(), "explanation": explain(decision)}
    cascade = found.router.plan_cascade(chat, decision, tenant)
    if cascade is not None:
        answer["cascade"] = {"run": cascade.run, "reason": cascade.reason}
    if wants_evidence and decision.score is not None:  # a scored decision has evidence
        answer["score_evidence"] = await found.router.explain_score(chat)
    return JSONResponse(answer)


def _pop_explain(body: object) -> bool:
    """``"explain": true`` asks ``/v1/route`` for the score's evidence; it is not the model's."""
    if not isinstance(body, dict) or "explain" not in body:
        return False
    wanted = body.pop("explain")
    if not isinstance(wanted, bool):
        raise InvalidRequestError("explain must be true or false", param="explain")
    return wanted


@router.post("/v1/messages/count_tokens", openapi_extra=MESSAGES_BODY)
async def anthropic_count_tokens(request: Request, found: AppServices) -> Response:
    """Anthropic's token count, which coding agents ask before they send a long context.

    Counted for the model the request would be routed to, with no model called.
    """
    try:
        tenant = await found.directory.authenticate(ANTHROPIC_WIRE.api_key(request.headers))
        body = await read_json(request)
        if isinstance(body, dict):  # a count needs no max_tokens; a message does
            body = {"max_tokens": 1, **body}
        chat = ANTHROPIC_WIRE.parse(body)
        await _count_request(found, tenant)
        decision = await found.router.plan_route(chat, tenant)
        deployment = found.router.config.deployment(decision.model or "")
        assert deployment is not None  # decisions only name configured models
        count = await asyncio.to_thread(
            count_prompt_tokens, deployment, chat.messages, chat.params.get("tools")
        )
    except ThinkrouteError as exc:
        return JSONResponse(
            ANTHROPIC_WIRE.error_body(exc), status_code=exc.status_code, headers=exc.headers()
        )
    return JSONResponse({"input_tokens": count})


async def _count_request(found: Services, tenant: TenantConfig) -> None:
    """Count one request against the tenant's requests-per-minute, or raise a 429.

    A reservation of nothing, given back at once: the request is counted in the
    minute's window and no money is held. Without Redis, the tenant's
    ``on_store_failure`` decides, as for a chat.
    """
    budgets = found.router.budgets
    if budgets is None or tenant.rate_limits.requests_per_minute is None:
        return
    try:
        held = await tolerant(tenant, budgets.reserve(tenant, amount_usd=0.0, tokens=0))
    except BudgetExceededError:
        return  # deciding costs nothing: a spent budget does not stop it
    if held is not None:
        await tolerant(tenant, budgets.release(held))
