"""Validate an OpenAI chat-completions body into a :class:`ChatRequest`.

Only fields of OpenAI's API are accepted, each with its type checked, as
OpenAI itself answers 400 to an unknown argument. Fields that would let a
client steer where a request goes or whose key pays for it (``api_base``,
``api_key``, LiteLLM's ``mock_response``, ...) get a 400 that says so: they
are never forwarded.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from router.errors import InvalidRequestError

__all__ = ["ChatRequest", "parse_chat_request"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high"})
MAX_TOKENS_LIMIT = 1_000_000

# Fields a client could use to redirect the call or change who pays for it.
FORBIDDEN = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "organization", "custom_llm_provider",
        "litellm_params", "mock_response", "fallbacks", "num_retries", "timeout", "extra_headers",
        "headers", "extra_body", "input_cost_per_token", "output_cost_per_token", "callbacks",
        "litellm_logging_obj", "proxy_server_request", "aws_access_key_id", "vertex_credentials",
    }
)  # fmt: skip

_NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (1, MAX_TOKENS_LIMIT),
    "max_completion_tokens": (1, MAX_TOKENS_LIMIT),
    "n": (1, 128),
    "top_logprobs": (0, 20),
    "seed": (-(2**63), 2**63 - 1),
}
_TYPED: dict[str, type | tuple[type, ...]] = {
    "stream": bool,
    "logprobs": bool,
    "parallel_tool_calls": bool,
    "store": bool,
    "user": str,
    "service_tier": str,
    "verbosity": str,
    "tools": list,
    "functions": list,
    "modalities": list,
    "tool_choice": (str, dict),
    "function_call": (str, dict),
    "response_format": dict,
    "stream_options": dict,
    "logit_bias": dict,
    "metadata": dict,
    "audio": dict,
    "prediction": dict,
    "web_search_options": dict,
    "thinking": dict,
    "cache": dict,  # LiteLLM's cache controls, e.g. {"no-cache": true}
    "reasoning_effort": str,
    "stop": (str, list),
}
# Read by the proxy itself, never sent to a provider.
PROXY_ONLY = frozenset({"cache"})
KNOWN = frozenset({"model", "messages", *_NUMBER_RANGES, *_INT_RANGES, *_TYPED})
# OpenAI's content part kinds, each carrying its payload under its own name:
# {"type": "text", "text": "..."}, {"type": "image_url", "image_url": {"url": ...}}, ...
_PART_PAYLOADS: dict[str, type] = {
    "text": str,
    "image_url": dict,
    "input_audio": dict,
    "file": dict,
    "refusal": str,
}


@dataclass(frozen=True)
class ChatRequest:
    """A validated request: what to route on and what to forward."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # forwarded as given
    # The client's own reasoning, as a ceiling the router decides under (set by the router
    # for a tenant with client_reasoning: route, once the client's setting is taken out).
    reasoning_ceiling: str | None = None
    # The conversation this turn belongs to, as the client names it (x-session-id, Anthropic
    # metadata.user_id); None: named by its first exchange (router.sessions).
    session_id: str | None = None

    def params_for_upstream(self) -> dict[str, Any]:
        """What the model provider sees: the chat and the client's sampling parameters."""
        forwarded = {k: v for k, v in self.params.items() if k not in PROXY_ONLY}
        return {"messages": self.messages, **forwarded}

    @property
    def requested_effort(self) -> str | None:
        """Reasoning the client set itself (``reasoning_effort`` or ``thinking``)."""
        effort = self.params.get("reasoning_effort")
        if effort is not None:
            return str(effort)
        thinking = self.params.get("thinking")
        if isinstance(thinking, dict) and "type" in thinking:
            return "none" if thinking["type"] == "disabled" else "enabled"
        return None


def check_fields(body: Any, known: Collection[str], *, unknown: str) -> None:
    """Refuse a body that is no object, sets a steering field, or names a field not in ``known``.

    ``unknown`` is the dialect's message for an unknown field, formatted with ``name``.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    for name in body:
        if name in FORBIDDEN:
            raise InvalidRequestError(
                f"'{name}' cannot be set by clients: the proxy chooses where requests go",
                param=name,
                code="forbidden_parameter",
            )
        if name not in known:
            raise InvalidRequestError(unknown.format(name=name), param=name)


def parse_chat_request(body: Any) -> ChatRequest:
    """Check a decoded JSON body; raise :class:`InvalidRequestError` naming the bad field."""
    check_fields(body, KNOWN, unknown="Unrecognized request argument supplied: {name}")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError("'model' must be a non-empty string", param="model")
    messages = _messages(body.get("messages"))
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    for name, value in params.items():
        _check_param(name, value)
    effort = params.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequestError(
            f"'reasoning_effort' must be one of {sorted(EFFORTS)}", param="reasoning_effort"
        )
    stream = bool(params.pop("stream", False))
    options = params.pop("stream_options", None) or {}
    if options and not stream:
        raise InvalidRequestError(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )
    return ChatRequest(
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        params=params,
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    """Check each message's shape; types first, so a list where a string belongs is a 400."""
    if not isinstance(value, list) or not value:
        raise InvalidRequestError("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of {sorted(ROLES)}, got {role!r}", param=f"{where}.role"
            )
        for name in ("name", "tool_call_id"):
            if message.get(name) is not None and not isinstance(message[name], str):
                raise InvalidRequestError(
                    f"{where}.{name} must be a string", param=f"{where}.{name}"
                )
        if message.get("tool_calls") is not None:
            _tool_calls(message["tool_calls"], f"{where}.tool_calls")
        content = message.get("content")
        if content is None:
            # Only an assistant turn that calls tools may leave its content out.
            if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
                continue
            raise InvalidRequestError(f"{where}.content must not be null", param=f"{where}.content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _content_part(part, f"{where}.content[{j}]")
        elif not isinstance(content, str):
            raise InvalidRequestError(
                f"{where}.content must be a string or an array of content parts",
                param=f"{where}.content",
            )
    return value


def _content_part(part: Any, where: str) -> None:
    """A content part must be one of OpenAI's kinds, with its payload of the right type."""
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str):
        raise InvalidRequestError(f"{where} must be an object with a 'type'", param=where)
    if kind not in _PART_PAYLOADS:
        raise InvalidRequestError(
            f"{where}.type must be one of {sorted(_PART_PAYLOADS)}, got {kind!r}",
            param=f"{where}.type",
        )
    payload_type = _PART_PAYLOADS[kind]
    if not isinstance(part.get(kind), payload_type):
        what = "a string" if payload_type is str else "an object"
        raise InvalidRequestError(f"{where}.{kind} must be {what}", param=f"{where}.{kind}")
    if kind == "image_url" and not isinstance(part["image_url"].get("url"), str):
        raise InvalidRequestError(
            f"{where}.image_url.url must be a string", param=f"{where}.image_url.url"
        )


def _tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequestError(f"{where} must be an array", param=where)
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise InvalidRequestError(
                f"{where}[{k}] must be an object with a 'function' object", param=f"{where}[{k}]"
            )
        for name in ("name", "arguments"):
            if not isinstance(function.get(name), str):
                raise InvalidRequestError(
                    f"{where}[{k}].function.{name} must be a string",
                    param=f"{where}[{k}].function.{name}",
                )


def _check_param(name: str, value: Any) -> None:
    if value is None:
        return
    if name in _NUMBER_RANGES:
        low, high = _NUMBER_RANGES[name]
        if not _is_number(value) or not low <= value <= high:
            raise InvalidRequestError(f"'{name}' must be a number in [{low}, {high}]", param=name)
    elif name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidRequestError(f"'{name}' must be an integer in [{low}, {high}]", param=name)
    elif name in _TYPED and not isinstance(value, _TYPED[name]):
        raise InvalidRequestError(f"'{name}' has the wrong type", param=name)
    elif (
        name == "stop"
        and isinstance(value, list)
        and (len(value) > 4 or not all(isinstance(s, str) for s in value))
    ):
        raise InvalidRequestError("'stop' must be a string or up to 4 strings", param="stop")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
