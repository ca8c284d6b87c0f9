"""Anthropic Messages requests as OpenAI chat-completions bodies.

:func:`to_openai` turns a ``POST /v1/messages`` body into what
:func:`router.requests.parse_chat_request` takes. What has no OpenAI
equivalent is refused with a 400 naming the field as Anthropic does
(``messages.2.content.0.source.type``); nothing is forwarded untranslated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from router.errors import InvalidRequestError

__all__ = ["to_openai"]


TRANSLATED = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
        "top_k", "tools", "tool_choice", "thinking", "metadata", "stream", "output_config",
    }
)  # fmt: skip
# Accepted and dropped: they steer Anthropic's own service (prompt caching, capacity,
# region, attribution, server-side history editing), not what the model is asked.
IGNORED = frozenset(
    {
        "cache_control", "service_tier", "inference_geo", "speed", "diagnostics",
        "context_management", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# OpenAI has no token budget for reasoning, only an effort level.
EFFORT_BUDGETS = ((2048, "low"), (16384, "medium"))  # budget_tokens <= limit; above: high
OUTPUT_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; Anthropic allows more


def to_openai(body: Any) -> dict[str, Any]:
    """Translate a Messages API request into an OpenAI chat-completions body.

    Raises :class:`InvalidRequestError` naming the field in Anthropic's terms.
    ``thinking: {type: enabled, budget_tokens}`` becomes ``reasoning_effort``
    (up to 2048 tokens low, up to 16384 medium, more high), ``{type: disabled}``
    becomes ``"none"``, and ``adaptive`` leaves the choice to the router.
    """
    if not isinstance(body, dict):
        raise _invalid("body", "the request body must be a JSON object")
    for name in body:
        if name not in TRANSLATED and name not in IGNORED:
            raise _invalid(name, "Extra inputs are not permitted")
    model = _required(body, "model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model", "must be a non-empty string")
    max_tokens = _required(body, "max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise _invalid("max_tokens", "must be an integer of at least 1")
    out: dict[str, Any] = {
        "model": model,
        "messages": [*_system(body.get("system")), *_messages(_required(body, "messages"))],
        "max_tokens": max_tokens,
    }
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value) or not 0 <= value <= 1:
                raise _invalid(name, "must be a number between 0 and 1")
            out[name] = value
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise _invalid("top_k", "must be a non-negative integer")
    # top_k is checked, then dropped: OpenAI's API has no top-k sampling.
    if body.get("stop_sequences") is not None:
        stop = _stop_sequences(body["stop_sequences"])
        if stop:
            out["stop"] = stop
    tool_names: list[str] = []
    if body.get("tools") is not None:
        out["tools"] = _tools(body["tools"])
        tool_names = [tool["function"]["name"] for tool in out["tools"]]
        if not out["tools"]:
            del out["tools"]
    if body.get("tool_choice") is not None:
        out.update(_tool_choice(body["tool_choice"], tool_names))
    effort = _effort(body.get("thinking"), body.get("output_config"))
    if effort is not None:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("output_config"))
    if response_format is not None:
        out["response_format"] = response_format
    user = _user(body.get("metadata"))
    if user is not None:
        out["user"] = user
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", "must be a boolean")
    if stream:
        # Usage arrives in a final chunk only when asked for; message_delta reports it.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        texts = []
        for i, block in enumerate(value):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _invalid(f"system.{i}.type", "system blocks must be text blocks")
            texts.append(_text(block, f"system.{i}"))
        text = "\n\n".join(texts)
    else:
        raise _invalid("system", "must be a string or an array of text blocks")
    return [{"role": "system", "content": text}] if text else []


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages", "must be a non-empty array")
    out: list[dict[str, Any]] = []
    pending_ids: list[str] = []  # tool_use ids of the previous assistant turn
    for i, message in enumerate(value):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise _invalid(path, "must be an object")
        for name in message:
            if name not in ("role", "content"):
                raise _invalid(f"{path}.{name}", "Extra inputs are not permitted")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"{path}.role", "must be 'user' or 'assistant'")
        blocks = _blocks(_required(message, "content", path), f"{path}.content")
        if not blocks and not (role == "assistant" and i == len(value) - 1):
            raise _invalid(
                f"{path}.content",
                "all messages must have non-empty content except for the optional final "
                "assistant message",
            )
        if role == "user":
            out.extend(_user_turn(blocks, path, pending_ids))
            pending_ids = []
        else:
            if pending_ids:
                raise _unanswered(path, pending_ids)
            turn, pending_ids = _assistant_turn(blocks, path)
            out.extend(turn)
    return out


def _blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(path, "must be a string or an array of content blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise _invalid(f"{path}.{j}", "must be an object")
        if not isinstance(block.get("type"), str):
            raise _invalid(f"{path}.{j}.type", "Field required")
    return content


def _user_turn(
    blocks: list[dict[str, Any]], path: str, expected: list[str]
) -> list[dict[str, Any]]:
    """Tool results become ``tool`` messages, in order; the rest one user message after them.

    OpenAI needs every tool message right after the assistant turn that called the
    tools, and Anthropic puts tool_result blocks first in the user turn, so the
    order is kept.
    """
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            call_id = _required(block, "tool_use_id", where)
            if not isinstance(call_id, str) or call_id not in expected:
                raise _invalid(
                    where,
                    f"unexpected `tool_use_id` found in `tool_result` blocks: {call_id}. Each "
                    "`tool_result` block must have a corresponding `tool_use` block in the "
                    "previous message.",
                )
            text, attachments = _tool_result(block, where)
            tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            if attachments:
                # OpenAI tool messages hold text only; images and files follow, labelled.
                label = f"Attachments returned by tool call {call_id}:"
                parts.extend([{"type": "text", "text": label}, *attachments])
        elif kind in ("thinking", "redacted_thinking"):
            continue  # reasoning in history is the model's own; OpenAI takes none back
        else:
            parts.extend(_user_parts(block, where))
    answered = {message["tool_call_id"] for message in tool_messages}
    if expected and answered != set(expected):
        raise _unanswered(path, [i for i in expected if i not in answered])
    out = tool_messages
    if parts:
        is_one_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if is_one_text else parts})
    return out


def _assistant_turn(
    blocks: list[dict[str, Any]], path: str
) -> tuple[list[dict[str, Any]], list[str]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            call_id, name = _required(block, "id", where), _required(block, "name", where)
            arguments = _required(block, "input", where)
            if not isinstance(call_id, str) or not call_id:
                raise _invalid(f"{where}.id", "must be a non-empty string")
            if not isinstance(name, str) or not name:
                raise _invalid(f"{where}.name", "must be a non-empty string")
            if not isinstance(arguments, dict):
                raise _invalid(f"{where}.input", "must be an object")
            function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic's models only; the upstream cannot take them back
        else:
            raise _unsupported(f"{where}.type", kind, "assistant messages")
    text = "\n\n".join(t for t in texts if t)
    if not text and not calls:
        return [], []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message], [call["id"] for call in calls]


def _user_parts(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": _text(block, where)}]
    if kind == "image":
        return [_image(block, where)]
    if kind == "document":
        return _document(block, where)
    raise _unsupported(f"{where}.type", kind, "user messages")


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = _required(block, "source", where)
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source", "must be an object")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or media_type not in IMAGE_TYPES:
            raise _invalid(f"{where}.source.media_type", f"must be one of {sorted(IMAGE_TYPES)}")
        if not isinstance(data, str) or not data:
            raise _invalid(f"{where}.source.data", "must be a non-empty base64 string")
        url: str | None = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise _invalid(f"{where}.source.url", "must be a non-empty string")
    else:
        raise _unsupported(f"{where}.source.type", kind, "image sources (use base64 or url)")
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    source = _required(block, "source", where)
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source", "must be an object")
    kind = source.get("type")
    data = source.get("data")
    if kind == "base64" and source.get("media_type") == "application/pdf" and isinstance(data, str):
        title = block.get("title")
        file = {
            "filename": title if isinstance(title, str) and title else "document.pdf",
            "file_data": f"data:application/pdf;base64,{data}",
        }
        return [{"type": "file", "file": file}]
    if kind == "text" and isinstance(data, str):
        return [{"type": "text", "text": data}]
    if kind == "content":
        return [
            part
            for k, inner in enumerate(_blocks(source.get("content"), f"{where}.source.content"))
            for part in _user_parts(inner, f"{where}.source.content.{k}")
        ]
    raise _unsupported(f"{where}.source.type", kind, "document sources (use base64 PDF or text)")


def _tool_result(block: dict[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    """The result's text, and its images and documents (which a tool message cannot hold)."""
    content = block.get("content")
    texts: list[str] = []
    attachments: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for k, inner in enumerate(_blocks(content, f"{where}.content")):
            for part in _user_parts(inner, f"{where}.content.{k}"):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    attachments.append(part)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}"  # OpenAI has no error flag; the model still needs to know
    return text, attachments


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _invalid("tools", "must be an array")
    tools = []
    for k, tool in enumerate(value):
        path = f"tools.{k}"
        if not isinstance(tool, dict):
            raise _invalid(path, "must be an object")
        if tool.get("type") not in (None, "custom"):
            # Server tools (web search, code execution, ...) run inside Anthropic's API.
            raise _unsupported(f"{path}.type", tool["type"], "tools (only custom tools)")
        name, schema = _required(tool, "name", path), _required(tool, "input_schema", path)
        if not isinstance(name, str) or not name:
            raise _invalid(f"{path}.name", "must be a non-empty string")
        if not isinstance(schema, dict):
            raise _invalid(f"{path}.input_schema", "must be a JSON schema object")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        description = tool.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise _invalid(f"{path}.description", "must be a string")
            function["description"] = description
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any, tool_names: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("tool_choice", "must be an object")
    kind = value.get("type")
    if kind in ("auto", "none"):
        if not tool_names:
            return {}  # OpenAI refuses a tool_choice without tools; both mean "no tool"
        choice: Any = kind
    elif kind == "any":
        if not tool_names:
            raise _invalid("tool_choice", "'any' needs at least one tool in 'tools'")
        choice = "required"
    elif kind == "tool":
        name = value.get("name")
        if name not in tool_names:
            raise _invalid("tool_choice.name", f"no tool named {name!r} in 'tools'")
        choice = {"type": "function", "function": {"name": name}}
    else:
        raise _invalid("tool_choice.type", "must be one of 'auto', 'any', 'tool', 'none'")
    out: dict[str, Any] = {"tool_choice": choice}
    if value.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _effort(thinking: Any, output_config: Any) -> str | None:
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise _invalid("thinking", "must be an object")
        kind = thinking.get("type")
        if kind == "enabled":
            budget = _required(thinking, "budget_tokens", "thinking")
            if not _is_int(budget) or budget < 1024:
                raise _invalid("thinking.budget_tokens", "must be an integer of at least 1024")
            return next((effort for limit, effort in EFFORT_BUDGETS if budget <= limit), "high")
        if kind == "disabled":
            return "none"
        if kind not in ("adaptive", "between_tools"):  # these leave the effort to the router
            raise _invalid("thinking.type", "must be 'enabled', 'disabled' or 'adaptive'")
    if isinstance(output_config, dict) and output_config.get("effort") is not None:
        effort = output_config["effort"]
        if not isinstance(effort, str) or effort not in OUTPUT_EFFORTS:
            raise _invalid("output_config.effort", f"must be one of {sorted(OUTPUT_EFFORTS)}")
        return OUTPUT_EFFORTS[effort]
    return None


def _response_format(output_config: Any) -> dict[str, Any] | None:
    if output_config is None:
        return None
    if not isinstance(output_config, dict):
        raise _invalid("output_config", "must be an object")
    for name in output_config:
        if name not in ("effort", "format"):
            raise _invalid(f"output_config.{name}", "Extra inputs are not permitted")
    spec = output_config.get("format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        raise _invalid("output_config.format.type", "must be 'json_schema'")
    schema = _required(spec, "schema", "output_config.format")
    if not isinstance(schema, dict):
        raise _invalid("output_config.format.schema", "must be a JSON schema object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _stop_sequences(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise _invalid("stop_sequences", "must be an array of non-empty strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise _invalid("stop_sequences", f"at most {MAX_STOP_SEQUENCES} are supported here")
    return value


def _user(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _invalid("metadata", "must be an object")
    for name in metadata:
        if name != "user_id":
            raise _invalid(f"metadata.{name}", "Extra inputs are not permitted")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise _invalid("metadata.user_id", "must be a string")
    return user_id or None


def _text(block: dict[str, Any], where: str) -> str:
    text = _required(block, "text", where)
    if not isinstance(text, str):
        raise _invalid(f"{where}.text", "must be a string")
    return text


def _required(container: Mapping[str, Any], name: str, path: str = "") -> Any:
    if container.get(name) is None:
        raise _invalid(f"{path}.{name}" if path else name, "Field required")
    return container[name]


def _invalid(path: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {problem}", param=path)


def _unsupported(path: str, kind: Any, where: str) -> InvalidRequestError:
    return _invalid(path, f"{kind!r} is not supported in {where} by this proxy")


def _unanswered(path: str, ids: list[str]) -> InvalidRequestError:
    return _invalid(
        path,
        f"`tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` "
        "block in the next message.",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> int:
    return value if _is_int(value) and value > 0 else 0
