"""Properties that must hold for any input: hypothesis generates the inputs.

Whatever a client sends, the parser answers with a ChatRequest or a 400 and
never another exception; whatever the score and the tenant's state, a decision
names a configured model; whatever the HTTP body, the proxy answers 4xx or 200,
never 5xx; whatever the config, the loader returns a Config whose money can be
counted or a ConfigError naming the field; whatever calls settle, release or
expire, spend is never negative and the books match what was charged.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.config import Config, TenantConfig, build_config, load_config
from router.errors import BudgetExceededError, ConfigError, InvalidRequestError
from router.policy import TierTarget, reasoning_share_floor, route_request
from router.requests import parse_chat_request
from router.state.budgets import Budgets, to_micro
from router.state.store import Store
from router.upstream.dispatch import cost_usd
from tests.router.conftest import ACME_KEY, REDIS_URL

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["temperature", "max_tokens", "stream", "stream_options", "tools", "reasoning_effort",
          "stop", "seed", "n", "api_base", "cache", "thinking", "top_p"]  # fmt: skip
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", None]),
     "content": st.one_of(st.text(max_size=40), st.none(), json_values)},
)  # fmt: skip
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["auto", "auto:cheap", "fast", "gpt-x"]), json_values),
         "messages": st.one_of(st.lists(message, max_size=3), json_values)},
        optional={name: json_values for name in FIELDS},
    ),
)  # fmt: skip


@given(bodies)
@settings(max_examples=400, deadline=None)
def test_the_parser_accepts_or_names_the_problem(body):
    try:
        request = parse_chat_request(body)
    except InvalidRequestError as error:
        assert error.status_code in (400, 413) and error.message
        return
    assert request.messages and isinstance(request.model, str)
    assert "api_base" not in request.params_for_upstream()


TIERS = {
    "fast": TierTarget("fast", None, 3.0),
    "reasoning": TierTarget("reasoning", "medium", 30.0),
}
scores = st.floats(min_value=0.0, max_value=1.0)


@given(
    score=scores,
    threshold=scores,
    previous=st.none() | scores,
    latency=st.none() | st.floats(min_value=0.001, max_value=100),
    floor=st.none() | st.floats(allow_nan=False),
    fast_only=st.none() | st.just("budget_nearly_spent"),
    allowed=st.sampled_from([("fast", "reasoning"), ("fast",), ("reasoning",)]),
)
def test_a_decision_always_names_a_configured_model_of_an_allowed_tier(
    score, threshold, previous, latency, floor, fast_only, allowed
):
    decision = route_request(
        score, mode="balanced", thresholds={"balanced": threshold}, tiers=TIERS,
        previous_score=previous, latency_limit_s=latency, threshold_floor=floor,
        fast_only_reason=fast_only, allowed_tiers=allowed,
    )  # fmt: skip
    assert decision.tier in allowed
    assert decision.model == TIERS[decision.tier].model
    if fast_only and "fast" in allowed:
        assert decision.tier == "fast"


@given(
    recent=st.lists(st.tuples(st.sampled_from(["fast", "reasoning"]), scores), max_size=60),
    share=st.floats(min_value=0.0, max_value=1.0),
    window=st.integers(min_value=10, max_value=50),
)
def test_the_share_floor_never_lets_a_window_exceed_the_cap(recent, share, window):
    floor = reasoning_share_floor(recent, max_share=share, window=window)
    if not math.isinf(floor) or floor < 0:
        used = sum(1 for tier, _ in recent[: window - 1] if tier == "reasoning")
        assert used + 1 <= share * window + 1e-9  # reasoning now keeps the window in bounds


@given(st.one_of(bodies, st.binary(max_size=64)))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_body_makes_the_proxy_answer_5xx(proxy, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{proxy.url}/v1/route", content=raw, timeout=30,
                          headers={"authorization": f"Bearer {ACME_KEY}",
                                   "content-type": "application/json"})  # fmt: skip
    assert response.status_code in (200, 400, 404, 403, 413), response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["message"] and error["type"]


# -- the config loader: a Config or a ConfigError naming the field, never another error ----

# Amounts are mostly sane, sometimes any non-negative float (1e308, inf): those once
# loaded, then crashed every request when converted to micro-dollars.
prices = st.none() | st.floats(min_value=0, max_value=1e-3) | st.floats(min_value=0)
usd = st.none() | st.floats(min_value=0, max_value=1e6) | st.floats(min_value=0)
junk = st.one_of(
    json_values,
    st.floats(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["${UNSET}", "", "sk-short", "auto", "fast"]),
)
tenants = st.fixed_dictionaries(
    {"name": st.sampled_from(["acme", "beta", "gamma.1"])},
    optional={
        "api_keys": st.lists(st.sampled_from(["sk-acme-0123456789", "sk-beta-0123456789"]),
                             max_size=1),
        "budget": st.fixed_dictionaries({}, optional={
            "daily_usd": usd, "monthly_usd": usd, "per_request_usd": usd,
            "degrade_at": st.floats(min_value=0.1, max_value=1),
            "on_exhaustion": st.sampled_from(["degrade", "block"])}),
        "rate_limits": st.fixed_dictionaries({}, optional={
            "requests_per_minute": st.integers(1, 10**6),
            "tokens_per_minute": st.integers(1, 10**9)}),
        "default_mode": st.sampled_from(["cheap", "balanced", "quality"]),
        "allowed_tiers": st.sampled_from([["fast"], ["reasoning", "fast"]]),
        "max_reasoning_share": st.none() | st.floats(min_value=0, max_value=1),
        "cache_ttl_s": st.none() | st.integers(1, 86_400),
        "on_store_failure": st.sampled_from(["open", "closed"]),
    },
)  # fmt: skip


@st.composite
def configs(draw):
    """Valid configs, then up to three breakages anywhere in them: the loader sees mostly
    near-misses (the interesting case) and some configs that load."""
    names = draw(st.lists(st.sampled_from(["fast", "reasoning", "qwen3"]), min_size=1,
                          max_size=3, unique=True))  # fmt: skip
    litellm_model = st.sampled_from(
        ["openai/gpt-4o-mini", "openai/o4-mini", "anthropic/claude-haiku-4-5", "nowhere/x"]
    )
    raw: dict = {"model_list": [
        {"model_name": name, "litellm_params": {"model": draw(litellm_model)},
         "model_info": {"input_cost_per_token": draw(prices),
                        "output_cost_per_token": draw(prices)}}
        for name in names
    ]}  # fmt: skip
    if draw(st.booleans()):
        effort = draw(st.sampled_from([{}, {"reasoning_effort": "medium"}]))
        raw["tiers"] = {"fast": {"model": draw(st.sampled_from(names))},
                        "reasoning": {"model": draw(st.sampled_from(names)), **effort}}  # fmt: skip
    raw["tenants"] = draw(st.lists(tenants, max_size=2))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        _break(draw, raw)
    return raw


def _break(draw, node) -> None:
    """Replace, delete or add one value somewhere under ``node``."""
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[key] = draw(junk)
        elif action == "delete":
            del node[key]
        elif isinstance(node, dict):
            node[draw(st.sampled_from(["extra", "budget", "api_key", "tiers"]))] = draw(junk)
        else:
            node.append(draw(junk))
        return


SECTIONS = set(Config.model_fields) | {"(top level)"}


@given(configs())
@settings(max_examples=300, deadline=None)
def test_the_config_loader_builds_a_config_or_names_the_bad_field(raw):
    try:
        config = build_config(raw)
    except ConfigError as error:
        source, field, message = str(error).split(": ", 2)
        assert source == "config" and message
        assert field.split(".")[0] in SECTIONS | set(raw), str(error)  # a field, or the stray
        return
    # What loaded can be counted: every amount of money converts to micro-dollars.
    for tenant in config.tenants:
        budget = tenant.budget
        for usd in (budget.daily_usd, budget.monthly_usd, budget.per_request_usd):
            assert usd is None or to_micro(usd) >= 0
    for deployment in config.model_list:
        usage = {"prompt_tokens": 10**6, "completion_tokens": 10**6}
        assert to_micro(cost_usd(deployment, usage)) >= 0


@given(st.one_of(configs().map(yaml.safe_dump), st.text(max_size=80), st.binary(max_size=80)))
@settings(max_examples=150, deadline=None)
def test_a_config_file_loads_or_fails_with_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("config") / "thinkroute.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        load_config(path, env={})
    except ConfigError as error:
        assert str(error).startswith(f"{path}: ")


def test_a_config_that_is_not_utf8_or_nested_too_deep_is_a_config_error(tmp_path):
    # These raised UnicodeDecodeError and RecursionError, not a ConfigError.
    path = tmp_path / "thinkroute.yaml"
    path.write_bytes(b"tenants: [{name: '\xff\xfe'}]\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path, env={})
    path.write_text("model_list: " + "[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path, env={})


@pytest.mark.parametrize("usd", [1e308, float("inf"), float("nan"), 1e13])
def test_a_budget_too_large_to_count_is_refused_at_load(usd):
    # Found by fuzzing the admin API: a tenant with such a budget was stored, then every
    # request of it and its usage answered 500 (micro-dollars overflowed).
    with pytest.raises(ConfigError, match=r"tenants\.0\.budget\.daily_usd: "):
        build_config({"tenants": [{"name": "rich", "budget": {"daily_usd": usd}}]})


# -- money: spend is never negative, whatever the calls and reservations do ----------------

NOON = 1_800_014_400.0  # 2027-01-15 12:00 UTC: a few hours of waiting stays in one day


@pytest.mark.redis
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["settle", "release", "abandon"]),
            st.floats(min_value=0, max_value=0.01),  # the estimate reserved
            st.floats(min_value=-0.01, max_value=0.02),  # the cost reported (may be nonsense)
            st.floats(min_value=0, max_value=1200),  # seconds until it ends: may outlive it
        ),
        min_size=1,
        max_size=8,
    ),
    daily_usd=st.none() | st.floats(min_value=0, max_value=0.05),
)
@settings(max_examples=40, deadline=None)
def test_spend_is_never_negative_and_matches_what_was_charged(steps, daily_usd):
    asyncio.run(_replay(steps, daily_usd))


async def _replay(steps: list[tuple[str, float, float, float]], daily_usd: float | None) -> None:
    now = [NOON]
    store = Store.from_url(REDIS_URL, timeout_s=5.0)
    budgets = Budgets(store, reservation_ttl_s=300, clock=lambda: now[0])
    tenant = TenantConfig(name=f"prop-{uuid.uuid4().hex[:10]}", budget={"daily_usd": daily_usd})
    charged_micro = 0
    try:
        for kind, estimate_usd, cost_usd_, wait_s in steps:
            try:
                reservation = await budgets.reserve(tenant, amount_usd=estimate_usd, tokens=30)
            except BudgetExceededError:
                continue
            now[0] += wait_s  # past reservation_ttl_s the next reserve sweeps it
            if kind == "settle":
                charged_micro += await budgets.settle(
                    reservation, cost_usd=cost_usd_, usage={"prompt_tokens": 10},
                    tier="fast", routed=True, baseline_usd=cost_usd_,
                )  # fmt: skip
            elif kind == "release":
                await budgets.release(reservation)
        day = (await budgets.usage(tenant))["day"]
        assert day["spend_usd"] >= 0 and day["reserved_usd"] >= 0
        assert round(day["spend_usd"] * 1e6) == charged_micro
        assert day["remaining_usd"] is None or day["remaining_usd"] >= 0
        held = await store.client.get(f"thinkroute:{{{tenant.name}}}:budget:day:20270115")
        assert int(held or 0) >= 0
    finally:
        keys = [key async for key in store.client.scan_iter(f"thinkroute:{{{tenant.name}}}:*")]
        if keys:
            await store.client.delete(*keys)
        await store.aclose()
