"""The proxy's OpenAI answers in Anthropic's wire format: messages, stream events, errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from router.errors import ThinkrouteError

__all__ = ["api_key_from_headers", "error_body", "format_sse", "from_openai", "stream_events"]

_Event = tuple[str, dict[str, Any]]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error types by status (https://docs.claude.com/en/api/errors, and the SDK's
# ErrorType); other 4xx are invalid_request_error and other 5xx api_error, as there.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",  # Anthropic says 529; any 5xx makes its SDKs retry
    504: "timeout_error",
    529: "overloaded_error",
}


# -- responses ------------------------------------------------------------------------


def from_openai(response: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """Translate an OpenAI ``chat.completion`` into an Anthropic ``message``.

    ``model`` is the name the client asked for. Reasoning becomes a ``thinking``
    block with an empty signature; tool calls become ``tool_use`` blocks, with
    ``{}`` as input when the model wrote invalid JSON.
    """
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _message_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _new_id("toolu_"),
                "name": function.get("name") or "",
                "input": _arguments(function.get("arguments")),
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop_reason, stop_sequence = _stop_reason(choice, has_tool_use, bool(refusal))
    return {
        "id": _message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage(response.get("usage")),
    }


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some providers answer in content parts
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _arguments(arguments: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}  # Anthropic's input is always an object; a bad call still reaches the client
    return parsed if isinstance(parsed, dict) else {}


def _stop_reason(
    choice: Mapping[str, Any], has_tool_use: bool, is_refusal: bool
) -> tuple[str, str | None]:
    finish = choice.get("finish_reason")
    if is_refusal:
        return "refusal", None
    if has_tool_use and finish in (None, "stop"):
        return "tool_use", None  # agents run tools on stop_reason; some upstreams say "stop"
    # OpenAI does not say which stop sequence matched; vLLM does, in choice.stop_reason.
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish or "stop", "end_turn"), None


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    # Anthropic's input_tokens leaves out cache reads; OpenAI's prompt_tokens counts them.
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _message_id(openai_id: Any) -> str:
    if isinstance(openai_id, str) and openai_id:
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return _new_id("msg_")


# -- streams --------------------------------------------------------------------------


async def stream_events(
    chunks: AsyncIterator[dict[str, Any]], *, model: str
) -> AsyncIterator[_Event]:
    """Translate OpenAI ``chat.completion.chunk`` dicts into Anthropic stream events.

    Yields ``(event name, data)``: ``message_start``, ``ping``, then per content
    block ``content_block_start``, its deltas and ``content_block_stop``, then
    ``message_delta`` (stop reason and usage) and ``message_stop``. The input
    and cache token counts are only known at the end, so ``message_start`` says
    0 and ``message_delta`` carries them, which Anthropic's SDKs read. An
    exception from ``chunks`` propagates, for the caller to send as an ``error``
    event; closing ``chunks`` (which settles the request's cost) stays the
    caller's job, as it owns them.
    """
    iterator = aiter(chunks)
    first = await anext(iterator, None)
    start: dict[str, Any] = {
        "id": _message_id(first.get("id") if first else None),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(None),
    }
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    blocks = _BlockWriter()
    if first is not None:
        for event in blocks.feed(first):
            yield event
        async for chunk in iterator:
            for event in blocks.feed(chunk):
                yield event
    for event in blocks.finish():
        yield event


class _BlockWriter:
    """Turns deltas into content blocks: a new block whenever the kind of delta changes."""

    def __init__(self) -> None:
        self.index = -1
        self.open: tuple[str, int] | None = None  # ("text" | "thinking" | "tool", tool index)
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.choice: dict[str, Any] = {}  # finish_reason and stop_reason, as they come
        self.usage: dict[str, Any] | None = None
        self.is_refusal = False

    def feed(self, chunk: Mapping[str, Any]) -> list[_Event]:
        events: list[_Event] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Anthropic has one answer per request; to_openai never asks for n
            delta = choice.get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                thinking = {"type": "thinking_delta", "thinking": delta["reasoning_content"]}
                events += self._write(("thinking", 0), block, thinking)
            for name in ("content", "refusal"):
                if isinstance(delta.get(name), str) and delta[name]:
                    self.is_refusal = self.is_refusal or name == "refusal"
                    text = {"type": "text_delta", "text": delta[name]}
                    events += self._write(("text", 0), {"type": "text", "text": ""}, text)
            for call in delta.get("tool_calls") or ():
                events += self._tool_call(call)
            for name in ("finish_reason", "stop_reason"):
                if choice.get(name) is not None:
                    self.choice[name] = choice[name]
        return events

    def finish(self) -> list[_Event]:
        events = self._close()
        stop_reason, stop_sequence = _stop_reason(
            self.choice, bool(self.tool_blocks), self.is_refusal
        )
        usage = _usage(self.usage)
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": usage.pop("output_tokens"), **usage},
        }
        events.append(("message_delta", message_delta))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _tool_call(self, call: Mapping[str, Any]) -> list[_Event]:
        position = call.get("index", 0)
        function = call.get("function") or {}
        arguments = function.get("arguments")
        json_delta = {"type": "input_json_delta", "partial_json": arguments}
        if position in self.tool_blocks and self.open != ("tool", position):
            # OpenAI streams tool calls one after another; should an upstream go back to
            # an earlier call, its arguments still reach that call's block.
            if not arguments:
                return []
            delta = {"type": "content_block_delta", "index": self.tool_blocks[position]}
            return [("content_block_delta", {**delta, "delta": json_delta})]
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call.get("id") or _new_id("toolu_"),
            "name": function.get("name") or "",
            "input": {},
        }
        events = self._write(("tool", position), block, json_delta if arguments else None)
        self.tool_blocks[position] = self.index
        return events

    def _write(
        self, kind: tuple[str, int], block: dict[str, Any], delta: dict[str, Any] | None
    ) -> list[_Event]:
        events: list[_Event] = []
        if self.open != kind:
            events += self._close()
            self.index += 1
            self.open = kind
            start = {"type": "content_block_start", "index": self.index, "content_block": block}
            events.append(("content_block_start", start))
        if delta is not None:
            body = {"type": "content_block_delta", "index": self.index, "delta": delta}
            events.append(("content_block_delta", body))
        return events

    def _close(self) -> list[_Event]:
        if self.open is None:
            return []
        self.open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]


def format_sse(event: str, data: Mapping[str, Any]) -> str:
    """One server-sent event: ``event: <name>``, ``data: <json>`` and a blank line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n"


# -- errors and auth ------------------------------------------------------------------


def error_body(error: ThinkrouteError, *, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape for ``error``, sent with ``error.status_code``.

    Also the data of an ``error`` event when a stream fails after it started.
    """
    status = error.status_code
    default = "invalid_request_error" if 400 <= status < 500 else "api_error"
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, default), "message": error.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def api_key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The client's key: Anthropic's ``x-api-key``, else ``Authorization: Bearer``."""
    key = _header(headers, "x-api-key").strip()
    if key:
        return key
    scheme, _, token = _header(headers, "authorization").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


# -- helpers --------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str:
    # Starlette's Headers ignore case but a plain dict does not; accept either.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
