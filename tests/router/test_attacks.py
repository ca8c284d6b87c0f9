"""The attacks of issue 23 replayed through a real server: each one stays fixed.

A proxy on a loopback port (uvicorn, real Redis, real LiteLLM, the simulated
upstream or a hostile one written here) is sent what an attacker or a careless
client sent: endless chunked bodies, JSON that Python decodes but nothing can
use, wrong types where sets are looked up, answers a model should not give,
and probes of what one tenant can learn of another. None may produce a 5xx, a
traceback in the log, or a leak.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis

from router.http.server import create_app
from router.proxy import Router
from router.state.store import Store
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import ACME_KEY, REDIS_URL, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

ADMIN_KEY = "sk-admin-attacks-0123456789"
BODY_LIMIT = 1024 * 1024
MiB = 1024 * 1024


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(classifier, upstream) -> Iterator[BackgroundServer]:
    """A proxy over Redis with the admin API on and a 1 MiB body limit."""
    config = proxy_config(upstream.base_url)
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"max_body_bytes": BODY_LIMIT})}
    )
    router = Router(config=config, classifier=classifier, store=Store.from_url(REDIS_URL))
    with BackgroundServer(create_app(router, admin_key=ADMIN_KEY)) as running:
        yield running


@pytest.fixture
def tracebacks(caplog) -> Callable[[], list[logging.LogRecord]]:
    """``tracebacks()``: records logged with a traceback or at ERROR so far, by any thread."""
    caplog.set_level(logging.INFO)
    return lambda: [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- 1. memory exhaustion by a chunked body ------------------------------------------------


def test_an_endless_chunked_body_is_refused_with_413_before_it_is_read(server):
    """64 MiB sent chunked (no Content-Length) against a 1 MiB limit: the 413 comes early.

    The old reader awaited the whole body before comparing it with the limit, so
    the client could send all 64 MiB (and the server held them) before any answer.
    """
    chunk = b"x" * (64 * 1024)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\n"
            b"authorization: Bearer " + ACME_KEY.encode() + b"\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        sock.setblocking(False)
        while sent < 64 * MiB and not answer:
            try:
                sock.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            except BlockingIOError:
                time.sleep(0.005)  # the server stopped reading: look for its answer
            except (BrokenPipeError, ConnectionResetError):
                break
            with contextlib.suppress(BlockingIOError):
                answer = sock.recv(65536)
        sock.setblocking(True)
        while b"}}" not in answer:  # the head and the JSON body may come in separate reads
            try:
                more = sock.recv(65536)
            except OSError:
                break
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1048576-byte limit" in answer
    # What was sent before the answer is the limit plus what the kernel's socket
    # buffers took; nowhere near the 64 MiB the old reader waited for.
    assert sent < 32 * MiB, sent


@pytest.mark.anyio
async def test_the_app_reads_no_more_than_the_limit_of_a_chunked_body(classifier, upstream):
    """Counted at the app's edge: the body's generator is asked for one chunk past the limit."""
    config = proxy_config(upstream.base_url)
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"max_body_bytes": BODY_LIMIT})}
    )
    app = create_app(Router(config=config, classifier=classifier), load_classifier=False)
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1024):  # 64 MiB in 64 kB chunks
            pulled += 64 * 1024
            yield b"x" * (64 * 1024)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        response = await client.post(
            "/v1/chat/completions", content=body(), headers=bearer(ACME_KEY)
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert pulled <= BODY_LIMIT + 64 * 1024


# --- 2. crafted JSON -------------------------------------------------------------------------

OPENAI_CHAT = '{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
ANTHROPIC_CHAT = (
    '{"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}'
)
DEEP = "[" * 1000 + "]" * 1000
HUGE_INT = "1" * 5000

# (path, body, param named in the 400, or None for a refusal of the whole body)
CRAFTED = {
    "surrogate in a message": (
        "/v1/chat/completions",
        '{"model": "auto", "messages": [{"role": "user", "content": "a \\ud800 b"}]}',
        "messages.0.content",
    ),
    "surrogate in the system prompt": (
        "/v1/chat/completions",
        '{"model": "auto", "messages": [{"role": "system", "content": "\\udfff"}, '
        '{"role": "user", "content": "hi"}]}',
        "messages.0.content",
    ),
    "surrogate in the model name": (
        "/v1/chat/completions",
        '{"model": "auto\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
        "model",
    ),
    "integer of 5000 digits": (
        "/v1/chat/completions",
        OPENAI_CHAT[:-1] + f', "max_tokens": {HUGE_INT}}}',
        None,
    ),
    "arrays nested 1000 deep": (
        "/v1/chat/completions",
        OPENAI_CHAT[:-1] + f', "metadata": {{"x": {DEEP}}}}}',
        None,
    ),
    "NaN temperature": (
        "/v1/chat/completions",
        OPENAI_CHAT[:-1] + ', "temperature": NaN}',
        "temperature",
    ),
    "role as a list": (
        "/v1/chat/completions",
        '{"model": "auto", "messages": [{"role": ["user"], "content": "hi"}]}',
        "messages[0].role",
    ),
    "tool_calls: 5": (
        "/v1/chat/completions",
        '{"model": "auto", "messages": [{"role": "user", "content": "hi"}, '
        '{"role": "assistant", "content": "x", "tool_calls": 5}, '
        '{"role": "user", "content": "again"}]}',
        "messages[1].tool_calls",
    ),
    "text part holding an object": (
        "/v1/chat/completions",
        '{"model": "auto", "messages": [{"role": "user", "content": '
        '[{"type": "text", "text": {"nested": "object"}}]}]}',
        "messages[0].content[0].text",
    ),
    "route: surrogate": (
        "/v1/route",
        '{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
        "messages.0.content",
    ),
    "route: role as a list": (
        "/v1/route",
        '{"model": "auto", "messages": [{"role": ["user"], "content": "hi"}]}',
        "messages[0].role",
    ),
    "anthropic: surrogate in a message": (
        "/v1/messages",
        '{"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "\\ud800"}]}',
        "messages.0.content",
    ),
    "anthropic: surrogate in the system prompt": (
        "/v1/messages",
        ANTHROPIC_CHAT[:-1] + ', "system": "\\ud800"}',
        "system",
    ),
    "anthropic: surrogate in the model name": (
        "/v1/messages",
        '{"model": "\\ud800", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}',
        "model",
    ),
    "anthropic: effort as a list": (
        "/v1/messages",
        ANTHROPIC_CHAT[:-1] + ', "output_config": {"effort": ["high"]}}',
        "output_config.effort",
    ),
    "anthropic: image media_type as a list": (
        "/v1/messages",
        '{"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": '
        '[{"type": "image", "source": {"type": "base64", "media_type": ["image/png"], '
        '"data": "AAAA"}}]}]}',
        "messages.0.content.0.source.media_type",
    ),
    "anthropic: nested 1000 deep": ("/v1/messages", ANTHROPIC_CHAT[:-1] + f', "x": {DEEP}}}', None),
    "count_tokens: integer of 5000 digits": (
        "/v1/messages/count_tokens",
        ANTHROPIC_CHAT[:-1] + f', "top_k": {HUGE_INT}}}',
        None,
    ),
    "count_tokens: surrogate": (
        "/v1/messages/count_tokens",
        '{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
        "messages.0.content",
    ),
}


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_crafted_json_gets_a_400_in_the_dialect_of_the_endpoint(server, upstream, tracebacks, case):
    path, body, param = CRAFTED[case]
    before = len(upstream.requests)
    response = httpx.post(
        f"{server.url}{path}",
        content=body.encode(),
        headers={**bearer(ACME_KEY), "x-api-key": ACME_KEY, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    payload = response.json()
    if path.startswith("/v1/messages"):
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    else:
        error = payload["error"]
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert error["param"] == param, error
    assert len(upstream.requests) == before  # nothing reached the model
    assert not tracebacks()


def test_an_infinite_tenant_setting_is_refused_before_the_tenant_is_stored(
    server, run_id, tracebacks
):
    name = f"{run_id}-inf"
    body = f'{{"name": "{name}", "max_latency_ms": Infinity}}'
    response = httpx.post(
        f"{server.url}/v1/tenants", content=body.encode(), headers=bearer(ADMIN_KEY), timeout=10
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "max_latency_ms"
    found = httpx.get(f"{server.url}/v1/tenants/{name}", headers=bearer(ADMIN_KEY), timeout=10)
    assert found.status_code == 404
    assert not tracebacks()


# --- 3. a model's answer holding a lone surrogate ------------------------------------------

SURROGATE_ANSWER = (
    b'{"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", '
    b'"choices": [{"index": 0, "finish_reason": "stop", '
    b'"message": {"role": "assistant", "content": "broken \\ud800 text"}}], '
    b'"usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}'
)


async def surrogate_upstream(scope, receive, send) -> None:
    """An OpenAI-compatible upstream whose every answer holds a lone surrogate."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": SURROGATE_ANSWER})


def test_an_answer_with_a_lone_surrogate_reaches_the_client_it_was_charged_to(
    serve_on_redis, run_id, tracebacks
):
    key = f"sk-{run_id}-0123456789"
    with BackgroundServer(surrogate_upstream) as hostile:
        config = proxy_config(hostile.base_url, tenants=[{"name": run_id, "api_keys": [key]}])
        proxy = serve_on_redis(config)
        response = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            headers=bearer(key),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        # Replaced by U+FFFD, as a UTF-8 decoder does with a broken byte.
        assert response.json()["choices"][0]["message"]["content"] == "broken \ufffd text"
        usage = httpx.get(f"{proxy.url}/v1/usage", headers=bearer(key), timeout=10).json()
        assert usage["day"]["requests"] == 1
        assert usage["day"]["spend_usd"] == pytest.approx(
            float(response.headers["x-thinkroute-cost-usd"])
        )
    assert not tracebacks()


# --- 4. concerns ------------------------------------------------------------------------------


def test_routing_scores_are_cached_per_tenant(serve_on_redis, clean_upstream, run_id):
    """One tenant's cached score never answers another's request (it told them apart by time)."""
    tenants = [{"name": f"{run_id}-{t}", "api_keys": [f"sk-{run_id}-{t}-0123456789"]} for t in "ab"]
    proxy = serve_on_redis(proxy_config(clean_upstream.base_url, tenants=tenants))
    client = redis.Redis.from_url(REDIS_URL)
    text = f"an exact text only tenant a sent {run_id}"

    def route(tenant: str) -> None:
        response = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": text}]},
            headers=bearer(f"sk-{run_id}-{tenant}-0123456789"),
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def scores(tenant: str) -> list[bytes]:
        return list(client.scan_iter(f"thinkroute:{{{run_id}-{tenant}}}:scores:*"))

    route("a")
    assert len(scores("a")) == 1 and scores("b") == []
    route("b")
    assert len(scores("b")) == 1
    client.close()


def test_a_deleted_tenant_leaves_nothing_for_a_new_tenant_of_its_name(
    serve_on_redis, clean_upstream, run_id
):
    name = f"{run_id}-gone"
    config = proxy_config(clean_upstream.base_url)
    proxy = serve_on_redis(config, admin_key=ADMIN_KEY)
    admin = bearer(ADMIN_KEY)
    created = httpx.post(
        f"{proxy.url}/v1/tenants", json={"name": name, "log_prompts": True}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = httpx.post(f"{proxy.url}/v1/tenants/{name}/keys", headers=admin).json()["key"]
    answered = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "a secret prompt"}]},
        headers=bearer(key),
        timeout=30,
    )
    assert answered.status_code == 200, answered.text
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 10  # the decision log writes in batches
    while not client.exists(f"thinkroute:{{{name}}}:decisions") and time.monotonic() < deadline:
        time.sleep(0.05)
    scored = httpx.post(
        f"{proxy.url}/v1/feedback",
        json={"request_id": answered.headers["x-request-id"], "score": 1.0},
        headers=bearer(key),
        timeout=10,
    )
    assert scored.status_code == 200, scored.text
    assert client.exists(f"thinkroute:{{{name}}}:feedback")

    assert httpx.delete(f"{proxy.url}/v1/tenants/{name}", headers=admin).status_code == 200
    assert list(client.scan_iter(f"thinkroute:{{{name}}}:*")) == []
    httpx.post(f"{proxy.url}/v1/tenants", json={"name": name}, headers=admin)
    usage = httpx.get(f"{proxy.url}/v1/tenants/{name}/usage", headers=admin).json()
    assert usage["day"]["requests"] == 0 and usage["day"]["spend_usd"] == 0
    client.close()


@pytest.mark.parametrize("path", ["/v1/route", "/v1/messages/count_tokens"])
def test_route_and_count_tokens_are_rate_limited_like_chats(
    serve_on_redis, clean_upstream, run_id, path
):
    key = f"sk-{run_id}-0123456789"
    tenant = {"name": run_id, "api_keys": [key], "rate_limits": {"requests_per_minute": 2}}
    proxy = serve_on_redis(proxy_config(clean_upstream.base_url, tenants=[tenant]))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [
        httpx.post(
            f"{proxy.url}{path}", json=body, headers={**bearer(key), "x-api-key": key}, timeout=30
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_a_client_that_hangs_up_mid_body_is_a_quiet_499(server, caplog):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\n"
            b"authorization: Bearer " + ACME_KEY.encode() + b"\r\n"
            b"content-type: application/json\r\ncontent-length: 100000\r\n\r\n"
            b'{"model": "auto", "messages": ['
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [r for r in caplog.records if getattr(r, "fields", {}).get("status") == 499]
        if lines:
            break
        time.sleep(0.05)
    assert lines and lines[0].fields["error"] == "client_closed"
    assert lines[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


LEAKY_ERROR = json.dumps(
    {
        "error": {
            "message": "upstream http://10.9.8.7:8443/v1/chat/completions refused model m; "
            "connect to 10.9.8.7:8443 failed"
        }
    }
).encode()


async def leaky_upstream(scope, receive, send) -> None:
    """An upstream whose 400 names where it lives, as gateways' and LiteLLM's messages do."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": LEAKY_ERROR})


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "litellm"])
def test_upstream_locations_stay_out_of_errors(direct, classifier):
    with BackgroundServer(leaky_upstream) as hostile:
        config = proxy_config(hostile.base_url, direct_openai=direct)
        app = create_app(Router(config=config, classifier=classifier), load_classifier=False)
        with BackgroundServer(app) as proxy:
            response = httpx.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
                headers=bearer(ACME_KEY),
                timeout=30,
            )
            host, port = "127.0.0.1", str(hostile.port)
    assert 400 <= response.status_code < 600 and response.status_code != 500
    message = response.json()["error"]["message"]
    assert "refused model m" in message  # what the client can act on is kept
    for leaked in ("10.9.8.7", "8443", host + ":" + port, "litellm"):
        assert leaked not in message, message


def test_readyz_says_redis_answers_but_not_where_it_is(server):
    body = httpx.get(f"{server.url}/readyz", timeout=10).json()
    assert body["redis"] == "ok"
    assert "127.0.0.1" not in json.dumps(body) and "6379" not in json.dumps(body)


def test_the_api_description_needs_the_admin_key_and_no_page_loads_a_foreign_script(server):
    assert httpx.get(f"{server.url}/docs").status_code == 404
    assert httpx.get(f"{server.url}/redoc").status_code == 404
    assert httpx.get(f"{server.url}/openapi.json").status_code == 401
    assert httpx.get(f"{server.url}/openapi.json", headers=bearer(ACME_KEY)).status_code == 401
    document = httpx.get(f"{server.url}/openapi.json", headers=bearer(ADMIN_KEY))
    assert document.status_code == 200 and "/v1/chat/completions" in document.json()["paths"]
    page = httpx.get(f"{server.url}/dashboard").text
    assert "<script" in page and "http" not in page.split("<script", 1)[1].split(">", 1)[0]


def test_a_trailing_slash_is_not_redirected_to_the_host_the_client_named(server):
    response = httpx.get(
        f"{server.url}/v1/models/",
        headers={**bearer(ACME_KEY), "host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"]["code"] == "not_found"
