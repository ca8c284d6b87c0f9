"""Budgets, rate limits and reservations against a real Redis; the budget failures of
issue 23 through the real Router or server over it."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest

from router.accounting import estimate_prompt_tokens, prompt_token_bound
from router.config import TenantConfig
from router.errors import (
    BudgetExceededError,
    RateLimitedError,
    StoreUnavailableError,
    UpstreamError,
)
from router.proxy import Router
from router.requests import parse_chat_request
from router.state.budgets import Budgets, to_micro
from router.state.store import Store
from tests.router.conftest import proxy_config

NOW = 1_795_000_000.0  # 2026-11-18, mid-day UTC


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tenant_name(store):
    return f"test-budget-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def cleanup(store, tenant_name):
    yield
    keys = [key async for key in store.client.scan_iter(f"thinkroute:{{{tenant_name}}}:*")]
    if keys:
        await store.client.delete(*keys)


def tenant(name: str, **policy) -> TenantConfig:
    return TenantConfig(name=name, **policy)


def served_usage(prompt: int = 10, completion: int = 20) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


@pytest.mark.anyio
async def test_concurrent_reservations_never_overrun_the_budget(store, tenant_name, cleanup):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 0.001})  # 1000 micro-dollars
    granted, refused = [], 0

    async def one() -> None:
        nonlocal refused
        try:
            granted.append(await budgets.reserve(acme, amount_usd=0.00007, tokens=10))
        except BudgetExceededError:
            refused += 1

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(one)
    assert len(granted) == 1000 // 70 and refused == 100 - len(granted)
    state = await budgets.state(acme)
    assert state.day_spent_micro == 70 * len(granted) <= 1000


@pytest.mark.anyio
async def test_settlement_replaces_the_reservation_with_the_real_cost(store, tenant_name, cleanup):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 1.0})
    held = await budgets.reserve(acme, amount_usd=0.0005, tokens=100)
    assert (await budgets.state(acme)).day_spent_micro == 500
    charged = await budgets.settle(
        held, cost_usd=0.000123, usage=served_usage(), tier="fast", routed=True,
        baseline_usd=0.0004,
    )  # fmt: skip
    assert charged == 123
    # Settling twice (a retry, a duplicate callback) charges once.
    await budgets.settle(held, cost_usd=0.000123, usage=served_usage(), tier="fast", routed=True,
                         baseline_usd=0.0004)  # fmt: skip
    assert (await budgets.state(acme)).day_spent_micro == 123
    day = (await budgets.usage(acme))["day"]
    assert day["spend_usd"] == pytest.approx(0.000123, abs=1e-9)
    assert day["requests"] == 1 and day["prompt_tokens"] == 10 and day["completion_tokens"] == 20
    assert day["estimated_savings_usd"] == pytest.approx(0.0004 - 0.000123, abs=1e-9)
    assert day["remaining_usd"] == pytest.approx(1.0 - 0.000123, abs=1e-9)


@pytest.mark.anyio
async def test_a_failed_call_releases_its_reservation(store, tenant_name, cleanup):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 0.0001})
    held = await budgets.reserve(acme, amount_usd=0.0001, tokens=10)
    with pytest.raises(BudgetExceededError):
        await budgets.reserve(acme, amount_usd=0.0001, tokens=10)
    await budgets.release(held)
    assert (await budgets.state(acme)).day_spent_micro == 0
    assert (await budgets.usage(acme))["day"]["requests"] == 0
    await budgets.reserve(acme, amount_usd=0.0001, tokens=10)  # the room is back


@pytest.mark.anyio
async def test_a_reservation_never_settled_expires_and_a_late_settlement_still_charges(
    store, tenant_name, cleanup
):
    clock = Clock()
    budgets = Budgets(store, reservation_ttl_s=60, clock=clock)
    acme = tenant(tenant_name, budget={"daily_usd": 0.001})
    lost = await budgets.reserve(acme, amount_usd=0.0009, tokens=10)  # a replica crashes
    with pytest.raises(BudgetExceededError):
        await budgets.reserve(acme, amount_usd=0.0005, tokens=10)
    clock.now += 61
    fresh = await budgets.reserve(acme, amount_usd=0.0005, tokens=10)  # sweeps the lost one
    assert (await budgets.state(acme)).day_spent_micro == 500
    await budgets.settle(lost, cost_usd=0.0002, usage=served_usage(), tier="fast", routed=False,
                         baseline_usd=0.0002)  # fmt: skip
    await budgets.release(fresh)
    assert (await budgets.state(acme)).day_spent_micro == 200


@pytest.mark.anyio
async def test_refusal_says_when_the_window_resets(store, tenant_name, cleanup):
    budgets = Budgets(store, clock=Clock(NOW))
    acme = tenant(tenant_name, budget={"daily_usd": 0.0, "monthly_usd": 5.0})
    with pytest.raises(BudgetExceededError) as refused:
        await budgets.reserve(acme, amount_usd=0.000001, tokens=1)
    seconds_to_midnight = 86_400 - NOW % 86_400
    assert refused.value.retry_after_s == pytest.approx(seconds_to_midnight, abs=1)
    assert refused.value.headers()["x-should-retry"] == "false"


@pytest.mark.anyio
async def test_per_request_limit_refuses_without_touching_redis_state(store, tenant_name, cleanup):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"per_request_usd": 0.01})
    with pytest.raises(BudgetExceededError, match="per-request"):
        await budgets.reserve(acme, amount_usd=0.02, tokens=1)
    assert (await budgets.state(acme)).day_spent_micro == 0


@pytest.mark.anyio
async def test_requests_per_minute_limit(store, tenant_name, cleanup):
    clock = Clock(NOW - NOW % 60 + 1)  # just after a minute starts
    budgets = Budgets(store, clock=clock)
    acme = tenant(tenant_name, rate_limits={"requests_per_minute": 3})
    for _ in range(3):
        await budgets.reserve(acme, amount_usd=0.0, tokens=1)
    with pytest.raises(RateLimitedError) as limited:
        await budgets.reserve(acme, amount_usd=0.0, tokens=1)
    assert 1 <= limited.value.retry_after_s <= 60
    clock.now += 120  # two minutes on, the window has slid past them
    await budgets.reserve(acme, amount_usd=0.0, tokens=1)


@pytest.mark.anyio
async def test_tokens_per_minute_counts_settled_tokens(store, tenant_name, cleanup):
    clock = Clock(NOW - NOW % 60 + 1)
    budgets = Budgets(store, clock=clock)
    acme = tenant(tenant_name, rate_limits={"tokens_per_minute": 1000})
    held = await budgets.reserve(acme, amount_usd=0.0, tokens=900)
    with pytest.raises(RateLimitedError):
        await budgets.reserve(acme, amount_usd=0.0, tokens=200)
    # The call used far fewer tokens than reserved: the room comes back.
    await budgets.settle(held, cost_usd=0.0, usage=served_usage(10, 20), tier="fast",
                         routed=False, baseline_usd=0.0)  # fmt: skip
    await budgets.reserve(acme, amount_usd=0.0, tokens=200)


@pytest.mark.anyio
async def test_tenants_do_not_share_windows(store, tenant_name, cleanup):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 0.0001})
    other = tenant(tenant_name + "-other", budget={"daily_usd": 0.0001})
    await budgets.reserve(acme, amount_usd=0.0001, tokens=1)
    other_held = await budgets.reserve(other, amount_usd=0.0001, tokens=1)
    assert (await budgets.state(other)).day_spent_micro == 100
    await budgets.release(other_held)


@pytest.mark.anyio
async def test_unreachable_redis_raises_store_unavailable():
    store = Store.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        with pytest.raises(StoreUnavailableError):
            await Budgets(store).reserve(tenant("acme"), amount_usd=0.0, tokens=1)
        assert not store.is_available  # the breaker is open: no waiting on every request
    finally:
        await store.aclose()


def test_micro_dollars_round_half_up():
    assert to_micro(0.0000015) == 2 and to_micro(0.0000014) == 1 and to_micro(-1.0) == 0


@pytest.mark.anyio
async def test_a_refusal_caused_only_by_requests_in_flight_says_so_and_may_be_retried(
    store, tenant_name, cleanup
):
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 0.001})
    in_flight = await budgets.reserve(acme, amount_usd=0.0008, tokens=10)
    with pytest.raises(BudgetExceededError) as busy:
        await budgets.reserve(acme, amount_usd=0.0005, tokens=10)
    assert busy.value.is_transient and "in flight" in busy.value.message
    assert busy.value.headers() == {"x-should-retry": "true", "retry-after": "5"}
    # Once the money is really spent, retrying cannot help until the window ends.
    await budgets.settle(in_flight, cost_usd=0.0008, usage=served_usage(), tier="fast",
                         routed=False, baseline_usd=0.0008)  # fmt: skip
    with pytest.raises(BudgetExceededError) as spent:
        await budgets.reserve(acme, amount_usd=0.0005, tokens=10)
    assert not spent.value.is_transient and "spent its daily budget" in spent.value.message
    assert spent.value.headers()["x-should-retry"] == "false"
    assert int(spent.value.headers()["retry-after"]) > 5


# -- through the real server or Router, over the test Redis (issue 23) -----------------


class SureClassifier:
    """The real classifier, but every text gets one score: 0.99 routes to reasoning."""

    def __init__(self, inner, score: float = 0.99) -> None:
        self.inner = inner
        self.score = score
        self.fingerprint = f"sure-{uuid.uuid4().hex[:8]}"  # its scores are its own

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score_texts(self, texts):
        return [self.score] * len(texts)


def post_chat(server, key: str, body: dict) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def usage_of(server, key: str) -> dict:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.get(f"{server.url}/v1/usage", headers=headers, timeout=10).json()["day"]


@pytest.mark.anyio
async def test_a_token_dense_burst_never_spends_past_a_block_budget(
    serve_on_redis, clean_upstream, run_id
):
    """Issue 23's attack scaled down: prompts whose real token count (one a word here,
    as the simulator counts) beats characters/3, sent at once with max_tokens 1."""
    name = f"{run_id}-dense"
    budget_usd = 0.1
    tenants = [{"name": name, "api_keys": [f"sk-{name}"],
                "budget": {"daily_usd": budget_usd, "on_exhaustion": "block"}}]  # fmt: skip
    server = serve_on_redis(proxy_config(clean_upstream.base_url, tenants=tenants))
    body = {"model": "fast", "max_tokens": 1,
            "messages": [{"role": "user", "content": "a " * 20_000}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        responses = []

        async def one() -> None:
            headers = {"authorization": f"Bearer sk-{name}"}
            responses.append(await client.post("/v1/chat/completions", json=body, headers=headers))

        async with anyio.create_task_group() as group:
            for _ in range(14):
                group.start_soon(one)
    served = [r for r in responses if r.status_code == 200]
    assert served and {r.status_code for r in responses} <= {200, 429}
    day = usage_of(server, f"sk-{name}")
    # Each costs $0.02 at one token a word; characters/3 reserved $0.0133 and 7 got through.
    assert day["spend_usd"] <= budget_usd
    assert day["spend_usd"] == pytest.approx(
        sum(float(r.headers["x-thinkroute-cost-usd"]) for r in served), abs=1e-6
    )


def test_near_the_end_of_a_budget_output_is_capped_at_what_was_reserved(
    serve_on_redis, clean_upstream, run_id
):
    near, far = f"{run_id}-near", f"{run_id}-far"
    tenants = [
        {"name": near, "api_keys": [f"sk-{near}"], "budget": {"daily_usd": 0.01}},
        {"name": far, "api_keys": [f"sk-{far}"], "budget": {"daily_usd": 100.0}},
    ]
    server = serve_on_redis(proxy_config(clean_upstream.base_url, tenants=tenants))
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
    assert post_chat(server, f"sk-{far}", body).status_code == 200
    assert post_chat(server, f"sk-{near}", body).status_code == 200
    far_sent, near_sent = (r["body"] for r in clean_upstream.requests[-2:])
    # Far from the end the answer is the model's to size; near it, at most what was
    # reserved (the fast tier's output estimate, 1024 tokens at $2e-6: $0.002 of $0.01).
    assert "max_tokens" not in far_sent
    assert near_sent["max_tokens"] == 1024
    # A limit the client set is its own, and is what the reservation covered.
    assert post_chat(server, f"sk-{near}", {**body, "max_tokens": 7}).status_code == 200
    assert clean_upstream.requests[-1]["body"]["max_tokens"] == 7


@pytest.mark.anyio
@pytest.mark.parametrize("score", [0.99, 0.01], ids=["degraded-from-reasoning", "scored-fast"])
async def test_a_degraded_tenant_never_falls_back_to_the_reasoning_tier(
    store, classifier, clean_upstream, tenant_name, cleanup, score
):
    """Past its degrade point, with room left for many more requests: whether the request
    was degraded from reasoning or scored fast, a failing fast model is not replaced by
    the reasoning tier its reservation does not cover."""
    config = proxy_config(clean_upstream.base_url)
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 10.0, "on_exhaustion": "degrade",
                                       "degrade_at": 0.5})  # fmt: skip
    spent = await budgets.reserve(acme, amount_usd=6.0, tokens=1)
    await budgets.settle(spent, cost_usd=6.0, usage=served_usage(), tier="fast",
                         routed=False, baseline_usd=6.0)  # fmt: skip
    router = Router(config=config, classifier=SureClassifier(classifier, score), store=store,
                    budgets=budgets)  # fmt: skip
    clean_upstream.control("fast-model", fail_status=500)
    question = {"model": "auto", "messages": [{"role": "user", "content": "prove it"}]}
    try:
        with pytest.raises(UpstreamError):
            await router.acompletion(question, tenant=acme)
    finally:
        await router.dispatcher.aclose()
    assert [r["body"]["model"] for r in clean_upstream.requests] == ["fast-model"]
    assert (await budgets.state(acme)).day_spent_micro == 6_000_000  # released, nothing more


@pytest.mark.anyio
async def test_a_reasoning_stream_cut_before_its_usage_is_charged_its_reserved_output(
    store, classifier, clean_upstream, tenant_name, cleanup
):
    """The provider bills the hidden reasoning a cut stream consumed but reports it only in
    the usage chunk that never came: the conservative rule charges the output reserved."""
    budgets = Budgets(store)
    acme = tenant(tenant_name, budget={"daily_usd": 10.0})
    router = Router(config=proxy_config(clean_upstream.base_url), classifier=classifier,
                    store=store, budgets=budgets)  # fmt: skip
    prompt = [{"role": "user", "content": "think hard, then say one thing"}]
    question = {"model": "reasoning", "stream": True, "max_tokens": 300, "messages": prompt}
    try:
        async with await router.astream(question, tenant=acme) as stream:
            async for _ in stream.chunks:
                break  # the client goes away after the first chunk
    finally:
        await router.dispatcher.aclose()
    prompt = estimate_prompt_tokens(question["messages"])
    assert stream.cost_usd == pytest.approx(prompt * 5e-6 + 300 * 2e-5, abs=1e-6)
    day = await budgets.usage(acme)
    assert day["day"]["spend_usd"] == pytest.approx(stream.cost_usd, abs=1e-9)
    assert day["day"]["reserved_usd"] == 0


TOKEN_DENSE = {
    "spaced letters": "a " * 5_000,
    "digits": "7 1 " * 2_500,
    "emoji": "🙂" * 2_000,
    "chinese": "数学证明" * 1_000,
    "punctuation": "!?" * 5_000,
    "prose": "Prove that there are infinitely many primes of the form 4k+3. " * 100,
}


@pytest.mark.parametrize("text", TOKEN_DENSE.values(), ids=TOKEN_DENSE.keys())
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-3.5-turbo"])
def test_the_prompt_bound_is_never_below_a_real_tokenizers_count(text, model):
    """Counted with the tokenizers LiteLLM ships (o200k and cl100k, offline): the UTF-8
    bound holds for text where characters/3 fell short."""
    import litellm  # its tokenizers: the upstream's own counting

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    request = parse_chat_request({"model": "fast", "messages": messages})
    real = litellm.token_counter(model=model, messages=messages)
    assert prompt_token_bound(request) >= real
    if text == TOKEN_DENSE["spaced letters"]:
        assert estimate_prompt_tokens(messages) < real  # the old reservation's shortfall
