"""The fake upstream speaks OpenAI's wire format as the official SDK and LiteLLM read it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import litellm
import openai
import pytest

from tests.fake_upstream import FakeUpstream

QUESTION = "What is two plus two, exactly?"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
# 2 messages: 2 + 6 words, plus 3 per message
PROMPT_TOKENS = 14
REPLY = f"[reasoning-model] answer to: {QUESTION}"

litellm.suppress_debug_info = True  # its "Give Feedback" banner on every expected error
# LiteLLM's first completion() imports its GitHub Copilot module, whose pydantic
# TypedDict warns about ReadOnly; that is LiteLLM's own code, not a fault here.
litellm_import_warning = pytest.mark.filterwarnings(
    "ignore:Items .* on TypedDict class '_DeviceCode':UserWarning"
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    # No retries: each fault a test sets up must reach the test as it happened.
    with openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as sdk:
        yield sdk


def test_reply_and_usage_with_reasoning_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="reasoning-model", messages=MESSAGES, reasoning_effort="high"
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.prompt_tokens == PROMPT_TOKENS
    assert usage.completion_tokens_details.reasoning_tokens == 1024
    assert usage.completion_tokens == len(REPLY.split()) + 1024
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize(("effort", "tokens"), [("low", 64), (None, 256), ("high", 1024)])
def test_reasoning_tokens_follow_effort(client: openai.OpenAI, effort: str, tokens: int) -> None:
    extra = {"reasoning_effort": effort} if effort else {}
    reply = client.chat.completions.create(model="reasoning-model", messages=MESSAGES, **extra)
    assert reply.usage and reply.usage.completion_tokens_details
    assert reply.usage.completion_tokens_details.reasoning_tokens == tokens


def test_fast_model_has_no_reasoning_and_refuses_effort(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="fast-model", messages=MESSAGES)
    assert reply.choices[0].message.content == f"[fast-model] answer to: {QUESTION}"
    assert reply.usage and reply.usage.completion_tokens_details is None
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="fast-model", messages=MESSAGES, reasoning_effort="low")
    assert refused.value.body["param"] == "reasoning_effort"


def test_max_tokens_truncates_the_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="reasoning-model", messages=MESSAGES, max_tokens=3)
    assert reply.choices[0].message.content == "[reasoning-model] answer to:"
    assert reply.choices[0].finish_reason == "length"


def test_stream_with_usage_matches_the_plain_reply(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="reasoning-model", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="reasoning-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage


def test_stream_wire_format(upstream: FakeUpstream) -> None:
    body = {"model": "fast-model", "messages": MESSAGES, "stream": True}
    response = httpx.post(f"{upstream.base_url}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"
    assert "usage" not in first  # only present when include_usage asks for it
    assert first["choices"][0]["delta"]["role"] == "assistant"


@litellm_import_warning
def test_litellm_sends_reasoning_effort_top_level(upstream: FakeUpstream) -> None:
    reply = litellm.completion(
        model="openai/reasoning-model",
        api_base=upstream.base_url,
        api_key="test",
        reasoning_effort="high",
        messages=MESSAGES,
    )
    assert reply.choices[0].message.content == REPLY
    assert reply.usage.completion_tokens_details.reasoning_tokens == 1024
    [logged] = upstream.requests
    assert logged["body"]["model"] == "reasoning-model"
    assert logged["body"]["reasoning_effort"] == "high"
    assert logged["headers"]["authorization"] == "Bearer test"
    assert httpx.get(f"{upstream.url}/_requests").json() == upstream.requests


@litellm_import_warning
def test_litellm_parses_the_stream(upstream: FakeUpstream) -> None:
    stream = litellm.completion(
        model="openai/reasoning-model",
        api_base=upstream.base_url,
        api_key="test",
        reasoning_effort="low",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
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
    upstream: FakeUpstream, client: openai.OpenAI, status: int, error: type[Exception]
) -> None:
    upstream.control("reasoning-model", fail_status=status, fail_count=2)
    for _ in range(2):
        with pytest.raises(error) as failed:
            client.chat.completions.create(model="reasoning-model", messages=MESSAGES)
        assert failed.value.status_code == status
        assert set(failed.value.body) == {"message", "type", "param", "code"}
    reply = client.chat.completions.create(model="reasoning-model", messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    assert len(upstream.requests) == 3


def test_fail_forever_touches_only_its_model(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.control("reasoning-model", fail_status=500)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="reasoning-model", messages=MESSAGES)
    assert client.chat.completions.create(model="fast-model", messages=MESSAGES).choices


def test_cut_stream_raises_after_the_first_chunks(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.control("reasoning-model", cut_stream_after=2)
    received: list[str] = []
    stream = client.chat.completions.create(model="reasoning-model", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError), stream:
        received.extend(c.choices[0].delta.content or "" for c in stream)
    assert "".join(received) == "[reasoning-model] answer"


@litellm_import_warning
def test_malformed_body_is_an_error(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.control("reasoning-model", malformed=True)
    # The SDK lets the JSON error through as is; LiteLLM wraps it.
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="reasoning-model", messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        list(client.chat.completions.create(model="reasoning-model", messages=MESSAGES, stream=True))
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(
            model="openai/reasoning-model",
            api_base=upstream.base_url,
            api_key="test",
            messages=MESSAGES,
            max_retries=0,
        )


def test_unknown_model_is_404_in_openai_shape(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert missing.value.body == {
        "message": "The model `no-such-model` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert upstream.requests[0]["body"]["model"] == "no-such-model"


def test_latency_keeps_the_server_concurrent(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.control("fast-model", latency_s=0.3)
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(
                lambda _: client.chat.completions.create(model="fast-model", messages=MESSAGES),
                range(4),
            )
        )
    elapsed = time.monotonic() - start
    assert len(replies) == 4
    assert 0.3 <= elapsed < 0.9


def test_first_byte_latency_delays_the_first_chunk_not_the_headers(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.control("fast-model", first_byte_latency_s=0.5, chunk_delay_s=0.01)
    start = time.monotonic()
    with client.chat.completions.create(model="fast-model", messages=MESSAGES, stream=True) as stream:
        headers_at = time.monotonic() - start
        next(iter(stream))
        first_chunk_at = time.monotonic() - start
    assert headers_at < 0.4 <= first_chunk_at


def test_control_reset_and_models_over_http(upstream: FakeUpstream) -> None:
    control = f"{upstream.url}/_control"
    set_knob = httpx.post(control, json={"model": "fast-model", "fail_status": 503})
    assert set_knob.json()["fail_status"] == 503
    assert httpx.post(control, json={"model": "fast-model", "bogus": 1}).status_code == 400
    assert httpx.post(control, json={"model": "nope", "latency_s": 1}).status_code == 404
    assert httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "fast-model", "messages": []}).status_code == 503
    assert httpx.post(f"{upstream.url}/_reset").status_code == 200
    assert upstream.requests == []
    assert upstream.state.models["fast-model"].fail_status is None
    models = httpx.get(f"{upstream.base_url}/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["fast-model", "reasoning-model"]
