"""Routing decisions as pure functions: a score and a policy in, a decision out.

Nothing here performs I/O or imports a web framework, a Redis client or
LiteLLM, so every rule can be tested as a table of inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["MODES", "RouteDecision", "decide", "explain"]

Tier = Literal["fast", "reasoning"]
MODES: tuple[str, ...] = ("cheap", "balanced", "quality")

ABOVE_THRESHOLD = "score_at_or_above_threshold"
BELOW_THRESHOLD = "score_below_threshold"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where one request goes and why."""

    tier: Tier
    score: float
    threshold: float
    mode: str
    reason: str
    model: str | None = None
    reasoning_effort: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def explain(decision: RouteDecision) -> str:
    """One sentence a person can read."""
    if decision.reason == ABOVE_THRESHOLD:
        return (
            f"score {decision.score:.3f} >= {decision.mode} threshold {decision.threshold:.3f}: "
            "the reasoning model is likely enough to do better to be worth its cost"
        )
    if decision.reason == BELOW_THRESHOLD:
        return (
            f"score {decision.score:.3f} < {decision.mode} threshold {decision.threshold:.3f}: "
            "the fast model is likely to answer as well"
        )
    return decision.reason
