"""The fake upstream speaks OpenAI's wire format as the official SDK and LiteLLM read it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import litellm
import openai
import pytest

from tests.fake_upstream import FakeUpstream

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
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture(scope="module")
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    # No retries: each fault a test sets up must reach the test as it happened.
    with openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url) as raw:
        yield raw


def ask(client: openai.OpenAI, model: str = "reasoning-model", **options: Any) -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, **options)


def via_litellm(upstream: FakeUpstream, **options: Any) -> Any:
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
    upstream: FakeUpstream, http: httpx.Client
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
def test_litellm_parses_the_stream(upstream: FakeUpstream) -> None:
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
    upstream: FakeUpstream, client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    upstream.control("reasoning-model", fail_status=status, fail_count=2)
    for _ in range(2):
        with pytest.raises(error) as failed:
            ask(client)
        assert failed.value.status_code == status
        assert set(failed.value.body) == {"message", "type", "param", "code"}
    assert ask(client).choices[0].message.content == REPLY
    assert len(upstream.requests) == 3


def test_fail_forever_touches_only_its_model(upstream: FakeUpstream, client: openai.OpenAI) -> None:
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
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.control("reasoning-model", cut_stream_after=2)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError), ask(client, stream=True) as stream:
        received.extend(c.choices[0].delta.content or "" for c in stream)
    assert "".join(received) == "[reasoning-model] answer"


@litellm_import_warning
def test_malformed_body_is_an_error(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.control("reasoning-model", malformed=True)
    # The SDK lets the JSON error through as it is; LiteLLM wraps it.
    with pytest.raises(json.JSONDecodeError):
        ask(client)
    with pytest.raises(json.JSONDecodeError):
        list(ask(client, stream=True))
    with pytest.raises(litellm.InternalServerError):
        via_litellm(upstream, max_retries=0)


def test_unknown_model_is_404_in_openai_shape(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        ask(client, "no-such-model")
    assert missing.value.body == {
        "message": "The model `no-such-model` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert upstream.requests[0]["body"]["model"] == "no-such-model"


def test_latency_keeps_the_server_concurrent(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.control("fast-model", latency_s=0.25)
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: ask(client, "fast-model"), range(4)))
    elapsed = time.monotonic() - start
    assert len(replies) == 4
    assert 0.25 <= elapsed < 0.75  # one after the other would take 1 s


def test_first_byte_latency_delays_the_first_chunk_not_the_headers(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.control("fast-model", first_byte_latency_s=0.3, chunk_delay_s=0.01)
    start = time.monotonic()
    with ask(client, "fast-model", stream=True) as stream:
        headers_at = time.monotonic() - start
        next(iter(stream))
        first_chunk_at = time.monotonic() - start
    assert headers_at < 0.25 < first_chunk_at


def test_control_reset_and_models_over_http(upstream: FakeUpstream, http: httpx.Client) -> None:
    set_knob = http.post("/_control", json={"model": "fast-model", "fail_status": 503})
    assert set_knob.json()["fail_status"] == 503
    assert http.post("/_control", json={"model": "fast-model", "bogus": 1}).status_code == 400
    assert http.post("/_control", json={"model": "nope", "latency_s": 1}).status_code == 404
    failed = http.post("/v1/chat/completions", json={"model": "fast-model", "messages": MESSAGES})
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "server_error"
    assert http.post("/_reset").status_code == 200
    assert upstream.requests == []
    assert upstream.state.models["fast-model"].fail_status is None
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["fast-model", "reasoning-model"]
