"""A simulated OpenAI Chat Completions upstream: ``thinkroute sim-upstream --port 8001``.

Tests, demos and benchmarks of thinkroute need an upstream that speaks the real wire
format (JSON, SSE chunks, OpenAI's error shape, ``usage`` with ``reasoning_tokens``) over
real TCP with no network or API key, answers deterministically so one can tell which
model got what, records every request, and can be made slow, failing, cut or garbled.

Any model name works. One containing "reasoning" reasons: ``reasoning_effort`` sets its
reasoning tokens, counted in ``completion_tokens`` as OpenAI does; other models reject
``reasoning_effort`` with a 400 as non-reasoning OpenAI models do. Latency is zero unless
asked for, so a benchmark measures the proxy. The reply is
``"[<model>] answer to: <first 40 chars of the last user message>"``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Self

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

REASONING_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 256, "high": 1024}
ERROR_KINDS = {  # status -> (type, code, message), as OpenAI words them
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass
class ModelBehaviour:
    """How one model answers; every field but ``reasoning`` is a knob of ``POST /_control``.

    latency_s: sleep before the response starts (before the status line).
    first_byte_latency_s: streams send the 200 headers, then wait this long for the first
        chunk (time to first token); non-streaming replies just wait it on top of latency_s.
    fail_status / fail_count: answer the next ``fail_count`` requests (-1: all) with this
        status in OpenAI's error shape.
    cut_stream_after: drop the connection after this many content chunks, without [DONE].
    malformed: answer 200 with a body (or SSE chunk) that is not valid JSON.
    chunk_delay_s: sleep between stream chunks.
    stall_after / stall_s: after this many content chunks, fall silent for stall_s once
        (a model that stops answering mid-stream).
    error_rate: this fraction of requests, in [0, 1], fails with a 500. Deterministic, so a
        run can be repeated: request n (from 0) fails when floor((n+1)*rate) > floor(n*rate),
        e.g. 0.5 fails every second request and 1.0 every one.
    answer: reply with this text instead of the echo (a cascade test makes a fast and a
        verifier model agree or disagree on cue).
    """

    reasoning: bool = False
    latency_s: float = 0.0
    first_byte_latency_s: float = 0.0
    fail_status: int | None = None
    fail_count: int = -1
    cut_stream_after: int | None = None
    malformed: bool = False
    chunk_delay_s: float = 0.0
    stall_after: int | None = None
    stall_s: float = 0.0
    error_rate: float = 0.0
    answer: str | None = None

    def __post_init__(self) -> None:  # replace() runs this too, so /_control is checked
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate!r}")


BROKEN_JSON = b'{"id": "chatcmpl-broken", "choices": ['
KNOBS = frozenset(f.name for f in fields(ModelBehaviour)) - {"reasoning"}
DEFAULT_MODELS = ("fast-model", "reasoning-model")
# A long benchmark must not grow the log without bound; tests see far fewer requests.
MAX_LOGGED_REQUESTS = 10_000


def new_behaviour(model: str, **knobs: Any) -> ModelBehaviour:
    """The behaviour a model gets on first use: the name alone says whether it reasons."""
    return ModelBehaviour(reasoning="reasoning" in model.lower(), **knobs)


def error_body(status: int, message: str | None = None, param: str | None = None) -> JSONResponse:
    kind, code, default = ERROR_KINDS.get(status, ("server_error", None, f"Error {status}."))
    error = {"message": message or default, "type": kind, "param": param, "code": code}
    return JSONResponse({"error": error}, status_code=status)


class SimulatorState:
    """The models' behaviour and the request log, shared by the server and the test thread."""

    def __init__(self, models: dict[str, ModelBehaviour]) -> None:
        self.defaults = copy.deepcopy(models)
        self.models = copy.deepcopy(models)
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self.seq = 0  # requests so far; the log may have dropped the oldest
        self.served: dict[str, int] = {}  # per model, requests that reached error_rate
        # How each stream ended: completed, cut (the cut_stream_after knob) or abandoned
        # (the client hung up first): proof that a proxy closes what its client left.
        self.streams: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self.lock = threading.Lock()

    def control(self, model: str, **knobs: Any) -> ModelBehaviour:
        if not isinstance(model, str):
            raise TypeError("'model' must be a model name")
        unknown = set(knobs) - KNOBS
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}; known: {sorted(KNOBS)}")
        if "fail_status" in knobs:  # a new status starts a new count, by default endless
            knobs.setdefault("fail_count", -1)
        with self.lock:  # a model not seen yet is created, so it can be set up before use
            current = self.models.get(model) or new_behaviour(model)
            self.models[model] = replace(current, **knobs)
            if "error_rate" in knobs:  # a new rate starts its pattern afresh, predictably
                self.served.pop(model, None)
            return copy.copy(self.models[model])

    def reset(self) -> None:
        """Back to the models given at start (forgetting those seen since) and an empty log."""
        with self.lock:
            self.models = copy.deepcopy(self.defaults)
            self.requests.clear()
            self.streams.clear()
            self.served.clear()
            self.seq = 0

    def record(self, body: Any, headers: dict[str, str]) -> int:
        """Log a request and return its sequence number."""
        with self.lock:
            self.requests.append({"body": body, "headers": headers})
            self.seq += 1
            return self.seq

    def record_stream(self, model: str, outcome: str, chunks_sent: int) -> None:
        with self.lock:
            self.streams.append({"model": model, "outcome": outcome, "chunks_sent": chunks_sent})

    def behaviour(self, model: str) -> ModelBehaviour:
        with self.lock:
            return copy.copy(self.models.setdefault(model, new_behaviour(model)))

    def should_fail(self, model: str) -> bool:
        with self.lock:
            behaviour = self.models[model]
            if behaviour.fail_status is None or behaviour.fail_count == 0:
                return False
            if behaviour.fail_count > 0:
                behaviour.fail_count -= 1
            return True

    def hits_error_rate(self, model: str) -> bool:
        with self.lock:
            rate = self.models[model].error_rate
            n = self.served.get(model, 0)
            self.served[model] = n + 1
            # The epsilon keeps float products such as 0.29 * 100 = 28.999... on their integer.
            return math.floor((n + 1) * rate + 1e-9) > math.floor(n * rate + 1e-9)


def words(content: Any) -> list[str]:
    if isinstance(content, list):  # content parts: only the text ones count
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content.split() if isinstance(content, str) else []


def completion(body: dict[str, Any], behaviour: ModelBehaviour, seq: int) -> dict[str, Any]:
    """The full non-streaming response; streams are cut from the same one, so they agree."""
    model, messages = body["model"], body["messages"]
    last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    echo = f"[{model}] answer to: {' '.join(words(last_user.get('content')))[:40]}"
    reply = (echo if behaviour.answer is None else behaviour.answer).split(" ")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "length" if limit and limit < len(reply) else "stop"
    reply = reply[:limit] if limit else reply
    usage: dict[str, Any] = {
        "prompt_tokens": sum(len(words(m.get("content"))) + 3 for m in messages),
        "completion_tokens": len(reply),
    }
    if behaviour.reasoning:
        reasoning = REASONING_TOKENS[body.get("reasoning_effort") or "medium"]
        usage["completion_tokens"] += reasoning
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    message = {"role": "assistant", "content": " ".join(reply), "refusal": None}
    return {
        "id": f"chatcmpl-sim-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_sim",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class StreamCut(Exception):
    """Raised inside a stream to drop the connection as a crashed upstream would."""


async def stream_events(
    full: dict[str, Any], body: dict[str, Any], b: ModelBehaviour
) -> AsyncIterator[bytes]:
    head = {k: full[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice], **extra})

    await asyncio.sleep(b.first_byte_latency_s)
    if b.malformed:
        yield b"data: " + BROKEN_JSON + b"\n\n"
        yield sse("[DONE]")
        return
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    reply = full["choices"][0]["message"]["content"].split(" ")
    for i, word in enumerate(reply):
        if b.cut_stream_after is not None and i >= b.cut_stream_after:
            raise StreamCut
        if i == b.stall_after:
            await asyncio.sleep(b.stall_s)
        await asyncio.sleep(b.chunk_delay_s)
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, full["choices"][0]["finish_reason"])
    if include_usage:
        yield sse({**head, "choices": [], "usage": full["usage"]})
    yield sse("[DONE]")


class SSEResponse(StreamingResponse):
    """An event stream that can end without finishing the body, and reports how it ended.

    ``on_end(outcome, chunks_sent)`` runs once: ``completed``, ``cut`` (StreamCut) or
    ``abandoned`` (the client disconnected first, which stops the stream at once).
    """

    def __init__(self, events: AsyncIterator[bytes], on_end: Callable[[str, int], None]) -> None:
        super().__init__(events, media_type="text/event-stream")
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome, sent = "abandoned", 0
        async with anyio.create_task_group() as watch:

            async def stop_when_client_leaves() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                watch.cancel_scope.cancel()

            watch.start_soon(stop_when_client_leaves)
            try:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                async for event in self.body_iterator:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                    sent += 1
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                outcome = "completed"
            except StreamCut:
                outcome = "cut"  # no final empty body: uvicorn closes the connection mid-chunking
            finally:
                self.on_end(outcome, sent)
                watch.cancel_scope.cancel()


def create_app(models: dict[str, ModelBehaviour] | None = None) -> FastAPI:
    """The simulated upstream; its state (log, knobs) is ``app.state.simulator``.

    ``models`` are listed by ``GET /v1/models`` from the start and restored by ``/_reset``;
    by default ``fast-model`` and ``reasoning-model``.
    """
    if models is None:
        models = {name: new_behaviour(name) for name in DEFAULT_MODELS}
    state = SimulatorState(models)
    app = FastAPI(title="thinkroute simulated OpenAI upstream")
    app.state.simulator = state

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        seq = state.record(body, {k.lower(): v for k, v in request.headers.items()})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error_body(400, "Expected a JSON object with a 'messages' list.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error_body(400, "You must provide a model parameter.", "model")
        behaviour = state.behaviour(model)
        effort = body.get("reasoning_effort")
        if effort is not None and not behaviour.reasoning:
            message = "Unsupported parameter: 'reasoning_effort' is not supported with this model."
            return error_body(400, message, "reasoning_effort")
        if behaviour.reasoning and effort is not None and effort not in REASONING_TOKENS:
            return error_body(400, f"Invalid value: '{effort}'.", "reasoning_effort")
        await asyncio.sleep(behaviour.latency_s)
        if behaviour.fail_status is not None and state.should_fail(model):
            return error_body(behaviour.fail_status)
        if behaviour.error_rate and state.hits_error_rate(model):
            return error_body(500)
        full = completion(body, behaviour, seq)
        if body.get("stream"):
            ended = functools.partial(state.record_stream, model)
            return SSEResponse(stream_events(full, body, behaviour), ended)
        await asyncio.sleep(behaviour.first_byte_latency_s)
        if behaviour.malformed:
            return Response(BROKEN_JSON, media_type="application/json")
        return JSONResponse(full)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        card = {"object": "model", "created": 0, "owned_by": "thinkroute-sim"}
        return {"object": "list", "data": [{"id": m, **card} for m in state.models]}

    @app.post("/_control")
    async def control(request: Request) -> Response:
        try:
            knobs = dict(await request.json())
            model = knobs.pop("model", None)
            return JSONResponse(asdict(state.control(model, **knobs)))
        except (ValueError, TypeError) as exc:
            return error_body(400, str(exc))

    @app.post("/_reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    @app.get("/_streams")
    async def streams() -> list[dict[str, Any]]:
        with state.lock:
            return list(state.streams)

    @app.get("/_requests")
    async def requests() -> list[dict[str, Any]]:
        with state.lock:
            return list(state.requests)

    return app


class BackgroundServer:
    """Runs an ASGI app with uvicorn on a free loopback port in a background thread.

    ``with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")``
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        # Port 0: the OS picks a free port; uvicorn binds it, so asyncio sets TCP_NODELAY on
        # its connections (a socket bound by hand with proto 0 gets none: 40 ms per request).
        # The standard asyncio loop: uvloop, which `thinkroute serve` uses when installed,
        # reports transports a library left open when a test's server stops, as errors.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2,
            loop="asyncio",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0
        self.url = self.base_url = ""  # known once started

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SimulatedUpstream(BackgroundServer):
    """The simulator served over TCP on 127.0.0.1 from a background thread.

    ``with SimulatedUpstream() as upstream: OpenAI(base_url=upstream.base_url, api_key="x")``
    """

    def __init__(self, models: dict[str, ModelBehaviour] | None = None) -> None:
        super().__init__(create_app(models))
        self.state: SimulatorState = self.app.state.simulator

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat completion request so far: ``{"body": ..., "headers": {...}}``."""
        with self.state.lock:
            return copy.deepcopy(list(self.state.requests))

    @property
    def streams(self) -> list[dict[str, Any]]:
        """How each stream ended: ``{"model": ..., "outcome": ..., "chunks_sent": n}``."""
        with self.state.lock:
            return copy.deepcopy(list(self.state.streams))

    def control(self, model: str, **knobs: Any) -> ModelBehaviour:
        return self.state.control(model, **knobs)

    def reset(self) -> None:
        self.state.reset()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    latency_ms: dict[str, float] | None = None,
    error_rate: dict[str, float] | None = None,
) -> None:
    """Run the simulator in the foreground until interrupted, with per-model faults.

    Models named in ``latency_ms`` or ``error_rate`` are listed and kept by ``/_reset``
    alongside the two defaults; any other name still works on first use.
    """
    latency, errors = latency_ms or {}, error_rate or {}
    models = {name: new_behaviour(name) for name in DEFAULT_MODELS}
    for name in {**latency, **errors}:
        knobs = {"latency_s": latency.get(name, 0.0) / 1000, "error_rate": errors.get(name, 0.0)}
        models[name] = new_behaviour(name, **knobs)
    app = create_app(models)
    print(f"thinkroute sim-upstream: listening on http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
