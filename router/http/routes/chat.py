"""The chat routes: OpenAI's ``/v1/chat/completions`` and Anthropic's ``/v1/messages``.

Both run one request path (:func:`serve_chat`) in their own dialect
(:class:`~router.http.wire.Wire`): authenticate, read, route, answer, and
count the request once it is over (a stream when its last event is sent).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from router.completions import Completion, StreamingCompletion
from router.config import TenantConfig
from router.errors import InvalidRequestError, ThinkrouteError
from router.http.body import read_json
from router.http.jsonio import JSONResponse, encode_text
from router.http.openapi import chat_completions_body, json_body, messages_body
from router.http.services import Services, services
from router.http.wire import ANTHROPIC_WIRE, OPENAI_WIRE, Wire
from router.observe.logs import last_user_text, request_fields
from router.observe.metrics import CLIENT_CLOSED, RequestOutcome, served_tier
from router.policy import RouteDecision
from router.proxy import AUTO_MODELS
from router.requests import ChatRequest
from router.state.feedback import REQUEST_ID

__all__ = ["LATENCY_LIMIT_HEADER", "SESSION_HEADER", "latency_limit", "router", "with_session"]

logger = logging.getLogger(__name__)

LATENCY_LIMIT_HEADER = "x-thinkroute-max-latency-ms"
SESSION_HEADER = "x-session-id"
SESSION_ID = re.compile(r"[\x21-\x7e]{1,200}")
# The routes read their bodies themselves; these tell the OpenAPI document what they take.
CHAT_BODY = json_body(chat_completions_body(list(AUTO_MODELS)))
MESSAGES_BODY = json_body(messages_body(list(AUTO_MODELS)))

router = APIRouter()


@router.post("/v1/chat/completions", openapi_extra=CHAT_BODY)
async def chat_completions(request: Request) -> Response:
    return await serve_chat(request, OPENAI_WIRE)


@router.post("/v1/messages", openapi_extra=MESSAGES_BODY)
async def anthropic_messages(request: Request) -> Response:
    """Anthropic's Messages API (``x-api-key`` or Bearer), routed the same way."""
    return await serve_chat(request, ANTHROPIC_WIRE)


async def serve_chat(request: Request, wire: Wire) -> Response:
    """Authenticate, parse, route and answer one chat request in ``wire``'s dialect."""
    found = services(request)
    request_id = _request_id(request.headers.get("x-request-id"))
    request.state.request_id = request_id
    outcome = RequestOutcome(request_id, started_at=time.time())
    started = time.perf_counter()
    tenant: TenantConfig | None = None
    chat: ChatRequest | None = None
    try:
        tenant = await found.directory.authenticate(wire.api_key(request.headers))
        outcome.tenant = tenant.name
        chat = with_session(wire.parse(await read_json(request)), request)
        latency_limit_s = latency_limit(request)
        if chat.stream:
            result: Completion | StreamingCompletion = await found.router.astream(
                chat, tenant=tenant, latency_limit_s=latency_limit_s, headers=request.headers
            )
        else:
            result = await found.router.acompletion(
                chat, tenant=tenant, latency_limit_s=latency_limit_s, headers=request.headers
            )
    except Exception as exc:
        error = exc if isinstance(exc, ThinkrouteError) else ThinkrouteError("unexpected")
        outcome.status, outcome.error_code = error.status_code, error.code
        outcome.total_s = time.perf_counter() - started
        _account(found, outcome, chat)
        if not isinstance(exc, ThinkrouteError):
            raise  # the catch-all handler answers a 500 without a traceback
        headers = {**exc.headers(), **wire.id_headers(request_id)}
        return JSONResponse(wire.error_body(exc), status_code=exc.status_code, headers=headers)
    assert tenant is not None and chat is not None  # set before anything is answered
    headers = _decision_headers(result.decision, result.served.target.model_name,
                                result.served.is_fallback, request_id)  # fmt: skip
    headers.update(wire.id_headers(request_id))
    headers["x-thinkroute-cache"] = result.cache
    if result.cascade is not None:
        headers["x-thinkroute-cascade"] = result.cascade
        settings = found.router.config.cascade
        if settings is not None and not result.cascade.startswith("skipped:"):
            headers["x-thinkroute-verifier"] = settings.verifier  # a model_name, or "self"
    if isinstance(result, StreamingCompletion):
        stream = result

        async def finish(status: int, error_code: str | None) -> None:
            # The stream is over and its cost known: only now is it counted.
            _fill(outcome, stream, status=status, error_code=error_code, started=started)
            _account(found, outcome, chat)
            _keep_decision(found, outcome, tenant, chat)

        if stream.cache == "hit":
            headers["x-thinkroute-cost-usd"] = "0.000000"
        return StreamingResponse(
            _sse(stream, chat, wire, finish), media_type="text/event-stream", headers=headers
        )
    headers["x-thinkroute-cost-usd"] = f"{result.cost_usd:.6f}"
    _fill(outcome, result, status=200, error_code=None, started=started)
    _account(found, outcome, chat)
    _keep_decision(found, outcome, tenant, chat)
    return JSONResponse(wire.body(result, chat), headers=headers)


def with_session(chat: ChatRequest, request: Request) -> ChatRequest:
    """The request with the session the client named in ``x-session-id``, if it did."""
    sent = request.headers.get(SESSION_HEADER)
    if sent is None:
        return chat
    if not SESSION_ID.fullmatch(sent):
        raise InvalidRequestError(
            f"{SESSION_HEADER} must be 1 to 200 printable ASCII characters",
            param=SESSION_HEADER,
        )
    return dataclasses.replace(chat, session_id=sent)


def latency_limit(request: Request) -> float | None:
    """The client's latency limit in seconds, from ``x-thinkroute-max-latency-ms``."""
    value = request.headers.get(LATENCY_LIMIT_HEADER)
    if value is None:
        return None
    try:
        limit_ms = float(value)
    except ValueError:
        raise InvalidRequestError(
            f"{LATENCY_LIMIT_HEADER} must be a number of milliseconds"
        ) from None
    if not limit_ms > 0:
        raise InvalidRequestError(f"{LATENCY_LIMIT_HEADER} must be positive")
    return limit_ms / 1000.0


def _account(found: Services, outcome: RequestOutcome, chat: ChatRequest | None) -> None:
    """Count a finished request and write its log line (no chat text unless asked)."""
    if found.metrics is not None:
        found.metrics.observe(outcome)
    prompt = last_user_text(chat.messages) if found.settings.log_prompts and chat else None
    level = logging.WARNING if outcome.status >= 500 else logging.INFO
    logger.log(level, "chat completion", extra={"fields": request_fields(outcome, prompt=prompt)})


def _keep_decision(
    found: Services, outcome: RequestOutcome, tenant: TenantConfig, chat: ChatRequest
) -> None:
    # Queued: the decision log writes in batches, off the request's path.
    if found.decisions is not None:
        found.decisions.submit(outcome, messages=chat.messages if tenant.log_prompts else None)


def _decision_headers(
    decision: RouteDecision, served_model: str, is_fallback: bool, request_id: str
) -> dict[str, str]:
    headers = {
        "x-request-id": request_id,
        "x-thinkroute-tier": served_tier(decision, is_fallback),
        "x-thinkroute-model": served_model,
        "x-thinkroute-effort": (decision.reasoning_effort or "default")
        if not is_fallback
        else "default",
        "x-thinkroute-score": "" if decision.score is None else f"{decision.score:.4f}",
        "x-thinkroute-threshold": "" if decision.threshold is None else f"{decision.threshold:.4f}",
        "x-thinkroute-mode": decision.mode,
        "x-thinkroute-reason": decision.reason,
    }
    if is_fallback:
        headers["x-thinkroute-fallback"] = f"{decision.model} failed"
    return headers


async def _sse(
    stream: StreamingCompletion,
    chat: ChatRequest,
    wire: Wire,
    finish: Callable[[int, str | None], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The stream as server-sent events; ``finish(status, error code)`` runs once it ends.

    A client that hangs up first is recorded with status 499. Events are
    encoded here, with :func:`encode_text`, so that a lone surrogate from the
    model cannot break a stream that is being paid for.
    """
    status: int = CLIENT_CLOSED
    error_code: str | None = "client_closed"
    try:
        try:
            async for event in wire.events(stream, chat):
                yield encode_text(event)
        except ThinkrouteError as exc:
            # A failure after the first byte can only be an error event in the stream.
            status, error_code = exc.status_code, exc.code
            yield encode_text(wire.error_event(exc))
            return
        status, error_code = 200, None
        # Headers left before the cost was known; an SSE comment carries it (clients ignore it).
        yield f": x-thinkroute-cost-usd={stream.cost_usd:.6f}\n\n".encode()
        yield wire.end_of_stream.encode()
    finally:
        # Shielded: a client that left cancels this task, and the request must still be counted.
        with anyio.CancelScope(shield=True):
            await _close(stream.chunks)  # settles a stream cut short, so its cost is final
            try:
                await finish(status, error_code)
            except Exception:  # counting must never break the stream it counts
                logger.exception("recording a stream failed")


async def _close(chunks: AsyncIterator[object]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.debug("closing a stream's chunks failed", exc_info=True)


def _fill(
    outcome: RequestOutcome,
    result: Completion | StreamingCompletion,
    *,
    status: int,
    error_code: str | None,
    started: float,
) -> None:
    """Copy what the router reports about an answered request into its outcome."""
    outcome.status, outcome.error_code = status, error_code
    outcome.decision = result.decision
    outcome.served_model = result.served.target.model_name
    outcome.is_fallback = result.served.is_fallback
    outcome.is_stream = isinstance(result, StreamingCompletion)
    outcome.cache = result.cache
    outcome.cascade = result.cascade
    if result.session is not None:
        outcome.session = result.session.digest
        outcome.session_switched = result.session.switched
        outcome.session_cache_cost_usd = result.session.cache_cost_usd
    outcome.cost_usd = result.cost_usd
    outcome.baseline_usd = result.timings.baseline_usd
    outcome.reserved_usd = result.timings.reserved_usd
    outcome.routing_s = result.timings.routing_s
    outcome.upstream_s = result.timings.upstream_s
    outcome.total_s = time.perf_counter() - started


def _request_id(sent: str | None) -> str:
    """The client's ``x-request-id`` if it is a sane token, else a fresh one."""
    if sent is not None and REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex
