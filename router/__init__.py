"""thinkroute's public SDK: route each request to a fast or a reasoning model.

>>> from router import Router                                  # doctest: +SKIP
>>> router = Router.from_config("thinkroute.yaml")             # doctest: +SKIP
>>> router.decide([{"role": "user", "content": "Prove that sqrt(2) is irrational."}]).tier
'reasoning'

The names below load on first use, and only router/upstream/ imports LiteLLM:
``from router import Config`` loads neither LiteLLM nor a Redis client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.completions import Completion, StreamingCompletion
    from router.config import Config, load_config
    from router.errors import ThinkrouteError
    from router.policy import MODES, RouteDecision, decide
    from router.proxy import Router

_HOMES = {
    "Config": "router.config",
    "load_config": "router.config",
    "ThinkrouteError": "router.errors",
    "MODES": "router.policy",
    "RouteDecision": "router.policy",
    "decide": "router.policy",
    "Completion": "router.completions",
    "Router": "router.proxy",
    "StreamingCompletion": "router.completions",
}

__all__ = [
    "MODES",
    "Completion",
    "Config",
    "RouteDecision",
    "Router",
    "StreamingCompletion",
    "ThinkrouteError",
    "decide",
    "load_config",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'router' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
