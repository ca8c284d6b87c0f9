"""The SDK's face in LiteLLM's idiom: keyword arguments in, ``openai`` types out.

    async with Router.from_config("thinkroute.yaml") as router:
        resp = await router.acompletion(model="auto", messages=[...], temperature=0.2)
        resp.choices[0].message.content, resp.usage.total_tokens
        resp.thinkroute.decision.tier, resp.thinkroute.cost_usd, resp.thinkroute.cache

        async with await router.acompletion(model="auto", messages=[...], stream=True) as chunks:
            async for chunk in chunks: ...

        answer = await router.aresponses(model="auto", input="Hi!", reasoning={"effort": "low"})
        answer.output_text

The blocking twins (``completion``, ``responses``) run on the Router's private loop.
Today's call shape, a request body (``router.acompletion({"model": ..., ...})``),
still returns a :class:`~router.completions.Completion` with the dict inside.

These functions become :class:`~router.proxy.Router` methods (see the end of that
class), wrapping the engine's ``acompletion``/``astream``; nothing here routes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from openai._models import construct_type
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChatCompletionChunk
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import ConfigDict, Field

from router.completions import Completion, StreamingCompletion
from router.http.responses.events import stream_events
from router.http.responses.output import from_chat
from router.http.responses.requests import parse_responses_request
from router.policy import RouteDecision
from router.requests import ChatRequest

if TYPE_CHECKING:
    from router.proxy import Router

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "Response",
    "Routing",
    "Stream",
    "SyncStream",
]

T = TypeVar("T")
# The engine's keyword arguments; every other keyword is part of the request body.
ENGINE_KWARGS = ("tenant", "latency_limit_s", "headers")


@dataclass
class Routing:
    """How thinkroute answered one request: ``resp.thinkroute``.

    For a stream, ``cost_usd`` is final once the stream has ended.
    """

    decision: RouteDecision
    model: str  # the configured model that answered (a fallback's, if one did)
    is_fallback: bool
    cost_usd: float
    cache: str  # hit | miss | bypass

    @classmethod
    def of(cls, result: Completion | StreamingCompletion) -> Routing:
        served = result.served
        return cls(result.decision, served.target.model_name, served.is_fallback,
                   result.cost_usd, result.cache)  # fmt: skip


class ChatCompletion(OpenAIChatCompletion):
    """OpenAI's ``ChatCompletion`` with thinkroute's :class:`Routing` on ``.thinkroute``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    thinkroute: Routing | None = Field(default=None, exclude=True)


class ChatCompletionChunk(OpenAIChatCompletionChunk):
    """OpenAI's ``ChatCompletionChunk``; a stream's routing is on the stream itself."""


class Response(OpenAIResponse):
    """OpenAI's Responses ``Response`` with thinkroute's :class:`Routing` on ``.thinkroute``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    thinkroute: Routing | None = Field(default=None, exclude=True)


class Stream(Generic[T]):
    """An async stream of typed items with its :class:`Routing`; close it, or use ``async with``.

    Leaving early closes the upstream and settles the cost of what was produced.
    """

    def __init__(self, result: StreamingCompletion, items: AsyncIterator[T]) -> None:
        self.thinkroute = Routing.of(result)
        self._result = result
        self._items = items

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._items.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        for source in (self._items, self._result.chunks):
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        self.thinkroute.cost_usd = self._result.cost_usd

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class SyncStream(Generic[T]):
    """A :class:`Stream` read from blocking code, each item fetched on the Router's loop."""

    def __init__(self, stream: Stream[T], run: Callable[[Awaitable[Any]], Any]) -> None:
        self.thinkroute = stream.thinkroute
        self._stream = stream
        self._run = run

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._run(self._stream.aclose())

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def openai_face(engine: Callable[..., Awaitable[Completion]]) -> Callable[..., Awaitable[Any]]:
    """Wrap the engine's ``acompletion`` so it also takes LiteLLM's keyword form."""

    @functools.wraps(engine)
    async def acompletion(
        self: Router, request: ChatRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Any:
        if request is not None:
            if not isinstance(request, ChatRequest):  # an SDK caller, not the server
                close_with_loop(self)
            return await engine(self, request, **kwargs)
        engine_kwargs, body = _split(kwargs)
        close_with_loop(self)
        if body.get("stream"):
            result = await self.astream(body, **engine_kwargs)
            return Stream(result, _typed_chunks(result.chunks))
        done = await engine(self, body, **engine_kwargs)
        return _typed(ChatCompletion, done.response, done)

    return acompletion


def completion(self: Router, request: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
    """Blocking ``acompletion``, either call shape; ``stream=True`` gives a :class:`SyncStream`.

    Runs on the Router's private loop (see ``Router.completion``'s note); close the
    Router (``with`` or ``close()``) when done.
    """
    # None is the keyword form, which the openai_face wrapper accepts.
    answer = self._run_blocking(self.acompletion(request, **kwargs))  # type: ignore[arg-type]
    if isinstance(answer, Stream):
        return SyncStream(answer, self._run_blocking)
    return answer


async def aresponses(self: Router, **kwargs: Any) -> Response | Stream[ResponseStreamEvent]:
    """OpenAI's Responses API in-process: ``await router.aresponses(model=..., input=...)``.

    Takes what ``client.responses.create`` takes (see ``router.http.responses``);
    ``stream=True`` gives a :class:`Stream` of typed Responses events.
    """
    engine_kwargs, body = _split(kwargs)
    request = parse_responses_request(body)
    close_with_loop(self)
    if request.stream:
        result = await self.astream(request, **engine_kwargs)
        effort = result.decision.reasoning_effort
        events = stream_events(result.chunks, request, effort=effort)
        return Stream(result, _typed_events(events))
    done = await self.acompletion(request, **engine_kwargs)
    body = from_chat(done.response, request, reasoning_effort=done.decision.reasoning_effort)
    return _typed(Response, body, done)


def responses(self: Router, **kwargs: Any) -> Any:
    """Blocking :func:`aresponses`."""
    answer = self._run_blocking(aresponses(self, **kwargs))
    if isinstance(answer, Stream):
        return SyncStream(answer, self._run_blocking)
    return answer


async def aenter(self: Router) -> Router:
    return self


async def aexit(self: Router, *exc_info: object) -> None:
    await self.aclose()


def close_with_loop(router: Router) -> None:
    """Close what ``router`` opens on the running loop when that loop shuts down.

    ``asyncio.run`` closes every async generator still open before it closes the loop;
    one parked here closes the Router's connections then, so a script that never calls
    ``aclose()`` leaves no "Unclosed client session" behind. The Router's private loop
    is closed by ``Router.close()`` instead.
    """
    loop = asyncio.get_running_loop()
    closers = router.__dict__.setdefault("_loop_closers", {})
    if loop is router._sync_loop or loop in closers:
        return
    closer = _close_at_shutdown(router)
    closers[loop] = closer  # asyncio holds loop generators weakly: this keeps it alive
    loop.create_task(closer.__anext__())  # type: ignore[arg-type]


async def _close_at_shutdown(router: Router) -> AsyncIterator[None]:
    try:
        yield
    finally:
        router.__dict__.get("_loop_closers", {}).pop(asyncio.get_running_loop(), None)
        await router.aclose()


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    engine = {name: kwargs.pop(name) for name in ENGINE_KWARGS if name in kwargs}
    return engine, {k: v for k, v in kwargs.items() if v is not None}


def _typed(cls: type[T], body: dict[str, Any], done: Completion) -> T:
    # construct: no validation, as the openai client itself reads a provider's answer.
    typed = cls.construct(**body)  # type: ignore[attr-defined]
    typed.thinkroute = Routing.of(done)
    return typed


async def _typed_chunks(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
    async for chunk in chunks:
        yield ChatCompletionChunk.construct(**chunk)


async def _typed_events(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
    async for event in events:
        yield construct_type(type_=ResponseStreamEvent, value=event)
