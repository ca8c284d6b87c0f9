"""What a :class:`~router.proxy.Router` hands back: an answer or a stream, with its decision.

Kept apart from ``proxy`` so the stream plumbing (``streaming``) and the HTTP faces can
name these types without importing the engine that makes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router.policy import RouteDecision
from router.upstream.dispatch import Served

__all__ = ["Completion", "StreamingCompletion", "Timings"]


@dataclass(slots=True)
class Timings:
    """Where a request's time and money went, for metrics and logs."""

    routing_s: float = 0.0  # scoring and policy: the decision's own time
    upstream_s: float = 0.0  # the model call (to the first chunk, for a stream)
    baseline_usd: float = 0.0  # the same usage at the reasoning tier's prices


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
    cache: str = "bypass"  # hit | miss | bypass
    timings: Timings = field(default_factory=lambda: Timings())


@dataclass
class StreamingCompletion:
    """A stream of OpenAI chunk dicts; ``cost_usd`` is final once the stream ends."""

    decision: RouteDecision
    served: Served
    chunks: AsyncIterator[dict[str, Any]]
    cost_usd: float = 0.0
    usage: dict[str, Any] | None = field(default=None)
    cache: str = "bypass"  # hit | miss | bypass
    timings: Timings = field(default_factory=lambda: Timings())
