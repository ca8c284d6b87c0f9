"""Budgets, rate limits and reservations against a real Redis, without HTTP."""

from __future__ import annotations

import uuid

import anyio
import pytest

from router.config import TenantConfig
from router.errors import BudgetExceededError, RateLimitedError, StoreUnavailableError
from router.state.budgets import Budgets, to_micro
from router.state.store import Store

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
