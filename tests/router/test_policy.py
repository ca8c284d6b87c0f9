"""Routing decisions as a table: score and mode in, decision out."""

import math

import pytest

from router.policy import (
    BudgetLimits,
    RouteDecision,
    TierTarget,
    budget_limits,
    cap_reasoning,
    decide,
    effort_for,
    explain,
    reasoning_share_floor,
    route_request,
)

THRESHOLDS = {"cheap": 0.8, "balanced": 0.5, "quality": 0.2}


@pytest.mark.parametrize(
    ("score", "mode", "tier", "threshold"),
    [
        (0.9, "cheap", "reasoning", 0.8),
        (0.6, "cheap", "fast", 0.8),
        (0.6, "balanced", "reasoning", 0.5),
        (0.5, "balanced", "reasoning", 0.5),  # at the threshold counts as above
        (0.49, "balanced", "fast", 0.5),
        (0.3, "quality", "reasoning", 0.2),
        (0.1, "quality", "fast", 0.2),
    ],
)
def test_decide(score, mode, tier, threshold):
    decision = decide(score, mode=mode, thresholds=THRESHOLDS)
    assert decision == RouteDecision(
        tier=tier,
        score=score,
        threshold=threshold,
        mode=mode,
        reason="score_at_or_above_threshold" if tier == "reasoning" else "score_below_threshold",
    )


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode 'turbo'"):
        decide(0.5, mode="turbo", thresholds=THRESHOLDS)


def test_explanation_names_score_threshold_and_mode():
    text = explain(decide(0.75, mode="balanced", thresholds=THRESHOLDS))
    assert "0.750" in text and "0.500" in text and "balanced" in text


TIERS = {
    "fast": TierTarget(model="small", typical_latency_s=2.0),
    "reasoning": TierTarget(model="big", reasoning_effort="medium", typical_latency_s=30.0),
}


@pytest.mark.parametrize(
    ("score", "previous", "limit", "tier", "effort", "reason"),
    [
        (0.9, None, None, "reasoning", "high", "score_at_or_above_threshold"),
        (0.75, None, None, "reasoning", "medium", "score_at_or_above_threshold"),
        (0.52, None, None, "reasoning", "low", "score_at_or_above_threshold"),
        (0.2, None, None, "fast", None, "score_below_threshold"),
        # a follow-up near the threshold stays on the conversation's tier ...
        (0.55, 0.3, None, "fast", None, "conversation_stays_on_tier"),
        (0.45, 0.8, None, "reasoning", "low", "conversation_stays_on_tier"),
        # ... but a clear change of difficulty still switches
        (0.7, 0.3, None, "reasoning", "medium", "score_at_or_above_threshold"),
        # the reasoning tier cannot answer within 5 s
        (0.9, None, 5.0, "fast", None, "reasoning_exceeds_latency_limit"),
        (0.9, None, 60.0, "reasoning", "high", "score_at_or_above_threshold"),
    ],
)
def test_route_request(score, previous, limit, tier, effort, reason):
    decision = route_request(
        score, mode="balanced", thresholds=THRESHOLDS, tiers=TIERS,
        previous_score=previous, latency_limit_s=limit,
    )  # fmt: skip
    assert (decision.tier, decision.reasoning_effort, decision.reason) == (tier, effort, reason)
    assert decision.model == TIERS[tier].model


@pytest.mark.parametrize(
    ("score", "base", "effort"),
    [
        (0.95, "medium", "high"),
        (0.95, "high", "high"),
        (0.51, "low", "minimal"),
        (0.7, "low", "low"),
        (0.9, None, None),
        (0.9, "none", "none"),
    ],
)
def test_effort_follows_the_score_band(score, base, effort):
    assert effort_for(score, 0.5, base) == effort


def test_share_cap_holds_over_every_window_and_prefers_the_hardest():
    window, cap = 20, 0.25
    recent: list[tuple[str, float]] = []
    tiers = []
    for i in range(200):
        score = 0.95 if i % 5 == 0 else 0.6  # a fifth very hard, the rest above threshold
        floor = reasoning_share_floor(recent, max_share=cap, window=window)
        tier = "reasoning" if score >= max(0.5, floor) else "fast"
        tiers.append((tier, score))
        recent.insert(0, (tier, score))
    for start in range(len(tiers) - window + 1):
        assert [t for t, _ in tiers[start : start + window]].count("reasoning") <= cap * window
    chosen = [score for tier, score in tiers[window:] if tier == "reasoning"]
    assert chosen and min(chosen) == 0.95  # once warmed up, only the hardest reason


def test_constraints_send_reasoning_fast_and_say_why():
    tiers = {"fast": TierTarget("fast"), "reasoning": TierTarget("reasoning", "medium")}
    common = {"mode": "balanced", "thresholds": {"balanced": 0.5}, "tiers": tiers}
    assert route_request(0.9, threshold_floor=0.95, **common).reason == "reasoning_share_cap"
    degraded = route_request(0.9, fast_only_reason="budget_nearly_spent", **common)
    assert (degraded.tier, degraded.reason) == ("fast", "budget_nearly_spent")
    only_reasoning = route_request(0.1, allowed_tiers=("reasoning",), **common)
    assert (only_reasoning.tier, only_reasoning.reason) == ("reasoning", "tier_not_allowed")
    assert route_request(0.9, threshold_floor=0.5, **common).tier == "reasoning"


HARD_RECENT = [("reasoning", 0.9)] * 5  # five reasoning calls in a row


@pytest.mark.parametrize(
    ("spent", "degrade_at", "recent", "max_share", "limits"),
    [
        (0.0, 0.8, (), None, BudgetLimits()),
        (0.79, 0.8, (), None, BudgetLimits()),
        (0.8, 0.8, (), None, BudgetLimits(fast_only_reason="budget_nearly_spent")),
        (1.5, 0.8, (), None, BudgetLimits(fast_only_reason="budget_nearly_spent")),
        # a tenant that blocks instead of degrading keeps routing normally
        (0.99, None, (), None, BudgetLimits()),
        # the share cap becomes a threshold floor: reached within the window, nothing reasons
        (0.0, 0.8, HARD_RECENT, 0.25, BudgetLimits(threshold_floor=math.inf)),
        (0.0, 0.8, (), 0.25, BudgetLimits(threshold_floor=-math.inf)),
        (0.9, 0.8, HARD_RECENT, 0.25, BudgetLimits(math.inf, "budget_nearly_spent")),
    ],
)
def test_budget_state_becomes_routing_limits(spent, degrade_at, recent, max_share, limits):
    got = budget_limits(
        spent_fraction=spent, degrade_at=degrade_at, recent=recent,
        max_reasoning_share=max_share, share_window=10,
    )  # fmt: skip
    assert got == limits


@pytest.mark.parametrize(
    ("tier", "effort", "ceiling", "expected"),
    [
        ("reasoning", "high", "low", ("reasoning", "low", "client_reasoning_ceiling")),
        ("reasoning", "low", "high", ("reasoning", "low", "score_at_or_above_threshold")),
        ("reasoning", "medium", "medium", ("reasoning", "medium", "score_at_or_above_threshold")),
        ("reasoning", None, "low", ("reasoning", "low", "client_reasoning_ceiling")),
        ("reasoning", "high", "enabled", ("reasoning", "high", "score_at_or_above_threshold")),
        ("reasoning", "high", "none", ("fast", None, "client_reasoning_ceiling")),
        ("fast", None, "high", ("fast", None, "score_below_threshold")),
        ("fast", None, "none", ("fast", None, "score_below_threshold")),
    ],
)
def test_a_clients_reasoning_is_a_ceiling_when_routed(tier, effort, ceiling, expected):
    reason = "score_at_or_above_threshold" if tier == "reasoning" else "score_below_threshold"
    decision = RouteDecision(tier, 0.5, 0.4, "balanced", reason, tier, effort)
    capped = cap_reasoning(decision, ceiling, TierTarget("fast"))
    assert (capped.tier, capped.reasoning_effort, capped.reason) == expected
    assert capped.score == decision.score  # the score still explains the decision


def test_a_stalled_agent_held_at_the_clients_effort_still_says_it_stalled():
    # Replayed agent sessions (bench/agent_sessions.py) lost every agent_stalled to the cap.
    decision = RouteDecision("reasoning", 0.1, 0.4, "balanced", "agent_stalled", "r", None)
    capped = cap_reasoning(decision, "medium", TierTarget("fast"))
    assert (capped.tier, capped.reasoning_effort, capped.reason) == (
        "reasoning", "medium", "agent_stalled")  # fmt: skip
    assert cap_reasoning(decision, "none", TierTarget("fast")).reason == (
        "client_reasoning_ceiling"
    )  # thinking off: the client's word wins, no escalation


@pytest.mark.parametrize(
    ("score", "options", "expected"),
    [
        (0.2, {"stalled": True}, ("reasoning", "agent_stalled")),
        (0.2, {"too_long_for_fast": True}, ("reasoning", "context_window")),
        (0.9, {"too_long_for_fast": True}, ("reasoning", "score_at_or_above_threshold")),
        # Money and the tenant's tiers still win over a stall.
        (0.2, {"stalled": True, "fast_only_reason": "budget_nearly_spent"},
         ("fast", "budget_nearly_spent")),
        (0.2, {"stalled": True, "allowed_tiers": ("fast",)}, ("fast", "tier_not_allowed")),
    ],
)  # fmt: skip
def test_a_stalled_agent_or_a_long_prompt_goes_up_a_tier(score, options, expected):
    tiers = {"fast": TierTarget("f"), "reasoning": TierTarget("r", reasoning_effort="medium")}
    decision = route_request(score, mode="balanced", thresholds=THRESHOLDS, tiers=tiers, **options)
    assert (decision.tier, decision.reason) == expected


def test_a_stalled_agent_already_reasoning_thinks_one_step_harder():
    tiers = {"fast": TierTarget("f"), "reasoning": TierTarget("r", reasoning_effort="medium")}
    plain = route_request(0.6, mode="balanced", thresholds=THRESHOLDS, tiers=tiers)
    stalled = route_request(0.6, mode="balanced", thresholds=THRESHOLDS, tiers=tiers,
                            stalled=True)  # fmt: skip
    assert (plain.reasoning_effort, stalled.reasoning_effort) == ("low", "medium")
    assert stalled.reason == "agent_stalled"
