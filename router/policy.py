"""Routing decisions as pure functions: a score and a policy in, a decision out.

Nothing here performs I/O or imports a web framework, a Redis client or
LiteLLM, so every rule can be tested as a table of inputs and outputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

__all__ = [
    "MODES",
    "BudgetLimits",
    "CascadeChoice",
    "RouteDecision",
    "SessionContext",
    "TierCost",
    "TierTarget",
    "budget_limits",
    "cascade_choice",
    "cap_reasoning",
    "decide",
    "effort_for",
    "explain",
    "reasoning_share_floor",
    "route_request",
    "session_threshold",
    "threshold_for_quality_kept",
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
SHARE_CAP = "reasoning_share_cap"
BUDGET_DEGRADED = "budget_nearly_spent"
TIER_NOT_ALLOWED = "tier_not_allowed"
# client_reasoning: route: the client's own effort is a ceiling the decision was held under.
CLIENT_CEILING = "client_reasoning_ceiling"
AGENT_STALLED = "agent_stalled"
# A session stays on its model where switching would cost more in lost prompt cache than
# the score says it gains; it switches, saying so, where the gain is larger.
SESSION_STICKY = "session_sticky"
SESSION_SWITCH_PAYS = "session_switch_pays"
CONTEXT_WINDOW = "context_window"
# Where the cascade answered: the decision's tier is the one whose answer was sent.
VERIFIER_AGREED = "verifier_agreed"
VERIFIER_DISAGREED = "verifier_disagreed"
VERIFIER_HEAD_KEPT = "verifier_head_kept"

# Why the cascade ran or not (x-thinkroute-cascade: skipped:<reason>, the decision log).
CASCADE_OFF = "cascade_off"
CASCADE_TENANT_OFF = "cascade_off_for_tenant"
CASCADE_NO_REASONING = "reasoning_not_allowed"
CASCADE_DECIDED_BY_RULE = "decided_by_rule"
CASCADE_FORCED = "client_asked_to_verify"
CASCADE_UNCERTAIN = "score_near_threshold"
CASCADE_CLEAR = "score_clear"
CASCADE_STREAM = "stream_not_cascaded"
CASCADE_BUDGET = "budget_cannot_cover_cascade"

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
    """What the policy needs to know about a tier: its model (``None``: no provider
    configured, decisions only), effort and usual latency."""

    model: str | None
    reasoning_effort: str | None = None
    typical_latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class TierCost:
    """A turn's estimated cost on one tier: with the session's prompt prefix read from the
    provider's cache (only the model the session is on has it), and at the full price."""

    cached_usd: float
    full_usd: float


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What the policy knows of a session: the model its previous turn went to, and this
    turn's cost on each tier (a key per tier)."""

    model: str
    costs: Mapping[str, TierCost]


def session_threshold(threshold: float, costs: Mapping[str, TierCost], on: str) -> float:
    """The threshold for a session whose prompt cache sits on tier ``on``'s model.

    A mode's threshold prices a better answer: reasoning is worth its premium (reasoning
    minus fast turn cost, both at full price) where P(it does better) reaches the
    threshold. In a session the premium is what this turn would cost given where the cache
    is, so the threshold scales by that premium over the full-price one: on the fast model,
    leaving it costs the cache too and the bar rises; on the reasoning model, a cached
    prefix makes staying cheaper and the bar falls (below zero: staying is cheaper than
    leaving, whatever the score).

    >>> costs = {"fast": TierCost(0.001, 0.004), "reasoning": TierCost(0.010, 0.024)}
    >>> [round(session_threshold(0.4, costs, on), 3) for on in ("fast", "reasoning")]
    [0.48, 0.12]
    """
    premium = costs["reasoning"].full_usd - costs["fast"].full_usd
    if premium <= 0:
        return threshold  # reasoning costs no more: the cache cannot change the choice
    reasoning = costs["reasoning"].cached_usd if on == "reasoning" else costs["reasoning"].full_usd
    fast = costs["fast"].cached_usd if on == "fast" else costs["fast"].full_usd
    return threshold * (reasoning - fast) / premium


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


def threshold_for_quality_kept(
    pairs: Sequence[tuple[float, float, float]], target: float
) -> float | None:
    """The highest threshold (fewest reasoning calls) whose quality kept reaches ``target``.

    ``pairs`` are graded ``(score, fast, reasoning)``: the prompt's score and each
    tier's score. At threshold ``t`` a pair is served by the reasoning tier when
    ``score >= t``; quality kept is the served scores' sum over the reasoning
    scores' sum (docs/quality.md). Pairs of one score move together, since no
    threshold can split them. None when the reasoning tier scored nothing.

    >>> threshold_for_quality_kept([(0.9, 0.0, 1.0), (0.2, 1.0, 1.0)], 0.9)
    0.9
    >>> threshold_for_quality_kept([(0.9, 0.0, 1.0), (0.2, 1.0, 1.0)], 0.5)
    1.0
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must lie in (0, 1], got {target}")
    always = sum(reasoning for _, _, reasoning in pairs)
    if always <= 0:
        return None
    served = sum(fast for _, fast, _ in pairs)  # everything fast: threshold above every score
    if served >= target * always:
        return 1.0
    ranked = sorted(pairs, key=lambda pair: -pair[0])
    for score, group in itertools.groupby(ranked, key=lambda pair: pair[0]):
        served += sum(reasoning - fast for _, fast, reasoning in group)
        if served >= target * always - 1e-12:
            return float(score)
    return 0.0  # unreachable unless rounding: everything to reasoning keeps it all


def route_request(
    score: float,
    *,
    mode: str,
    thresholds: Mapping[str, float],
    tiers: Mapping[str, TierTarget],
    previous_score: float | None = None,
    latency_limit_s: float | None = None,
    threshold_floor: float | None = None,
    fast_only_reason: str | None = None,
    allowed_tiers: Sequence[Tier] = ("fast", "reasoning"),
    stalled: bool = False,
    too_long_for_fast: bool = False,
    session: SessionContext | None = None,
) -> RouteDecision:
    """The full decision for a routed request: tier, model and effort.

    Rules, in order:

    1. The score against the mode's threshold picks a tier.
    2. Sticky conversations: for a follow-up turn, ``previous_score`` is the
       score the conversation had one user turn earlier. If that put it on
       the other tier and the new score is within ``STICKY_MARGIN`` of the
       threshold, the conversation stays where it was: a chat should not
       bounce between models turn by turn on noise.
       An agent that has ``stalled`` (failing or repeated tool calls, see
       :mod:`classifier.agent_turns`) goes one step up: fast to reasoning, or
       reasoning one effort higher. A prompt ``too_long_for_fast`` (past the
       fast model's context window) goes to the reasoning tier.
       Where the score decided, a known ``session`` on one tier's model moves
       to the other only where the score clears :func:`session_threshold`,
       which prices the prompt cache a model switch throws away
       (``session_sticky`` when it stays, ``session_switch_pays`` when it moves).
    3. A latency limit the reasoning tier cannot meet sends the request fast,
       and the reason says so.
    4. The tenant's constraints: a ``threshold_floor`` (from its reasoning
       share cap, see :func:`reasoning_share_floor`) raises the threshold;
       ``fast_only_reason`` (its budget is nearly spent) sends everything
       fast; a tier outside ``allowed_tiers`` is never chosen.
    5. The reasoning effort follows the score band (see :func:`effort_for`).
    """
    decision = decide(score, mode=mode, thresholds=thresholds)
    threshold = float(thresholds[mode])  # decide() checked the mode
    tier: Tier = decision.tier
    reason = decision.reason
    if previous_score is not None:
        before: Tier = "reasoning" if previous_score >= threshold else "fast"
        if before != tier and abs(score - threshold) < STICKY_MARGIN:
            tier, reason = before, STICKY
    step_up = stalled and tier == "reasoning"  # already reasoning: one effort higher
    if stalled:
        tier, reason = "reasoning", AGENT_STALLED
    if too_long_for_fast and tier == "fast":
        tier, reason = "reasoning", CONTEXT_WINDOW
    if session is not None and reason in (ABOVE_THRESHOLD, BELOW_THRESHOLD, STICKY):
        tier, reason = _session_tier(score, threshold, tier, reason, tiers, session)
    if tier == "reasoning" and latency_limit_s is not None:
        typical = tiers["reasoning"].typical_latency_s
        if typical is not None and typical > latency_limit_s:
            tier, reason = "fast", LATENCY_LIMIT
    if tier == "reasoning" and threshold_floor is not None and score < threshold_floor:
        tier, reason = "fast", SHARE_CAP
    if tier == "reasoning" and fast_only_reason is not None:
        tier, reason = "fast", fast_only_reason
    if tier not in allowed_tiers:
        tier, reason = allowed_tiers[0], TIER_NOT_ALLOWED
    target = tiers[tier]
    effort = target.reasoning_effort
    if tier == "reasoning":
        effort = effort_for(score, threshold, effort)
        if step_up and effort in EFFORT_STEPS:
            effort = EFFORT_STEPS[min(EFFORT_STEPS.index(effort) + 1, len(EFFORT_STEPS) - 1)]
    return replace(decision, tier=tier, reason=reason, model=target.model, reasoning_effort=effort)


def _session_tier(
    score: float,
    threshold: float,
    tier: Tier,
    reason: str,
    tiers: Mapping[str, TierTarget],
    session: SessionContext,
) -> tuple[Tier, str]:
    """The tier for a turn of a known session (see :func:`session_threshold`)."""
    on: Tier | None = next(
        (name for name in ("fast", "reasoning") if tiers[name].model == session.model), None
    )
    if on is None or tiers["fast"].model == tiers["reasoning"].model:
        return tier, reason  # no cache of ours to keep, or one model: effort is free to move
    if tier == on and reason != STICKY:
        return tier, reason
    moved: Tier = (
        "reasoning" if score >= session_threshold(threshold, session.costs, on) else "fast"
    )
    return moved, SESSION_STICKY if moved == on else SESSION_SWITCH_PAYS


def cap_reasoning(decision: RouteDecision, ceiling: str, fast: TierTarget) -> RouteDecision:
    """Hold a routed decision at or below the reasoning the client asked for.

    For a tenant with ``client_reasoning: route`` the client's effort (or thinking) is a
    ceiling, not an order: the score still picks the tier. ``none`` (thinking disabled)
    allows only the fast tier; ``enabled`` (thinking on, no level) allows the policy's
    effort; a level lowers a higher effort to it. A decision the ceiling changed says so.

    >>> d = RouteDecision("reasoning", 0.9, 0.4, "balanced", ABOVE_THRESHOLD, "r", "high")
    >>> cap_reasoning(d, "low", TierTarget("f")).reasoning_effort
    'low'
    """
    if decision.tier != "reasoning" or ceiling == "enabled":
        return decision
    if ceiling == "none":
        return replace(decision, tier="fast", reason=CLIENT_CEILING, model=fast.model,
                       reasoning_effort=fast.reasoning_effort)  # fmt: skip
    if ceiling not in EFFORT_STEPS:
        return decision
    effort = decision.reasoning_effort
    if effort in EFFORT_STEPS and EFFORT_STEPS.index(effort) <= EFFORT_STEPS.index(ceiling):
        return decision
    # A stalled agent's step up, or its session, still decided the tier: it keeps its reason.
    kept = decision.reason in (AGENT_STALLED, SESSION_STICKY, SESSION_SWITCH_PAYS)
    reason = decision.reason if kept else CLIENT_CEILING
    return replace(decision, reasoning_effort=ceiling, reason=reason)


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


def reasoning_share_floor(
    recent: Sequence[tuple[str, float]], *, max_share: float, window: int
) -> float:
    """The lowest score that may still go to the reasoning tier under a share cap.

    ``recent`` holds the tenant's latest routed requests, newest first, as
    ``(tier, score)``. Two rules together hold the cap over every run of
    ``window`` consecutive requests while choosing the hardest ones:

    - a hard guard: a request may reason only if, with it, the last
      ``window`` requests hold at most ``max_share * window`` reasoning calls
      (until the window fills, the missing requests count as fast);
    - an adaptive threshold: the score above which ``max_share`` of recent
      requests fall, so reasoning goes to the top scores rather than to
      whoever came first.

    >>> reasoning_share_floor([("fast", 0.2)] * 10, max_share=0.5, window=10)
    0.2
    >>> reasoning_share_floor([("reasoning", 0.9)] * 5, max_share=0.5, window=10)
    inf
    """
    latest = list(recent[: window - 1])
    used = sum(1 for tier, _ in latest if tier == "reasoning")
    if used + 1 > max_share * window:
        return math.inf
    scores = sorted((score for _, score in recent[:window]), reverse=True)
    if len(scores) < 10:
        return -math.inf
    # The lowest score with at most max_share of the recent ones at or above it; if even
    # the top score's ties exceed that share, the top score (the guard does the rest).
    allowed = max_share * len(scores)
    floor, taken = scores[0], 0
    for score, ties in itertools.groupby(scores):
        taken += len(list(ties))
        if taken > allowed:
            break
        floor = score
    return floor


# The cascade runs where the score lies this close to the threshold (config: cascade.band).
DEFAULT_CASCADE_BAND = 0.15
# Reasons the score itself decided; any other reason is a rule the cascade must not undo.
_SCORE_REASONS = frozenset(
    {ABOVE_THRESHOLD, BELOW_THRESHOLD, STICKY, SESSION_STICKY, SESSION_SWITCH_PAYS}
)


@dataclass(frozen=True, slots=True)
class CascadeChoice:
    """Whether the cascade runs for one request, and why (for headers and the log)."""

    run: bool
    reason: str


def cascade_choice(
    decision: RouteDecision,
    *,
    verifier: str | None,
    band: float = DEFAULT_CASCADE_BAND,
    tenant_enabled: bool = True,
    forced: bool = False,
    stream: bool = False,
    streams_cascaded: bool = False,
    allowed_tiers: Sequence[str] = ("fast", "reasoning"),
) -> CascadeChoice:
    """Run the cascade (verify, then escalate) for this routed request?

    The cascade costs a verifier call on every request it touches and, for a stream,
    the time to first token of a whole answer, so it runs only where the score cannot
    tell. Rules, in order: no verifier configured, or the tenant switched it off: no.
    The reasoning tier not allowed, or a money/latency rule decided the tier: no (an
    escalation would undo that rule). The client asked for ``auto:verify``
    (``forced``): yes. A stream, unless ``streams_cascaded``: no. A follow-up turn kept
    on its tier, or a session kept on its model: no. Otherwise yes exactly when the score
    lies within ``band`` of the threshold.

    >>> cascade_choice(decide(0.45, mode="balanced", thresholds={"balanced": 0.4}),
    ...                verifier="gemini-flash").reason
    'score_near_threshold'
    """
    if not 0.0 <= band <= 1.0:
        raise ValueError(f"band must lie in [0, 1], got {band}")
    if not verifier:
        return CascadeChoice(False, CASCADE_OFF)
    if not tenant_enabled:
        return CascadeChoice(False, CASCADE_TENANT_OFF)
    if "reasoning" not in allowed_tiers:
        return CascadeChoice(False, CASCADE_NO_REASONING)
    if decision.reason not in _SCORE_REASONS:
        return CascadeChoice(False, CASCADE_DECIDED_BY_RULE)
    if forced:
        return CascadeChoice(True, CASCADE_FORCED)
    if stream and not streams_cascaded:
        return CascadeChoice(False, CASCADE_STREAM)
    if decision.reason in (STICKY, SESSION_STICKY):
        return CascadeChoice(False, decision.reason)
    if decision.score is None or decision.threshold is None:
        return CascadeChoice(False, CASCADE_DECIDED_BY_RULE)
    # The epsilon keeps a score exactly ``band`` away (0.55 - 0.4 = 0.15000000000000002) in.
    if abs(decision.score - decision.threshold) <= band + 1e-9:
        return CascadeChoice(True, CASCADE_UNCERTAIN)
    return CascadeChoice(False, CASCADE_CLEAR)


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """What a tenant's spending state does to routing (see :func:`route_request`)."""

    threshold_floor: float | None = None
    fast_only_reason: str | None = None


def budget_limits(
    *,
    spent_fraction: float,
    degrade_at: float | None,
    recent: Sequence[tuple[str, float]] = (),
    max_reasoning_share: float | None = None,
    share_window: int = 200,
) -> BudgetLimits:
    """Translate a tenant's budget state into routing limits.

    ``spent_fraction`` is the largest share of any budget window already spent
    or reserved; at or past ``degrade_at`` (``None``: the tenant never degrades)
    only the fast tier answers. ``max_reasoning_share`` over the last
    ``share_window`` routed requests (``recent``, newest first) raises the
    threshold through :func:`reasoning_share_floor`.

    >>> budget_limits(spent_fraction=0.9, degrade_at=0.8).fast_only_reason
    'budget_nearly_spent'
    """
    floor = None
    if max_reasoning_share is not None:
        floor = reasoning_share_floor(recent, max_share=max_reasoning_share, window=share_window)
    degraded = degrade_at is not None and spent_fraction >= degrade_at
    return BudgetLimits(floor, BUDGET_DEGRADED if degraded else None)


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
        SHARE_CAP: "the tenant's cap on its share of reasoning calls keeps this one fast",
        BUDGET_DEGRADED: "the tenant's budget is nearly spent, so only the fast tier answers",
        TIER_NOT_ALLOWED: "the tenant may not use the chosen tier",
        AGENT_STALLED: "the agent's last tool calls failed or repeated: one step up",
        CONTEXT_WINDOW: "the prompt does not fit the fast model's context window",
        CLIENT_CEILING: "the score chose reasoning, held at or below the reasoning the request "
        "set (the tenant routes clients' reasoning)",
        VERIFIER_AGREED: "a cheap verifier gave the fast model's answer too, so it was kept",
        VERIFIER_HEAD_KEPT: "the answers differ, but the verifier head judged the fast one "
        "likely good enough",
        VERIFIER_DISAGREED: "a cheap verifier disagreed with the fast model's answer, so the "
        "reasoning tier answered",
    }.get(decision.reason, decision.reason)
