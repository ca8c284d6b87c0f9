"""Turn a stream of chat-completion chunks into the Responses API's stream events.

The order is the one OpenAI's SDKs accumulate (``client.responses.stream``):
``response.created``, ``response.in_progress``, then per output item
``output_item.added`` → its deltas → its ``.done`` events → ``output_item.done``,
and last ``response.completed`` (``response.incomplete`` when the token limit cut
the answer) carrying every item and the usage. Items are closed in the order they
were opened, once the chunks end.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router.errors import ThinkrouteError
from router.http.responses import output
from router.http.responses.requests import ResponsesRequest

__all__ = ["format_sse", "stream_events"]


def format_sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@dataclass
class _Item:
    """One output item being streamed: a reasoning text, a message or a function call."""

    kind: str
    item_id: str
    index: int
    text: str = ""  # reasoning or message text, or a call's arguments
    call_id: str = ""
    name: str = ""


@dataclass
class _Stream:
    request: ResponsesRequest
    response_id: str
    effort: str | None
    created_at: float = field(default_factory=time.time)
    model: str = ""
    sequence: int = 0
    items: list[_Item] = field(default_factory=list)
    calls: dict[int, _Item] = field(default_factory=dict)  # by the chunk's tool-call index
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def snapshot(self, status: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return output.response(
            self.request, response_id=self.response_id, model=self.model or self.request.model,
            created_at=self.created_at, output=items, status=status,
            usage_=output.usage(self.usage) if status != "in_progress" else None,
            reasoning_effort=self.effort,
        )  # fmt: skip

    def open(self, kind: str, prefix: str) -> tuple[_Item, list[dict[str, Any]]]:
        item = _Item(kind, output.new_id(prefix), len(self.items))
        self.items.append(item)
        events = [self.event("response.output_item.added", output_index=item.index,
                             item=self.whole(item, status="in_progress"))]  # fmt: skip
        if kind == "message":
            events.append(self._part("response.content_part.added", item, ""))
        return item, events

    def current(self, kind: str) -> _Item | None:
        last = self.items[-1] if self.items else None
        return last if last is not None and last.kind == kind else None

    def close(self, item: _Item) -> list[dict[str, Any]]:
        where = {"item_id": item.item_id, "output_index": item.index}
        events = []
        if item.kind == "message":
            events.append(self.event("response.output_text.done", **where, content_index=0,
                                     text=item.text, logprobs=[]))  # fmt: skip
            events.append(self._part("response.content_part.done", item, item.text))
        elif item.kind == "reasoning":
            events.append(self.event("response.reasoning_text.done", **where, content_index=0,
                                     text=item.text))  # fmt: skip
        else:
            events.append(self.event("response.function_call_arguments.done", **where,
                                     arguments=item.text, name=item.name))  # fmt: skip
        events.append(self.event("response.output_item.done", output_index=item.index,
                                 item=self.whole(item, status="completed")))  # fmt: skip
        return events

    def whole(self, item: _Item, *, status: str) -> dict[str, Any]:
        return _whole(item, status=status, namespaces=self.request.echo["namespaces"])

    def _part(self, kind: str, item: _Item, text: str) -> dict[str, Any]:
        return self.event(kind, item_id=item.item_id, output_index=item.index, content_index=0,
                          part=output.output_text(text))  # fmt: skip


def _whole(item: _Item, *, status: str, namespaces: frozenset[str]) -> dict[str, Any]:
    if item.kind == "message":
        text = item.text if status == "completed" else ""
        message = output.message_item(item.item_id, text, status=status)
        if status != "completed":
            message["content"] = []
        return message
    if item.kind == "reasoning":
        return output.reasoning_item(item.item_id, item.text if status == "completed" else "")
    arguments = item.text if status == "completed" else ""
    return output.function_call_item(item.item_id, item.call_id, item.name, arguments,
                                     namespaces=namespaces, status=status)  # fmt: skip


async def stream_events(
    chunks: AsyncIterator[dict[str, Any]], request: ResponsesRequest, *, effort: str | None
) -> AsyncIterator[dict[str, Any]]:
    """The Responses events for a chat-completion chunk stream.

    A failure mid-stream becomes an ``error`` event and ``response.failed`` before it
    propagates, so the server still records it.
    """
    state = _Stream(request, output.new_id("resp"), effort)
    yield state.event("response.created", response=state.snapshot("in_progress", []))
    yield state.event("response.in_progress", response=state.snapshot("in_progress", []))
    try:
        async for chunk in chunks:
            for event in _chunk_events(state, chunk):
                yield event
    except ThinkrouteError as exc:
        error = exc.to_body()["error"]
        yield state.event("error", code=error.get("code") or error.get("type"),
                          message=error["message"], param=error.get("param"))  # fmt: skip
        failed = state.snapshot("failed", [])
        failed["error"] = {"code": error.get("code") or "server_error", "message": error["message"]}
        yield state.event("response.failed", response=failed)
        raise
    if not state.items:  # an empty answer is still a message, as the non-streaming body has one
        for event in state.open("message", "msg")[1]:
            yield event
    for item in state.items:
        for event in state.close(item):
            yield event
    items = [state.whole(item, status="completed") for item in state.items]
    status = "incomplete" if state.finish_reason == "length" else "completed"
    name = "response.incomplete" if status == "incomplete" else "response.completed"
    yield state.event(name, response=state.snapshot(status, items))


def _chunk_events(state: _Stream, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    state.model = state.model or chunk.get("model") or ""
    if chunk.get("usage"):
        state.usage = chunk["usage"]
    events: list[dict[str, Any]] = []
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]
        reasoning = delta.get("reasoning_content")
        if reasoning:
            item = state.current("reasoning")
            if item is None:
                item, opened = state.open("reasoning", "rs")
                events.extend(opened)
            item.text += reasoning
            events.append(state.event("response.reasoning_text.delta", item_id=item.item_id,
                                      output_index=item.index, content_index=0,
                                      delta=reasoning))  # fmt: skip
        text = delta.get("content")
        if text:
            item = state.current("message")
            if item is None:
                item, opened = state.open("message", "msg")
                events.extend(opened)
            item.text += text
            events.append(state.event("response.output_text.delta", item_id=item.item_id,
                                      output_index=item.index, content_index=0, delta=text,
                                      logprobs=[]))  # fmt: skip
        for call in delta.get("tool_calls") or ():
            events.extend(_call_events(state, call))
    return events


def _call_events(state: _Stream, call: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    function = call.get("function") or {}
    item = state.calls.get(call.get("index", 0))
    if item is None:
        # The first fragment of a call names it; its arguments follow in pieces.
        item = _Item("function_call", output.new_id("fc"), len(state.items))
        item.call_id = call.get("id") or output.new_id("call")
        item.name = function.get("name") or ""
        state.items.append(item)
        state.calls[call.get("index", 0)] = item
        events.append(state.event("response.output_item.added", output_index=item.index,
                                  item=state.whole(item, status="in_progress")))  # fmt: skip
    arguments = function.get("arguments")
    if arguments:
        item.text += arguments
        events.append(state.event("response.function_call_arguments.delta",
                                  item_id=item.item_id, output_index=item.index,
                                  delta=arguments))  # fmt: skip
    return events
