"""The direct transport to OpenAI-compatible upstreams keeps LiteLLM's behaviour.

The whole of test_server.py runs over both transports; these tests cover what
only the direct one decides: eligibility, LiteLLM's parameter translation,
retries and error mapping.
"""

from __future__ import annotations

import anyio
import pytest

from router.config import build_config
from router.errors import InvalidRequestError, UpstreamError, UpstreamTimeoutError
from router.upstream.dispatch import Dispatcher, Target
from router.upstream.openai_direct import error_for_status, is_direct_eligible

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
ASK = [{"role": "user", "content": "Is 91 prime?"}]


def dispatcher(upstream_url: str, model: str = "fast-model", **dispatch) -> Dispatcher:
    params = {"model": f"openai/{model}", "api_base": upstream_url, "api_key": "sk-up-123"}
    config = build_config({
        "model_list": [{"model_name": "m", "litellm_params": params}],
        "dispatch": {"num_retries": 0, "timeout_s": 5, **dispatch},
    })  # fmt: skip
    return Dispatcher(config=config)


def target(d: Dispatcher, effort: str | None = None) -> Target:
    return Target(d.config.deployment("m"), effort)


def test_only_openai_compatible_deployments_go_direct():
    def deployment(**params):
        return build_config({"model_list": [{"model_name": "m", "litellm_params": params}]})

    eligible = deployment(model="openai/gpt-4o-mini", api_base="http://vllm:8000/v1")
    assert is_direct_eligible(eligible.model_list[0])
    assert not is_direct_eligible(deployment(model="anthropic/claude-haiku-4-5").model_list[0])
    # A LiteLLM option this path does not implement sends the deployment through LiteLLM.
    unknown = deployment(model="openai/gpt-4o-mini", extra_headers={"x-team": "a"})
    assert not is_direct_eligible(unknown.model_list[0])


@pytest.mark.anyio
async def test_o_series_parameters_are_translated_as_litellm_does(clean_upstream):
    d = dispatcher(clean_upstream.base_url, model="o4-mini")
    try:
        await d.complete({"messages": ASK, "max_tokens": 50}, target(d), None)
        (sent,) = clean_upstream.requests
        assert sent["body"]["model"] == "o4-mini"
        assert sent["body"]["max_completion_tokens"] == 50 and "max_tokens" not in sent["body"]
        assert sent["headers"]["authorization"] == "Bearer sk-up-123"
        with pytest.raises(InvalidRequestError, match="temperature"):
            await d.complete({"messages": ASK, "temperature": 0.5}, target(d), None)
        assert len(clean_upstream.requests) == 1  # refused before any call
    finally:
        await d.aclose()


@pytest.mark.anyio
async def test_server_errors_are_retried_then_mapped(clean_upstream):
    d = dispatcher(clean_upstream.base_url, num_retries=2)
    try:
        clean_upstream.control("fast-model", fail_status=500, fail_count=2)
        response, _ = await d.complete({"messages": ASK}, target(d), None)
        assert response["choices"][0]["message"]["content"]
        assert len(clean_upstream.requests) == 3  # two failures, then the answer
        clean_upstream.control("fast-model", fail_status=400, fail_count=1)
        with pytest.raises(InvalidRequestError):  # a client error is never retried
            await d.complete({"messages": ASK}, target(d), None)
        assert len(clean_upstream.requests) == 4
    finally:
        await d.aclose()


@pytest.mark.anyio
async def test_garbage_and_silence_become_502_and_504(clean_upstream):
    d = dispatcher(clean_upstream.base_url, timeout_s=0.3)
    try:
        clean_upstream.control("fast-model", malformed=True)
        with pytest.raises(UpstreamError, match="not JSON"):
            await d.complete({"messages": ASK}, target(d), None)
        clean_upstream.control("fast-model", malformed=False, latency_s=1.0)
        with pytest.raises(UpstreamTimeoutError):
            await d.complete({"messages": ASK}, target(d), None)
    finally:
        await d.aclose()


@pytest.mark.anyio
async def test_a_stream_cut_mid_way_raises_after_what_arrived(clean_upstream):
    d = dispatcher(clean_upstream.base_url)
    try:
        clean_upstream.control("fast-model", cut_stream_after=2)
        chunks, _ = await d.stream({"messages": ASK}, target(d), None)
        received = []
        with pytest.raises(UpstreamError):
            async for chunk in chunks:
                received.append(chunk)
        assert received  # the first chunks reached the caller before the cut
    finally:
        await d.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "litellm"])
async def test_a_stream_producing_past_timeout_s_is_not_cut(clean_upstream, direct):
    # Six words a third of a second apart: about two seconds, twice timeout_s. Only the
    # silences are limited (the direct transport used to cut the whole stream at timeout_s).
    d = dispatcher(clean_upstream.base_url, timeout_s=1.0, direct_openai=direct)
    assert (d.direct is not None) is direct  # each transport is the one under test
    try:
        clean_upstream.control("fast-model", chunk_delay_s=0.33)
        chunks, _ = await d.stream({"messages": ASK}, target(d), None)
        words = [c["choices"][0]["delta"].get("content") async for c in chunks if c["choices"]]
        text = "".join(word or "" for word in words)
        assert text == "[fast-model] answer to: Is 91 prime?"
        # The simulator books a stream's end after its last bytes: wait for the entry.
        for _ in range(100):
            if clean_upstream.streams:
                break
            await anyio.sleep(0.02)
        assert clean_upstream.streams[-1]["outcome"] == "completed"
    finally:
        await d.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "litellm"])
async def test_a_stream_that_goes_silent_is_cut_after_idle_timeout_s(clean_upstream, direct):
    d = dispatcher(clean_upstream.base_url, idle_timeout_s=0.5, direct_openai=direct)
    try:
        clean_upstream.control("fast-model", stall_after=2, stall_s=30.0)
        chunks, _ = await d.stream({"messages": ASK}, target(d), None)
        received = []
        with pytest.raises(UpstreamTimeoutError, match="stopped answering mid-stream"):
            async for chunk in chunks:
                received.append(chunk)
        assert len(received) == 3  # the role chunk and two words, then silence
    finally:
        await d.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "litellm"])
async def test_a_model_that_never_starts_is_cut_after_timeout_s(clean_upstream, direct):
    d = dispatcher(clean_upstream.base_url, timeout_s=0.5, direct_openai=direct)
    try:
        clean_upstream.control("fast-model", first_byte_latency_s=30.0)
        with pytest.raises(UpstreamTimeoutError):
            await d.stream({"messages": ASK}, target(d), None)
    finally:
        await d.aclose()


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, '{"error": {"message": "maximum context length is 8192"}}', "InvalidRequestError",
         "context_length_exceeded"),
        (401, '{"error": {"message": "bad key sk-up-123"}}', "UpstreamError", "upstream_error"),
        (429, "slow down", "RateLimitError", "rate_limit_exceeded"),
        (503, "", "UpstreamUnavailableError", "upstream_unavailable"),
        (504, "", "UpstreamTimeoutError", "upstream_timeout"),
        (500, "<html>oops</html>", "UpstreamError", "upstream_error"),
    ],
)  # fmt: skip
def test_error_mapping_matches_litellms(status, body, kind, code):
    error = error_for_status(status, body)
    assert (type(error).__name__, error.code) == (kind, code)
    assert "sk-up-123" not in error.message  # a provider key never reaches the client
