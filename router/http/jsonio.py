"""JSON in and out of the server: one strict decoding step, and answers that always encode.

Every route that takes a body decodes it with :func:`decode_json`, which
refuses with a 400, naming where it is, what Python's ``json`` accepts but
nothing downstream can use: a lone UTF-16 surrogate (``"\\ud800"``, which
cannot be written back as UTF-8), ``NaN`` and ``Infinity`` (not JSON, and
not storable) and numbers too large to be finite, integers of more than
``MAX_INT_DIGITS`` digits, and nesting deeper than ``MAX_DEPTH``.

Answers go out through :class:`JSONResponse` and :func:`encode_text`: an
upstream model may answer with a lone surrogate, and rather than failing a
request the tenant has already paid for, each one is replaced by U+FFFD (the
Unicode replacement character), as a UTF-8 decoder does with a broken byte.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi.responses import JSONResponse as _StarletteJSONResponse

from router.errors import InvalidRequestError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "JSONResponse", "decode_json", "encode_text"]

# Deepest nesting of arrays and objects a body may have. Chat bodies need about 8
# (tool schemas inside tools inside the body); 64 leaves room for deep JSON schemas.
MAX_DEPTH = 64
# Python's own limit for turning digits into an int (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4300
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(raw: bytes) -> Any:
    """The body as JSON, or an :class:`InvalidRequestError` saying what is wrong with it."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_integer)
    except UnicodeDecodeError:
        raise InvalidRequestError("the request body is not valid UTF-8") from None
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON ({exc})") from None
    _check(value)
    return value


def encode_text(text: str) -> bytes:
    """``text`` as UTF-8, with any lone surrogate replaced by U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response, except that a lone surrogate in it cannot fail the answer."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        return encode_text(text)


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"the request body has an integer of more than {MAX_INT_DIGITS} digits")
    return int(digits)


class _Refused(InvalidRequestError):
    """Raised from inside ``json.loads``'s hooks; a ValueError would be reworded by it."""


def _check(value: Any) -> None:
    """Refuse lone surrogates, non-finite numbers and deep nesting, naming where they are.

    Walks without recursion, and builds a path only for containers, so a large
    flat body costs one ``isinstance`` per value.
    """
    if not isinstance(value, dict | list):
        _check_scalar(value, ())
        return
    stack: list[tuple[dict[str, Any] | list[Any], tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise _too_deep(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                raise _lone_surrogate(path)
            if isinstance(item, dict | list):
                stack.append((item, (*path, key)))
            elif isinstance(item, str | float):
                _check_scalar(item, (*path, key))


def _check_scalar(value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, str) and _SURROGATE.search(value):
        raise _lone_surrogate(path)
    if isinstance(value, float) and not math.isfinite(value):
        name = _dotted(path)
        raise InvalidRequestError(
            f"'{name}' must be a finite number (NaN, Infinity and overflowing numbers are not)",
            param=name,
        )


def _lone_surrogate(path: tuple[str | int, ...]) -> InvalidRequestError:
    name = _dotted(path)
    return InvalidRequestError(
        f"'{name}' holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character",
        param=name,
    )


def _too_deep(path: tuple[str | int, ...] = ()) -> InvalidRequestError:
    return InvalidRequestError(
        f"the request body nests arrays or objects more than {MAX_DEPTH} deep",
        param=_dotted(path) if path else None,
    )


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "(body)"
