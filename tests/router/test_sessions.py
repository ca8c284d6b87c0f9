"""Sessions: a conversation stays on its model unless a switch pays for the lost prompt cache.

The policy's rule as a table (pure functions), then through a live proxy over the
simulated upstream and the test Redis, driven by the OpenAI wire (``x-session-id``),
the Anthropic SDK (``metadata.user_id``) and conversations that send no id at all.
Scores are scripted by the first word of the last user message, so each turn lands
where the test needs it against the shipped balanced threshold.
"""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import httpx
import pytest

from router.config import build_config
from router.policy import (
    ABOVE_THRESHOLD,
    AGENT_STALLED,
    BELOW_THRESHOLD,
    LATENCY_LIMIT,
    SESSION_STICKY,
    SESSION_SWITCH_PAYS,
    SessionContext,
    TierCost,
    TierTarget,
    route_request,
    session_threshold,
)
from tests.router.conftest import UPSTREAM_KEY, decisions

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

THRESHOLDS = {"balanced": 0.4}
TIERS = {
    "fast": TierTarget("fast-model", None, 3.0),
    "reasoning": TierTarget("deep-model", "medium", 30.0),
}
# A long conversation: reading its prefix from the cache costs a tenth of sending it again.
COSTS = {"fast": TierCost(cached_usd=0.0011, full_usd=0.0100),
         "reasoning": TierCost(cached_usd=0.0023, full_usd=0.0200)}  # fmt: skip


def decide(score: float, on: str | None, **rules: Any):
    session = SessionContext(TIERS[on].model, COSTS) if on else None  # type: ignore[index]
    return route_request(score, mode="balanced", thresholds=THRESHOLDS, tiers=TIERS,
                         session=session, **rules)  # fmt: skip


# -- the rule -----------------------------------------------------------------------


def test_the_threshold_rises_on_the_fast_model_and_falls_on_the_reasoning_one():
    # Premium at full price: 0.0100. On fast, leaving costs 0.0200 - 0.0011; on reasoning,
    # staying costs 0.0023 - 0.0100 (less than fast at full price: stay at any score).
    assert session_threshold(0.4, COSTS, "fast") == pytest.approx(0.4 * 0.0189 / 0.0100)
    assert session_threshold(0.4, COSTS, "reasoning") < 0
    free = {"fast": TierCost(0.01, 0.01), "reasoning": TierCost(0.02, 0.02)}  # no cache price
    assert session_threshold(0.4, free, "fast") == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("score", "on", "tier", "reason"),
    [
        (0.60, "fast", "fast", SESSION_STICKY),  # above 0.4, below the session's 0.756
        (0.90, "fast", "reasoning", SESSION_SWITCH_PAYS),
        (0.10, "reasoning", "reasoning", SESSION_STICKY),  # the cached prefix makes it cheaper
        (0.10, "fast", "fast", BELOW_THRESHOLD),  # where it is: nothing to weigh
        (0.60, None, "reasoning", ABOVE_THRESHOLD),  # no session known: the score alone
    ],
)
def test_a_session_moves_only_where_the_score_pays_for_the_cache(score, on, tier, reason):
    decision = decide(score, on)
    assert (decision.tier, decision.reason) == (tier, reason)
    assert decision.model == TIERS[tier].model


def test_rules_still_win_over_a_session():
    stalled = decide(0.1, "fast", stalled=True)
    assert (stalled.tier, stalled.reason) == ("reasoning", AGENT_STALLED)
    # Kept on reasoning by its session, the turn still answers to the tenant's latency limit.
    limited = decide(0.1, "reasoning", latency_limit_s=5.0)
    assert (limited.tier, limited.reason) == ("fast", LATENCY_LIMIT)


def test_one_hybrid_model_moves_effort_freely():
    hybrid = {"fast": TierTarget("claude", None), "reasoning": TierTarget("claude", "medium")}
    session = SessionContext("claude", COSTS)
    decision = route_request(0.6, mode="balanced", thresholds=THRESHOLDS, tiers=hybrid,
                             session=session)  # fmt: skip
    assert (decision.tier, decision.reason) == ("reasoning", ABOVE_THRESHOLD)


# -- through the proxy ------------------------------------------------------------------

PRICES = {
    # The fast model's input costs half the reasoning model's; a cache read, a tenth.
    "fast": {"input_cost_per_token": 2.5e-6, "output_cost_per_token": 2.5e-6,
             "cache_read_input_token_cost": 2.5e-7},
    "reasoning": {"input_cost_per_token": 5e-6, "output_cost_per_token": 5e-6,
                  "cache_read_input_token_cost": 5e-7},
}  # fmt: skip
CONTEXT = "Here is the module we are working on:\n" + "def step(x):\n    return x + 1\n" * 120


class ScriptedScorer:
    """The shipped classifier, scoring by the scored text's first word: ``HARD`` clear
    maths, ``MID`` a little above the balanced threshold, anything else clear chat."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        threshold = inner.thresholds["balanced"]
        self.scores = {"HARD": 0.99, "MID": threshold + 0.15}
        self.fingerprint = f"scripted-{uuid.uuid4().hex[:8]}"  # its scores are its own

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_texts(self, texts: list[str]) -> list[float]:
        return [self.scores.get(text.split(maxsplit=1)[0], 0.01) for text in texts]


@pytest.fixture
def tenants(run_id: str) -> list[str]:
    return [f"{run_id}-a", f"{run_id}-b", f"{run_id}-off"]


@pytest.fixture
def server(serve_on_redis, clean_upstream, classifier, tenants):
    def model(name: str) -> dict[str, Any]:
        params = {"model": f"openai/{name}-model", "api_base": clean_upstream.base_url,
                  "api_key": UPSTREAM_KEY}  # fmt: skip
        return {"model_name": name, "litellm_params": params, "model_info": PRICES[name]}

    a, b, off = tenants
    config = build_config({
        "model_list": [model("fast"), model("reasoning")],
        "tiers": {"fast": {"model": "fast"}, "reasoning": {"model": "reasoning"}},
        "tenants": [
            {"name": a, "api_keys": [f"sk-{a}-key"], "client_reasoning": "route"},
            {"name": b, "api_keys": [f"sk-{b}-key"]},
            {"name": off, "api_keys": [f"sk-{off}-key"], "sessions": False},
        ],
        "cache": {"enabled": False},
        "output_token_estimates": {"fast": 10, "reasoning": 10},
        "dispatch": {"num_retries": 0, "timeout_s": 10},
    })  # fmt: skip
    return serve_on_redis(config, scorer=ScriptedScorer(classifier))


def chat(server, tenant: str, messages: list[dict[str, Any]], session: str | None = None):
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    if session is not None:
        headers["x-session-id"] = session
    return httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": "auto", "messages": messages})  # fmt: skip


def turns(*openers: str) -> list[list[dict[str, Any]]]:
    """Each successive turn of one conversation whose user messages begin with ``openers``
    (the first one carrying a long context, the prefix a provider would cache)."""
    conversation: list[dict[str, Any]] = []
    out = []
    for index, opener in enumerate(openers):
        text = f"{opener} {CONTEXT}" if index == 0 else f"{opener} please go on"
        conversation.append({"role": "user", "content": text})
        out.append(list(conversation))
        conversation.append({"role": "assistant", "content": f"answer {index}"})
    return out


def routed(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 200, response.text
    return response.headers["x-thinkroute-tier"], response.headers["x-thinkroute-reason"]


def test_a_named_session_stays_fast_until_switching_pays_and_says_so(server, tenants):
    tenant = tenants[0]
    got = [routed(chat(server, tenant, t, "sess-1")) for t in turns("EASY", "MID", "HARD")]
    assert got == [("fast", BELOW_THRESHOLD), ("fast", SESSION_STICKY),
                   ("reasoning", SESSION_SWITCH_PAYS)]  # fmt: skip
    logged = decisions(tenant, 3)
    assert len({entry["session"] for entry in logged}) == 1
    assert "sess-1" not in str(logged)  # the id is kept hashed: it may name a user
    assert [entry["session_switch"] for entry in logged] == [False, False, True]
    assert logged[2]["session_cache_cost_usd"] > 0 == logged[1]["session_cache_cost_usd"]
    usage = httpx.get(f"{server.url}/v1/usage", timeout=10,
                      headers={"authorization": f"Bearer sk-{tenant}-key"}).json()  # fmt: skip
    assert usage["sessions"]["turns"] == 3 and usage["sessions"]["switches"] == 1
    assert usage["sessions"]["cache_cost_usd"] == pytest.approx(
        logged[2]["session_cache_cost_usd"], abs=1e-6
    )


def test_a_tenant_without_sessions_decides_each_turn_alone(server, tenants):
    got = [routed(chat(server, tenants[2], t, "sess-2")) for t in turns("EASY", "MID")]
    assert got == [("fast", BELOW_THRESHOLD), ("reasoning", ABOVE_THRESHOLD)]


def test_one_session_id_in_two_tenants_is_two_sessions(server, tenants):
    a, b, _ = tenants
    assert routed(chat(server, a, turns("HARD")[0], "shared-id")) == ("reasoning", ABOVE_THRESHOLD)
    # Had b seen a's session, this easy turn would stay on reasoning (session_sticky).
    assert routed(chat(server, b, turns("EASY")[0], "shared-id")) == ("fast", BELOW_THRESHOLD)


def test_a_conversation_without_an_id_is_named_by_its_first_exchange(server, tenants):
    tenant = tenants[1]
    first, second, third = turns("EASY", "MID", "EASY")
    assert routed(chat(server, tenant, first))[0] == "fast"  # no answer yet: no name
    assert routed(chat(server, tenant, second)) == ("reasoning", ABOVE_THRESHOLD)
    # The cached prefix now sits on the reasoning model: an easy turn stays there.
    assert routed(chat(server, tenant, third)) == ("reasoning", SESSION_STICKY)
    # The same opening with another first answer is another conversation.
    other = [*third[:1], {"role": "assistant", "content": "another answer"}, *third[2:]]
    assert routed(chat(server, tenant, other)) == ("fast", BELOW_THRESHOLD)


def test_v1_route_answers_as_the_sessions_next_turn_would_go(server, tenants):
    tenant = tenants[1]
    first, second = turns("HARD", "EASY")
    assert routed(chat(server, tenant, first, "sess-r"))[0] == "reasoning"
    headers = {"authorization": f"Bearer sk-{tenant}-key", "x-session-id": "sess-r"}
    planned = httpx.post(f"{server.url}/v1/route", headers=headers, timeout=30,
                         json={"model": "auto", "messages": second}).json()  # fmt: skip
    assert (planned["tier"], planned["reason"]) == ("reasoning", SESSION_STICKY)


@pytest.mark.parametrize("bad", ["x" * 201, "has space", ""])
def test_a_bad_session_id_is_a_400_in_openais_shape(server, tenants, bad):
    response = chat(server, tenants[0], turns("EASY")[0], bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "x-session-id" and error["type"] == "invalid_request_error"


def test_an_agent_session_keeps_its_reasoning_model_across_an_easy_turn(server, tenants):
    """Claude Code names its session in metadata.user_id and sends thinking every turn."""
    tenant = tenants[0]
    api = anthropic.Anthropic(base_url=server.url, api_key=f"sk-{tenant}-key", max_retries=0)
    metadata = {"user_id": "user_abc_account_def_session_0f3c"}
    thinking = {"type": "enabled", "budget_tokens": 2048}
    history: list[dict[str, Any]] = []
    got = []
    try:
        for text in (f"HARD {CONTEXT}", "EASY now rename step to advance"):
            history.append({"role": "user", "content": text})
            raw = api.messages.with_raw_response.create(
                model="auto", max_tokens=4000, thinking=thinking, metadata=metadata,
                messages=history,
            )  # fmt: skip
            message = raw.parse()
            assert message.type == "message" and message.content
            got.append((raw.headers["x-thinkroute-tier"], raw.headers["x-thinkroute-reason"]))
            history.append({"role": "assistant", "content": message.content[-1].text})
    finally:
        api.close()
    # The first turn's effort is held at the client's budget (reason client_reasoning_ceiling).
    assert got[0][0] == "reasoning"
    assert got[1] == ("reasoning", SESSION_STICKY)
