"""The response and score caches against a real Redis, and the stream/response conversions."""

from __future__ import annotations

import json
import logging
import re
import uuid

import anyio
import pytest

from router.requests import ChatRequest, parse_chat_request
from router.state.cache import (
    CacheSettings,
    ResponseCache,
    ScoreCache,
    bypass_requested,
    cache_key,
    chunks_from_response,
    is_cacheable,
    no_store_requested,
    response_from_chunks,
)
from router.state.store import Store

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
PROMPT = "What is the capital of Australia? Answer in one word."
BODY = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def request(**changes) -> ChatRequest:
    return parse_chat_request({**BODY, **changes})


def key_for(req: ChatRequest, *, tenant="acme", model="fast", effort=None) -> str:
    return cache_key(tenant=tenant, request=req, model=model, reasoning_effort=effort)


def completion(content="Canberra.", *, finish="stop", **message) -> dict:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": "fast-model",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17},
    }


@pytest.fixture
async def tenant(store):
    """A tenant name no other test uses; its cache keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = [k async for k in store.client.scan_iter(match=f"thinkroute:{{{name}}}:cache:*")]
    if keys:
        await store.client.delete(*keys)


@pytest.fixture
async def namespace(store):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = [k async for k in store.client.scan_iter(match=f"thinkroute:{{t}}:scores:{name}*")]
    if keys:
        await store.client.delete(*keys)


# --- the key -------------------------------------------------------------------------------

CHANGES_THE_ANSWER = {
    "messages": lambda: (request(messages=[{"role": "user", "content": PROMPT + "!"}]), {}),
    "system message": lambda: (
        request(messages=[{"role": "system", "content": "Be terse."}, *BODY["messages"]]),
        {},
    ),
    "requested model": lambda: (request(model="auto:quality"), {}),
    "chosen model": lambda: (request(), {"model": "reasoning"}),
    "chosen effort": lambda: (request(), {"effort": "high"}),
    "temperature": lambda: (request(temperature=0.7), {}),
    "top_p": lambda: (request(top_p=0.5), {}),
    "max_tokens": lambda: (request(max_tokens=100), {}),
    "max_completion_tokens": lambda: (request(max_completion_tokens=100), {}),
    "stop": lambda: (request(stop=["\n"]), {}),
    "tools": lambda: (request(tools=[WEATHER_TOOL]), {}),
    "tool_choice": lambda: (request(tools=[WEATHER_TOOL], tool_choice="required"), {}),
    "response_format": lambda: (request(response_format={"type": "json_object"}), {}),
    "seed": lambda: (request(seed=7), {}),
    "reasoning_effort": lambda: (request(reasoning_effort="low"), {}),
    "thinking": lambda: (request(thinking={"type": "enabled", "budget_tokens": 1024}), {}),
    "frequency_penalty": lambda: (request(frequency_penalty=0.5), {}),
    "logit_bias": lambda: (request(logit_bias={"50256": -100}), {}),
}
REORDERED_BODY = (
    '{ "temperature" : 0.0,\n  "messages": [ {"content": PROMPT, "role": "user"} ],'
    '\n  "model": "auto" }'
).replace("PROMPT", json.dumps(PROMPT))
SAME_ANSWER = {
    "key order and whitespace": lambda: parse_chat_request(json.loads(REORDERED_BODY)),
    "stream": lambda: request(stream=True, stream_options={"include_usage": True}),
    "user": lambda: request(user="end-user-42"),
    "metadata": lambda: request(metadata={"trace": "abc"}),
    "cache controls": lambda: request(cache={"no-cache": True}),
    "a parameter set to null": lambda: request(top_p=None),
}


@pytest.mark.redis
@pytest.mark.anyio
@pytest.mark.parametrize("field", list(CHANGES_THE_ANSWER))
async def test_a_field_that_changes_the_answer_misses_the_entry(store, tenant, field):
    cache = ResponseCache(store, CacheSettings())
    assert await cache.put(key_for(request(), tenant=tenant), completion(), ttl_s=60)
    changed, choice = CHANGES_THE_ANSWER[field]()
    assert await cache.get(key_for(changed, tenant=tenant, **choice)) is None
    assert await cache.get(key_for(request(), tenant=tenant)) == completion()


@pytest.mark.redis
@pytest.mark.anyio
@pytest.mark.parametrize("variant", list(SAME_ANSWER))
async def test_a_field_that_cannot_change_the_answer_hits_the_entry(store, tenant, variant):
    cache = ResponseCache(store, CacheSettings())
    assert await cache.put(key_for(request(), tenant=tenant), completion(), ttl_s=60)
    assert await cache.get(key_for(SAME_ANSWER[variant](), tenant=tenant)) == completion()


@pytest.mark.redis
@pytest.mark.anyio
async def test_another_tenant_never_reads_the_entry(store, tenant):
    cache = ResponseCache(store, CacheSettings())
    assert await cache.put(key_for(request(), tenant=tenant), completion(), ttl_s=60)
    assert await cache.get(key_for(request(), tenant=tenant + "-other")) is None


def test_key_carries_the_tenant_as_a_cluster_hash_tag_and_no_prompt_text():
    key = key_for(request(), tenant="acme.eu_1")
    assert re.fullmatch(r"thinkroute:\{acme\.eu_1\}:cache:[0-9a-f]{64}", key)


@pytest.mark.parametrize("tenant", ["", "a}b", "a:b", "a b"])
def test_a_tenant_name_that_could_break_the_hash_tag_is_refused(tenant):
    with pytest.raises(ValueError):
        key_for(request(), tenant=tenant)


# --- what may be cached, and when the client says not to -------------------------------------

DETERMINISTIC = CacheSettings()
ALWAYS = CacheSettings(mode="always")


@pytest.mark.parametrize(
    ("params", "settings", "expected"),
    [
        ({"temperature": 0}, DETERMINISTIC, True),
        ({"temperature": 0.0, "tools": [WEATHER_TOOL]}, DETERMINISTIC, True),
        ({"temperature": 0.7, "seed": 3}, DETERMINISTIC, True),
        ({"temperature": 0.7}, DETERMINISTIC, False),
        ({}, DETERMINISTIC, False),  # OpenAI's default temperature is 1
        ({"temperature": 0, "n": 2}, DETERMINISTIC, False),
        ({"temperature": 0, "logprobs": True}, DETERMINISTIC, False),
        ({"temperature": 0}, CacheSettings(enabled=False), False),
        ({}, ALWAYS, True),
        ({"temperature": 1.3}, ALWAYS, True),
        ({"n": 3}, ALWAYS, False),
    ],
)
def test_is_cacheable(params, settings, expected):
    req = ChatRequest(model="auto", messages=BODY["messages"], params=params)
    assert is_cacheable(req, settings) is expected


@pytest.mark.parametrize(
    ("headers", "body_cache", "bypass", "no_store"),
    [
        ({}, None, False, False),
        ({"Cache-Control": "no-cache"}, None, True, False),
        ({"cache-control": "max-age=0, No-Store"}, None, True, True),
        ({"cache-control": "max-age=60"}, None, False, False),
        ({"X-Thinkroute-Cache": "bypass"}, None, True, True),
        ({"x-thinkroute-cache": "use"}, None, False, False),
        ({}, {"no-cache": True}, True, False),
        ({}, {"no-store": True}, False, True),
        ({}, {"no-cache": False}, False, False),
    ],
)
def test_client_cache_controls(headers, body_cache, bypass, no_store):
    req = request(cache=body_cache) if body_cache is not None else request()
    assert bypass_requested(req, headers) is bypass
    assert no_store_requested(req, headers) is no_store


# --- storing -------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_entry_expires_after_its_ttl(store, tenant):
    cache = ResponseCache(store, CacheSettings())
    key = key_for(request(), tenant=tenant)
    assert await cache.put(key, completion(), ttl_s=1)
    assert await cache.get(key) == completion()
    await anyio.sleep(1.1)
    assert await cache.get(key) is None


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_entry_bigger_than_max_entry_bytes_is_not_stored(store, tenant):
    cache = ResponseCache(store, CacheSettings(max_entry_bytes=2_000))
    small, large = key_for(request(), tenant=tenant), key_for(request(seed=1), tenant=tenant)
    assert await cache.put(small, completion("x" * 1_000), ttl_s=60)
    assert not await cache.put(large, completion("x" * 3_000), ttl_s=60)
    assert await cache.get(small) == completion("x" * 1_000)
    assert await cache.get(large) is None


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_unfinished_answer_is_not_stored(store, tenant):
    cache = ResponseCache(store, CacheSettings())
    key = key_for(request(), tenant=tenant)
    assert not await cache.put(key, completion("Canber", finish=None), ttl_s=60)
    assert await cache.get(key) is None


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_disabled_cache_neither_reads_nor_writes(store, tenant):
    key = key_for(request(), tenant=tenant)
    assert await ResponseCache(store, CacheSettings()).put(key, completion(), ttl_s=60)
    off = ResponseCache(store, CacheSettings(enabled=False))
    assert await off.get(key) is None
    assert not await off.put(key_for(request(seed=2), tenant=tenant), completion(), ttl_s=60)


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_unreadable_entry_is_a_miss(store, tenant):
    key = key_for(request(), tenant=tenant)
    await store.client.set(key, b"not zlib", ex=60)
    assert await ResponseCache(store, CacheSettings()).get(key) is None


@pytest.mark.anyio
async def test_redis_down_means_miss_and_no_store_without_logging_the_prompt(caplog):
    store = Store.from_url(CLOSED_PORT_URL)
    cache = ResponseCache(store, CacheSettings())
    scores = ScoreCache(store, namespace="abc123")
    key = key_for(request())
    with caplog.at_level(logging.WARNING, logger="router"):
        assert await cache.get(key) is None
        assert await cache.put(key, completion(), ttl_s=60) is False
        assert await scores.get_many([PROMPT, "other"], tenant="t") == [None, None]
        await scores.put_many({PROMPT: 0.5}, tenant="t")
    await store.aclose()
    assert any(r.name == "router.state.cache" for r in caplog.records)
    assert PROMPT not in caplog.text and "Australia" not in caplog.text


# --- stream <-> response --------------------------------------------------------------------

TEXTS = [
    "Canberra.",
    "",
    "  leading and trailing spaces, double  spaces\n\nand a blank line  ",
    "naïve café — 東京 🙂 " * 10,
    "a" * 150 + " then words after one long run without whitespace",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_replayed_stream_concatenates_to_exactly_the_cached_content(text):
    chunks = chunks_from_response(completion(text), include_usage=False)
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == text
    assert response_from_chunks(chunks)["choices"][0]["message"]["content"] == text


def test_a_replayed_stream_looks_like_a_stream():
    text = "The capital of Australia is Canberra, chosen as a compromise between Sydney and "
    chunks = chunks_from_response(completion(text * 3), include_usage=False)
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(pieces) >= 5 and all(0 < len(p) <= 64 for p in pieces)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-123" for c in chunks)


def test_usage_chunk_only_when_the_client_asked_for_it():
    without = chunks_from_response(completion(), include_usage=False)
    assert all(c["choices"] and "usage" not in c for c in without)
    with_usage = chunks_from_response(completion(), include_usage=True)
    assert with_usage[-1]["choices"] == []
    assert with_usage[-1]["usage"] == completion()["usage"]
    assert all(c["usage"] is None for c in with_usage[:-1])


def upstream_stream_with_tool_calls() -> list[dict]:
    """Chunks as OpenAI sends two parallel tool calls, arguments cut mid-token."""
    head = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta, finish=None):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], "usage": None}

    def call(index, **fields):
        return chunk({"tool_calls": [{"index": index, **fields}]})

    return [
        chunk({"role": "assistant", "content": None}),
        call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"ci'}),
        call(0, function={"arguments": 'ty": "Paris"}'}),
        call(1, id="call_b", type="function", function={"name": "get_weather", "arguments": ""}),
        call(1, function={"arguments": '{"city": "Oslo"}'}),
        chunk({}, "tool_calls"),
        {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}},
    ]


def test_a_recorded_stream_of_tool_calls_becomes_a_response_and_back():
    response = response_from_chunks(upstream_stream_with_tool_calls())
    (choice,) = response["choices"]
    assert response["id"] == "chatcmpl-9" and response["object"] == "chat.completion"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
    ]  # fmt: skip
    assert response["usage"] == {"prompt_tokens": 5, "completion_tokens": 9}
    assert response_from_chunks(chunks_from_response(response, include_usage=True)) == response


def test_reasoning_content_survives_both_conversions():
    response = completion("42.", reasoning_content="Six times seven is forty-two, " * 4)
    again = response_from_chunks(chunks_from_response(response, include_usage=True))
    assert again == response


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_streamed_answer_serves_a_later_non_streamed_request_and_vice_versa(store, tenant):
    cache = ResponseCache(store, CacheSettings())
    streaming = request(stream=True, tools=[WEATHER_TOOL])
    recorded = upstream_stream_with_tool_calls()
    assert await cache.put(
        key_for(streaming, tenant=tenant), response_from_chunks(recorded), ttl_s=60
    )
    hit = await cache.get(key_for(request(tools=[WEATHER_TOOL]), tenant=tenant))
    assert hit is not None
    replayed = chunks_from_response(hit, include_usage=True)
    assert response_from_chunks(replayed) == response_from_chunks(recorded)
    assert replayed[-1]["usage"] == recorded[-1]["usage"]  # original usage; the proxy bills 0


# --- decision scores -------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.anyio
async def test_scores_round_trip_with_misses_in_place(store, namespace):
    scores = ScoreCache(store, namespace=namespace, ttl_s=120)
    await scores.put_many({"easy": 0.125, "hard": 0.875, "broken": float("nan")}, tenant="t")
    assert await scores.get_many(["hard", "unseen", "easy", "broken"], tenant="t") == [
        0.875,
        None,
        0.125,
        None,
    ]
    assert 0 < await store.client.ttl(scores.key("easy", tenant="t")) <= 120
    assert await scores.get_many([], tenant="t") == []


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_new_classifier_never_reads_the_old_ones_scores(store, namespace):
    await ScoreCache(store, namespace=namespace).put_many({"easy": 0.125}, tenant="t")
    newer = ScoreCache(store, namespace=namespace + "-v2")
    assert await newer.get_many(["easy"], tenant="t") == [None]
    key = ScoreCache(store, namespace=namespace).key("easy", tenant="t")
    assert scores_key_re(namespace).fullmatch(key)


def scores_key_re(namespace: str) -> re.Pattern[str]:
    return re.compile(rf"thinkroute:\{{t\}}:scores:{re.escape(namespace)}:[0-9a-f]{{32}}")
