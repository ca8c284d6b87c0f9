"""One request end to end: resolve the model name, score, decide, dispatch, cost.

:class:`Router` is the SDK's face and the server's engine: the HTTP layer
only authenticates, parses and formats around the same calls.

    router = Router.from_config("thinkroute.yaml")
    decision = router.decide([{"role": "user", "content": "Prove Fermat's little theorem."}])
    completion = await router.acompletion({"model": "auto", "messages": [...]})
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from classifier.agent_turns import has_stalled
from classifier.model import DifficultyClassifier
from classifier.verifier import VerifierHead, answer_features
from router import sdk
from router.accounting import Ticket, estimate_prompt_tokens, open_ticket, tolerant
from router.answers import AnswerCache, CacheEntry
from router.completions import Completion, StreamingCompletion, Timings
from router.config import Config, TenantConfig, TierName, load_config
from router.environment import Environment, read_environment
from router.errors import (
    BudgetExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
    UpstreamUnavailableError,
)
from router.heads import SHIPPED, ActiveHead, ActiveHeads
from router.observe.tracing import Tracing, decision_attributes, start_tracing
from router.policy import (
    BUDGET_DEGRADED,
    CASCADE_BUDGET,
    EFFORT_REQUESTED,
    MODEL_REQUESTED,
    MODES,
    VERIFIER_AGREED,
    VERIFIER_DISAGREED,
    VERIFIER_HEAD_KEPT,
    BudgetLimits,
    CascadeChoice,
    RouteDecision,
    SessionContext,
    TierTarget,
    budget_limits,
    cap_reasoning,
    cascade_choice,
    route_request,
)
from router.requests import ChatRequest, parse_chat_request
from router.sessions import SessionTurn, session_name, turn_costs
from router.state.budgets import Budgets, BudgetState
from router.state.cache import (
    ScoreCache,
    chunks_from_response,
    response_from_chunks,
)
from router.state.output_estimates import OutputEstimates
from router.state.sessions import LastTurn, SessionBook
from router.state.shadow_records import ShadowRecords
from router.state.store import Store
from router.streaming import empty, metered, replay
from router.upstream.cascade import SELF, CascadeAnswer, CascadeTargets, answer_cascaded
from router.upstream.dispatch import (
    CLIENT_REASONING_PARAMS,
    Dispatcher,
    Served,
    Target,
    configure_litellm,
    context_window,
)
from router.upstream.shadow import ShadowJob, ShadowRunner

__all__ = ["AUTO_MODELS", "Router"]

T = TypeVar("T")
# auto:verify routes with the tenant's default mode and always runs the cascade.
VERIFY_MODEL = "auto:verify"
AUTO_MODELS = ("auto", *(f"auto:{mode}" for mode in MODES), VERIFY_MODEL)
# Whose cache entries an in-process Router without tenants reads and writes.
ANONYMOUS_TENANT = "_"
# Typical time to a full answer, used against latency limits until measured.
TYPICAL_LATENCY_S = {"fast": 3.0, "reasoning": 30.0}
# Prompts up to this many (estimated) tokens fit any chat model's context window.
SMALLEST_WINDOW = 8_000
NO_PROVIDER = (
    "no model provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or "
    "OLLAMA_API_BASE, or start the proxy with --config FILE"
)


@dataclass(slots=True)
class _Plan:
    """A decided request: where it goes, its cache entry, and (on a miss) its ticket."""

    decision: RouteDecision
    target: Target
    fallback: Target | None
    cache: CacheEntry = field(default_factory=CacheEntry)
    hit: dict[str, Any] | None = None
    ticket: Ticket | None = None
    routing_s: float = 0.0
    # Whether the cascade runs and why; None where no cascade is configured.
    cascade: CascadeChoice | None = None
    session: SessionTurn | None = None  # a routed turn of a named session

    @property
    def is_cascaded(self) -> bool:
        return self.cascade is not None and self.cascade.run and self.hit is None

    @property
    def cascade_label(self) -> str | None:
        """``x-thinkroute-cascade``: what the cascade did, or ``skipped:<why>``."""
        if self.cascade is None or self.hit is not None:
            return None
        return self.cascade.reason if self.cascade.run else f"skipped:{self.cascade.reason}"

    @property
    def cache_status(self) -> str:
        if self.hit is not None:
            return "hit"
        return "miss" if self.cache.key else "bypass"


@dataclass(frozen=True, slots=True)
class _Routed:
    """A decision and what it was made from, kept for a re-plan after a budget refusal."""

    decision: RouteDecision
    is_routed: bool  # model "auto..." without the client's own reasoning setting
    state: BudgetState | None
    scores: tuple[float, float | None] | None
    session: SessionTurn | None = None
    head: ActiveHead = SHIPPED


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
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.tracing = tracing or Tracing()  # off unless given
        self.store = store
        if budgets is None and store is not None:
            # A reservation outlives the longest call it can cover, then expires; a stream
            # without stream_timeout_s has no longest (settling after expiry still charges).
            dispatch = config.dispatch
            ttl = dispatch.timeout_s * (dispatch.num_retries + 1) * 2 + 60
            ttl += dispatch.stream_timeout_s or 0.0
            budgets = Budgets(store, reservation_ttl_s=ttl)
        self.budgets = budgets
        self.estimates = OutputEstimates.from_config(store, config) if budgets else None
        self.answers = None
        if store is not None and config.cache.enabled:
            self.answers = AnswerCache(
                store, config.cache, embedder=lambda: self.classifier.embedder,
                # Static and full-model vectors of one model must never be compared.
                embedding_model=lambda: "{model}-{kind}".format_map(
                    {"kind": "transformer", **self.classifier.artifact.embedding}
                ),
            )  # fmt: skip
        self._scores: dict[str, ScoreCache] = {}
        # Each tenant's own head, if one was activated (router.heads); hot-loaded from Redis.
        self.heads = (
            ActiveHeads(store, lambda: self.classifier, refresh_s=config.heads.refresh_s)
            if store is not None
            else None
        )
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_thread: threading.Thread | None = None
        self._classifier = classifier
        self._classifier_loader = classifier_loader or (
            lambda: DifficultyClassifier.load(
                config.classifier.path,
                backend=config.classifier.backend,
                cache_size=config.classifier.cache_size,
            )
        )
        self._dispatcher = dispatcher
        self._verifier_head: VerifierHead | None = None  # loaded by the first cascade using it
        self.shadows = _shadow_runner(self) if store is not None else None
        self.sessions = None
        if store is not None and config.sessions.enabled:
            self.sessions = SessionBook(store, ttl_s=config.sessions.ttl_s)

    @classmethod
    def from_config(
        cls,
        source: str | Path | Config,
        *,
        env: Environment | Mapping[str, str] | None = None,
        redis_url: str | None = None,
    ) -> Router:
        """Build a router from a YAML file (or a validated :class:`Config`).

        Budgets, rate limits and usage need Redis: ``redis_url``, else the config's
        ``redis.url``, else ``REDIS_URL``; with none, requests are served unmetered.
        """
        # A plain mapping (``env={}``) is taken as the whole environment, as before.
        env = env if isinstance(env, Environment) else read_environment(env)
        config = source if isinstance(source, Config) else load_config(source, env.variables)
        configure_litellm()
        url = env.redis_url(explicit=redis_url, configured=config.redis.url)
        store = None
        if url:
            settings = config.redis
            store = Store.from_url(
                url,
                cluster=settings.cluster,
                timeout_s=settings.timeout_s,
                max_connections=settings.max_connections,
            )
        tracing = start_tracing() if config.server.tracing else None
        # Made here, so a server loads LiteLLM at startup rather than on its first request.
        dispatcher = Dispatcher(config=config)
        return cls(config=config, dispatcher=dispatcher, store=store, tracing=tracing)

    @property
    def classifier(self) -> DifficultyClassifier:
        """The difficulty classifier, loaded on first use."""
        if self._classifier is None:
            self._classifier = self._classifier_loader()
        return self._classifier

    @property
    def dispatcher(self) -> Dispatcher:
        """What calls the models, made on first use: it loads LiteLLM, which a router that
        only decides (``thinkroute route``, ``/v1/route``) never needs."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(config=self.config)
        return self._dispatcher

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
        scores: tuple[float, float | None] | None = None,
        session: SessionContext | None = None,
        head: ActiveHead = SHIPPED,
    ) -> RouteDecision:
        """Where a request would go and why, without calling a model.

        ``budget_state`` (from :meth:`Budgets.state`) applies the tenant's
        budget and reasoning-share policy; ``fast_only_reason`` forces the
        fast tier and says why; ``scores`` (this turn's and the previous user
        turn's) skip the classifier when already known; ``session`` (the model
        the conversation is on, each tier's cost of this turn) prices a switch;
        ``head`` is the tenant's own head, whose graded pairs set the threshold
        of a tenant with ``target_quality_kept`` for model ``auto``.
        """
        default_mode = tenant.default_mode if tenant else "balanced"
        if model not in AUTO_MODELS:
            return self._direct(model, tenant, default_mode)
        mode = default_mode if model in ("auto", VERIFY_MODEL) else model.split(":", 1)[1]
        allowed_tiers: tuple[TierName, ...] = ("fast", "reasoning")
        if tenant:
            allowed_tiers = tuple(tenant.allowed_tiers)
        if tenant and tenant.max_latency_ms is not None:
            tenant_limit = tenant.max_latency_ms / 1000.0
            latency_limit_s = min(latency_limit_s or tenant_limit, tenant_limit)
        if requested_effort is not None:
            tier: TierName = "fast" if requested_effort == "none" else "reasoning"
            if tenant and tier not in allowed_tiers:
                raise PermissionDeniedError(
                    f"tenant '{tenant.name}' may not use the {tier} tier",
                    param="reasoning_effort",
                    code="tier_not_allowed",
                )
            target = self._tier_targets().get(tier)
            return RouteDecision(
                tier=tier,
                score=None,
                threshold=None,
                mode=mode,
                reason=EFFORT_REQUESTED,
                model=target.model if target else None,
                reasoning_effort=requested_effort if requested_effort != "enabled" else None,
            )
        if scores is None:
            previous = _previous_turn(messages)
            scores = (
                self.classifier.score_messages(messages),
                self.classifier.score_messages(previous) if previous else None,
            )
        score, previous_score = scores
        tiers: dict[str, TierTarget] = self._tier_targets() or {
            name: TierTarget(model=None, typical_latency_s=TYPICAL_LATENCY_S[name])
            for name in ("fast", "reasoning")
        }
        limits = BudgetLimits(fast_only_reason=fast_only_reason)
        if tenant and budget_state is not None:
            budget = tenant.budget
            limits = budget_limits(
                spent_fraction=budget_state.spent_fraction(tenant),
                degrade_at=budget.degrade_at if budget.on_exhaustion == "degrade" else None,
                recent=budget_state.recent,
                max_reasoning_share=tenant.max_reasoning_share,
                share_window=tenant.reasoning_share_window,
            )
            limits = BudgetLimits(
                limits.threshold_floor, fast_only_reason or limits.fast_only_reason
            )
        thresholds = self.classifier.thresholds
        quality_target = (
            tenant.target_quality_kept if tenant and model in ("auto", VERIFY_MODEL) else None
        )
        calibrated = head.threshold_for(quality_target)
        if calibrated is not None:  # the tenant's quality target, in its default mode's place
            thresholds[mode] = calibrated
        return route_request(
            score,
            mode=mode,
            thresholds=thresholds,
            tiers=tiers,
            previous_score=previous_score,
            latency_limit_s=latency_limit_s,
            threshold_floor=limits.threshold_floor,
            fast_only_reason=limits.fast_only_reason,
            allowed_tiers=allowed_tiers,
            stalled=has_stalled(messages),  # until the human speaks again
            too_long_for_fast=self._too_long_for_fast(messages),
            session=session,
        )

    def _too_long_for_fast(self, messages: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the prompt is past the fast model's context window and fits the
        reasoning model's (a window nobody knows fits everything)."""
        tokens = estimate_prompt_tokens(messages)  # errs high: 3 characters a token
        if tokens <= SMALLEST_WINDOW or not self.config.tiers:
            return False  # every chat model takes this much; LiteLLM's map is not read
        fast = self.config.deployment(self.config.tiers["fast"].model)
        reasoning = self.config.deployment(self.config.tiers["reasoning"].model)
        assert fast is not None and reasoning is not None  # the config checked both
        fast_window, reasoning_window = context_window(fast), context_window(reasoning)
        if fast_window is None or tokens <= fast_window:
            return False
        return reasoning_window is None or tokens <= reasoning_window

    async def plan_route(
        self,
        request: ChatRequest | Mapping[str, Any],
        tenant: TenantConfig | None = None,
        *,
        latency_limit_s: float | None = None,
    ) -> RouteDecision:
        """The decision a completion of ``request`` would get, without calling a model.

        The same path :meth:`acompletion` and :meth:`astream` take: the tenant's
        budget state (reasoning-share cap, budget degrade) is read from Redis
        when it has one, and scores come from the shared score cache. What the
        budget cannot cover is only found when a completion reserves it.
        """
        request = _client_ceiling(_as_request(request), tenant)
        return (await self._route(request, tenant, latency_limit_s)).decision

    def plan_cascade(
        self,
        request: ChatRequest | Mapping[str, Any],
        decision: RouteDecision,
        tenant: TenantConfig | None = None,
    ) -> CascadeChoice | None:
        """Whether a completion decided as ``decision`` would go through the cascade, and
        why (None: no cascade is configured). What the budget cannot cover is only found
        when a completion reserves it."""
        request = _client_ceiling(_as_request(request), tenant)
        is_routed = request.model in AUTO_MODELS and request.requested_effort is None
        return self._cascade_choice(_Routed(decision, is_routed, None, None), request, tenant)

    async def explain_score(self, request: ChatRequest | Mapping[str, Any]) -> dict[str, Any]:
        """Why the classifier scored ``request`` as it did, from its artifact alone.

        The training kinds it sits nearest to (source/subset names and their mean
        gain, never their text) and the structural cues that fired. About one more
        scoring pass, so asked for, never computed by default.
        """
        messages = _as_request(request).messages
        return await asyncio.to_thread(self.classifier.explain_messages, messages)

    # -- answering ----------------------------------------------------------------

    async def acompletion(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        """Route and answer a non-streaming request.

        ``headers`` are the client's, read for cache controls (``cache-control:
        no-cache``); the body's ``cache`` field works too.
        """
        request = _client_ceiling(_as_request(request), tenant)
        if request.stream:
            raise InvalidRequestError("use astream() for a streaming request", param="stream")
        plan = await self._aplan(request, tenant, latency_limit_s, headers or {})
        self.tracing.annotate(_traced(plan, tenant))
        if plan.hit is not None:
            return Completion(response=plan.hit, decision=plan.decision,
                              served=Served(plan.target, is_fallback=False), cost_usd=0.0,
                              cache="hit", timings=Timings(plan.routing_s))  # fmt: skip
        assert plan.ticket is not None  # every miss holds a ticket
        started = time.perf_counter()
        # The ticket is released on leaving the block unsettled: an error, a cancel.
        async with plan.ticket as ticket:
            with self._upstream_span(plan) as span:
                if plan.is_cascaded:
                    response, served, charged = await self._answer_cascaded(plan, request, ticket)
                else:
                    response, served = await self.dispatcher.complete(
                        _upstream_params(request, ticket), plan.target, _fallback(plan, ticket)
                    )
                span.set_attributes(_served(served))
            upstream_s = time.perf_counter() - started
            if not plan.is_cascaded:
                charged = await ticket.settle(served, response.get("usage"))
        await self._store_answer(plan, served, response, tenant)
        await self._keep_session(plan, served, tenant)
        self._shadow(plan, request, tenant, served, response)
        timings = Timings(plan.routing_s, upstream_s, ticket.baseline_usd, ticket.reserved_usd)
        return Completion(response=response, decision=plan.decision, served=served,
                          cost_usd=charged, cache=plan.cache_status, timings=timings,
                          cascade=plan.cascade_label, session=plan.session)  # fmt: skip

    async def astream(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        tenant: TenantConfig | None = None,
        latency_limit_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> StreamingCompletion:
        """Route and start a streaming request; returns once the first chunk is ready.

        A cached answer is replayed as a stream, whichever kind of request stored it.
        """
        request = _client_ceiling(_as_request(request), tenant)
        plan = await self._aplan(request, tenant, latency_limit_s, headers or {})
        self.tracing.annotate(_traced(plan, tenant))
        if plan.hit is not None:
            cached = chunks_from_response(plan.hit, include_usage=request.include_usage)
            return StreamingCompletion(decision=plan.decision,
                                       served=Served(plan.target, is_fallback=False),
                                       chunks=replay(cached), usage=plan.hit.get("usage"),
                                       cache="hit", timings=Timings(plan.routing_s))  # fmt: skip
        assert plan.ticket is not None  # every miss holds a ticket
        started = time.perf_counter()
        if plan.is_cascaded:
            return await self._stream_cascaded(plan, request, tenant, plan.ticket)
        # Released if the stream fails to start; once it has, the stream owns the ticket.
        async with plan.ticket as ticket:
            with self._upstream_span(plan) as span:
                chunks, served = await self.dispatcher.stream(
                    _upstream_params(request, ticket), plan.target, _fallback(plan, ticket)
                )
                span.set_attributes(_served(served))
            timings = Timings(plan.routing_s, time.perf_counter() - started,
                              reserved_usd=ticket.reserved_usd)  # fmt: skip
            await self._keep_session(plan, served, tenant)
            result = StreamingCompletion(decision=plan.decision, served=served, chunks=empty(),
                                         cache=plan.cache_status, timings=timings,
                                         cascade=plan.cascade_label,
                                         session=plan.session)  # fmt: skip

            async def finished(recorded: list[dict[str, Any]]) -> None:
                response = response_from_chunks(recorded)
                await self._store_answer(plan, served, response, tenant)
                self._shadow(plan, request, tenant, served, response)

            result.chunks = metered(chunks, result, ticket, finished,
                                     include_usage=request.include_usage)  # fmt: skip
        return result

    async def _stream_cascaded(
        self, plan: _Plan, request: ChatRequest, tenant: TenantConfig | None, opened: Ticket
    ) -> StreamingCompletion:
        """A cascaded stream: the chosen answer, whole, replayed as chunks (its first token
        waits for the cascade, which is why streams opt in: cascade.streams)."""
        started = time.perf_counter()
        async with opened as ticket:
            with self._upstream_span(plan) as span:
                response, served, charged = await self._answer_cascaded(plan, request, ticket)
                span.set_attributes(_served(served))
        await self._store_answer(plan, served, response, tenant)
        await self._keep_session(plan, served, tenant)
        timings = Timings(plan.routing_s, time.perf_counter() - started, ticket.baseline_usd,
                          ticket.reserved_usd)  # fmt: skip
        chunks = chunks_from_response(response, include_usage=request.include_usage)
        return StreamingCompletion(decision=plan.decision, served=served, chunks=replay(chunks),
                                   cost_usd=charged, usage=response.get("usage"),
                                   cache=plan.cache_status, timings=timings,
                                   cascade=plan.cascade_label, session=plan.session)  # fmt: skip

    def _run_blocking(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` for a blocking method, from outside any running event loop.

        Every blocking call runs on one private event loop in a background thread:
        Redis and HTTP connections belong to the loop that opened them, so a new
        loop per call (``asyncio.run``) would strand them. Use either the blocking
        or the async methods on one Router, not both.
        """
        if self._sync_loop is None:
            self._sync_loop = asyncio.new_event_loop()
            self._sync_thread = threading.Thread(
                target=_run_until_stopped, args=(self._sync_loop,), name="thinkroute-sync",
                daemon=True,
            )  # fmt: skip
            self._sync_thread.start()
        return asyncio.run_coroutine_threadsafe(awaitable, self._sync_loop).result()  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close upstream and Redis connections (the server does this at shutdown)."""
        if self.shadows is not None:
            await self.shadows.aclose()  # before what its comparisons call and write to
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
        if self.store is not None:
            await self.store.aclose()

    def close(self) -> None:
        """Close what the blocking methods opened, and their event loop."""
        loop, self._sync_loop = self._sync_loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        if self._sync_thread is not None:
            self._sync_thread.join()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------

    async def _route(
        self, request: ChatRequest, tenant: TenantConfig | None, latency_limit_s: float | None
    ) -> _Routed:
        """Gather what deciding needs (budget state, scores), then decide."""
        who = _tenant_name(tenant)
        routed = request.model in AUTO_MODELS and request.requested_effort is None
        state = None
        needs_state = tenant is not None and (
            tenant.has_budget or tenant.max_reasoning_share is not None
        )
        with self.tracing.span("thinkroute.route", **{"thinkroute.tenant": who}) as span:
            if self.budgets is not None and tenant is not None and routed and needs_state:
                state = await tolerant(tenant, self.budgets.state(tenant))
            head = await self.heads.get(who) if self.heads and tenant and routed else SHIPPED
            session = self._session_turn(request, tenant) if routed else None
            scores = None
            if routed:
                scores, last = await asyncio.gather(
                    self._ascores(request.messages, who, head), self._last_turn(session, tenant)
                )
                if session is not None and last is not None:
                    session.last = last
                    session.costs = turn_costs(self.config, request.messages, last)
            decision = self._decide_request(
                request, tenant, latency_limit_s, state, None, scores, session, head
            )
            span.set_attributes(decision_attributes(decision, who))
        return _Routed(decision, routed, state, scores, session, head)

    def _session_turn(
        self, request: ChatRequest, tenant: TenantConfig | None
    ) -> SessionTurn | None:
        """This turn as part of its session, where sessions are kept and one is named."""
        if self.sessions is None or tenant is None or not tenant.sessions:
            return None
        if not self.config.tiers:
            return None  # decisions only: no model whose cache a session could keep
        digest = session_name(request)
        if digest is None:
            return None
        return SessionTurn(digest, estimate_prompt_tokens(request.messages))

    async def _last_turn(
        self, session: SessionTurn | None, tenant: TenantConfig | None
    ) -> LastTurn | None:
        if session is None or self.sessions is None or tenant is None:
            return None
        # Without Redis the session is unknown and the turn is decided on its own.
        with contextlib.suppress(StoreUnavailableError):
            return await self.sessions.last(tenant.name, session.digest)
        return None

    async def _keep_session(self, plan: _Plan, served: Served, tenant: TenantConfig | None) -> None:
        """Note which model answered a session's turn: the next turn prices a switch from it."""
        session = plan.session
        if session is None or self.sessions is None or tenant is None:
            return
        model = served.target.model_name
        fast = self.config.tiers["fast"].model
        tier = "fast" if model == fast else "reasoning"
        session.served(model, tier)
        with contextlib.suppress(StoreUnavailableError):
            await self.sessions.record(
                tenant.name, session.digest, model=model, tier=tier,
                prompt_tokens=session.prompt_tokens, switched=session.switched,
                cache_cost_usd=session.cache_cost_usd,
            )  # fmt: skip

    async def _aplan(
        self,
        request: ChatRequest,
        tenant: TenantConfig | None,
        latency_limit_s: float | None,
        headers: Mapping[str, str],
    ) -> _Plan:
        """Decide, look in the cache, and on a miss reserve the estimated cost.

        A tenant whose budget covers only the fast tier is degraded to it here,
        and the degraded request gets its own cache lookup.
        """
        started = time.perf_counter()
        routed = await self._route(request, tenant, latency_limit_s)
        plan = self._plan(routed.decision, tenant)
        plan.session = routed.session
        plan.cascade = self._cascade_choice(routed, request, tenant)
        plan.routing_s = time.perf_counter() - started
        if await self._look_up(plan, request, tenant, headers):
            return plan
        if plan.is_cascaded:
            try:
                plan.ticket = await self._open_cascade_ticket(plan, request, tenant, routed)
                return plan
            except BudgetExceededError:
                # The worst case (three calls) does not fit: the prompt-only decision instead.
                plan.cascade = CascadeChoice(False, CASCADE_BUDGET)
        try:
            plan.ticket = await open_ticket(
                self.config, self.budgets, tenant, request, plan.decision, plan.target,
                routed=routed.is_routed, estimates=self.estimates,
            )  # fmt: skip
        except BudgetExceededError:
            degradable = tenant is not None and tenant.budget.on_exhaustion == "degrade"
            if plan.decision.tier != "reasoning" or not degradable:
                raise
            decision = self._decide_request(
                request, tenant, latency_limit_s, routed.state, BUDGET_DEGRADED, routed.scores,
                routed.session, routed.head,
            )  # fmt: skip
            plan = self._plan(decision, tenant)
            plan.session = routed.session
            plan.cascade = self._cascade_choice(
                dataclasses.replace(routed, decision=decision), request, tenant
            )
            plan.routing_s = time.perf_counter() - started
            if await self._look_up(plan, request, tenant, headers):
                return plan
            plan.ticket = await open_ticket(
                self.config, self.budgets, tenant, request, plan.decision, plan.target,
                routed=routed.is_routed, estimates=self.estimates,
            )  # fmt: skip
        return plan

    def _cascade_choice(
        self, routed: _Routed, request: ChatRequest, tenant: TenantConfig | None
    ) -> CascadeChoice | None:
        """Whether this request goes through the cascade (None: no cascade configured)."""
        settings = self.config.cascade
        if settings is None or not routed.is_routed:
            return None
        return cascade_choice(
            routed.decision,
            verifier=settings.verifier,
            band=settings.band,
            tenant_enabled=tenant.cascade if tenant else True,
            forced=request.model == VERIFY_MODEL,
            stream=request.stream,
            streams_cascaded=settings.streams,
            allowed_tiers=tuple(tenant.allowed_tiers) if tenant else ("fast", "reasoning"),
        )

    def _cascade_targets(self) -> CascadeTargets[Target]:
        settings = self.config.cascade
        assert settings is not None  # only asked for a cascaded plan
        fast, reasoning = self.config.tiers["fast"], self.config.tiers["reasoning"]
        fast_deployment = self.config.deployment(fast.model)
        reasoning_deployment = self.config.deployment(reasoning.model)
        assert fast_deployment is not None and reasoning_deployment is not None
        verifier: Target | str = SELF
        if settings.verifier != SELF:
            verifier_deployment = self.config.deployment(settings.verifier)
            assert verifier_deployment is not None  # the config checked it
            verifier = Target(verifier_deployment)
        return CascadeTargets(
            fast=Target.for_tier(fast_deployment, fast, fast.reasoning_effort),
            verifier=verifier,  # type: ignore[arg-type]  # a Target or SELF
            reasoning=Target.for_tier(reasoning_deployment, reasoning, reasoning.reasoning_effort),
        )

    async def _open_cascade_ticket(
        self, plan: _Plan, request: ChatRequest, tenant: TenantConfig | None, routed: _Routed
    ) -> Ticket:
        """One reservation for the cascade's worst case: fast, verifier and reasoning calls.
        It is opened as a fast request (the call always made), the others reserved with it."""
        targets = self._cascade_targets()
        verifier = targets.fast if targets.verifier == SELF else targets.verifier
        as_fast = dataclasses.replace(plan.decision, tier="fast", model=targets.fast.model_name)
        return await open_ticket(
            self.config, self.budgets, tenant, request, as_fast, targets.fast,
            routed=routed.is_routed, estimates=self.estimates,
            also=(verifier, targets.reasoning),  # type: ignore[arg-type]  # SELF resolved
        )  # fmt: skip

    def _verifier_rule(self, decision: RouteDecision) -> Callable[[str | None, str | None], bool]:
        """Escalate where the verifier head's P(reasoning better) reaches the mode's threshold."""
        if self._verifier_head is None:
            self._verifier_head = VerifierHead.load()
        head = self._verifier_head
        threshold = head.thresholds_[decision.mode]
        score = decision.score or 0.0

        def escalates(fast_text: str | None, verifier_text: str | None) -> bool:
            row = answer_features(score, fast_text, verifier_text)
            return bool(head.score([row])[0] >= threshold)

        return escalates

    async def _answer_cascaded(
        self, plan: _Plan, request: ChatRequest, ticket: Ticket
    ) -> tuple[dict[str, Any], Served, float]:
        """Run the cascade, charge every call it made, and say which tier answered.

        Sets ``plan.decision`` to the tier whose answer is sent (reason
        ``verifier_agreed`` or ``verifier_disagreed`` where the cascade changed it).
        """
        settings = self.config.cascade
        assert settings is not None and plan.cascade is not None
        decision = plan.decision
        targets = self._cascade_targets()

        async def call(target: Target, asked: ChatRequest) -> dict[str, Any]:
            response, _ = await self.dispatcher.complete(
                _upstream_params(asked, ticket), target, None
            )
            return response

        answer = await answer_cascaded(
            request, call=call, targets=targets,
            decided="fast" if decision.tier == "fast" else "reasoning",
            may_fall_back=_fallback(plan, ticket) is not None or decision.tier == "reasoning",
            verifier_timeout_s=settings.verifier_timeout_s,
            escalate_when=self._verifier_rule(decision) if settings.verifier_head else None,
        )  # fmt: skip
        plan.cascade = CascadeChoice(True, answer.label)
        ticket.cascade = answer.label  # counted per outcome in the tenant's usage
        by = answer.answered_by
        if answer.response is None or by is None:
            await _settle_calls(ticket, answer, targets.fast)
            raise answer.error or UpstreamUnavailableError("the cascade produced no answer")
        tier: TierName = "fast" if by is targets.fast else "reasoning"
        is_fallback = tier == "reasoning" and decision.tier == "fast" and not answer.escalated
        if answer.label in ("agreed", "kept") or answer.escalated:
            reason = {"agreed": VERIFIER_AGREED, "kept": VERIFIER_HEAD_KEPT}.get(
                answer.label, VERIFIER_DISAGREED
            )
            plan.decision = dataclasses.replace(
                decision, tier=tier, reason=reason, model=by.model_name,
                reasoning_effort=by.reasoning_effort,
            )  # fmt: skip
        ticket.decision = plan.decision  # the books count the tier that answered
        charged = await _settle_calls(ticket, answer, targets.fast)
        return answer.response, Served(by, is_fallback=is_fallback), charged

    async def _look_up(
        self,
        plan: _Plan,
        request: ChatRequest,
        tenant: TenantConfig | None,
        headers: Mapping[str, str],
    ) -> bool:
        """Find the planned request's answer in the cache (each model has its own entries)."""
        if self.answers is None:
            return False
        who, target = _tenant_name(tenant), plan.target
        plan.cache = self.answers.entry(request, tenant=who, target=target, headers=headers)
        with self.tracing.span("thinkroute.cache", **{"thinkroute.tenant": who}) as span:
            plan.hit = await self.answers.lookup(plan.cache, request, tenant=who, target=target)
            span.set_attribute("thinkroute.cache", plan.cache_status)
        if plan.hit is None:
            return False
        await self._record_cache_hit(tenant)
        return True

    def _upstream_span(self, plan: _Plan) -> contextlib.AbstractContextManager[Any]:
        model = plan.target.model_name
        attributes = {"thinkroute.tier": plan.decision.tier, "thinkroute.model": model}
        return self.tracing.span("thinkroute.upstream", kind="client", **attributes)

    async def _ascores(
        self, messages: Sequence[Mapping[str, Any]], tenant: str, head: ActiveHead = SHIPPED
    ) -> tuple[float, float | None]:
        """This turn's score and the previous user turn's, for a routed request.

        Scores another replica computed come from Redis; the rest from the
        classifier (and the tenant's own ``head``, if it has one), in a thread,
        since embedding is CPU work the event loop must not wait on.
        """
        if not self.is_classifier_loaded:
            await asyncio.to_thread(lambda: self.classifier)
        classifier = self.classifier
        previous = _previous_turn(messages)
        texts = [classifier.text_of(messages)]
        if previous:
            texts.append(classifier.text_of(previous))
        scores: dict[str, float] = {"": 0.0}  # nothing to score: no sign of difficulty
        wanted = [text for text in dict.fromkeys(texts) if text not in scores]
        shared = self._score_cache(head)
        if shared is not None and wanted:
            for text, score in zip(
                wanted, await shared.get_many(wanted, tenant=tenant), strict=True
            ):
                if score is not None:
                    scores[text] = score
        missing = [text for text in wanted if text not in scores]
        if missing:
            # Only a tenant's own head is passed: a scorer an embedder gave stays callable as is.
            extra = {} if head.head is None else {"tenant_head": head.head}
            computed = await asyncio.to_thread(lambda: classifier.score_texts(missing, **extra))
            fresh = {text: float(score) for text, score in zip(missing, computed, strict=True)}
            scores.update(fresh)
            if shared is not None:
                await shared.put_many(fresh, tenant=tenant)
        return scores[texts[0]], scores[texts[1]] if previous else None

    def _score_cache(self, head: ActiveHead = SHIPPED) -> ScoreCache | None:
        if self.store is None:
            return None
        namespace = head.namespace(self.classifier.fingerprint)  # a head's scores are its own
        if namespace not in self._scores:
            self._scores[namespace] = ScoreCache(self.store, namespace=namespace)
        return self._scores[namespace]

    async def _store_answer(
        self,
        plan: _Plan,
        served: Served,
        response: dict[str, Any],
        tenant: TenantConfig | None,
    ) -> None:
        # A fallback's answer (or a cascade's other tier's) is not what the key's model
        # would have said: not cached.
        if self.answers is None or served.is_fallback or served.target != plan.target:
            return
        ttl = (tenant.cache_ttl_s if tenant else None) or self.answers.settings.ttl_s
        await self.answers.save(plan.cache, response, tenant=_tenant_name(tenant), ttl_s=ttl)

    def _shadow(
        self,
        plan: _Plan,
        request: ChatRequest,
        tenant: TenantConfig | None,
        served: Served,
        response: dict[str, Any],
    ) -> None:
        """Offer an answered request for a shadow comparison (router.upstream.shadow)."""
        tier = plan.decision.tier
        if self.shadows is None or tenant is None or served.is_fallback or tier == "direct":
            return
        self.shadows.offer(ShadowJob(tenant, request, plan.decision, tier, response))

    async def _record_cache_hit(self, tenant: TenantConfig | None) -> None:
        if self.budgets is None or tenant is None:
            return
        # A hit is free: losing its count to a Redis fault costs nobody anything.
        with contextlib.suppress(StoreUnavailableError):
            await self.budgets.record_cache_hit(tenant)

    def _decide_request(
        self,
        request: ChatRequest,
        tenant: TenantConfig | None,
        latency_limit_s: float | None,
        state: BudgetState | None,
        fast_only_reason: str | None,
        scores: tuple[float, float | None] | None,
        session: SessionTurn | None = None,
        head: ActiveHead = SHIPPED,
    ) -> RouteDecision:
        decision = self.decide(
            request.messages,
            model=request.model,
            tenant=tenant,
            latency_limit_s=latency_limit_s,
            requested_effort=request.requested_effort,
            budget_state=state,
            fast_only_reason=fast_only_reason,
            scores=scores,
            session=session.context if session is not None else None,
            head=head,
        )
        if request.reasoning_ceiling is None or decision.tier == "direct":
            return decision
        fast = self._tier_targets().get("fast") or TierTarget(model=None)
        return cap_reasoning(decision, request.reasoning_ceiling, fast)

    def _plan(self, decision: RouteDecision, tenant: TenantConfig | None) -> _Plan:
        """Where a decided request is sent: its target, and the other tier as fallback."""
        if not self.is_dispatch_configured and decision.tier != "direct":
            raise UpstreamUnavailableError(NO_PROVIDER, code="no_provider_configured")
        deployment = self.config.deployment(decision.model or "")
        assert deployment is not None  # decisions only name configured models
        if decision.tier == "direct":
            return _Plan(decision, Target(deployment, decision.reasoning_effort), None)
        # The tier's thinking settings too (dispatch keeps a client's own reasoning first).
        tier = self.config.tiers[decision.tier]
        target = Target.for_tier(deployment, tier, decision.reasoning_effort)
        fallback = None
        other_tier: TierName = "reasoning" if decision.tier == "fast" else "fast"
        if tenant is None or other_tier in tenant.allowed_tiers:
            other = self.config.tiers[other_tier]
            other_deployment = self.config.deployment(other.model)
            assert other_deployment is not None
            fallback = Target.for_tier(other_deployment, other, other.reasoning_effort)
        return _Plan(decision, target, fallback)

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

    # -- the SDK's face: LiteLLM's call shape, openai types (router.sdk) ------------

    # Also takes model=..., messages=..., **params: the wrapper widens the signature.
    acompletion = sdk.openai_face(acompletion)  # type: ignore[assignment]
    completion = sdk.completion
    aresponses = sdk.aresponses
    responses = sdk.responses
    __aenter__ = sdk.aenter
    __aexit__ = sdk.aexit


def _shadow_runner(router: Router) -> ShadowRunner:
    """Shadow comparisons over the router's dispatcher and Redis (docs/quality.md)."""
    assert router.store is not None

    async def call(params: dict[str, Any], target: Target) -> dict[str, Any]:
        response, _ = await router.dispatcher.complete(params, target, None)
        return response

    async def features(messages: Sequence[Mapping[str, Any]]) -> list[float] | None:
        # The head's input (embedding, then text features), kept in place of the text.
        classifier = router.classifier
        vector = await asyncio.to_thread(classifier.input_features, messages)
        return [round(float(x), 6) for x in vector]

    records = ShadowRecords(router.store, max_records=router.config.server.decision_log_max_entries)
    return ShadowRunner(config=router.config, call=call, records=records,
                        budgets=router.budgets, features=features)  # fmt: skip


def _tenant_name(tenant: TenantConfig | None) -> str:
    return tenant.name if tenant else ANONYMOUS_TENANT


def _traced(plan: _Plan, tenant: TenantConfig | None) -> dict[str, Any]:
    """What the request's span says of a planned request: tenant, decision, cache."""
    return {
        "thinkroute.tenant": tenant and tenant.name,
        "thinkroute.tier": plan.decision.tier,
        "thinkroute.model": plan.decision.model,
        "thinkroute.cache": plan.cache_status,
    }


def _upstream_params(request: ChatRequest, ticket: Ticket) -> dict[str, Any]:
    """The request as sent upstream: near the end of a budget, output capped at what the
    reservation covers (only when the client set no limit of its own)."""
    params = request.params_for_upstream()
    if ticket.output_cap is not None:
        params["max_tokens"] = ticket.output_cap
    return params


def _fallback(plan: _Plan, ticket: Ticket) -> Target | None:
    """The tier to try if the chosen one fails, unless that would spend past what the
    budget allows: a request of a tenant degraded to the fast tier, or near the end of
    its budget, never falls back to the pricier reasoning tier."""
    is_upward = plan.decision.tier == "fast"
    if is_upward and (plan.decision.reason == BUDGET_DEGRADED or ticket.is_budget_tight):
        return None
    return plan.fallback


async def _settle_calls(ticket: Ticket, answer: CascadeAnswer[Target], fast: Target) -> float:
    """Charge every call a cascade made to its one ticket (nothing made: released)."""
    if not answer.billed:
        await ticket.release()
        return 0.0
    (first, usage), *rest = answer.billed
    # Only the fast call's output teaches the ticket's (fast) output estimate.
    primary = Served(first, is_fallback=first is not fast)
    return await ticket.settle(primary, usage, also=[(t.deployment, u) for t, u in rest])


def _served(served: Served) -> dict[str, Any]:
    return {"thinkroute.served_model": served.target.model_name,
            "thinkroute.fallback": served.is_fallback}  # fmt: skip


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _client_ceiling(request: ChatRequest, tenant: TenantConfig | None) -> ChatRequest:
    """For a tenant with ``client_reasoning: route``, an ``auto`` request's own reasoning
    becomes a ceiling: taken out of what is sent, and routed under (policy.cap_reasoning).
    Coding agents set thinking on every call; respected, nothing they send is routed."""
    effort = request.requested_effort
    routes = tenant is not None and tenant.client_reasoning == "route"
    if effort is None or not routes or request.model not in AUTO_MODELS:
        return request
    params = {k: v for k, v in request.params.items() if k not in CLIENT_REASONING_PARAMS}
    return dataclasses.replace(request, params=params, reasoning_ceiling=effort)


def _as_request(request: ChatRequest | Mapping[str, Any]) -> ChatRequest:
    return request if isinstance(request, ChatRequest) else parse_chat_request(dict(request))


def _previous_turn(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """The conversation as it stood at the previous user turn, if this is a follow-up."""
    user_turns = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(user_turns) < 2:
        return None
    return list(messages[: user_turns[-2] + 1])
