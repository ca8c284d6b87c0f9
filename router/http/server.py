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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.completions import Completion, StreamingCompletion
from router.config import TenantConfig, hash_api_key
from router.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    RequestTooLargeError,
    StoreUnavailableError,
    ThinkrouteError,
)
from router.http.dashboard import install as install_dashboard
from router.http.openapi import chat_completions_body, json_body, messages_body, tenant_body
from router.http.responses.routes import responses_routes
from router.http.wire import ANTHROPIC_WIRE, OPENAI_WIRE, Wire
from router.observe.logs import last_user_text, request_fields
from router.observe.metrics import CLIENT_CLOSED, Metrics, RequestOutcome, served_tier
from router.observe.tracing import install as install_tracing
from router.policy import RouteDecision, explain
from router.proxy import AUTO_MODELS, Router
from router.requests import ChatRequest, parse_chat_request
from router.state.budgets import Budgets
from router.state.decision_log import DecisionLog
from router.state.feedback import FEEDBACK_SCHEMA, REQUEST_ID, parse_feedback, record_feedback
from router.state.store import Store
from router.state.tenants import TenantDirectory, bearer_key, describe
from router.upstream.dispatch import count_prompt_tokens

__all__ = ["app_from_environment", "create_app"]

logger = logging.getLogger(__name__)

LATENCY_LIMIT_HEADER = "x-thinkroute-max-latency-ms"
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
    tenant management routes; without one they answer 403. ``GET /metrics``
    (Prometheus, unless ``server.metrics`` is off) takes ``metrics_key``
    (``THINKROUTE_METRICS_KEY``), a scrape-only key, or the admin key.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_classifier:
            await asyncio.to_thread(lambda: router.classifier)
        yield
        if decisions is not None:
            await decisions.aclose()  # what is queued, before the store closes
        await router.aclose()

    app = FastAPI(title="thinkroute", version="0.1.0", lifespan=lifespan)
    install_tracing(app, router.tracing)  # a span per request, when server.tracing is on
    directory = TenantDirectory(router.config.tenants, router.store)
    admin_digest = hash_api_key(admin_key) if admin_key else None
    metrics_digest = hash_api_key(metrics_key) if metrics_key else None
    settings = router.config.server
    max_body = settings.max_body_bytes
    metrics = Metrics() if settings.metrics else None
    decisions = None
    if router.store is not None and settings.decision_log:
        # A breaker of its own over the shared client: a lost log entry never trips the
        # breaker that budgets and the cache rely on.
        log_store = Store(router.store.client, description=router.store.description)
        decisions = DecisionLog(log_store, max_entries=settings.decision_log_max_entries)
    # The routes read their bodies themselves; these tell the OpenAPI document what they take.
    model_names = [*AUTO_MODELS, *(m.model_name for m in router.config.model_list)]
    chat_body = json_body(chat_completions_body(model_names))

    async def authenticate(request: Request) -> TenantConfig:
        return await directory.authenticate(bearer_key(request.headers.get("authorization")))

    def require_admin(request: Request) -> None:
        # Checked in each admin route, never by path prefix: no spelling of a path skips it.
        if admin_digest is None:
            raise PermissionDeniedError(
                "the admin API is off: set THINKROUTE_ADMIN_KEY", code="admin_disabled"
            )
        if not _holds_key(request, admin_digest):
            raise AuthenticationError("this route needs the admin key", code="admin_key_required")

    def require_scraper(request: Request) -> None:
        # The text names tenants and their spend, so it is not for anyone who can reach the port.
        if metrics_digest is None and admin_digest is None:
            raise PermissionDeniedError(
                "GET /metrics needs a key: set THINKROUTE_METRICS_KEY (or THINKROUTE_ADMIN_KEY)",
                code="metrics_key_required",
            )
        if not any(_holds_key(request, d) for d in (metrics_digest, admin_digest) if d):
            raise AuthenticationError(
                "GET /metrics needs the metrics key or the admin key", code="metrics_key_required"
            )

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

    def account(outcome: RequestOutcome, chat: ChatRequest | None) -> None:
        """Count a finished request and write its log line (no chat text unless asked)."""
        if metrics is not None:
            metrics.observe(outcome)
        prompt = last_user_text(chat.messages) if settings.log_prompts and chat else None
        level = logging.WARNING if outcome.status >= 500 else logging.INFO
        logger.log(
            level, "chat completion", extra={"fields": request_fields(outcome, prompt=prompt)}
        )

    def keep_decision(outcome: RequestOutcome, tenant: TenantConfig, chat: ChatRequest) -> None:
        # Queued: the decision log writes in batches, off the request's path.
        if decisions is not None:
            decisions.submit(outcome, messages=chat.messages if tenant.log_prompts else None)

    async def serve_chat(request: Request, wire: Wire) -> Response:
        """Authenticate, parse, route and answer one chat request in ``wire``'s dialect."""
        request_id = _request_id(request.headers.get("x-request-id"))
        request.state.request_id = request_id
        outcome = RequestOutcome(request_id, started_at=time.time())
        started = time.perf_counter()
        tenant: TenantConfig | None = None
        chat: ChatRequest | None = None
        try:
            tenant = await directory.authenticate(wire.api_key(request.headers))
            outcome.tenant = tenant.name
            chat = wire.parse(await read_json(request))
            latency_limit_s = _latency_limit(request)
            if chat.stream:
                result: Completion | StreamingCompletion = await router.astream(
                    chat, tenant=tenant, latency_limit_s=latency_limit_s, headers=request.headers
                )
            else:
                result = await router.acompletion(
                    chat, tenant=tenant, latency_limit_s=latency_limit_s, headers=request.headers
                )
        except Exception as exc:
            error = exc if isinstance(exc, ThinkrouteError) else ThinkrouteError("unexpected")
            outcome.status, outcome.error_code = error.status_code, error.code
            outcome.total_s = time.perf_counter() - started
            account(outcome, chat)
            if not isinstance(exc, ThinkrouteError):
                raise  # the catch-all handler answers a 500 without a traceback
            headers = {**exc.headers(), **wire.id_headers(request_id)}
            return JSONResponse(wire.error_body(exc), status_code=exc.status_code, headers=headers)
        assert tenant is not None and chat is not None  # set before anything is answered
        headers = _decision_headers(result.decision, result.served.target.model_name,
                                    result.served.is_fallback, request_id)  # fmt: skip
        headers.update(wire.id_headers(request_id))
        headers["x-thinkroute-cache"] = result.cache
        if isinstance(result, StreamingCompletion):
            stream = result

            async def finish(status: int, error_code: str | None) -> None:
                # The stream is over and its cost known: only now is it counted.
                _fill(outcome, stream, status=status, error_code=error_code, started=started)
                account(outcome, chat)
                keep_decision(outcome, tenant, chat)

            if stream.cache == "hit":
                headers["x-thinkroute-cost-usd"] = "0.000000"
            return StreamingResponse(
                _sse(stream, chat, wire, finish), media_type="text/event-stream", headers=headers
            )
        headers["x-thinkroute-cost-usd"] = f"{result.cost_usd:.6f}"
        _fill(outcome, result, status=200, error_code=None, started=started)
        account(outcome, chat)
        keep_decision(outcome, tenant, chat)
        return JSONResponse(wire.body(result, chat), headers=headers)

    @app.post("/v1/chat/completions", openapi_extra=chat_body)
    async def chat_completions(request: Request) -> Response:
        return await serve_chat(request, OPENAI_WIRE)

    @app.post("/v1/messages", openapi_extra=json_body(messages_body(model_names)))
    async def anthropic_messages(request: Request) -> Response:
        """Anthropic's Messages API (``x-api-key`` or Bearer), routed the same way."""
        return await serve_chat(request, ANTHROPIC_WIRE)

    app.include_router(responses_routes(serve_chat, model_names))

    @app.post("/v1/messages/count_tokens", openapi_extra=json_body(messages_body(model_names)))
    async def anthropic_count_tokens(request: Request) -> Response:
        """Anthropic's token count, which coding agents ask before they send a long context.

        Counted for the model the request would be routed to, with no model called.
        """
        try:
            tenant = await directory.authenticate(ANTHROPIC_WIRE.api_key(request.headers))
            body = await read_json(request)
            if isinstance(body, dict):  # a count needs no max_tokens; a message does
                body = {"max_tokens": 1, **body}
            chat = ANTHROPIC_WIRE.parse(body)
            decision = await asyncio.to_thread(
                router.decide, chat.messages, model=chat.model, tenant=tenant,
                requested_effort=chat.requested_effort,
            )  # fmt: skip
            deployment = router.config.deployment(decision.model or "")
            assert deployment is not None  # decisions only name configured models
            tools = chat.params.get("tools")
            count = count_prompt_tokens(deployment, chat.messages, tools)
        except ThinkrouteError as exc:
            return JSONResponse(
                ANTHROPIC_WIRE.error_body(exc), status_code=exc.status_code, headers=exc.headers()
            )
        return JSONResponse({"input_tokens": count})

    @app.post("/v1/route", openapi_extra=chat_body)
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

    @app.post("/v1/feedback", openapi_extra=json_body(FEEDBACK_SCHEMA))
    async def feedback(request: Request) -> Response:
        """Score the answer to one of the tenant's past requests (see router.state.feedback)."""
        tenant = await authenticate(request)
        body = await record_feedback(decisions, tenant, parse_feedback(await read_json(request)))
        return JSONResponse(body)

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

    @app.post("/v1/tenants", openapi_extra=json_body(tenant_body(partial=False)))
    async def create_tenant(request: Request) -> Response:
        require_admin(request)
        tenant = await directory.create(await read_json(request))
        return JSONResponse(describe(tenant, "api"), status_code=201)

    @app.get("/v1/tenants/{name}")
    async def get_tenant(name: str, request: Request) -> Response:
        require_admin(request)
        tenant = await directory.get(name)
        return JSONResponse(describe(tenant, _source(directory, name)))

    @app.patch("/v1/tenants/{name}", openapi_extra=json_body(tenant_body(partial=True)))
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

    install_dashboard(app, router=router, directory=directory, decisions=decisions,
                      authenticate=authenticate, require_admin=require_admin)  # fmt: skip

    if metrics is not None:

        @app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics(request: Request) -> Response:
            require_scraper(request)
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

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
        headers = exc.headers()
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            headers["x-request-id"] = request_id
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)

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


def app_from_environment() -> FastAPI:
    """The app of one ``thinkroute serve --workers N`` worker, built from its environment."""
    import os

    from router.config import config_from_environment, load_config
    from router.observe.logs import configure_logging

    log_format, _, log_level = os.environ.get(WORKER_LOG, "json:info").partition(":")
    configure_logging(log_format, log_level)
    path = os.environ.get(WORKER_CONFIG)
    config = load_config(path, os.environ) if path else config_from_environment(os.environ)[0]
    router = Router.from_config(config, redis_url=os.environ.get(WORKER_REDIS_URL) or None)
    return create_app(router, **operator_keys(os.environ))


def operator_keys(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The admin and metrics keys ``thinkroute serve`` takes from its environment."""
    return {
        "admin_key": environ.get("THINKROUTE_ADMIN_KEY") or None,
        "metrics_key": environ.get("THINKROUTE_METRICS_KEY") or None,
    }


def _holds_key(request: Request, digest: str) -> bool:
    sent = hash_api_key(bearer_key(request.headers.get("authorization")))
    return hmac.compare_digest(sent, digest)


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
) -> AsyncIterator[str]:
    """The stream as server-sent events; ``finish(status, error code)`` runs once it ends.

    A client that hangs up first is recorded with status 499.
    """
    status, error_code = CLIENT_CLOSED, "client_closed"
    try:
        try:
            async for event in wire.events(stream, chat):
                yield event
        except ThinkrouteError as exc:
            # A failure after the first byte can only be an error event in the stream.
            status, error_code = exc.status_code, exc.code
            yield wire.error_event(exc)
            return
        status, error_code = 200, None
        # Headers left before the cost was known; an SSE comment carries it (clients ignore it).
        yield f": x-thinkroute-cost-usd={stream.cost_usd:.6f}\n\n"
        yield wire.end_of_stream
    finally:
        # Shielded: a client that left cancels this task, and the request must still be counted.
        with anyio.CancelScope(shield=True):
            await _close(stream.chunks)  # settles a stream cut short, so its cost is final
            try:
                await finish(status, error_code)
            except Exception:  # counting must never break the stream it counts
                logger.exception("recording a stream failed")


async def _close(chunks: AsyncIterator[Any]) -> None:
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
    outcome.cost_usd = result.cost_usd
    outcome.baseline_usd = result.timings.baseline_usd
    outcome.routing_s = result.timings.routing_s
    outcome.upstream_s = result.timings.upstream_s
    outcome.total_s = time.perf_counter() - started


def _request_id(sent: str | None) -> str:
    """The client's ``x-request-id`` if it is a sane token, else a fresh one."""
    if sent is not None and REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


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
