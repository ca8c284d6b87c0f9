"""When a request goes through the cascade (verify, then escalate): a pure rule.

The cascade costs a verifier call on every request it touches and, for streams, the
time to first token of a whole answer, so it runs only where the prompt score cannot
tell: within ``band`` of the mode's threshold. Clear chat stays fast and clear
olympiad maths goes straight to reasoning. The model name ``auto:verify`` forces it
for one request. A decision a rule made for money or latency (budget, share cap,
latency limit, allowed tiers) is never overridden by the cascade, forced or not,
since an escalation would undo it.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.policy import ABOVE_THRESHOLD, BELOW_THRESHOLD, STICKY, RouteDecision

__all__ = ["FORCE_MODEL", "CascadeChoice", "cascade_choice"]

FORCE_MODEL = "auto:verify"
DEFAULT_BAND = 0.15

OFF = "cascade_off"
TENANT_OFF = "cascade_off_for_tenant"
NO_REASONING = "reasoning_not_allowed"
DECIDED_BY_RULE = "decided_by_rule"
FORCED = "client_asked_to_verify"
UNCERTAIN = "score_near_threshold"
CLEAR = "score_clear"
CONVERSATION = "conversation_stays_on_tier"

# Reasons the score itself decided; any other reason is a rule the cascade must not undo.
_SCORE_REASONS = frozenset({ABOVE_THRESHOLD, BELOW_THRESHOLD, STICKY})


@dataclass(frozen=True, slots=True)
class CascadeChoice:
    """Whether the cascade runs for one request, and why (for headers and the log)."""

    run: bool
    reason: str


def cascade_choice(
    decision: RouteDecision,
    *,
    verifier: str | None,
    band: float = DEFAULT_BAND,
    tenant_enabled: bool = True,
    requested_model: str = "auto",
    allowed_tiers: tuple[str, ...] = ("fast", "reasoning"),
) -> CascadeChoice:
    """Run the cascade for this routed request?

    Rules, in order: no verifier configured, or the tenant switched it off: no. The
    reasoning tier not allowed, or a money/latency rule decided the tier: no. The
    client asked for ``auto:verify``: yes. A follow-up turn kept on its tier: no.
    Otherwise yes exactly when the score lies within ``band`` of the threshold.

    >>> from router.policy import decide
    >>> cascade_choice(decide(0.45, mode="balanced", thresholds={"balanced": 0.4}),
    ...                verifier="gemini-flash").reason
    'score_near_threshold'
    """
    if not 0.0 <= band <= 1.0:
        raise ValueError(f"band must lie in [0, 1], got {band}")
    if not verifier:
        return CascadeChoice(False, OFF)
    if not tenant_enabled:
        return CascadeChoice(False, TENANT_OFF)
    if "reasoning" not in allowed_tiers:
        return CascadeChoice(False, NO_REASONING)
    if decision.reason not in _SCORE_REASONS:
        return CascadeChoice(False, DECIDED_BY_RULE)
    if requested_model == FORCE_MODEL:
        return CascadeChoice(True, FORCED)
    if decision.reason == STICKY:
        return CascadeChoice(False, CONVERSATION)
    if decision.score is None or decision.threshold is None:
        return CascadeChoice(False, DECIDED_BY_RULE)
    # The epsilon keeps a score exactly ``band`` away (0.55 - 0.4 = 0.15000000000000002) in.
    if abs(decision.score - decision.threshold) <= band + 1e-9:
        return CascadeChoice(True, UNCERTAIN)
    return CascadeChoice(False, CLEAR)
