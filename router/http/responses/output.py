"""Write a chat-completions answer as an OpenAI Responses object.

The Responses API lists what the model produced as output items: a ``reasoning``
item for the reasoning text a provider returns, a ``message`` with ``output_text``
parts, and one ``function_call`` per tool call. Usage is renamed
(``input_tokens``/``output_tokens``) and keeps the reasoning tokens.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from router.http.responses.requests import ResponsesRequest, split

__all__ = ["function_call_item", "message_item", "new_id", "reasoning_item", "response", "usage"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def response(
    request: ResponsesRequest,
    *,
    response_id: str,
    model: str,
    created_at: float,
    output: list[dict[str, Any]],
    status: str,
    usage_: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
) -> dict[str, Any]:
    """A Response object; ``status`` is in_progress, completed, incomplete or failed."""
    echo = request.echo
    reasoning = dict(echo.get("reasoning") or {})
    reasoning.setdefault("effort", reasoning_effort)
    reasoning.setdefault("summary", None)
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": time.time() if status in ("completed", "incomplete") else None,
        # ``error`` is set only on a failed response (see events.stream_events).
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "metadata": echo.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": reasoning,
        "store": False,  # see router.http.responses.requests: nothing is kept
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p"),
        "truncation": "disabled",
        "usage": usage_,
        "user": echo.get("user"),
    }


def from_chat(
    chat: dict[str, Any], request: ResponsesRequest, *, reasoning_effort: str | None
) -> dict[str, Any]:
    """The Response for a whole chat completion."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(new_id("rs"), message["reasoning_content"]))
    if message.get("content") or message.get("refusal") or not message.get("tool_calls"):
        output.append(
            message_item(new_id("msg"), message.get("content") or "", message.get("refusal"))
        )
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(function_call_item(new_id("fc"), call.get("id") or new_id("call"),
                                         function.get("name") or "",
                                         function.get("arguments") or "",
                                         namespaces=request.echo["namespaces"]))  # fmt: skip
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    return response(
        request,
        response_id=new_id("resp"),
        model=chat.get("model") or request.model,
        created_at=chat.get("created") or time.time(),
        output=output,
        status=status,
        usage_=usage(chat.get("usage")),
        reasoning_effort=reasoning_effort,
    )


def message_item(
    item_id: str, text: str, refusal: str | None = None, *, status: str = "completed"
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or not refusal:
        content.append(output_text(text))
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": content}  # fmt: skip


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    *,
    namespaces: frozenset[str],
    status: str = "completed",
) -> dict[str, Any]:
    namespace, name = split(name, namespaces)
    item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}  # fmt: skip
    if namespace is not None:
        item["namespace"] = namespace
    return item


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content}


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat-completions usage in the Responses API's names, reasoning tokens included."""
    if not chat_usage:
        return None
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    prompt_details = chat_usage.get("prompt_tokens_details") or {}
    completion_details = chat_usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)
        },
        "total_tokens": int(chat_usage.get("total_tokens") or prompt + completion),
    }
