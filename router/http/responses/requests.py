"""Translate an OpenAI Responses request into the chat-completions request the router runs.

Every tier works this way, whatever its provider: the router, the cache and the
budgets only ever see chat completions, and LiteLLM (or the direct OpenAI
transport) takes them to the provider. What the Responses object echoes back
(``instructions``, the tools as sent, ``text``, ...) rides along on
:class:`ResponsesRequest`.

thinkroute keeps no responses: ``store: true``, ``previous_response_id``,
``conversation``, ``background`` and ``item_reference`` items get a 400 that says
to send the whole conversation as ``input``, as a client with ``store: false`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.errors import InvalidRequestError
from router.requests import EFFORTS, ChatRequest, check_fields, parse_chat_request

__all__ = ["KNOWN", "ResponsesRequest", "parse_responses_request", "split"]

# Read and translated (or echoed); anything else gets OpenAI's "unknown parameter" 400.
TRANSLATED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens",
        "temperature", "top_p", "reasoning", "text", "stream", "parallel_tool_calls", "user",
        "metadata", "store", "previous_response_id", "conversation", "background",
    }
)  # fmt: skip
# Accepted and dropped: they tune OpenAI's own service, not the answer.
IGNORED = frozenset(
    {"include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier",
     "stream_options", "max_tool_calls", "top_logprobs", "prompt_cache_retention",
     "client_metadata"}
)  # fmt: skip
KNOWN = TRANSLATED | IGNORED
NOT_STORED = (
    "thinkroute does not store responses: send the whole conversation as 'input' "
    "(with 'store' false or left out)"
)
NAMESPACE_SEPARATOR = "__"
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})


@dataclass(frozen=True)
class ResponsesRequest(ChatRequest):
    """A chat request that came as a Responses request, with what the answer echoes."""

    echo: dict[str, Any] = field(default_factory=dict)


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Check a decoded Responses body; raise :class:`InvalidRequestError` naming the bad field."""
    check_fields(body, KNOWN, unknown="Unknown parameter: '{name}'.")
    _refuse_stored_state(body)
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    effort = _effort(body.get("reasoning"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    chat.update(_text(body.get("text")))
    if body.get("stream") is True:
        # Usage is needed for response.completed whether or not the client asked for it.
        chat["stream_options"] = {"include_usage": True}
    parsed = parse_chat_request(chat)
    echo = {
        name: body[name]
        for name in ("instructions", "max_output_tokens", "temperature", "top_p", "metadata",
                     "tool_choice", "parallel_tool_calls", "text", "reasoning", "user")
        if body.get(name) is not None
    }  # fmt: skip
    echo["tools"] = body.get("tools") or []
    echo["namespaces"] = frozenset(
        t["name"] for t in echo["tools"] if isinstance(t, dict) and t.get("type") == "namespace"
    )
    return ResponsesRequest(
        model=parsed.model,
        messages=parsed.messages,
        stream=parsed.stream,
        include_usage=parsed.include_usage,
        params=parsed.params,
        echo=echo,
    )


def _refuse_stored_state(body: dict[str, Any]) -> None:
    for name in ("previous_response_id", "conversation"):
        if body.get(name) is not None:
            raise InvalidRequestError(NOT_STORED, param=name, code="unsupported_parameter")
    for name in ("store", "background"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise InvalidRequestError(f"'{name}' must be a boolean", param=name)
        if value:
            raise InvalidRequestError(NOT_STORED, param=name, code="unsupported_parameter")


def _instructions(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise InvalidRequestError("'instructions' must be a string", param="instructions")
    return [{"role": "system", "content": value}] if value else []


def _input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("'input' must not be empty", param="input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(
            "'input' must be a string or a non-empty array of items", param="input"
        )
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_tool_call(messages, item, where)
        elif kind == "function_call_output":
            messages.append(_tool_output(item, where))
        elif kind == "reasoning":
            continue  # a previous turn's reasoning: chat completions has no place for it
        elif kind == "item_reference":
            raise InvalidRequestError(NOT_STORED, param=where, code="unsupported_parameter")
        else:
            raise InvalidRequestError(
                f"{where}.type {kind!r} is not supported: send messages, function_call and "
                "function_call_output items",
                param=f"{where}.type",
            )
    if not messages:
        raise InvalidRequestError("'input' holds no message", param="input")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"{where}.role must be one of {sorted(_ROLES)}, got {role!r}", param=f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role != "user":  # only user turns take images; the others are text in chat completions
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequestError(f"{where} must be an object with a 'type'", param=where)
    kind = part.get("type")
    if kind in _TEXT_PARTS or kind == "refusal":
        text = part.get("text") if kind != "refusal" else part.get("refusal")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{where}.text must be a string", param=f"{where}.text")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequestError(
                f"{where}.image_url must be a URL or a data URL (file_id needs OpenAI's storage)",
                param=f"{where}.image_url",
            )
        image = {"url": url, "detail": part.get("detail") or "auto"}
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        file = {"file_data": part["file_data"], "filename": part.get("filename")}
        return {"type": "file", "file": {k: v for k, v in file.items() if v is not None}}
    raise InvalidRequestError(f"{where}.type {kind!r} is not supported", param=f"{where}.type")


def _add_tool_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
        raise InvalidRequestError(
            f"{where} needs 'call_id', 'name' and 'arguments' as strings", param=where
        )
    namespace = item.get("namespace") if isinstance(item.get("namespace"), str) else None
    function = {"name": joined(namespace, name), "arguments": arguments}
    call = {"id": call_id, "type": "function", "function": function}
    last = messages[-1] if messages else None
    # One assistant turn in chat completions: its text and every call it made, together.
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if not last.get("content"):
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"{where}.call_id must be a string", param=f"{where}.call_id")
    if isinstance(output, list):
        texts = [_part(part, f"{where}.output[{j}]") for j, part in enumerate(output)]
        output = "".join(p.get("text", "") for p in texts)
    if not isinstance(output, str):
        raise InvalidRequestError(f"{where}.output must be a string", param=f"{where}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _tools(value: Any) -> list[dict[str, Any]]:
    """Function tools, a namespace's functions as ``<namespace>__<name>``; others dropped.

    OpenAI's hosted tools (web search, file search, code interpreter, ...) run at
    OpenAI, which no tier's model can do: they are left out rather than refused, so
    agents that offer them (Codex offers web_search) still work with the rest.
    """
    if not isinstance(value, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        if tool.get("type") == "function":
            tools.append(_function(tool, where))
        elif tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise InvalidRequestError(f"{where}.name must be a string", param=f"{where}.name")
            for j, inner in enumerate(tool["tools"]):
                if isinstance(inner, dict) and inner.get("type") == "function":
                    tools.append(_function(inner, f"{where}.tools[{j}]", namespace))
    return tools


def _function(tool: dict[str, Any], where: str, namespace: str | None = None) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}.name must be a string", param=f"{where}.name")
    function = {k: tool[k] for k in ("description", "parameters", "strict")
                if tool.get(k) is not None}  # fmt: skip
    function["name"] = joined(namespace, name)
    return {"type": "function", "function": function}


def joined(namespace: str | None, name: str) -> str:
    """A namespaced function's name in chat completions, which has no namespaces."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def split(name: str, namespaces: frozenset[str]) -> tuple[str | None, str]:
    """``(namespace, name)`` of a called function, undoing :func:`joined`."""
    namespace, separator, rest = name.partition(NAMESPACE_SEPARATOR)
    if separator and namespace in namespaces:
        return namespace, rest
    return None, name


def _tool_choice(value: Any) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("name"), str)
    ):
        return {"type": "function", "function": {"name": value["name"]}}
    raise InvalidRequestError(
        "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}",
        param="tool_choice",
    )


def _effort(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError("'reasoning' must be an object", param="reasoning")
    effort = value.get("effort")
    # A list or an object is unhashable: test the type before the set lookup (was a 500).
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORTS):
        raise InvalidRequestError(
            f"'reasoning.effort' must be one of {sorted(EFFORTS)}", param="reasoning.effort"
        )
    return effort


def _text(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("'text' must be an object", param="text")
    params: dict[str, Any] = {}
    if value.get("verbosity") is not None:
        params["verbosity"] = value["verbosity"]
    fmt = value.get("format")
    if fmt is None:
        return params
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequestError(
                "'text.format' of type json_schema needs a 'name' and a 'schema' object",
                param="text.format",
            )
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description")
                  if fmt.get(k) is not None}  # fmt: skip
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif kind != "text":
        raise InvalidRequestError(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'",
            param="text.format",
        )
    return params
