"""What a :class:`~router.proxy.Router` hands back: an answer or a stream, with its decision.

Kept apart from ``proxy`` so the stream plumbing (``streaming``) and the HTTP faces can
name these types without importing the engine that makes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from router.policy import RouteDecision
from router.upstream.dispatch import Served

if TYPE_CHECKING:
    from router.sessions import SessionTurn

__all__ = ["Completion", "StreamingCompletion", "Timings"]


@dataclass(slots=True)
class Timings:
    """Where a request's time and money went, for metrics and logs."""

    routing_s: float = 0.0  # scoring and policy: the decision's own time
    upstream_s: float = 0.0  # the model call (to the first chunk, for a stream)
    baseline_usd: float = 0.0  # the same usage at the reasoning tier's prices
    reserved_usd: float = 0.0  # what the budget held for the call before it settled


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
    # What the cascade did (agreed | kept | escalated | no_answer | fast_failed | skipped:<why>);
    # None where no cascade is configured.
    cascade: str | None = None
    # The session this routed turn counted in, and whether it switched model (None: no session).
    session: SessionTurn | None = None


@dataclass
class StreamingCompletion:
    """A stream of OpenAI chunk dicts; ``cost_usd`` is final once the stream is closed.

    Like httpx's ``client.stream()``, use it as an async context manager (or call
    :meth:`aclose`): leaving the block early, by ``break`` or an error, closes the
    upstream and charges what was produced. A stream read to its end closes itself.

        async with await router.astream(request) as stream:
            async for chunk in stream.chunks:
                ...
        print(stream.cost_usd)
    """

    decision: RouteDecision
    served: Served
    chunks: AsyncIterator[dict[str, Any]]
    cost_usd: float = 0.0
    usage: dict[str, Any] | None = field(default=None)
    cache: str = "bypass"  # hit | miss | bypass
    timings: Timings = field(default_factory=lambda: Timings())
    # What the cascade did (agreed | kept | escalated | no_answer | fast_failed | skipped:<why>);
    # None where no cascade is configured.
    cascade: str | None = None
    # The session this routed turn counted in, and whether it switched model (None: no session).
    session: SessionTurn | None = None

    async def aclose(self) -> None:
        """Stop the stream and settle its cost; safe to call more than once."""
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> StreamingCompletion:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
