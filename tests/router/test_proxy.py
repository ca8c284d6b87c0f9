"""The SDK face: Router in-process, no proxy server in between."""

from __future__ import annotations

import pytest

from router import Router
from router.config import build_config
from router.errors import ModelNotFoundError, UpstreamUnavailableError
from tests.router.conftest import CHAT, OLYMPIAD, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)


def test_decide_names_tier_model_and_effort(router):
    decision = router.decide(OLYMPIAD, model="auto:quality")
    assert (decision.tier, decision.model, decision.mode) == ("reasoning", "reasoning", "quality")
    assert decision.reasoning_effort in ("low", "medium", "high")
    assert router.decide(CHAT).tier == "fast"


def test_blocking_completion_returns_answer_decision_and_cost(router, clean_upstream):
    done = router.completion({"model": "auto", "messages": CHAT})
    assert done.decision.tier == "fast" and done.served.is_fallback is False
    assert done.response["choices"][0]["message"]["content"]
    assert done.cost_usd > 0
    assert len(clean_upstream.requests) == 1


@pytest.mark.anyio
async def test_stream_charges_the_usage_it_hides(router):
    stream = await router.astream({"model": "auto", "messages": OLYMPIAD, "stream": True})
    chunks = [chunk async for chunk in stream.chunks]
    assert chunks and all("usage" not in chunk for chunk in chunks)
    assert stream.usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert stream.cost_usd > 0
    await router.aclose()  # this loop's upstream connections


def test_unknown_model_is_refused_before_any_call(router, clean_upstream):
    with pytest.raises(ModelNotFoundError):
        router.completion({"model": "gpt-99", "messages": CHAT})
    assert clean_upstream.requests == []


def test_without_providers_decisions_work_and_completions_say_what_to_set(classifier):
    with Router(config=build_config({}), classifier=classifier) as router:
        assert router.decide(OLYMPIAD).tier == "reasoning"
        with pytest.raises(UpstreamUnavailableError, match="OPENAI_API_KEY"):
            router.completion({"model": "auto", "messages": CHAT})


def test_blocking_calls_share_one_loop_so_redis_connections_survive(classifier, clean_upstream):
    import uuid

    import redis

    from router.state.store import Store

    name = f"sdk-{uuid.uuid4().hex[:8]}"
    config = proxy_config(clean_upstream.base_url, tenants=[{"name": name}])
    router = Router(config=config, classifier=classifier,
                    store=Store.from_url("redis://127.0.0.1:6379/0"))  # fmt: skip
    tenant = config.tenants[-1]
    question = {"model": "fast", "temperature": 0, "messages": CHAT}
    try:
        first = router.completion(question, tenant=tenant)
        second = router.completion(question, tenant=tenant)
        assert (first.cache, second.cache) == ("miss", "hit")
        assert second.cost_usd == 0.0 and len(clean_upstream.requests) == 1
    finally:
        router.close()
        client = redis.Redis()
        keys = list(client.scan_iter(f"thinkroute:{{{name}}}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def tenant_router(classifier, upstream_url: str, store, run_id: str, **policy) -> tuple:
    config = proxy_config(upstream_url, tenants=[{"name": run_id, **policy}])
    return Router(config=config, classifier=classifier, store=store), config.tenants[-1]


@pytest.mark.anyio
async def test_plan_route_applies_the_share_cap_the_completion_applies(
    classifier, clean_upstream, store, run_id
):
    router, capped = tenant_router(
        classifier, clean_upstream.base_url, store, run_id, max_reasoning_share=0.0
    )
    request = {"model": "auto", "messages": OLYMPIAD}
    planned = await router.plan_route(request, capped)
    assert (planned.tier, planned.reason) == ("fast", "reasoning_share_cap")
    done = await router.acompletion(request, tenant=capped)
    assert (done.decision.tier, done.decision.model) == (planned.tier, planned.model)
    # Without the tenant's state the same question would reason: the cap is what moved it.
    assert router.decide(OLYMPIAD, tenant=capped).tier == "reasoning"
    await router.dispatcher.aclose()


@pytest.mark.anyio
async def test_a_request_degraded_by_its_budget_is_answered_from_the_cache(
    classifier, clean_upstream, store, run_id
):
    # The reasoning tier's estimate is above the per-request limit, the fast tier's below.
    budget = {"per_request_usd": 0.01, "on_exhaustion": "degrade"}
    router, tenant = tenant_router(
        classifier, clean_upstream.base_url, store, run_id, budget=budget
    )
    request = {"model": "auto", "messages": OLYMPIAD, "temperature": 0}
    first = await router.acompletion(request, tenant=tenant)
    second = await router.acompletion(request, tenant=tenant)
    assert first.decision.reason == second.decision.reason == "budget_nearly_spent"
    assert (first.cache, second.cache) == ("miss", "hit")
    assert len(clean_upstream.requests) == 1 and second.cost_usd == 0.0
    await router.dispatcher.aclose()
