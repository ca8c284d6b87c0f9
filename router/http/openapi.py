"""Request-body schemas for the OpenAPI document the server publishes.

The chat and admin routes read their bodies themselves (one parser per
dialect, so that every error comes in that dialect's shape), so FastAPI has
no body to describe. These schemas fill the gap, for client generators and
for the schema-driven fuzzing in ``tests/router/test_api_fuzz.py``. They
describe what the parsers accept; the parsers stay the authority (a body may
match its schema and still get a 400, e.g. `stream_options` without `stream`).
"""

from __future__ import annotations

from typing import Any

from router.config import TenantConfig
from router.http.anthropic.requests import IGNORED as ANTHROPIC_IGNORED
from router.http.anthropic.requests import OUTPUT_EFFORTS
from router.requests import EFFORTS, MAX_TOKENS_LIMIT, ROLES

__all__ = ["chat_completions_body", "json_body", "messages_body", "tenant_body"]

_OBJECT: dict[str, Any] = {"type": "object"}
_STRING: dict[str, Any] = {"type": "string"}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A route's ``openapi_extra`` declaring a required JSON body of ``schema``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def chat_completions_body(model_names: list[str]) -> dict[str, Any]:
    """OpenAI's chat-completions request, as ``router.requests`` checks it."""
    part = {"type": "object", "required": ["type"],
            "properties": {"type": _STRING, "text": _STRING}}  # fmt: skip
    message = {
        "type": "object",
        # Only an assistant turn that calls tools may leave content out (or null).
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": sorted(ROLES)},
            "content": {"anyOf": [_STRING, {"type": "array", "items": part}]},
            "name": _STRING,
            "tool_calls": {"type": "array", "items": _OBJECT},
            "tool_call_id": _STRING,
        },
    }
    tokens = {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT}
    return {
        "type": "object",
        "required": ["model", "messages"],
        "additionalProperties": False,  # unknown fields get a 400, as OpenAI answers
        "properties": {
            "model": {"type": "string", "minLength": 1, "examples": model_names},
            "messages": {"type": "array", "minItems": 1, "items": message},
            "temperature": _number(0, 2),
            "top_p": _number(0, 1),
            "frequency_penalty": _number(-2, 2),
            "presence_penalty": _number(-2, 2),
            "max_tokens": tokens,
            "max_completion_tokens": tokens,
            "n": {"type": "integer", "minimum": 1, "maximum": 128},
            "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
            "seed": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            "stream": _BOOLEAN,
            "stream_options": {"type": "object", "properties": {"include_usage": _BOOLEAN}},
            "reasoning_effort": {"enum": sorted(EFFORTS)},
            "stop": {"anyOf": [_STRING, {"type": "array", "items": _STRING, "maxItems": 4}]},
            "logprobs": _BOOLEAN,
            "parallel_tool_calls": _BOOLEAN,
            "store": _BOOLEAN,
            "user": _STRING,
            "service_tier": _STRING,
            "verbosity": _STRING,
            "tools": {"type": "array", "items": _OBJECT},
            "functions": {"type": "array", "items": _OBJECT},
            "modalities": {"type": "array", "items": _STRING},
            "tool_choice": {"anyOf": [_STRING, _OBJECT]},
            "function_call": {"anyOf": [_STRING, _OBJECT]},
            **{name: _OBJECT for name in ("response_format", "logit_bias", "metadata", "audio",
                                          "prediction", "web_search_options", "thinking")},
            "cache": {"type": "object", "description": "LiteLLM's cache controls, e.g. "
                      '{"no-cache": true}; read by the proxy, never forwarded'},
        },
    }  # fmt: skip


def messages_body(model_names: list[str]) -> dict[str, Any]:
    """Anthropic's Messages request, as ``router.http.anthropic`` translates it."""
    text_block = {"type": "object", "required": ["type", "text"],
                  "properties": {"type": {"const": "text"}, "text": _STRING}}  # fmt: skip
    message = {
        "type": "object",
        "required": ["role", "content"],
        "additionalProperties": False,
        "properties": {
            "role": {"enum": ["user", "assistant"]},
            "content": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": text_block, "minItems": 1},
                ]
            },
        },
    }
    thinking = {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["enabled", "disabled", "adaptive"]},
            "budget_tokens": {"type": "integer", "minimum": 1024},
        },
    }
    return {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "minLength": 1, "examples": model_names},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT},
            "messages": {"type": "array", "minItems": 1, "items": message},
            "system": {"anyOf": [_STRING, {"type": "array", "items": text_block}]},
            "temperature": _number(0, 1),
            "top_p": _number(0, 1),
            "top_k": {"type": "integer", "minimum": 0},
            "stop_sequences": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "stream": _BOOLEAN,
            "metadata": {"type": "object", "properties": {"user_id": _STRING}},
            "thinking": thinking,
            "output_config": {
                "type": "object",
                "properties": {"effort": {"enum": sorted(OUTPUT_EFFORTS)}, "format": _OBJECT},
            },
            "tools": {"type": "array", "items": _OBJECT},
            "tool_choice": _OBJECT,
            # Accepted and dropped (see router.http.anthropic.requests.IGNORED).
            **{name: {} for name in sorted(ANTHROPIC_IGNORED)},
        },
    }


def tenant_body(*, partial: bool) -> dict[str, Any]:
    """A tenant's policy, from :class:`TenantConfig`; ``partial`` for PATCH (no name).

    Keys are left out: they are issued by ``POST /v1/tenants/{name}/keys``.
    """
    schema = _inline(TenantConfig.model_json_schema())
    omitted = {"api_keys", "api_key_hashes", *(["name"] if partial else [])}
    properties = {k: v for k, v in schema["properties"].items() if k not in omitted}
    body = {**schema, "properties": properties}
    if partial:
        del body["required"]
    return body


def _number(low: float, high: float) -> dict[str, Any]:
    return {"type": "number", "minimum": low, "maximum": high}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema with its ``#/$defs/...`` references replaced by the definitions.

    Inside an OpenAPI document such a reference would resolve against the document's root.
    """
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
