"""The response and score caches as a client sees them: real HTTP, Redis and LiteLLM."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis

from tests.router.conftest import REDIS_URL, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Two tenants of this test; their keys are deleted afterwards."""
    run = f"c{uuid.uuid4().hex[:8]}"
    yield f"{run}-a", f"{run}-b"
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"thinkroute:{{{run}*"))
    if keys:
        client.delete(*keys)
    client.close()


class CountingClassifier:
    """The real classifier, counting the texts it is asked to score."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.scored: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score_texts(self, texts):
        self.scored.extend(texts)
        return self.inner.score_texts(texts)


@pytest.fixture
def start(serve_on_redis, clean_upstream, names):
    def make(*, redis_url: str = REDIS_URL, counting: CountingClassifier | None = None, **cache):
        tenants = [{"name": name, "api_keys": [f"sk-{name}"]} for name in names]
        config = proxy_config(clean_upstream.base_url, tenants=tenants).model_copy(
            update={"cache": proxy_config("x").cache.model_copy(update=cache)}
        )
        return serve_on_redis(config, redis_url=redis_url, scorer=counting)

    return make


def ask(server, tenant: str, text: str = "What is 17 * 23?", headers=None, **body):
    payload = {"model": "auto", "temperature": 0,
               "messages": [{"role": "user", "content": text}], **body}  # fmt: skip
    headers = {"authorization": f"Bearer sk-{tenant}", **(headers or {})}
    return httpx.post(f"{server.url}/v1/chat/completions", json=payload, headers=headers,
                      timeout=30)  # fmt: skip


def test_a_repeated_request_is_answered_from_cache_at_no_cost(start, names, clean_upstream):
    server, (tenant, _) = start(), names
    first = ask(server, tenant)
    second = ask(server, tenant)
    assert first.headers["x-thinkroute-cache"] == "miss"
    assert second.headers["x-thinkroute-cache"] == "hit"
    assert second.headers["x-thinkroute-cost-usd"] == "0.000000"
    assert float(first.headers["x-thinkroute-cost-usd"]) > 0
    assert second.json()["choices"] == first.json()["choices"]
    assert len(clean_upstream.requests) == 1
    day = httpx.get(f"{server.url}/v1/usage", headers={"authorization": f"Bearer sk-{tenant}"})
    assert day.json()["day"]["cache_hits"] == 1 and day.json()["day"]["requests"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"text": "What is 17 * 24?"},
        {"temperature": 0, "max_tokens": 7},
        {"temperature": 0, "stop": ["\n"]},
        {"temperature": 0, "seed": 3},
        {"temperature": 0, "response_format": {"type": "json_object"}},
        {"model": "auto:quality"},
        {"model": "fast"},
    ],
)
def test_any_change_that_could_change_the_answer_misses(start, names, change):
    server, (tenant, _) = start(), names
    ask(server, tenant)
    assert ask(server, tenant, **change).headers["x-thinkroute-cache"] == "miss"


def test_one_tenant_never_reads_another_tenants_entries(start, names, clean_upstream):
    server, (first, second) = start(), names
    ask(server, first)
    assert ask(server, second).headers["x-thinkroute-cache"] == "miss"
    assert len(clean_upstream.requests) == 2


def test_a_stream_is_replayed_from_a_cached_answer_and_the_other_way_round(start, names):
    server, (tenant, _) = start(), names
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key=f"sk-{tenant}")
    question = [{"role": "user", "content": "Name three prime numbers."}]
    whole = api.chat.completions.create(model="auto", messages=question, temperature=0)
    raw = api.chat.completions.with_raw_response.create(
        model="auto", messages=question, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert raw.headers["x-thinkroute-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        whole.choices[0].message.content
    )
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    # A streamed answer, cached, answers a non-streaming request.
    other = [{"role": "user", "content": "Name three even numbers."}]
    streamed = api.chat.completions.create(model="auto", messages=other, temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    raw_whole = api.chat.completions.with_raw_response.create(
        model="auto", messages=other, temperature=0
    )
    assert raw_whole.headers["x-thinkroute-cache"] == "hit"
    assert raw_whole.parse().choices[0].message.content == text


def test_clients_can_bypass_the_cache(start, names, clean_upstream):
    server, (tenant, _) = start(), names
    ask(server, tenant)
    by_header = ask(server, tenant, headers={"cache-control": "no-cache"})
    by_body = ask(server, tenant, cache={"no-cache": True})
    assert by_header.headers["x-thinkroute-cache"] == "bypass"
    assert by_body.headers["x-thinkroute-cache"] == "bypass"
    assert len(clean_upstream.requests) == 3


def test_only_repeatable_requests_are_cached_by_default(start, names, clean_upstream):
    server, (tenant, _) = start(), names
    for _ in range(2):
        sampled = ask(server, tenant, temperature=0.9)
        assert sampled.headers["x-thinkroute-cache"] == "bypass"
    assert len(clean_upstream.requests) == 2
    always = start(mode="always")
    ask(always, tenant, "a sampled question", temperature=0.9)
    assert (
        ask(always, tenant, "a sampled question", temperature=0.9).headers["x-thinkroute-cache"]
        == "hit"
    )


def test_without_redis_the_cache_is_bypassed_and_requests_are_served(start, names):
    server, (tenant, _) = start(redis_url="redis://127.0.0.1:1/0"), names
    for _ in range(2):
        response = ask(server, tenant)
        assert response.status_code == 200
        assert response.headers["x-thinkroute-cache"] == "bypass"


def test_a_fallback_answer_is_not_cached_under_the_failed_models_key(start, names, clean_upstream):
    server, (tenant, _) = start(), names
    clean_upstream.control("fast-model", fail_status=500)
    first = ask(server, tenant, "hi there")
    assert "x-thinkroute-fallback" in first.headers
    clean_upstream.control("fast-model", fail_count=0)
    assert ask(server, tenant, "hi there").headers["x-thinkroute-cache"] == "miss"


def test_a_prompt_scored_by_one_replica_is_not_embedded_again_by_another(start, names, classifier):
    first_counter, second_counter = CountingClassifier(classifier), CountingClassifier(classifier)
    first, second = start(counting=first_counter), start(counting=second_counter)
    text = f"Prove that there are infinitely many primes. ({uuid.uuid4().hex})"
    route = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    for server in (first, second):
        decision = httpx.post(f"{server.url}/v1/chat/completions", json=route, timeout=30,
                              headers={"authorization": f"Bearer sk-{names[0]}"})  # fmt: skip
        assert decision.status_code == 200
    assert first_counter.scored == [text] and second_counter.scored == []


def test_semantic_cache_answers_a_reworded_question_but_not_a_changed_one(
    start, names, clean_upstream
):
    semantic = proxy_config("x").cache.semantic.model_copy(update={"enabled": True})
    server, (tenant, _) = start(semantic=semantic), names
    ask(server, tenant, "What is the boiling point of water at sea level in Celsius?")
    reworded = ask(server, tenant, "what is the boiling point of water at sea level in celsius")
    assert reworded.headers["x-thinkroute-cache"] == "hit"
    assert reworded.headers["x-thinkroute-cost-usd"] == "0.000000"
    changed = ask(server, tenant, "What is the boiling point of water at sea level in Fahrenheit?")
    negated = ask(server, tenant, "What is not the boiling point of water at sea level in Celsius?")
    assert changed.headers["x-thinkroute-cache"] == negated.headers["x-thinkroute-cache"] == "miss"
    assert len(clean_upstream.requests) == 3


def test_semantic_cache_is_off_by_default(start, names, clean_upstream):
    server, (tenant, _) = start(), names
    ask(server, tenant, "What is the boiling point of water at sea level in Celsius?")
    reworded = ask(server, tenant, "what is the boiling point of water at sea level in celsius")
    assert reworded.headers["x-thinkroute-cache"] == "miss"
