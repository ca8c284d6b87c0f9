"""One request end to end: resolve the model name, score, decide, dispatch, cost.

:class:`Router` is the SDK's face and the server's engine: the HTTP layer
only authenticates, parses and formats around the same calls.

    router = Router.from_config("thinkroute.yaml")
    decision = router.decide([{"role": "user", "content": "Prove Fermat's little theorem."}])
    completion = await router.acompletion({"model": "auto", "messages": [...]})
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from classifier.model import DifficultyClassifier
from router.accounting import Ticket, open_ticket, tolerant
from router.budgets import Budgets, BudgetState
from router.config import Config, TenantConfig, load_config
from router.dispatch import Dispatcher, Served, Target, configure_litellm
from router.errors import (
    BudgetExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    UpstreamUnavailableError,
)
from router.policy import (
    BUDGET_DEGRADED,
    EFFORT_REQUESTED,
    MODEL_REQUESTED,
    MODES,
    RouteDecision,
    TierTarget,
    reasoning_share_floor,
    route_request,
)
from router.requests import ChatRequest, parse_chat_request
from router.store import Store

__all__ = ["AUTO_MODELS", "Completion", "Router", "StreamingCompletion"]

AUTO_MODELS = ("auto", *(f"auto:{mode}" for mode in MODES))
# Typical time to a full answer, used against latency limits until measured.
TYPICAL_LATENCY_S = {"fast": 3.0, "reasoning": 30.0}
NO_PROVIDER = (
    "no model provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or "
    "OLLAMA_API_BASE, or start the proxy with --config FILE"
)


@dataclass
class Completion:
    """An OpenAI-shaped response with the decision that produced it.

    ``cost_usd`` is what the tenant was charged: the cost from usage, rounded
    to the micro-dollar as the books keep it.
    """

    response: dict[str, Any]
    decision: RouteDecision
    served: Served
    cost_usd: float


@dataclass
class StreamingCompletion:
    """A stream of OpenAI chunk dicts; ``cost_usd`` is final once the stream ends."""

    decision: RouteDecision
    served: Served
    chunks: AsyncIterator[dict[str, Any]]
    cost_usd: float = 0.0
    usage: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class _Plan:
    decision: RouteDecision
    target: Target
    fallback: Target | None
    ticket: Ticket


class Router:
    """Routes chat requests between a fast and a reasoning tier.

    Parameters are plain objects so tests and embedders can pass their own:
    a validated :class:`Config`, a loaded classifier (or a loader called on
    first use), and a :class:`Dispatcher`.
    """

    def __init__(
        self,
        *,
        config: Config,
        classifier: DifficultyClassifier | None = None,
        classifier_loader: Callable[[], DifficultyClassifier] | None = None,
        dispatcher: Dispatcher | None = None,
        store: Store | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.config = config
        self.store = store
        if budgets is None and store is not None:
            # A reservation outlives the longest call it can cover, then expires.
            dispatch = config.dispatch
            ttl = dispatch.timeout_s * (dispatch.num_retries + 1) * 2 + 60
            budgets = Budgets(store, reservation_ttl_s=ttl)
        self.budgets = budgets
        self._classifier = classifier
        self._classifier_loader = classifier_loader or (
            lambda: DifficultyClassifier.load(
                config.classifier.path,
                backend=config.classifier.backend,
                cache_size=config.classifier.cache_size,
            )
        )
        self.dispatcher = dispatcher or Dispatcher(config=config)

    @classmethod
    def from_config(
        cls,
        source: str | Path | Config,
        *,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
    ) -> Router:
        """Build a router from a YAML file (or a validated :class:`Config`).

        Budgets, rate limits and usage need Redis: ``redis_url``, else the config's
        ``redis.url``, else ``REDIS_URL``; with none, requests are served unmetered.
        """
        env = os.environ if env is None else env
        config = source if isinstance(source, Config) else load_config(source, env)
        configure_litellm()
        url = redis_url or config.redis.url or env.get("REDIS_URL")
        store = None
        if url:
            settings = config.redis
            store = Store.from_url(
                url,
                cluster=settings.cluster,
                timeout_s=settings.timeout_s,
                max_connections=settings.max_connections,
            )
        return cls(config=config, store=store)

    @property
    def classifier(self) -> DifficultyClassifier:
        """The difficulty classifier, loaded on first use."""
        if self._classifier is None:
            self._classifier = self._classifier_loader()
        return self._classifier

    @property
    def is_classifier_loaded(self) -> bool:
        return self._classifier is not None

    @property
    def is_dispatch_configured(self) -> bool:
        return bool(self.config.tiers)

    # -- deciding -----------------------------------------------------------------

    def decide(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str = "auto",
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
        requested_effort: str | None = None,
        budget_state: BudgetState | None = None,
        fast_only_reason: str | None = None,
    ) -> RouteDecision:
        """Where a request would go and why, without calling a model.

        ``budget_state`` (from :meth:`Budgets.state`) applies the tenant's
        budget and reasoning-share policy; ``fast_only_reason`` forces the
        fast tier and says why.
        """
        default_mode = tenant.default_mode if tenant else "balanced"
        if model not in AUTO_MODELS:
            return self._direct(model, tenant, default_mode)
        mode = default_mode if model == "auto" else model.split(":", 1)[1]
        allowed_tiers = tuple(tenant.allowed_tiers) if tenant else ("fast", "reasoning")
        if tenant and tenant.max_latency_ms is not None:
            tenant_limit = tenant.max_latency_ms / 1000.0
            latency_limit_s = min(latency_limit_s or tenant_limit, tenant_limit)
        if requested_effort is not None:
            tier = "fast" if requested_effort == "none" else "reasoning"
            if tier not in allowed_tiers:
                raise PermissionDeniedError(
                    f"tenant '{tenant.name}' may not use the {tier} tier",  # type: ignore[union-attr]
                    param="reasoning_effort",
                    code="tier_not_allowed",
                )
            target = self._tier_targets().get(tier)
            return RouteDecision(
                tier=tier,  # type: ignore[arg-type]
                score=None,
                threshold=None,
                mode=mode,
                reason=EFFORT_REQUESTED,
                model=target.model if target else None,
                reasoning_effort=requested_effort if requested_effort != "enabled" else None,
            )
        score = self.classifier.score_messages(messages)
        previous = _previous_turn(messages)
        previous_score = self.classifier.score_messages(previous) if previous else None
        tiers = self._tier_targets() or {
            name: TierTarget(model=None, typical_latency_s=TYPICAL_LATENCY_S[name])  # type: ignore[arg-type]
            for name in ("fast", "reasoning")
        }
        threshold_floor = None
        if tenant and budget_state is not None:
            if tenant.max_reasoning_share is not None:
                threshold_floor = reasoning_share_floor(
                    budget_state.recent,
                    max_share=tenant.max_reasoning_share,
                    window=tenant.reasoning_share_window,
                )
            if (
                tenant.budget.on_exhaustion == "degrade"
                and budget_state.spent_fraction(tenant) >= tenant.budget.degrade_at
            ):
                fast_only_reason = BUDGET_DEGRADED
        return route_request(
            score,
            mode=mode,
            thresholds=self.classifier.thresholds,
            tiers=tiers,
            previous_score=previous_score,
            latency_limit_s=latency_limit_s,
            threshold_floor=threshold_floor,
            fast_only_reason=fast_only_reason,
            allowed_tiers=allowed_tiers,
        )

    # -- answering ----------------------------------------------------------------

    async def acompletion(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
    ) -> Completion:
        """Route and answer a non-streaming request."""
        request = _as_request(request)
        if request.stream:
            raise InvalidRequestError("use astream() for a streaming request", param="stream")
        plan = await self._aplan(request, tenant, latency_limit_s)
        try:
            response, served = await self.dispatcher.complete(
                request.params_for_upstream(), plan.target, plan.fallback
            )
        except BaseException:
            await plan.ticket.release()
            raise
        charged = await plan.ticket.settle(served, response.get("usage"))
        return Completion(response=response, decision=plan.decision, served=served,
                          cost_usd=charged)  # fmt: skip

    async def astream(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
    ) -> StreamingCompletion:
        """Route and start a streaming request; returns once the first chunk is ready."""
        request = _as_request(request)
        plan = await self._aplan(request, tenant, latency_limit_s)
        try:
            chunks, served = await self.dispatcher.stream(
                request.params_for_upstream(), plan.target, plan.fallback
            )
        except BaseException:
            await plan.ticket.release()
            raise
        result = StreamingCompletion(decision=plan.decision, served=served, chunks=_empty())
        result.chunks = _metered(chunks, result, plan.ticket, include_usage=request.include_usage)
        return result

    def completion(self, request: ChatRequest | Mapping[str, Any], **kwargs: Any) -> Completion:
        """Blocking :meth:`acompletion`, for scripts (not from inside a running event loop)."""
        return asyncio.run(self.acompletion(request, **kwargs))

    # -- helpers ------------------------------------------------------------------

    async def _aplan(
        self, request: ChatRequest, tenant: TenantConfig | None, latency_limit_s: float | None
    ) -> _Plan:
        """Decide, then reserve the estimated cost; degrade to fast if only that fits."""
        routed = request.model in AUTO_MODELS and request.requested_effort is None
        state = None
        needs_state = tenant is not None and (
            tenant.has_budget or tenant.max_reasoning_share is not None
        )
        if self.budgets is not None and tenant is not None and routed and needs_state:
            state = await tolerant(tenant, self.budgets.state(tenant))
        # Scoring is CPU work: a thread keeps the event loop serving other requests.
        decision, target, fallback = await asyncio.to_thread(
            self._plan, request, tenant, latency_limit_s, state, None
        )
        try:
            ticket = await open_ticket(
                self.config, self.budgets, tenant, request, decision, target, routed=routed
            )
        except BudgetExceededError:
            degradable = tenant is not None and tenant.budget.on_exhaustion == "degrade"
            if decision.tier != "reasoning" or not degradable:
                raise
            decision, target, fallback = await asyncio.to_thread(
                self._plan, request, tenant, latency_limit_s, state, BUDGET_DEGRADED
            )
            ticket = await open_ticket(
                self.config, self.budgets, tenant, request, decision, target, routed=routed
            )
        return _Plan(decision, target, fallback, ticket)

    def _plan(
        self,
        request: ChatRequest,
        tenant: TenantConfig | None,
        latency_limit_s: float | None,
        state: BudgetState | None,
        fast_only_reason: str | None,
    ) -> tuple[RouteDecision, Target, Target | None]:
        decision = self.decide(
            request.messages,
            model=request.model,
            tenant=tenant,
            latency_limit_s=latency_limit_s,
            requested_effort=request.requested_effort,
            budget_state=state,
            fast_only_reason=fast_only_reason,
        )
        if not self.is_dispatch_configured and decision.tier != "direct":
            raise UpstreamUnavailableError(NO_PROVIDER, code="no_provider_configured")
        deployment = self.config.deployment(decision.model or "")
        assert deployment is not None  # decisions only name configured models
        target = Target(deployment, decision.reasoning_effort)
        fallback = None
        if decision.tier in ("fast", "reasoning"):
            other_tier = "reasoning" if decision.tier == "fast" else "fast"
            if tenant is None or other_tier in tenant.allowed_tiers:
                other = self.config.tiers[other_tier]
                other_deployment = self.config.deployment(other.model)
                assert other_deployment is not None
                fallback = Target(other_deployment, other.reasoning_effort)
        return decision, target, fallback

    def _direct(self, model: str, tenant: TenantConfig | None, mode: str) -> RouteDecision:
        if model.startswith("auto:") or self.config.deployment(model) is None:
            raise ModelNotFoundError(
                f"The model '{model}' does not exist; use 'auto', one of "
                f"{list(AUTO_MODELS[1:])}, or a configured model.",
                param="model",
            )
        if tenant and tenant.allowed_models is not None and model not in tenant.allowed_models:
            raise PermissionDeniedError(
                f"tenant '{tenant.name}' may not call the model '{model}'", param="model"
            )
        return RouteDecision(
            tier="direct", score=None, threshold=None, mode=mode, reason=MODEL_REQUESTED,
            model=model,
        )  # fmt: skip

    def _tier_targets(self) -> dict[str, TierTarget]:
        return {
            name: TierTarget(
                model=tier.model,
                reasoning_effort=tier.reasoning_effort,
                typical_latency_s=TYPICAL_LATENCY_S[name],
            )
            for name, tier in self.config.tiers.items()
        }


def _as_request(request: ChatRequest | Mapping[str, Any]) -> ChatRequest:
    return request if isinstance(request, ChatRequest) else parse_chat_request(dict(request))


def _previous_turn(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """The conversation as it stood at the previous user turn, if this is a follow-up."""
    user_turns = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(user_turns) < 2:
        return None
    return list(messages[: user_turns[-2] + 1])


async def _empty() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _metered(
    chunks: AsyncIterator[dict[str, Any]],
    result: StreamingCompletion,
    ticket: Ticket,
    *,
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """Pass chunks through, charging from the usage chunk (hidden unless the client asked).

    A stream that ends early, cut by the upstream or by the client going away, has no
    usage chunk: it is charged for the text it produced (see :meth:`Ticket.settle`).
    """
    produced: list[str] = []
    try:
        async for chunk in chunks:
            usage = chunk.get("usage")
            if usage:
                result.usage = usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                produced.extend(
                    str(delta[name]) for name in ("content", "reasoning_content") if delta.get(name)
                )
            if usage:
                if not chunk.get("choices") and not include_usage:
                    continue
                if not include_usage:
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
            yield chunk
    finally:
        # Shielded: a client that disconnects cancels this task, and the books must still close.
        with anyio.CancelScope(shield=True):
            result.cost_usd = await ticket.settle(
                result.served, result.usage, produced_text="".join(produced)
            )
