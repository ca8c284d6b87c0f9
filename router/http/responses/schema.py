"""The request body ``POST /v1/responses`` publishes in the OpenAPI document.

It describes what :mod:`router.http.responses.requests` accepts; the parser stays
the authority (a body may match and still get a 400, e.g. ``store: true``).
"""

from __future__ import annotations

from typing import Any

from router.http.responses.requests import IGNORED
from router.requests import EFFORTS, MAX_TOKENS_LIMIT

__all__ = ["responses_body"]

_OBJECT: dict[str, Any] = {"type": "object"}
_STRING: dict[str, Any] = {"type": "string"}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}


def responses_body(model_names: list[str]) -> dict[str, Any]:
    """OpenAI's Responses request, as ``router.http.responses.requests`` translates it."""
    item = {"type": "object", "properties": {"type": _STRING, "role": _STRING}}
    return {
        "type": "object",
        "required": ["model", "input"],
        "additionalProperties": False,  # unknown fields get a 400, as OpenAI answers
        "properties": {
            "model": {"type": "string", "minLength": 1, "examples": model_names},
            "input": {"anyOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1, "items": item}]},
            "instructions": _STRING,
            "tools": {"type": "array", "items": _OBJECT},
            "tool_choice": {"anyOf": [{"enum": ["auto", "none", "required"]}, _OBJECT]},
            "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "object", "properties": {"effort": {"enum": sorted(EFFORTS)}}},
            "text": _OBJECT,
            "stream": _BOOLEAN,
            "parallel_tool_calls": _BOOLEAN,
            "user": _STRING,
            "metadata": _OBJECT,
            # Nothing is stored: true (or a previous response, a conversation) gets a 400.
            "store": _BOOLEAN,
            "background": _BOOLEAN,
            "previous_response_id": _STRING,
            "conversation": {},
            **{name: {} for name in sorted(IGNORED)},
        },
    }  # fmt: skip
