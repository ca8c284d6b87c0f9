"""Streams between the upstream and the client: metered, recorded, or replayed from cache."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from router.accounting import Ticket

if TYPE_CHECKING:
    from router.completions import StreamingCompletion

__all__ = ["MeteredStream", "empty", "metered", "replay"]

logger = logging.getLogger(__name__)


async def empty() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # pragma: no cover - makes this an async generator


async def replay(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


class MeteredStream:
    """Passes an upstream's chunks through and owns the stream's ticket and source.

    Charged from the usage chunk (hidden unless the client asked). A stream that ends
    early (cut by the upstream, abandoned or cancelled by the client, closed before its
    first chunk was read) has no usage chunk: it is charged for the text it produced
    (see :meth:`Ticket.settle`). A stream that ends well is handed to ``finished`` whole,
    to be cached. :meth:`aclose` closes the source and settles, shielded, once; an
    async generator could not, since closing one that never started skips its cleanup.
    """

    def __init__(
        self,
        source: AsyncIterator[dict[str, Any]],
        result: StreamingCompletion,
        ticket: Ticket,
        finished: Callable[[list[dict[str, Any]]], Awaitable[None]],
        *,
        include_usage: bool,
    ) -> None:
        self._source = source
        self._result = result
        self._ticket = ticket.hand_over()
        self._finished = finished
        self._include_usage = include_usage
        self._produced: list[str] = []
        self._recorded: list[dict[str, Any]] = []
        self._is_closed = False

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._is_closed:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                try:
                    await self._finished(self._recorded)
                finally:
                    await self.aclose()
                raise
            except BaseException:
                await self.aclose()
                raise
            shown = self._meter(chunk)
            if shown is not None:
                return shown
        raise StopAsyncIteration

    def _meter(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """Record a chunk and return what the client sees of it (None: nothing)."""
        self._recorded.append(chunk)
        usage = chunk.get("usage")
        if usage:
            self._result.usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            self._produced.extend(
                str(delta[name]) for name in ("content", "reasoning_content") if delta.get(name)
            )
        if "usage" in chunk and not self._include_usage:
            # Asked for upstream, not by the client: the usage-only chunk and the
            # ``usage: null`` other chunks carry are not the client's to see.
            if usage and not chunk.get("choices"):
                return None
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return chunk

    async def aclose(self) -> None:
        """Close the upstream and settle what was produced; later calls do nothing."""
        if self._is_closed:
            return
        self._is_closed = True
        # Shielded: a client that disconnects cancels this task, and the books must still close.
        with anyio.CancelScope(shield=True):
            try:
                close = getattr(self._source, "aclose", None)
                if close is not None:
                    await close()
            except Exception:  # a broken upstream must not keep its stream from settling
                logger.debug("closing an upstream stream failed", exc_info=True)
            finally:
                result = self._result
                result.cost_usd = await self._ticket.settle(
                    result.served, result.usage, produced_text="".join(self._produced)
                )
                result.timings.baseline_usd = self._ticket.baseline_usd


def metered(
    chunks: AsyncIterator[dict[str, Any]],
    result: StreamingCompletion,
    ticket: Ticket,
    finished: Callable[[list[dict[str, Any]]], Awaitable[None]],
    *,
    include_usage: bool,
) -> MeteredStream:
    """``chunks`` passed through a :class:`MeteredStream` that takes over ``ticket``."""
    return MeteredStream(chunks, result, ticket, finished, include_usage=include_usage)
