"""Streams between the upstream and the client: metered, recorded, or replayed from cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from router.accounting import Ticket

if TYPE_CHECKING:
    from router.completions import StreamingCompletion

__all__ = ["empty", "metered", "replay"]


async def empty() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # pragma: no cover - makes this an async generator


async def replay(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


async def metered(
    chunks: AsyncIterator[dict[str, Any]],
    result: StreamingCompletion,
    ticket: Ticket,
    finished: Callable[[list[dict[str, Any]]], Awaitable[None]],
    *,
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """Pass chunks through, charging from the usage chunk (hidden unless the client asked).

    A stream that ends early, cut by the upstream or by the client going away, has no
    usage chunk: it is charged for the text it produced (see :meth:`Ticket.settle`).
    A stream that ends well is handed to ``finished`` whole, to be cached.
    """
    produced: list[str] = []
    recorded: list[dict[str, Any]] = []
    try:
        async for chunk in chunks:
            recorded.append(chunk)
            usage = chunk.get("usage")
            if usage:
                result.usage = usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                produced.extend(
                    str(delta[name]) for name in ("content", "reasoning_content") if delta.get(name)
                )
            if "usage" in chunk and not include_usage:
                # Asked for upstream, not by the client: the usage-only chunk and the
                # ``usage: null`` other chunks carry are not the client's to see.
                if usage and not chunk.get("choices"):
                    continue
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            yield chunk
        await finished(recorded)
    finally:
        # Shielded: a client that disconnects cancels this task, and the books must still close.
        with anyio.CancelScope(shield=True):
            result.cost_usd = await ticket.settle(
                result.served, result.usage, produced_text="".join(produced)
            )
            result.timings.baseline_usd = ticket.baseline_usd
