"""One request end to end: resolve the model name, score, decide, dispatch, cost.

:class:`Router` is the SDK's face and the server's engine: the HTTP layer
only authenticates, parses and formats around the same calls.

    router = Router.from_config("thinkroute.yaml")
    decision = router.decide([{"role": "user", "content": "Prove Fermat's little theorem."}])
    completion = await router.acompletion({"model": "auto", "messages": [...]})
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.model import DifficultyClassifier
from router.config import Config, TenantConfig, load_config
from router.dispatch import Dispatcher, Served, Target, configure_litellm, cost_usd
from router.errors import InvalidRequestError, ModelNotFoundError, UpstreamUnavailableError
from router.policy import (
    EFFORT_REQUESTED,
    MODEL_REQUESTED,
    MODES,
    RouteDecision,
    TierTarget,
    route_request,
)
from router.requests import ChatRequest, parse_chat_request

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
    """An OpenAI-shaped response with the decision that produced it."""

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
    ) -> None:
        self.config = config
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
        cls, source: str | Path | Config, *, env: Mapping[str, str] | None = None
    ) -> Router:
        """Build a router from a YAML file (or a validated :class:`Config`)."""
        config = source if isinstance(source, Config) else load_config(source, env)
        configure_litellm()
        return cls(config=config)

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
    ) -> RouteDecision:
        """Where a request would go and why, without calling a model."""
        default_mode = tenant.default_mode if tenant else "balanced"
        if model not in AUTO_MODELS:
            return self._direct(model, tenant, default_mode)
        mode = default_mode if model == "auto" else model.split(":", 1)[1]
        if requested_effort is not None:
            tier = "fast" if requested_effort == "none" else "reasoning"
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
        return route_request(
            score,
            mode=mode,
            thresholds=self.classifier.thresholds,
            tiers=tiers,
            previous_score=previous_score,
            latency_limit_s=latency_limit_s,
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
        decision, target, fallback = await self._aplan(request, tenant, latency_limit_s)
        response, served = await self.dispatcher.complete(
            request.params_for_upstream(), target, fallback
        )
        cost = cost_usd(served.target.deployment, response.get("usage"))
        return Completion(response=response, decision=decision, served=served, cost_usd=cost)

    async def astream(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
    ) -> StreamingCompletion:
        """Route and start a streaming request; returns once the first chunk is ready."""
        request = _as_request(request)
        decision, target, fallback = await self._aplan(request, tenant, latency_limit_s)
        chunks, served = await self.dispatcher.stream(
            request.params_for_upstream(), target, fallback
        )
        result = StreamingCompletion(decision=decision, served=served, chunks=_empty())
        result.chunks = _metered(chunks, result, include_usage=request.include_usage)
        return result

    def completion(self, request: ChatRequest | Mapping[str, Any], **kwargs: Any) -> Completion:
        """Blocking :meth:`acompletion`, for scripts (not from inside a running event loop)."""
        return asyncio.run(self.acompletion(request, **kwargs))

    # -- helpers ------------------------------------------------------------------

    async def _aplan(
        self, request: ChatRequest, tenant: TenantConfig | None, latency_limit_s: float | None
    ) -> tuple[RouteDecision, Target, Target | None]:
        # Scoring is CPU work: a thread keeps the event loop serving other requests.
        return await asyncio.to_thread(self._plan, request, tenant, latency_limit_s)

    def _plan(
        self, request: ChatRequest, tenant: TenantConfig | None, latency_limit_s: float | None
    ) -> tuple[RouteDecision, Target, Target | None]:
        decision = self.decide(
            request.messages,
            model=request.model,
            tenant=tenant,
            latency_limit_s=latency_limit_s,
            requested_effort=request.requested_effort,
        )
        if not self.is_dispatch_configured and decision.tier != "direct":
            raise UpstreamUnavailableError(NO_PROVIDER, code="no_provider_configured")
        deployment = self.config.deployment(decision.model or "")
        assert deployment is not None  # decisions only name configured models
        target = Target(deployment, decision.reasoning_effort)
        fallback = None
        if decision.tier in ("fast", "reasoning"):
            other = self.config.tiers["reasoning" if decision.tier == "fast" else "fast"]
            other_deployment = self.config.deployment(other.model)
            assert other_deployment is not None
            fallback = Target(other_deployment, other.reasoning_effort)
        return decision, target, fallback

    def _direct(self, model: str, tenant: TenantConfig | None, mode: str) -> RouteDecision:
        allowed = tenant is None or tenant.allowed_models is None or model in tenant.allowed_models
        if model.startswith("auto:") or self.config.deployment(model) is None or not allowed:
            raise ModelNotFoundError(
                f"The model '{model}' does not exist or you do not have access to it; use "
                f"'auto', one of {list(AUTO_MODELS[1:])}, or a configured model.",
                param="model",
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
    chunks: AsyncIterator[dict[str, Any]], result: StreamingCompletion, *, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    """Pass chunks through, charging from the usage chunk (hidden unless the client asked)."""
    async for chunk in chunks:
        usage = chunk.get("usage")
        if usage:
            result.usage = usage
            result.cost_usd = cost_usd(result.served.target.deployment, usage)
            if not chunk.get("choices") and not include_usage:
                continue
            if not include_usage:
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
        yield chunk
