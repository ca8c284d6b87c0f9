"""Routing decisions as pure functions: a score and a policy in, a decision out.

Nothing here performs I/O or imports a web framework, a Redis client or
LiteLLM, so every rule can be tested as a table of inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

__all__ = [
    "MODES",
    "RouteDecision",
    "TierTarget",
    "decide",
    "effort_for",
    "explain",
    "route_request",
]

Tier = Literal["fast", "reasoning", "direct"]
MODES: tuple[str, ...] = ("cheap", "balanced", "quality")
EFFORT_STEPS: tuple[str, ...] = ("minimal", "low", "medium", "high")

ABOVE_THRESHOLD = "score_at_or_above_threshold"
BELOW_THRESHOLD = "score_below_threshold"
STICKY = "conversation_stays_on_tier"
LATENCY_LIMIT = "reasoning_exceeds_latency_limit"
EFFORT_REQUESTED = "client_set_reasoning"
MODEL_REQUESTED = "client_named_model"

# A follow-up turn switches tier only when its score clears the threshold by
# this much on the other side; nearer, the conversation stays where it was.
STICKY_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where one request goes and why."""

    tier: Tier
    score: float | None
    threshold: float | None
    mode: str
    reason: str
    model: str | None = None
    reasoning_effort: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TierTarget:
    """What the policy needs to know about a tier: its model, effort and usual latency."""

    model: str
    reasoning_effort: str | None = None
    typical_latency_s: float | None = None


def decide(score: float, *, mode: str, thresholds: Mapping[str, float]) -> RouteDecision:
    """Send the request to the reasoning tier when its score reaches the mode's threshold.

    >>> decide(0.7, mode="balanced", thresholds={"balanced": 0.5}).tier
    'reasoning'
    """
    if mode not in thresholds:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(thresholds)}")
    threshold = float(thresholds[mode])
    if score >= threshold:
        return RouteDecision("reasoning", score, threshold, mode, ABOVE_THRESHOLD)
    return RouteDecision("fast", score, threshold, mode, BELOW_THRESHOLD)


def route_request(
    score: float,
    *,
    mode: str,
    thresholds: Mapping[str, float],
    tiers: Mapping[str, TierTarget],
    previous_score: float | None = None,
    latency_limit_s: float | None = None,
) -> RouteDecision:
    """The full decision for a routed request: tier, model and effort.

    Rules, in order:

    1. The score against the mode's threshold picks a tier.
    2. Sticky conversations: for a follow-up turn, ``previous_score`` is the
       score the conversation had one user turn earlier. If that put it on
       the other tier and the new score is within ``STICKY_MARGIN`` of the
       threshold, the conversation stays where it was: a chat should not
       bounce between models turn by turn on noise.
    3. A latency limit the reasoning tier cannot meet sends the request fast,
       and the reason says so.
    4. The reasoning effort follows the score band (see :func:`effort_for`).
    """
    decision = decide(score, mode=mode, thresholds=thresholds)
    tier, reason = decision.tier, decision.reason
    if previous_score is not None:
        before = "reasoning" if previous_score >= decision.threshold else "fast"  # type: ignore[operator]
        if before != tier and abs(score - decision.threshold) < STICKY_MARGIN:  # type: ignore[operator]
            tier, reason = before, STICKY
    if tier == "reasoning" and latency_limit_s is not None:
        typical = tiers["reasoning"].typical_latency_s
        if typical is not None and typical > latency_limit_s:
            tier, reason = "fast", LATENCY_LIMIT
    target = tiers[tier]
    effort = target.reasoning_effort
    if tier == "reasoning":
        effort = effort_for(score, decision.threshold, effort)  # type: ignore[arg-type]
    return replace(decision, tier=tier, reason=reason, model=target.model, reasoning_effort=effort)


def effort_for(score: float, threshold: float, base: str | None) -> str | None:
    """The configured effort, one step lower in the bottom third above the threshold
    and one step higher in the top third.

    >>> effort_for(0.95, 0.4, "medium"), effort_for(0.45, 0.4, "medium")
    ('high', 'low')
    """
    if base not in EFFORT_STEPS:
        return base  # None (provider default) or "none" are not scaled
    step = EFFORT_STEPS.index(base)
    band = (1.0 - threshold) / 3.0
    if score >= threshold + 2 * band:
        step = min(step + 1, len(EFFORT_STEPS) - 1)
    elif score < threshold + band:
        step = max(step - 1, 0)
    return EFFORT_STEPS[step]


def explain(decision: RouteDecision) -> str:
    """One sentence a person can read."""
    above = decision.reason == ABOVE_THRESHOLD
    if decision.reason in (ABOVE_THRESHOLD, BELOW_THRESHOLD):
        sign = ">=" if above else "<"
        outcome = (
            "the reasoning model is likely enough to do better to be worth its cost"
            if above
            else "the fast model is likely to answer as well"
        )
        return (
            f"score {decision.score:.3f} {sign} {decision.mode} threshold "
            f"{decision.threshold:.3f}: {outcome}"
        )
    return {
        STICKY: "the conversation stays on its tier: the score is too close to the threshold "
        "to switch models mid-conversation",
        LATENCY_LIMIT: "the reasoning tier cannot meet the latency limit, so the fast tier answers",
        EFFORT_REQUESTED: "the request set its own reasoning, which is respected",
        MODEL_REQUESTED: "the request named a model, which is respected",
    }.get(decision.reason, decision.reason)
