"""OpenTelemetry traces through the real proxy, caught by the SDK's in-memory exporter."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from router.config import ServerConfig
from router.observe.tracing import start_tracing
from router.proxy import Router
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import UPSTREAM_KEY, proxy_config
from tests.router.test_observability import CHAT, OLYMPIAD, post, stream

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
        "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
    ),
]

# A client's W3C trace context: the proxy's spans join this trace, under this span.
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def traced(serve_on_redis, clean_upstream, run_id) -> Iterator[tuple[BackgroundServer, Any]]:
    """A proxy on Redis whose spans go to an in-memory exporter, and that exporter."""
    exporter = InMemorySpanExporter()
    tracing = start_tracing(exporter=exporter)
    config = proxy_config(clean_upstream.base_url,
                          tenants=[{"name": run_id, "api_keys": [f"sk-{run_id}"]}])  # fmt: skip
    yield serve_on_redis(config, tracing=tracing), exporter
    tracing.provider.shutdown()


def trace_of(exporter: Any, request_id: str) -> dict[str, ReadableSpan]:
    """The spans of one request by name, once its request span has ended."""
    for _ in range(100):
        spans = exporter.get_finished_spans()
        root = [s for s in spans if s.attributes.get("thinkroute.request_id") == request_id]
        if root:
            trace = [s for s in spans if s.context.trace_id == root[0].context.trace_id]
            named = {s.name: s for s in trace}
            assert len(named) == len(trace), "one span of each kind per request"
            return {"request": root[0], **named}
        time.sleep(0.02)
    raise AssertionError(f"no request span for {request_id}")


def test_a_routed_request_is_one_trace_of_route_cache_and_upstream(traced, run_id):
    proxy, exporter = traced
    secret = f"{OLYMPIAD} {uuid.uuid4().hex}"
    traceparent = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
    response = post(proxy, f"sk-{run_id}", secret, temperature=0,
                    headers={"traceparent": traceparent})  # fmt: skip
    assert response.status_code == 200 and response.headers["x-thinkroute-tier"] == "reasoning"

    spans = trace_of(exporter, response.headers["x-request-id"])
    request = spans["request"]
    assert request.name == "POST /v1/chat/completions" and request.kind == SpanKind.SERVER
    # The client's trace continues: same trace id, the client's span as parent.
    assert f"{request.context.trace_id:032x}" == CLIENT_TRACE_ID
    assert f"{request.parent.span_id:016x}" == CLIENT_SPAN_ID
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/v1/chat/completions"
    assert {k: request.attributes[k] for k in ("thinkroute.tenant", "thinkroute.tier",
            "thinkroute.model", "thinkroute.cache")} == {  # fmt: skip
        "thinkroute.tenant": run_id, "thinkroute.tier": "reasoning",
        "thinkroute.model": "reasoning", "thinkroute.cache": "miss",
    }  # fmt: skip
    assert set(spans) == {"request", request.name, "thinkroute.route", "thinkroute.cache",
                          "thinkroute.upstream"}  # fmt: skip
    for name in ("thinkroute.route", "thinkroute.cache", "thinkroute.upstream"):
        assert spans[name].parent.span_id == request.context.span_id  # children of the request
    route = spans["thinkroute.route"].attributes
    assert (route["thinkroute.tenant"], route["thinkroute.tier"], route["thinkroute.model"]) == (
        run_id,
        "reasoning",
        "reasoning",
    )
    assert route["thinkroute.score"] == pytest.approx(
        float(response.headers["x-thinkroute-score"]), abs=1e-4
    )
    assert route["thinkroute.reason"] == response.headers["x-thinkroute-reason"]
    assert spans["thinkroute.cache"].attributes["thinkroute.cache"] == "miss"
    upstream = spans["thinkroute.upstream"]
    assert upstream.kind == SpanKind.CLIENT
    assert upstream.attributes["thinkroute.served_model"] == "reasoning"
    assert upstream.attributes["thinkroute.fallback"] is False
    # The route and the cache come before the model call, all inside the request.
    assert request.start_time <= spans["thinkroute.route"].start_time
    assert spans["thinkroute.route"].end_time <= upstream.start_time
    assert upstream.end_time <= request.end_time

    # The same request again: a cache hit, no upstream call.
    again = post(proxy, f"sk-{run_id}", secret, temperature=0)
    hit = trace_of(exporter, again.headers["x-request-id"])
    assert hit["thinkroute.cache"].attributes["thinkroute.cache"] == "hit"
    assert hit["request"].attributes["thinkroute.cache"] == "hit"
    assert "thinkroute.upstream" not in hit

    # No prompt, answer, tenant key or provider key in any span.
    everything = json.dumps([json.loads(s.to_json()) for s in exporter.get_finished_spans()])
    answer = response.json()["choices"][0]["message"]["content"]
    for secret_text in (secret, answer, f"sk-{run_id}", UPSTREAM_KEY):
        assert secret_text not in everything


def test_fallbacks_streams_and_failures_are_traced(traced, run_id, clean_upstream):
    proxy, exporter = traced
    clean_upstream.control("reasoning-model", fail_status=500)
    fallback = post(proxy, f"sk-{run_id}", OLYMPIAD)
    upstream = trace_of(exporter, fallback.headers["x-request-id"])["thinkroute.upstream"]
    assert upstream.attributes["thinkroute.tier"] == "reasoning"
    assert upstream.attributes["thinkroute.served_model"] == "fast"
    assert upstream.attributes["thinkroute.fallback"] is True

    # Nothing can answer: the request's span and the model call's are errors, by type only.
    clean_upstream.control("fast-model", fail_status=500)
    failed = post(proxy, f"sk-{run_id}", CHAT)
    assert failed.status_code >= 500
    spans = trace_of(exporter, failed.headers["x-request-id"])
    assert spans["request"].status.status_code == StatusCode.ERROR
    assert spans["request"].attributes["http.response.status_code"] == failed.status_code
    assert spans["thinkroute.upstream"].status.status_code == StatusCode.ERROR
    assert spans["thinkroute.upstream"].attributes["error.type"].endswith("Error")
    assert not spans["thinkroute.upstream"].events  # no exception message is recorded
    clean_upstream.reset()

    # A stream's request span lasts until its last chunk is sent.
    streamed, body = stream(proxy, f"sk-{run_id}", "tell me a short story about a cat")
    spans = trace_of(exporter, streamed.headers["x-request-id"])
    assert spans["request"].attributes["http.response.status_code"] == 200
    assert spans["thinkroute.upstream"].end_time < spans["request"].end_time

    # A refused key is a request span too; probes are not traced.
    refused = post(proxy, "sk-nobody-0123456789", CHAT)
    spans = trace_of(exporter, refused.headers["x-request-id"])
    assert spans["request"].attributes["http.response.status_code"] == 401
    assert "thinkroute.tenant" not in spans["request"].attributes
    httpx.get(f"{proxy.url}/healthz")
    assert not [s for s in exporter.get_finished_spans() if "healthz" in s.name]


def test_tracing_is_off_unless_the_config_turns_it_on(upstream, tmp_path):
    config = proxy_config(upstream.base_url)
    assert Router.from_config(config).tracing.is_enabled is False
    on = config.model_copy(update={"server": ServerConfig(tracing=True)})
    router = Router.from_config(on)
    try:
        assert router.tracing.is_enabled
        assert router.tracing.provider.resource.attributes["service.name"] == "thinkroute"
    finally:
        router.tracing.provider.shutdown()  # nothing was sent: no span was made
