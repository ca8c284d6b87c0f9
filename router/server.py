"""The HTTP face: OpenAI's wire format over :class:`router.proxy.Router`.

This module authenticates, parses, and formats. Deciding and dispatching
happen in the router; every error leaves through one handler in OpenAI's
shape, and nothing a client sends can produce a traceback in a response.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.budgets import Budgets
from router.config import TenantConfig, hash_api_key
from router.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    RequestTooLargeError,
    StoreUnavailableError,
    ThinkrouteError,
)
from router.policy import RouteDecision, explain
from router.proxy import AUTO_MODELS, Router, StreamingCompletion
from router.requests import ChatRequest, parse_chat_request
from router.tenants import TenantDirectory, bearer_key, describe

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

LATENCY_LIMIT_HEADER = "x-thinkroute-max-latency-ms"


def create_app(
    router: Router, *, load_classifier: bool = True, admin_key: str | None = None
) -> FastAPI:
    """The ASGI app; ``load_classifier`` loads the model at startup instead of first use.

    ``admin_key`` (``THINKROUTE_ADMIN_KEY`` when served from the CLI) opens the
    tenant management routes; without one they answer 403.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_classifier:
            await asyncio.to_thread(lambda: router.classifier)
        yield
        await router.aclose()

    app = FastAPI(title="thinkroute", version="0.1.0", lifespan=lifespan)
    directory = TenantDirectory(router.config.tenants, router.store)
    admin_digest = hash_api_key(admin_key) if admin_key else None
    max_body = router.config.server.max_body_bytes

    async def authenticate(request: Request) -> TenantConfig:
        return await directory.authenticate(bearer_key(request.headers.get("authorization")))

    def require_admin(request: Request) -> None:
        # Checked in each admin route, never by path prefix: no spelling of a path skips it.
        if admin_digest is None:
            raise PermissionDeniedError(
                "the admin API is off: set THINKROUTE_ADMIN_KEY", code="admin_disabled"
            )
        digest = hash_api_key(bearer_key(request.headers.get("authorization")))
        if not hmac.compare_digest(digest, admin_digest):
            raise AuthenticationError("this route needs the admin key", code="admin_key_required")

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            raise RequestTooLargeError(f"request body over the {max_body}-byte limit")
        raw = await request.body()
        if len(raw) > max_body:
            raise RequestTooLargeError(f"request body over the {max_body}-byte limit")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"the request body is not valid JSON ({exc})") from None

    async def read_request(request: Request) -> tuple[TenantConfig, ChatRequest, float | None]:
        tenant = await authenticate(request)
        return tenant, parse_chat_request(await read_json(request)), _latency_limit(request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        tenant, chat, latency_limit_s = await read_request(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        if chat.stream:
            stream = await router.astream(chat, tenant=tenant, latency_limit_s=latency_limit_s,
                                          headers=request.headers)  # fmt: skip
            headers = _decision_headers(stream.decision, stream.served.target.model_name,
                                        stream.served.is_fallback, request_id)  # fmt: skip
            headers["x-thinkroute-cache"] = stream.cache
            if stream.cache == "hit":
                headers["x-thinkroute-cost-usd"] = "0.000000"
            return StreamingResponse(_sse(stream), media_type="text/event-stream", headers=headers)
        done = await router.acompletion(chat, tenant=tenant, latency_limit_s=latency_limit_s,
                                        headers=request.headers)  # fmt: skip
        headers = _decision_headers(done.decision, done.served.target.model_name,
                                    done.served.is_fallback, request_id)  # fmt: skip
        headers["x-thinkroute-cost-usd"] = f"{done.cost_usd:.6f}"
        headers["x-thinkroute-cache"] = done.cache
        logger.info(
            "request %s tenant=%s tier=%s model=%s cache=%s cost_usd=%.6f seconds=%.3f",
            request_id, tenant.name, done.decision.tier, done.served.target.model_name,
            done.cache, done.cost_usd, time.perf_counter() - started,
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
        tenant = await authenticate(request)
        names = list(AUTO_MODELS) + [
            m.model_name
            for m in router.config.model_list
            if tenant.allowed_models is None or m.model_name in tenant.allowed_models
        ]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "thinkroute"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/usage")
    async def usage(request: Request) -> Response:
        tenant = await authenticate(request)
        return JSONResponse(await _budgets(router).usage(tenant))

    # -- tenant management (admin key) ---------------------------------------------------

    @app.get("/v1/tenants")
    async def list_tenants(request: Request) -> Response:
        require_admin(request)
        return JSONResponse({"object": "list", "data": await directory.list()})

    @app.post("/v1/tenants")
    async def create_tenant(request: Request) -> Response:
        require_admin(request)
        tenant = await directory.create(await read_json(request))
        return JSONResponse(describe(tenant, "api"), status_code=201)

    @app.get("/v1/tenants/{name}")
    async def get_tenant(name: str, request: Request) -> Response:
        require_admin(request)
        tenant = await directory.get(name)
        return JSONResponse(describe(tenant, _source(directory, name)))

    @app.patch("/v1/tenants/{name}")
    async def update_tenant(name: str, request: Request) -> Response:
        require_admin(request)
        tenant = await directory.update(name, await read_json(request))
        return JSONResponse(describe(tenant, "api"))

    @app.delete("/v1/tenants/{name}")
    async def delete_tenant(name: str, request: Request) -> Response:
        require_admin(request)
        await directory.delete(name)
        return JSONResponse({"deleted": name})

    @app.post("/v1/tenants/{name}/keys")
    async def issue_key(name: str, request: Request) -> Response:
        require_admin(request)
        issued = await directory.issue_key(name)
        body = {"tenant": issued.tenant, "id": issued.key_id, "key": issued.key,
                "note": "the key is shown only now; it is stored as a hash"}  # fmt: skip
        return JSONResponse(body, status_code=201)

    @app.get("/v1/tenants/{name}/keys")
    async def list_keys(name: str, request: Request) -> Response:
        require_admin(request)
        return JSONResponse({"object": "list", "data": await directory.list_keys(name)})

    @app.delete("/v1/tenants/{name}/keys/{key_id}")
    async def revoke_key(name: str, key_id: str, request: Request) -> Response:
        require_admin(request)
        await directory.revoke_key(name, key_id)
        return JSONResponse({"revoked": key_id})

    @app.get("/v1/tenants/{name}/usage")
    async def tenant_usage(name: str, request: Request) -> Response:
        require_admin(request)
        return JSONResponse(await _budgets(router).usage(await directory.get(name)))

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        classifier_loaded = router.is_classifier_loaded
        if router.store is None:
            redis_state = "not configured: no budgets, usage or admin API"
        elif await router.store.ping():
            redis_state = f"ok ({router.store.description})"
        else:
            redis_state = (
                f"unavailable ({router.store.description}): degraded, tenants that fail open "
                "are served without budgets, those that fail closed are refused"
            )
        body = {
            "status": "ready" if classifier_loaded else "loading",
            "classifier": "loaded" if classifier_loaded else "not loaded",
            "upstreams": "configured" if router.is_dispatch_configured else "none configured",
            "redis": redis_state,
        }
        return JSONResponse(body, status_code=200 if classifier_loaded else 503)

    @app.exception_handler(ThinkrouteError)
    async def thinkroute_error(request: Request, exc: ThinkrouteError) -> Response:
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers())

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
    yield f": x-thinkroute-cost-usd={stream.cost_usd:.6f}\n\n"
    yield "data: [DONE]\n\n"


def _budgets(router: Router) -> Budgets:
    if router.budgets is None:
        raise StoreUnavailableError("usage is kept in Redis, and none is configured")
    return router.budgets


def _source(directory: TenantDirectory, name: str) -> str:
    return "config" if name in directory.config_tenants else "api"


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
