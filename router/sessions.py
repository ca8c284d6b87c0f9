"""A conversation as a session: what names it, and what its next turn costs on each tier.

A session is named by what the client sends (``x-session-id``, Anthropic's
``metadata.user_id``, :attr:`ChatRequest.session_id`), else by its first exchange:
the system prompt, the first user message and the first answer. The answer is part
of the name so that two people who open with the same "hi" are not one session; a
conversation has no name of its own before its first answer, and its second turn is
kept on course by the previous turn's score instead (``policy.STICKY``).

The cost of a turn on each tier is estimated as budgets estimate it (prompt tokens
from characters, output from ``output_token_estimates``), once at the full input
price and once with the session's previous prompt read from the provider's cache
(see :func:`router.policy.session_threshold` for how the two are weighed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.accounting import estimate_prompt_tokens
from router.config import Config
from router.policy import SessionContext, TierCost
from router.requests import ChatRequest
from router.state.sessions import LastTurn, session_digest
from router.upstream.dispatch import token_prices

__all__ = ["SessionTurn", "lost_cache_usd", "session_name", "turn_costs"]


@dataclass(slots=True)
class SessionTurn:
    """One routed turn of a session: what is known before it is decided, and after."""

    digest: str  # the session's name, hashed (router.state.sessions)
    prompt_tokens: int  # this turn's, estimated: the next turn's cached prefix
    last: LastTurn | None = None  # where its previous turn went (None: first seen)
    costs: dict[str, TierCost] | None = None  # this turn on each tier (known sessions)
    switched: bool = False  # served by another model than the previous turn
    cache_cost_usd: float = 0.0  # the prefix paid again at full price for that switch

    @property
    def context(self) -> SessionContext | None:
        """What the policy weighs, for a session whose previous turn is known."""
        if self.last is None or self.costs is None:
            return None
        return SessionContext(self.last.model, self.costs)

    def served(self, model: str, tier: str) -> None:
        """Note the model that answered: whether that switched the session, at what cost."""
        self.switched = self.last is not None and self.last.model != model
        if self.switched and self.costs is not None and tier in self.costs:
            self.cache_cost_usd = lost_cache_usd(self.costs, tier)


def session_name(request: ChatRequest) -> str | None:
    """The session ``request`` belongs to, hashed, or None where nothing names one yet."""
    if request.session_id:
        return session_digest(f"client:{request.session_id}")
    first = _first_exchange(request.messages)
    return None if first is None else session_digest(f"chat:{first}")


def _first_exchange(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The system prompt, first user message and first answer as one string (None
    before the conversation has an answer)."""
    system = [m for m in messages if m.get("role") in ("system", "developer")][:1]
    user = next((m for m in messages if m.get("role") == "user"), None)
    answer = next((m for m in messages if m.get("role") == "assistant"), None)
    if user is None or answer is None:
        return None
    parts = [*system, user, answer]
    return json.dumps(
        [[m.get("content"), m.get("tool_calls")] for m in parts], sort_keys=True, default=str
    )


def turn_costs(
    config: Config, messages: Sequence[Mapping[str, Any]], last: LastTurn
) -> dict[str, TierCost]:
    """This turn's estimated cost on each tier, with the previous turn's prompt cached and
    without."""
    prompt = estimate_prompt_tokens(messages)
    cached = min(last.prompt_tokens, prompt)
    costs: dict[str, TierCost] = {}
    for name, tier in config.tiers.items():
        deployment = config.deployment(tier.model)
        assert deployment is not None  # the config checked every tier's model
        prices = token_prices(deployment)
        output = config.output_token_estimates[name] * prices.output
        full = prompt * prices.input + output
        with_cache = cached * prices.cache_read + (prompt - cached) * prices.input + output
        costs[name] = TierCost(cached_usd=with_cache, full_usd=full)
    return costs


def lost_cache_usd(costs: Mapping[str, TierCost], tier: str) -> float:
    """What a switch to ``tier``'s model pays for the prefix another model had cached."""
    return max(costs[tier].full_usd - costs[tier].cached_usd, 0.0)
