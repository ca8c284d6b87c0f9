"""The SDK in LiteLLM's idiom: keyword arguments in, openai types out, resp.thinkroute beside.

Router in-process over the simulated upstream (and the test Redis, for the cache).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import openai.types.chat as chat_types
import openai.types.responses as response_types
import pytest

from router import Completion, Router
from router.errors import InvalidRequestError, ModelNotFoundError
from router.state.store import Store
from tests.router.conftest import CHAT, OLYMPIAD, REDIS_URL, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)


def test_keyword_completion_returns_an_openai_chat_completion_with_the_routing(
    router, clean_upstream
):
    resp = router.completion(model="auto", messages=CHAT, temperature=0.2, max_tokens=50)
    assert isinstance(resp, chat_types.ChatCompletion)
    assert resp.choices[0].message.content.startswith("[fast-model] answer to: what's")
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    routing = resp.thinkroute
    assert (routing.decision.tier, routing.model, routing.cache) == ("fast", "fast", "bypass")
    assert routing.cost_usd > 0 and routing.is_fallback is False
    sent = clean_upstream.requests[-1]["body"]
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 50)
    assert "thinkroute" not in resp.model_dump()  # the wire shape stays OpenAI's


def test_todays_request_body_shape_still_returns_a_completion(router):
    done = router.completion({"model": "auto", "messages": CHAT})
    assert isinstance(done, Completion)
    assert done.response["choices"][0]["message"]["content"]


@pytest.mark.anyio
async def test_async_keyword_completion_routes_hard_problems_to_reasoning(router, clean_upstream):
    resp = await router.acompletion(model="auto", messages=OLYMPIAD)
    assert resp.thinkroute.decision.tier == "reasoning"
    assert resp.usage.completion_tokens_details.reasoning_tokens > 0
    assert clean_upstream.requests[-1]["body"]["model"] == "reasoning-model"
    await router.aclose()


@pytest.mark.anyio
async def test_an_async_stream_yields_typed_chunks_and_its_final_cost(router):
    stream = await router.acompletion(
        model="auto", messages=OLYMPIAD, stream=True, stream_options={"include_usage": True}
    )
    async with stream:
        assert stream.thinkroute.decision.tier == "reasoning"  # known before the first chunk
        chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, chat_types.ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[reasoning-model] answer to: Let n")
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0
    assert stream.thinkroute.cost_usd > 0
    await router.aclose()


@pytest.mark.anyio
async def test_leaving_a_stream_early_closes_the_upstream_and_charges_what_was_produced(
    router, clean_upstream
):
    clean_upstream.control("fast-model", chunk_delay_s=0.05)
    async with await router.acompletion(model="fast", messages=CHAT, stream=True) as stream:
        async for _ in stream:
            break
    assert stream.thinkroute.cost_usd > 0
    await router.aclose()


def test_a_blocking_stream_iterates_typed_chunks(router):
    with router.completion(model="fast", messages=CHAT, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("[fast-model] answer to")
    assert stream.thinkroute.cost_usd > 0


def test_responses_return_an_openai_response(router, clean_upstream):
    resp = router.responses(
        model="auto", input=OLYMPIAD[0]["content"], instructions="Be brief.",
        reasoning={"effort": "high"},
    )  # fmt: skip
    assert isinstance(resp, response_types.Response)
    assert resp.output_text.startswith("[reasoning-model] answer to: Let n")
    assert resp.usage.output_tokens_details.reasoning_tokens == 1024
    assert resp.thinkroute.decision.reason == "client_set_reasoning"
    assert clean_upstream.requests[-1]["body"]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }


@pytest.mark.anyio
async def test_async_responses_stream_typed_events(router):
    stream = await router.aresponses(model="auto", input="hello there", stream=True)
    async with stream:
        events = [event async for event in stream]
    assert isinstance(events[0], response_types.ResponseCreatedEvent)
    assert isinstance(events[-1], response_types.ResponseCompletedEvent)
    assert events[-1].response.output_text.startswith("[fast-model] answer to: hello")
    assert stream.thinkroute.cost_usd > 0
    await router.aclose()


def test_bad_keyword_requests_fail_before_any_call(router, clean_upstream):
    with pytest.raises(ModelNotFoundError):
        router.completion(model="gpt-99", messages=CHAT)
    with pytest.raises(InvalidRequestError):
        router.completion(model="auto", messages=[])
    with pytest.raises(InvalidRequestError):
        router.responses(model="auto", input="hi", previous_response_id="resp_1")
    assert clean_upstream.requests == []


@pytest.mark.redis
@pytest.mark.anyio
async def test_async_with_and_a_cache_hit_shows_on_thinkroute(classifier, upstream, run_id):
    config = proxy_config(upstream.base_url, tenants=[{"name": run_id, "api_keys": []}])
    tenant = next(t for t in config.tenants if t.name == run_id)
    store = Store.from_url(REDIS_URL, timeout_s=5.0)
    async with Router(config=config, classifier=classifier, store=store) as router:
        asks = {"model": "fast", "messages": CHAT, "temperature": 0, "tenant": tenant}
        first = await router.acompletion(**asks)
        second = await router.acompletion(**asks)
    assert (first.thinkroute.cache, second.thinkroute.cache) == ("miss", "hit")
    assert second.thinkroute.cost_usd == 0
    assert second.choices[0].message.content == first.choices[0].message.content


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_asyncio_run_without_a_close_leaves_no_warning(upstream, transport):
    script = textwrap.dedent(f"""
        import asyncio
        from router import Router
        from tests.router.conftest import CHAT, OLYMPIAD, proxy_config

        config = proxy_config({upstream.base_url!r}, direct_openai={transport == "direct"})
        router = Router.from_config(config, env={{}})
        resp = asyncio.run(router.acompletion(model="fast", messages=[
            {{"role": "user", "content": "hi"}}]))
        print(resp.choices[0].message.content)
        done = asyncio.run(router.acompletion({{"model": "fast", "messages": [
            {{"role": "user", "content": "again"}}]}}))
        print(done.response["choices"][0]["message"]["content"])
    """)
    run = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "[fast-model] answer to: hi",
        "[fast-model] answer to: again",
    ]
    assert "Unclosed" not in run.stderr and "Traceback" not in run.stderr, run.stderr
