"""The simulated upstream speaks OpenAI's wire format as the official SDK and LiteLLM read it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import litellm
import openai
import pytest

from router.upstream.simulator import SimulatedUpstream

QUESTION = "What is two plus two, exactly?"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
PROMPT_TOKENS = 2 + 6 + 3 * 2  # words of each message, plus 3 per message
REPLY = f"[reasoning-model] answer to: {QUESTION}"

litellm.suppress_debug_info = True  # its "Give Feedback" banner on every expected error
# LiteLLM's first completion() imports its GitHub Copilot auth modules, whose
# TypedDicts use ReadOnly, and pydantic warns about that while building their schemas.
litellm_import_warning = pytest.mark.filterwarnings(
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"
)
# LiteLLM's stream handler reads `model_fields` and `model_computed_fields` off chunk
# instances; under "error" pydantic's deprecation warning would abort the stream.
litellm_stream_warning = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance"
    ":pydantic.warnings.PydanticDeprecatedSince211"
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[SimulatedUpstream]:
    with SimulatedUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(upstream: SimulatedUpstream) -> None:
    upstream.reset()


@pytest.fixture(scope="module")
def client(upstream: SimulatedUpstream) -> Iterator[openai.OpenAI]:
    # No retries: each fault a test sets up must reach the test as it happened.
    with openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(upstream: SimulatedUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url) as raw:
        yield raw


def ask(client: openai.OpenAI, model: str = "reasoning-model", **options: Any) -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, **options)


def via_litellm(upstream: SimulatedUpstream, **options: Any) -> Any:
    return litellm.completion(
        model="openai/reasoning-model",
        api_base=upstream.base_url,
        api_key="test",
        messages=MESSAGES,
        **options,
    )


def test_reply_and_usage_with_reasoning_tokens(client: openai.OpenAI) -> None:
    reply = ask(client, reasoning_effort="high")
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage.prompt_tokens == PROMPT_TOKENS
    assert usage.completion_tokens_details.reasoning_tokens == 1024
    assert usage.completion_tokens == len(REPLY.split()) + 1024
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize(("effort", "tokens"), [("low", 64), (None, 256), ("high", 1024)])
def test_reasoning_tokens_follow_effort(
    client: openai.OpenAI, effort: str | None, tokens: int
) -> None:
    reply = ask(client, **({"reasoning_effort": effort} if effort else {}))
    assert reply.usage.completion_tokens_details.reasoning_tokens == tokens


def test_fast_model_has_no_reasoning_and_refuses_effort(client: openai.OpenAI) -> None:
    reply = ask(client, "fast-model")
    assert reply.choices[0].message.content == f"[fast-model] answer to: {QUESTION}"
    assert reply.usage.completion_tokens_details is None
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, "fast-model", reasoning_effort="low")
    assert refused.value.body["param"] == "reasoning_effort"


def test_max_tokens_truncates_the_reply(client: openai.OpenAI) -> None:
    reply = ask(client, max_tokens=3)
    assert reply.choices[0].message.content == "[reasoning-model] answer to:"
    assert reply.choices[0].finish_reason == "length"


def test_stream_with_usage_matches_the_plain_reply(client: openai.OpenAI) -> None:
    plain = ask(client)
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage


def test_stream_wire_format(http: httpx.Client) -> None:
    body = {"model": "fast-model", "messages": MESSAGES, "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in first  # only there when include_usage asks for it


@litellm_import_warning
def test_litellm_sends_reasoning_effort_top_level(
    upstream: SimulatedUpstream, http: httpx.Client
) -> None:
    reply = via_litellm(upstream, reasoning_effort="high")
    assert reply.choices[0].message.content == REPLY
    assert reply.usage.completion_tokens_details.reasoning_tokens == 1024
    [logged] = upstream.requests
    assert logged["body"]["model"] == "reasoning-model"
    assert logged["body"]["reasoning_effort"] == "high"
    assert logged["headers"]["authorization"] == "Bearer test"
    assert http.get("/_requests").json() == upstream.requests


@litellm_import_warning
@litellm_stream_warning
def test_litellm_parses_the_stream(upstream: SimulatedUpstream) -> None:
    stream = via_litellm(
        upstream, reasoning_effort="low", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    usage = chunks[-1].usage
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.prompt_tokens == PROMPT_TOKENS


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
    ],
)
def test_fail_count_then_recovers(
    upstream: SimulatedUpstream,
    client: openai.OpenAI,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    upstream.control("reasoning-model", fail_status=status, fail_count=2)
    for _ in range(2):
        with pytest.raises(error) as failed:
            ask(client)
        assert failed.value.status_code == status
        assert set(failed.value.body) == {"message", "type", "param", "code"}
    assert ask(client).choices[0].message.content == REPLY
    assert len(upstream.requests) == 3


def test_fail_forever_touches_only_its_model(
    upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    upstream.control("reasoning-model", fail_status=429, fail_count=1)
    with pytest.raises(openai.RateLimitError):
        ask(client)
    # A new status without a count fails for good, even after a spent count.
    upstream.control("reasoning-model", fail_status=500)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            ask(client)
    assert ask(client, "fast-model").choices[0].message.content


def test_cut_stream_raises_after_the_first_chunks(
    upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    upstream.control("reasoning-model", cut_stream_after=2)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError), ask(client, stream=True) as stream:
        received.extend(c.choices[0].delta.content or "" for c in stream)
    assert "".join(received) == "[reasoning-model] answer"


@litellm_import_warning
def test_malformed_body_is_an_error(upstream: SimulatedUpstream, client: openai.OpenAI) -> None:
    upstream.control("reasoning-model", malformed=True)
    # The SDK lets the JSON error through as it is; LiteLLM wraps it.
    with pytest.raises(json.JSONDecodeError):
        ask(client)
    with pytest.raises(json.JSONDecodeError):
        list(ask(client, stream=True))
    with pytest.raises(litellm.InternalServerError):
        via_litellm(upstream, max_retries=0)


def test_any_model_name_works_and_reasoning_names_reason(
    upstream: SimulatedUpstream, client: openai.OpenAI, http: httpx.Client
) -> None:
    plain = ask(client, "my-own-model")
    assert plain.choices[0].message.content == f"[my-own-model] answer to: {QUESTION}"
    assert plain.usage.completion_tokens_details is None
    with pytest.raises(openai.BadRequestError):  # not a reasoning model: no effort
        ask(client, "my-own-model", reasoning_effort="low")
    reasoning = ask(client, "sim-Reasoning-xl", reasoning_effort="low")
    assert reasoning.usage.completion_tokens_details.reasoning_tokens == 64
    assert reasoning.usage.completion_tokens == len(plain.choices[0].message.content.split()) + 64
    listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert listed == ["fast-model", "reasoning-model", "my-own-model", "sim-Reasoning-xl"]
    missing = http.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "model"


def test_error_rate_one_always_fails_in_openai_shape(
    upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    upstream.control("reasoning-model", error_rate=1.0)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as failed:
            ask(client)
        assert failed.value.status_code == 500
        assert failed.value.body["type"] == "server_error"
    assert ask(client, "fast-model").choices[0].message.content  # other models unaffected


@pytest.mark.parametrize(
    ("rate", "pattern"), [(0.5, "ox" * 4), (0.25, "ooox" * 2), (0.0, "o" * 8), (0.3, "oooxooxo")]
)
def test_error_rate_fails_a_deterministic_share(
    upstream: SimulatedUpstream, http: httpx.Client, rate: float, pattern: str
) -> None:
    upstream.control("fast-model", error_rate=rate)
    body = {"model": "fast-model", "messages": MESSAGES}
    statuses = [http.post("/v1/chat/completions", json=body).status_code for _ in pattern]
    assert "".join("x" if s == 500 else "o" for s in statuses) == pattern
    assert set(statuses) <= {200, 500}
    # Setting the rate again starts the pattern afresh.
    upstream.control("fast-model", error_rate=rate)
    again = [http.post("/v1/chat/completions", json=body).status_code for _ in pattern]
    assert again == statuses


def test_error_rate_out_of_range_is_refused(http: httpx.Client) -> None:
    for bad in (1.5, -0.1, "half"):
        refused = http.post("/_control", json={"model": "fast-model", "error_rate": bad})
        assert refused.status_code == 400


def test_latency_keeps_the_server_concurrent(
    upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    upstream.control("fast-model", latency_s=0.25)
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: ask(client, "fast-model"), range(4)))
    elapsed = time.monotonic() - start
    assert len(replies) == 4
    assert 0.25 <= elapsed < 0.75  # one after the other would take 1 s


def test_first_byte_latency_delays_the_first_chunk_not_the_headers(
    upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    upstream.control("fast-model", first_byte_latency_s=0.3, chunk_delay_s=0.01)
    start = time.monotonic()
    with ask(client, "fast-model", stream=True) as stream:
        headers_at = time.monotonic() - start
        next(iter(stream))
        first_chunk_at = time.monotonic() - start
    assert headers_at < 0.25 < first_chunk_at


def test_control_reset_and_models_over_http(
    upstream: SimulatedUpstream, http: httpx.Client
) -> None:
    set_knob = http.post("/_control", json={"model": "fast-model", "fail_status": 503})
    assert set_knob.json()["fail_status"] == 503
    assert http.post("/_control", json={"model": "fast-model", "bogus": 1}).status_code == 400
    # Setting up a model not seen yet creates it; a missing model name is an error.
    assert http.post("/_control", json={"model": "new", "latency_s": 0}).status_code == 200
    assert http.post("/_control", json={"latency_s": 0}).status_code == 400
    failed = http.post("/v1/chat/completions", json={"model": "fast-model", "messages": MESSAGES})
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "server_error"
    assert http.post("/_reset").status_code == 200
    assert upstream.requests == []
    assert upstream.state.models["fast-model"].fail_status is None
    assert "new" not in upstream.state.models  # reset forgets the models seen since
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["fast-model", "reasoning-model"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_serves_with_latency_and_error_rate_until_terminated() -> None:
    port = free_port()
    command = [str(Path(sys.executable).with_name("thinkroute")), "sim-upstream"]
    command += ["--port", str(port), "--latency-ms", "fast-model=50"]
    command += ["--error-rate", "reasoning-model=1.0"]
    url = f"http://127.0.0.1:{port}"
    body = {"messages": MESSAGES}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 30  # the CLI imports the classifier stack first
            with httpx.Client(base_url=url, timeout=5) as http:
                while True:
                    assert process.poll() is None, "sim-upstream exited early"
                    assert time.monotonic() < deadline, "sim-upstream did not answer"
                    try:
                        http.get("/v1/models")
                        break
                    except httpx.TransportError:
                        time.sleep(0.05)
                start = time.monotonic()
                fast = http.post("/v1/chat/completions", json={**body, "model": "fast-model"})
                assert time.monotonic() - start >= 0.05
                assert fast.status_code == 200
                failed = http.post(
                    "/v1/chat/completions", json={**body, "model": "reasoning-model"}
                )
                assert failed.status_code == 500
                assert failed.json()["error"]["type"] == "server_error"
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=10)
    assert f"listening on {url}/v1" in output
