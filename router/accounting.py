"""A request's money, from the estimate before dispatch to the charge after it.

:func:`open_ticket` estimates what the chosen model could cost (prompt tokens
plus ``max_tokens``, or the tier's typical output with reasoning tokens) and
reserves it against the tenant's budgets; the :class:`Ticket` it returns
settles the real cost from usage, or releases the reservation when the call
fails. Without Redis a tenant that fails open is served on an empty ticket,
and one that fails closed is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from router.config import Config, ModelDeployment, TenantConfig
from router.errors import StoreUnavailableError
from router.policy import RouteDecision
from router.requests import ChatRequest
from router.state.budgets import Budgets, Reservation, to_micro
from router.upstream.dispatch import Served, Target, cost_usd

__all__ = ["Ticket", "estimate_prompt_tokens", "open_ticket", "tolerant"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Reservations should not fall short: OpenAI's tokenizers average about 4 characters a
# token in English, so 3 errs high; each message adds a few tokens of framing.
CHARS_PER_TOKEN = 3.0
TOKENS_PER_MESSAGE = 4
# What a stream that ended early produced, when no usage says: about 4 characters a token.
CHARS_PER_OUTPUT_TOKEN = 4.0


@dataclass
class Ticket:
    """Settles or releases one request's reservation, exactly once."""

    budgets: Budgets | None
    tenant: TenantConfig | None
    reservation: Reservation | None
    decision: RouteDecision
    prompt_tokens_estimate: int
    baseline: ModelDeployment | None  # the reasoning tier, for "savings against always-reasoning"
    routed: bool
    _closed: bool = False
    # Set by settle(): what always-reasoning would have cost for the same usage, in USD.
    baseline_usd: float = 0.0

    async def settle(
        self,
        served: Served,
        usage: Mapping[str, Any] | None,
        *,
        produced_text: str | None = None,
    ) -> float:
        """Charge the real cost; returns it in USD, rounded to the micro-dollar.

        With no usage (a stream cut off by either side) the charge is for what was
        produced: the estimated prompt plus the streamed text's tokens. Reasoning a
        provider keeps hidden is not seen, so a cut stream may be undercharged by it.
        """
        if not usage and produced_text is not None:
            usage = {
                "prompt_tokens": self.prompt_tokens_estimate,
                "completion_tokens": math.ceil(len(produced_text) / CHARS_PER_OUTPUT_TOKEN),
            }
        usage = dict(usage or {})
        charged = to_micro(cost_usd(served.target.deployment, usage)) / 1e6
        if self._closed:
            return charged
        self._closed = True
        baseline = cost_usd(self.baseline, usage) if self.baseline is not None else charged
        # A lower bound: the reasoning model would also have spent reasoning tokens.
        self.baseline_usd = max(baseline, charged)
        if self.budgets is None or self.reservation is None:
            return charged
        try:
            await self.budgets.settle(
                self.reservation,
                cost_usd=charged,
                usage=usage,
                tier=self.decision.tier,
                routed=self.routed,
                baseline_usd=baseline,
            )
        except StoreUnavailableError:
            # The reservation expires and is swept; this charge is lost to the books.
            logger.error(
                "could not settle $%.6f for tenant %s: Redis is unavailable",
                charged,
                self.reservation.tenant,
            )
        return charged

    async def release(self) -> None:
        """Return the reservation of a call that failed: nothing is charged."""
        if self._closed:
            return
        self._closed = True
        if self.budgets is None or self.reservation is None:
            return
        try:
            await self.budgets.release(self.reservation)
        except StoreUnavailableError:
            logger.warning("could not release a reservation; it will expire")


async def open_ticket(
    config: Config,
    budgets: Budgets | None,
    tenant: TenantConfig | None,
    request: ChatRequest,
    decision: RouteDecision,
    target: Target,
    *,
    routed: bool,
) -> Ticket:
    """Reserve the request's estimated cost; raises BudgetExceeded or RateLimited if refused."""
    prompt_tokens = estimate_prompt_tokens(request.messages)
    reasoning_tier = config.tiers.get("reasoning")
    baseline = config.deployment(reasoning_tier.model) if reasoning_tier else None
    ticket = Ticket(budgets, tenant, None, decision, prompt_tokens, baseline, routed)
    if budgets is None or tenant is None:
        return ticket
    output_tokens = _output_tokens(config, request, decision, target)
    estimate = cost_usd(
        target.deployment, {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens}
    )
    recent = (decision.tier, decision.score) if routed and decision.score is not None else None
    ticket.reservation = await tolerant(
        tenant,
        budgets.reserve(
            tenant, amount_usd=estimate, tokens=prompt_tokens + output_tokens, routed=recent
        ),
    )
    return ticket


async def tolerant(tenant: TenantConfig, operation: Awaitable[_T]) -> _T | None:
    """Await a Redis operation; without Redis a tenant that fails open goes on without it."""
    try:
        return await operation
    except StoreUnavailableError:
        if tenant.on_store_failure == "closed":
            raise
        return None


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


def _output_tokens(
    config: Config, request: ChatRequest, decision: RouteDecision, target: Target
) -> int:
    limit = request.params.get("max_completion_tokens") or request.params.get("max_tokens")
    if limit is None:
        tier = decision.tier
        if tier == "direct":
            thinks = target.reasoning_effort not in (None, "none")
            reasoning = config.tiers.get("reasoning")
            is_reasoning_model = reasoning is not None and reasoning.model == target.model_name
            tier = "reasoning" if thinks or is_reasoning_model else "fast"
        limit = config.output_token_estimates[tier]
    return int(limit) * int(request.params.get("n") or 1)
