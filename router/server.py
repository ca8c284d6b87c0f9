"""The HTTP face: OpenAI's wire format over :class:`router.proxy.Router`.

This module authenticates, parses, and formats. Deciding and dispatching
happen in the router; every error leaves through one handler in OpenAI's
shape, and nothing a client sends can produce a traceback in a response.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.config import TenantConfig
from router.errors import (
    AuthenticationError,
    InvalidRequestError,
    RequestTooLargeError,
    ThinkrouteError,
)
from router.policy import RouteDecision, explain
from router.proxy import AUTO_MODELS, Router, StreamingCompletion
from router.requests import ChatRequest, parse_chat_request

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

LATENCY_LIMIT_HEADER = "x-thinkroute-max-latency-ms"


class KeyRing:
    """Tenants by API key; keys are held only as SHA-256 digests and compared in constant time."""

    def __init__(self, tenants: list[TenantConfig]) -> None:
        self._entries = [(_digest(key), tenant) for tenant in tenants for key in tenant.api_keys]

    def tenant_for(self, authorization: str | None) -> TenantConfig:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        digest = _digest(key.strip())
        found = None
        for stored, tenant in self._entries:  # every entry, so timing says nothing
            if hmac.compare_digest(stored, digest):
                found = tenant
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        return found


def create_app(router: Router, *, load_classifier: bool = True) -> FastAPI:
    """The ASGI app; ``load_classifier`` loads the model at startup instead of first use."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_classifier:
            await asyncio.to_thread(lambda: router.classifier)
        yield

    app = FastAPI(title="thinkroute", version="0.1.0", lifespan=lifespan)
    keys = KeyRing(router.config.tenants)
    max_body = router.config.server.max_body_bytes

    async def read_request(request: Request) -> tuple[TenantConfig, ChatRequest, float | None]:
        tenant = keys.tenant_for(request.headers.get("authorization"))
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            raise RequestTooLargeError(f"request body over the {max_body}-byte limit")
        raw = await request.body()
        if len(raw) > max_body:
            raise RequestTooLargeError(f"request body over the {max_body}-byte limit")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"the request body is not valid JSON ({exc})") from None
        return tenant, parse_chat_request(body), _latency_limit(request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        tenant, chat, latency_limit_s = await read_request(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        if chat.stream:
            stream = await router.astream(chat, tenant=tenant, latency_limit_s=latency_limit_s)
            headers = _decision_headers(stream.decision, stream.served.target.model_name,
                                        stream.served.is_fallback, request_id)  # fmt: skip
            return StreamingResponse(_sse(stream), media_type="text/event-stream", headers=headers)
        done = await router.acompletion(chat, tenant=tenant, latency_limit_s=latency_limit_s)
        headers = _decision_headers(done.decision, done.served.target.model_name,
                                    done.served.is_fallback, request_id)  # fmt: skip
        headers["x-thinkroute-cost-usd"] = f"{done.cost_usd:.8f}"
        logger.info(
            "request %s tenant=%s tier=%s model=%s cost_usd=%.8f seconds=%.3f",
            request_id, tenant.name, done.decision.tier, done.served.target.model_name,
            done.cost_usd, time.perf_counter() - started,
        )  # fmt: skip
        return JSONResponse(done.response, headers=headers)

    @app.post("/v1/route")
    async def route(request: Request) -> Response:
        tenant, chat, latency_limit_s = await read_request(request)
        decision = await asyncio.to_thread(
            router.decide,
            chat.messages,
            model=chat.model,
            tenant=tenant,
            latency_limit_s=latency_limit_s,
            requested_effort=chat.requested_effort,
        )
        return JSONResponse({**decision.as_dict(), "explanation": explain(decision)})

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        tenant = keys.tenant_for(request.headers.get("authorization"))
        names = list(AUTO_MODELS) + [
            m.model_name
            for m in router.config.model_list
            if tenant.allowed_models is None or m.model_name in tenant.allowed_models
        ]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "thinkroute"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        classifier_loaded = router.is_classifier_loaded
        body = {
            "status": "ready" if classifier_loaded else "loading",
            "classifier": "loaded" if classifier_loaded else "not loaded",
            "upstreams": "configured" if router.is_dispatch_configured else "none configured",
            "redis": "not used yet",
        }
        return JSONResponse(body, status_code=200 if classifier_loaded else 503)

    @app.exception_handler(ThinkrouteError)
    async def thinkroute_error(request: Request, exc: ThinkrouteError) -> Response:
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = ThinkrouteError(
            str(exc.detail), code="not_found" if exc.status_code == 404 else None
        )
        error.type = "invalid_request_error"
        return JSONResponse(error.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = InvalidRequestError("the request does not match the API")
        return JSONResponse(error.to_body(), status_code=400)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        error = ThinkrouteError("The server had an error while processing your request.")
        return JSONResponse(error.to_body(), status_code=500)

    return app


def _decision_headers(
    decision: RouteDecision, served_model: str, is_fallback: bool, request_id: str
) -> dict[str, str]:
    served_tier = decision.tier
    if is_fallback:
        served_tier = "fast" if decision.tier == "reasoning" else "reasoning"
    headers = {
        "x-request-id": request_id,
        "x-thinkroute-tier": served_tier,
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


async def _sse(stream: StreamingCompletion) -> AsyncIterator[str]:
    try:
        async for chunk in stream.chunks:
            yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
    except ThinkrouteError as exc:
        # OpenAI reports a failure after the first byte as an error event in the stream.
        yield f"data: {json.dumps(exc.to_body())}\n\n"
        return
    # Headers left before the cost was known; an SSE comment carries it (clients ignore it).
    yield f": x-thinkroute-cost-usd={stream.cost_usd:.8f}\n\n"
    yield "data: [DONE]\n\n"


def _latency_limit(request: Request) -> float | None:
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


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
