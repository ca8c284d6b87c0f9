"""A request's money, from the reservation before dispatch to the charge after it.

:func:`open_ticket` reserves what the chosen model could cost against the
tenant's budgets and hands back a :class:`Ticket`, the one owner of that
reservation. Whoever holds the ticket settles it (the real cost, from usage) or
lets ``async with`` release it; a stream takes the ticket over and settles it
when it closes. Settling and releasing run shielded from cancellation, and the
ticket closes once: a reservation is never leaked by a cancelled task and never
charged twice.

    async with open_ticket(config, budgets, tenant, request, decision, target,
                           routed=True) as ticket:
        response = await call_the_model(...)
        await ticket.settle(served, response["usage"])
    # left without settling (an error, a cancel): the reservation is released

Without Redis a tenant that fails open is served on an empty ticket, one that
fails closed is refused; a Redis that is only slow refuses budgeted tenants
(503, retry) rather than serving them unmetered.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Generator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio

from router.config import Config, ModelDeployment, TenantConfig
from router.errors import StoreTimeoutError, StoreUnavailableError
from router.policy import RouteDecision
from router.requests import ChatRequest
from router.state.budgets import BudgetState, Reservation, to_micro
from router.state.output_estimates import Estimate, OutputEstimates, Sample
from router.upstream.dispatch import Served, Target, cost_usd

__all__ = [
    "BudgetBook",
    "Ticket",
    "estimate_prompt_tokens",
    "open_ticket",
    "prompt_token_bound",
    "tolerant",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Rate limits count estimated tokens: OpenAI's tokenizers average about 4 characters a
# token in English, so 3 errs high; each message adds a few tokens of framing.
CHARS_PER_TOKEN = 3.0
TOKENS_PER_MESSAGE = 4
# What a stream that ended early produced, when no usage says: about 4 characters a token.
CHARS_PER_OUTPUT_TOKEN = 4.0
# "Close to the end of a budget": fewer than this many more reservations like this one
# fit. A request without max_tokens is then capped at the output it reserved.
CLOSE_TO_LIMIT_RESERVATIONS = 20


class BudgetBook(Protocol):
    """What accounting needs of a budget store: :class:`router.state.budgets.Budgets`,
    or the in-memory one the tests use."""

    async def state(self, tenant: TenantConfig) -> BudgetState: ...

    async def reserve(
        self,
        tenant: TenantConfig,
        *,
        amount_usd: float,
        tokens: int,
        routed: tuple[str, float] | None = None,
        reservation_id: str | None = None,
    ) -> Reservation: ...

    async def settle(
        self,
        reservation: Reservation,
        *,
        cost_usd: float,
        usage: dict[str, Any] | None,
        tier: str,
        routed: bool,
        baseline_usd: float,
        sample: Sample | None = None,
        cascade: str | None = None,
    ) -> int: ...

    async def release(self, reservation: Reservation) -> None: ...

    async def record_cache_hit(self, tenant: TenantConfig) -> None: ...


@dataclass
class Ticket:
    """Owns one request's reservation: settles or releases it, exactly once.

    ``output_cap``: when the budget is nearly spent and the client set no
    ``max_tokens``, the output the reservation covers, to pass upstream as the limit.
    """

    budgets: BudgetBook | None
    tenant: TenantConfig | None
    reservation: Reservation | None
    decision: RouteDecision
    prompt_tokens_estimate: int
    baseline: ModelDeployment | None  # the reasoning tier, for "savings against always-reasoning"
    routed: bool
    output_tokens_reserved: int = 0
    choices: int = 1
    output_cap: int | None = None
    # The estimate a request without max_tokens reserved (None: the client's limit did).
    output_estimate: Estimate | None = None
    # Learns from this request's real output when it settles; the tier it is counted as.
    estimates: OutputEstimates | None = None
    tier: str = "fast"
    # What was held against the budget for this request, in USD (0: nothing held).
    reserved_usd: float = 0.0
    # A cut stream of a model that reasons out of sight is charged its reserved output.
    reasons_hidden: bool = False
    # Set by settle(): what always-reasoning would have cost for the same usage, in USD.
    baseline_usd: float = 0.0
    # What this request's cascade did (agreed, escalated, ...), booked with its usage.
    cascade: str | None = None
    _closed: bool = False
    _handed_over: bool = False

    @property
    def is_closed(self) -> bool:
        """Settled or released: nothing more will reach the books."""
        return self._closed

    @property
    def is_close_to_limit(self) -> bool:
        """Whether this request's budget could pay for only a few more like it."""
        held = self.reservation
        if held is None or held.room_micro is None:
            return False
        return held.room_micro < CLOSE_TO_LIMIT_RESERVATIONS * held.amount_micro

    @property
    def is_budget_tight(self) -> bool:
        """Close to the limit, or past the point where the tenant is degraded to the fast
        tier: no spending beyond what was reserved (no fallback to a pricier tier)."""
        held, tenant = self.reservation, self.tenant
        if self.is_close_to_limit:
            return True
        if held is None or held.spent is None or tenant is None:
            return False
        budget = tenant.budget
        is_degrading = budget.on_exhaustion == "degrade"
        return is_degrading and held.spent.spent_fraction(tenant) >= budget.degrade_at

    async def __aenter__(self) -> Ticket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._handed_over:
            await self.release()

    def hand_over(self) -> Ticket:
        """Give the ticket to a new owner (a stream): leaving ``async with`` keeps it open."""
        self._handed_over = True
        return self

    async def settle(
        self,
        served: Served,
        usage: Mapping[str, Any] | None,
        *,
        produced_text: str | None = None,
        also: Sequence[tuple[ModelDeployment, Mapping[str, Any]]] = (),
    ) -> float:
        """Charge the real cost; returns it in USD, rounded to the micro-dollar.

        With no usage (a stream cut off by either side) the charge is for what was
        produced: the estimated prompt plus the streamed text's tokens, and for a model
        that reasons out of sight at least the output reserved (its hidden reasoning is
        billed by the provider but reported only at the end). ``also``: the other calls
        made for this request (a cascade's verifier and escalation), each with its usage,
        charged with it.
        """
        sample = self._sample(served, usage)
        if not usage and produced_text is not None:
            produced = math.ceil(len(produced_text) / CHARS_PER_OUTPUT_TOKEN)
            if self.reasons_hidden:
                produced = max(produced, self.output_tokens_reserved)
            usage = {"prompt_tokens": self.prompt_tokens_estimate, "completion_tokens": produced}
        calls = [(served.target.deployment, dict(usage or {})), *((d, dict(u)) for d, u in also)]
        usage = _summed([used for _, used in calls])
        charged = sum(to_micro(cost_usd(deployment, used)) for deployment, used in calls) / 1e6
        if self._closed:
            return charged
        self._closed = True
        baseline = charged
        if self.baseline is not None:
            baseline = max(cost_usd(self.baseline, used) for _, used in calls)
        # A lower bound: the reasoning model would also have spent reasoning tokens.
        self.baseline_usd = max(baseline, charged)
        if self.budgets is None or self.reservation is None:
            return charged
        # Shielded: a cancelled task cancels its own cleanup's awaits too, and the money
        # was spent whether or not the client is still there.
        with anyio.CancelScope(shield=True):
            try:
                await self.budgets.settle(
                    self.reservation,
                    cost_usd=charged,
                    usage=usage,
                    tier=self.decision.tier,
                    routed=self.routed,
                    baseline_usd=baseline,
                    sample=sample,
                    cascade=self.cascade,
                )
            except StoreUnavailableError:
                # The reservation expires and is swept; this charge is lost to the books.
                logger.error(
                    "could not settle $%.6f for tenant %s: Redis is unavailable",
                    charged,
                    self.reservation.tenant,
                )
        if sample is not None and self.estimates is not None and self.tenant is not None:
            self.estimates.forget(self.tenant.name, self.tier)
        return charged

    def _sample(self, served: Served, usage: Mapping[str, Any] | None) -> Sample | None:
        """This request's output for the learned estimate, if it tells what the tier's
        answers take: real usage (not a cut stream's guess), of the tier reserved for (no
        fallback). An answer that reached the client's own limit says nothing of the
        tier and is left out; one that reached the cap near a budget's end is counted one
        bucket above the cap (it wanted more), so censored answers push the estimate up."""
        if self.estimates is None or self.tenant is None or not usage or served.is_fallback:
            return None
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        # OpenAI counts reasoning in completion_tokens; a provider that does not is covered.
        produced = max(completion, int(details.get("reasoning_tokens") or 0))
        per_choice = math.ceil(produced / max(self.choices, 1))
        if self.output_estimate is None:  # the client's max_tokens bound this answer
            if per_choice >= self.output_tokens_reserved:
                return None
        elif self.output_cap is not None and per_choice >= self.output_cap:
            per_choice = self.output_cap + 1
        return self.estimates.sample(self.tenant.name, self.tier, per_choice)

    async def release(self) -> None:
        """Return the reservation of a call that failed: nothing is charged."""
        if self._closed:
            return
        self._closed = True
        if self.budgets is not None and self.reservation is not None:
            await _release(self.budgets, self.reservation)


class _OpeningTicket:
    """``open_ticket(...)``: awaited, the ticket; or ``async with``, owned by the block."""

    def __init__(self, opening: Awaitable[Ticket]) -> None:
        self._opening = opening
        self._ticket: Ticket | None = None

    def __await__(self) -> Generator[Any, None, Ticket]:
        return self._opening.__await__()

    async def __aenter__(self) -> Ticket:
        self._ticket = await self._opening
        return self._ticket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._ticket is not None
        await self._ticket.__aexit__(exc_type, exc, traceback)


def open_ticket(
    config: Config,
    budgets: BudgetBook | None,
    tenant: TenantConfig | None,
    request: ChatRequest,
    decision: RouteDecision,
    target: Target,
    *,
    routed: bool,
    estimates: OutputEstimates | None = None,
    also: Sequence[Target] = (),
) -> _OpeningTicket:
    """Reserve the request's cost; raises BudgetExceeded or RateLimited if refused.

    The amount reserved is an upper bound on the prompt (its UTF-8 bytes: a token
    is at least one byte) plus ``max_tokens``, or else the tier's typical output:
    with ``estimates``, the tenant's learned quantile once known, else the config's
    ``output_token_estimates``; output is capped at that when the budget is nearly
    spent, so a request near the end cannot cost more than it reserved. ``also``: other
    targets the request may call besides ``target`` (a cascade's verifier and
    escalation), reserved with it at their tiers' fixed output estimates.
    """
    return _OpeningTicket(
        _open_ticket(
            config,
            budgets,
            tenant,
            request,
            decision,
            target,
            routed=routed,
            estimates=estimates,
            also=also,
        )  # fmt: skip
    )


async def _open_ticket(
    config: Config,
    budgets: BudgetBook | None,
    tenant: TenantConfig | None,
    request: ChatRequest,
    decision: RouteDecision,
    target: Target,
    *,
    routed: bool,
    estimates: OutputEstimates | None,
    also: Sequence[Target],
) -> Ticket:
    prompt_tokens = estimate_prompt_tokens(request.messages)
    reasoning_tier = config.tiers.get("reasoning")
    baseline = config.deployment(reasoning_tier.model) if reasoning_tier else None
    tier = _tier_of(config, decision, target)
    ticket = Ticket(budgets, tenant, None, decision, prompt_tokens, baseline, routed)
    ticket.reasons_hidden = tier == "reasoning"
    ticket.tier = tier
    output_tokens, is_client_limit = _output_tokens(config, request, tier)
    if tenant is not None:
        ticket.estimates = estimates  # it learns from every settled request
    if not is_client_limit:
        ticket.output_estimate = Estimate(output_tokens, False, 0)
        if estimates is not None and tenant is not None and _is_metered(tenant):
            learned = await _learned(estimates, tenant, tier, output_tokens)
            ticket.output_estimate = learned or ticket.output_estimate
            output_tokens = ticket.output_estimate.output_tokens
    ticket.output_tokens_reserved = output_tokens
    if budgets is None or tenant is None:
        return ticket
    n = int(request.params.get("n") or 1)
    ticket.choices = n
    prompt_bound = prompt_token_bound(request)
    bound = cost_usd(
        target.deployment, {"prompt_tokens": prompt_bound, "completion_tokens": output_tokens * n}
    )
    tokens = prompt_tokens + output_tokens * n
    for other in also:
        other_output, _ = _output_tokens(config, request, _target_tier(config, other))
        other_usage = {"prompt_tokens": prompt_bound, "completion_tokens": other_output * n}
        bound += cost_usd(other.deployment, other_usage)
        tokens += prompt_tokens + other_output * n
    recent = (decision.tier, decision.score) if routed and decision.score is not None else None
    reservation_id = uuid.uuid4().hex
    try:
        ticket.reservation = await budgets.reserve(
            tenant, amount_usd=bound, tokens=tokens,
            routed=recent, reservation_id=reservation_id,
        )  # fmt: skip
    except (StoreUnavailableError, anyio.get_cancelled_exc_class()) as exc:
        # Cancelled or failed, the script may have run: give back what it may have reserved
        # under this id. Not for a tenant served anyway through a slow Redis: its reservation
        # holds no money, and a second wait on Redis would only delay the answer.
        is_served = isinstance(exc, StoreUnavailableError) and _may_go_on_without_store(tenant, exc)
        if not (is_served and isinstance(exc, StoreTimeoutError)):
            lost = Reservation(reservation_id, tenant.name, to_micro(bound), 0)
            await _release(budgets, lost)
        if not is_served:
            raise
    if ticket.reservation is not None:
        ticket.reserved_usd = ticket.reservation.amount_micro / 1e6
    if ticket.is_close_to_limit and not is_client_limit:
        ticket.output_cap = output_tokens
    return ticket


def _summed(usages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Token counts of several calls added up, for the books (one request, many calls)."""
    if len(usages) == 1:
        return dict(usages[0])
    total: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0}
    reasoning = 0
    for used in usages:
        total["prompt_tokens"] += int(used.get("prompt_tokens") or 0)
        total["completion_tokens"] += int(used.get("completion_tokens") or 0)
        details = used.get("completion_tokens_details") or {}
        reasoning += int(details.get("reasoning_tokens") or 0)
    total["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return total


def _is_metered(tenant: TenantConfig) -> bool:
    """Whether the amount a request reserves matters: money or token budgets to check."""
    limits = tenant.budget.per_request_usd, tenant.rate_limits.tokens_per_minute
    return tenant.has_budget or any(limit is not None for limit in limits)


async def _learned(
    estimates: OutputEstimates, tenant: TenantConfig, tier: str, cold_start: int
) -> Estimate | None:
    """The tenant's learned estimate; None (the cold-start one) when Redis cannot say."""
    try:
        return await estimates.estimate(tenant.name, tier, cold_start)
    except StoreUnavailableError:
        return None


async def _release(budgets: BudgetBook, reservation: Reservation) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await budgets.release(reservation)
        except StoreUnavailableError:
            logger.warning("could not release a reservation; it will expire")


async def tolerant(tenant: TenantConfig, operation: Awaitable[_T]) -> _T | None:
    """Await a Redis operation; without Redis a tenant that fails open goes on without it.

    A Redis that only answered slowly is not down: a tenant with a budget is refused
    (503, retry) rather than served unmetered.
    """
    try:
        return await operation
    except StoreUnavailableError as exc:
        if not _may_go_on_without_store(tenant, exc):
            raise
        return None


def _may_go_on_without_store(tenant: TenantConfig, failure: StoreUnavailableError) -> bool:
    """Whether a tenant is served through this Redis failure: not if it fails closed, and
    not through a timeout if it has a budget (a slow Redis is not down)."""
    if tenant.on_store_failure == "closed":
        return False
    return not (isinstance(failure, StoreTimeoutError) and tenant.has_budget)


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """An upper-leaning estimate of a chat's prompt tokens, without a tokenizer."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part.get("text", ""))) for part in content)
        for call in message.get("tool_calls") or ():
            chars += len(str(call))
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def prompt_token_bound(request: ChatRequest) -> int:
    """At least as many tokens as any byte-level tokenizer makes of the prompt.

    Every token of a byte-level BPE (OpenAI's, Anthropic's, Llama's) covers at least one
    byte, so the UTF-8 bytes of everything sent bound it: messages as JSON (roles, tool
    calls and content parts included) and the tool definitions. Images are billed by
    size, not bytes of their URL, and are not bounded here.
    """
    sent: dict[str, Any] = {"messages": request.messages}
    if request.params.get("tools"):
        sent["tools"] = request.params["tools"]
    # Compact JSON: every byte of content is still counted, and the framing left (about
    # 28 bytes a message) still exceeds the few tokens a chat template adds per message.
    compact = json.dumps(sent, ensure_ascii=False, separators=(",", ":"))
    return len(compact.encode("utf-8", "surrogatepass"))


def _tier_of(config: Config, decision: RouteDecision, target: Target) -> str:
    """The tier a request's output is estimated as: a direct model by its settings."""
    if decision.tier != "direct":
        return decision.tier
    return _target_tier(config, target)


def _target_tier(config: Config, target: Target) -> str:
    """The tier a model call's output is estimated as, from its model and effort."""
    thinks = target.reasoning_effort not in (None, "none")
    reasoning = config.tiers.get("reasoning")
    is_reasoning_model = reasoning is not None and reasoning.model == target.model_name
    return "reasoning" if thinks or is_reasoning_model else "fast"


def _output_tokens(config: Config, request: ChatRequest, tier: str) -> tuple[int, bool]:
    """Output tokens per choice to reserve, and whether the client's limit bounds them."""
    limit = request.params.get("max_completion_tokens") or request.params.get("max_tokens")
    if limit is not None:
        return int(limit), True
    # _tier_of resolves "direct" to fast or reasoning, the estimates' keys.
    return int(config.output_token_estimates[tier]), False  # type: ignore[index]
