"""OpenTelemetry traces, off unless ``server.tracing: true``.

One trace per HTTP request (probes and scrapes are not traced)::

    POST /v1/chat/completions  SERVER  method, route, status, request id; once known:
    │                                  thinkroute.tenant, .tier, .model, .cache
    ├─ thinkroute.route                scoring and policy: tenant, mode, tier, model, reason, score
    ├─ thinkroute.cache                the response cache lookup: tenant, result (hit | miss)
    └─ thinkroute.upstream   CLIENT    the model call (to the first chunk, for a stream): tier,
                                       model, the model that answered, fallback

Spans never carry prompt or answer text, keys, or exception messages (an
upstream's error may quote the request): a failure is recorded as its
exception's type only.

The SDK is the ``otel`` extra (``pip install 'thinkroute[otel]'``). Spans go out
over OTLP/HTTP, set up by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(default ``http://localhost:4318``), ``OTEL_SERVICE_NAME`` (default
``thinkroute``), ``OTEL_TRACES_SAMPLER``. A client's ``traceparent`` header
joins its trace. With tracing off, :class:`Tracing` does nothing and the
packages are never imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from router.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from router.policy import RouteDecision

__all__ = ["Tracing", "decision_attributes", "install", "start_tracing"]

UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
INSTRUMENTATION = "thinkroute"


class _NoSpan:
    """What :meth:`Tracing.span` yields when tracing is off."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass


NO_SPAN = _NoSpan()


class Tracing:
    """thinkroute's spans through one OpenTelemetry tracer; ``Tracing()`` is tracing off.

    ``with tracing.span("thinkroute.route", **{"thinkroute.tenant": "acme"}) as span:``
    """

    def __init__(self, tracer: Any | None = None, *, provider: Any | None = None) -> None:
        self.tracer = tracer
        self.provider = provider  # the SDK's TracerProvider, to flush or shut down

    @property
    def is_enabled(self) -> bool:
        return self.tracer is not None

    @contextmanager
    def span(self, name: str, *, kind: str = "internal", **attributes: Any) -> Iterator[Any]:
        """A child of the current span; a failure inside marks it with the error's type."""
        if self.tracer is None:
            yield NO_SPAN
            return
        from opentelemetry.trace import SpanKind

        with self.tracer.start_as_current_span(
            name, kind=SpanKind[kind.upper()], attributes=_clean(attributes),
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                yield span
            except BaseException as exc:
                _fail(span, type(exc).__name__)
                raise

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Add ``attributes`` to the current span (the request's, between child spans)."""
        if self.tracer is None:
            return
        from opentelemetry import trace

        trace.get_current_span().set_attributes(_clean(attributes))


def start_tracing(*, exporter: Any | None = None) -> Tracing:
    """Tracing with the SDK: to ``exporter`` (each span as it ends), else to OTLP/HTTP."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "server.tracing needs OpenTelemetry: pip install 'thinkroute[otel]'"
        ) from exc
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, if set
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "thinkroute"}))
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError(
                "server.tracing exports over OTLP/HTTP: pip install 'thinkroute[otel]'"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider.get_tracer(INSTRUMENTATION), provider=provider)


def decision_attributes(decision: RouteDecision, tenant: str | None) -> dict[str, Any]:
    """A routing decision as span attributes: what was chosen and why, never the text."""
    return {
        "thinkroute.tenant": tenant,
        "thinkroute.tier": decision.tier,
        "thinkroute.model": decision.model,
        "thinkroute.mode": decision.mode,
        "thinkroute.reason": decision.reason,
        "thinkroute.score": decision.score,
        "thinkroute.effort": decision.reasoning_effort,
    }


def install(app: FastAPI, tracing: Tracing) -> None:
    """Trace each HTTP request to ``app`` (nothing when tracing is off)."""
    if tracing.is_enabled:
        app.add_middleware(_RequestSpans, tracing=tracing)


class _RequestSpans:
    """ASGI middleware: one SERVER span around each request, a client's trace continued.

    Plain ASGI, not ``BaseHTTPMiddleware``: a streamed answer's span ends when its
    last byte is sent, and the route's code runs in the span's context, so its
    spans are children and :meth:`Tracing.annotate` reaches this one.
    """

    def __init__(self, app: Any, *, tracing: Tracing) -> None:
        self.app = app
        self.tracer: Any = tracing.tracer  # installed only when tracing is on: never None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        response: dict[str, Any] = {}

        async def send_and_note(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                for key, value in message.get("headers", ()):
                    if key.lower() == b"x-request-id":
                        response["request_id"] = value.decode("latin-1")
            await send(message)

        method = scope["method"]
        with self.tracer.start_as_current_span(
            f"{method} {scope['path']}", context=propagate.extract(headers),
            kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:  # fmt: skip
            try:
                await self.app(scope, receive, send_and_note)
            except BaseException as exc:
                _fail(span, type(exc).__name__)
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:  # the template, so tenant names in paths do not multiply span names
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                status = response.get("status", 500)
                span.set_attribute("http.response.status_code", status)
                if "request_id" in response:
                    span.set_attribute("thinkroute.request_id", response["request_id"])
                if status >= 500:
                    _fail(span, str(status))


def _fail(span: Any, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes no None values: an unknown attribute is left out."""
    return {key: value for key, value in attributes.items() if value is not None}
