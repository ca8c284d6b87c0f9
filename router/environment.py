"""The one place thinkroute reads the process environment.

Entry points (the ``thinkroute`` commands, :meth:`Router.from_config`) call
:func:`read_environment` once and pass what it returns down; the rest of the
code takes values, never ``os.environ``. Providers' own keys
(``OPENAI_API_KEY``, ...) are LiteLLM's to read, and the direct OpenAI
transport reads them as LiteLLM does (router/upstream/openai_direct.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Environment", "read_environment"]


@dataclass(frozen=True, slots=True)
class Environment:
    """A snapshot of the variables thinkroute reads, with the rules that combine them."""

    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # holds secrets

    @property
    def admin_key(self) -> str | None:
        return self.variables.get("THINKROUTE_ADMIN_KEY") or None

    @property
    def metrics_key(self) -> str | None:
        return self.variables.get("THINKROUTE_METRICS_KEY") or None

    @property
    def embedded_redis_dir(self) -> Path:
        """Where the embedded Redis keeps its data unless told: under ``$XDG_DATA_HOME``."""
        base = self.variables.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        return Path(base) / "thinkroute" / "redis"

    def redis_url(
        self, *, explicit: str | None = None, configured: str | None = None
    ) -> str | None:
        """Where shared state lives: ``--redis-url`` (or the SDK's ``redis_url``), else the
        config's ``redis.url``, else ``REDIS_URL``; ``None``: none set."""
        return explicit or configured or self.variables.get("REDIS_URL") or None


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The process environment as it is now (or ``environ``, for tests)."""
    return Environment(dict(os.environ if environ is None else environ))
