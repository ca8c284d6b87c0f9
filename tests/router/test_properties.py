"""Properties that must hold for any input: hypothesis generates the inputs.

Whatever a client sends, the parser answers with a ChatRequest or a 400 and
never another exception; whatever the score and the tenant's state, a decision
names a configured model; whatever the HTTP body, the proxy answers 4xx or 200,
never 5xx.
"""

from __future__ import annotations

import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.errors import InvalidRequestError
from router.policy import TierTarget, reasoning_share_floor, route_request
from router.requests import parse_chat_request
from tests.router.conftest import ACME_KEY

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
