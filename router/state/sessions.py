"""Conversations as sessions in Redis: which model each one's last turn went to.

A provider caches a conversation's prompt prefix per model, so a session that
switches model pays the whole prefix again at the full input price. The policy
(:func:`router.policy.route_request`) weighs that against what the switch gains;
it needs to know where the session's last turn went and how long its prompt was:

    thinkroute:{t}:session:<id hash>    hash: model, tier, prompt_tokens, turns, switches
    thinkroute:{t}:sessions:<date>      hash: turns, switches, cache_cost_micro (today's)

A session id is hashed before it becomes a key (a client's id may name a user);
the keys carry the tenant as a ``{hash tag}``, so a Redis Cluster keeps them in
one slot, and expire on their own: a session idle for ``sessions.ttl_s`` starts
afresh (by then the provider's cache has long gone too).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from router.state.store import Store

__all__ = ["LastTurn", "SessionBook", "SessionDay", "session_digest"]

PREFIX = "thinkroute"
DAY_KEY_TTL_S = 8 * 86_400  # a week of daily figures, and the day being written
MICRO = 1_000_000


def session_digest(session_id: str) -> str:
    """A session id as it is stored and logged: never the id itself."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LastTurn:
    """Where a session's previous routed turn went."""

    model: str
    tier: str
    prompt_tokens: int  # of that turn: the prefix the provider may still have cached
    switches: int  # model switches so far in the session


@dataclass(frozen=True, slots=True)
class SessionDay:
    """A tenant's session figures for one day."""

    turns: int = 0
    switches: int = 0
    cache_cost_usd: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"turns": self.turns, "switches": self.switches,
                "cache_cost_usd": round(self.cache_cost_usd, 6)}  # fmt: skip


class SessionBook:
    """Each tenant's sessions, held in Redis through a :class:`Store`."""

    def __init__(
        self, store: Store, *, ttl_s: int = 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock

    async def last(self, tenant: str, digest: str) -> LastTurn | None:
        """The session's previous turn, or None for a session not seen (or expired)."""
        fields = await self.store.call(
            self.store.client.hmget(
                _key(tenant, digest), "model", "tier", "prompt_tokens", "switches"
            )  # fmt: skip
        )
        model, tier, prompt_tokens, switches = fields
        if model is None or tier is None:
            return None
        return LastTurn(_text(model), _text(tier), int(prompt_tokens or 0), int(switches or 0))

    async def record(
        self,
        tenant: str,
        digest: str,
        *,
        model: str,
        tier: str,
        prompt_tokens: int,
        switched: bool,
        cache_cost_usd: float,
    ) -> None:
        """Keep where this turn went, and count it (and its switch) in today's figures."""
        key, day = _key(tenant, digest), self._day(tenant)
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"model": model, "tier": tier, "prompt_tokens": prompt_tokens})
        pipe.hincrby(key, "turns", 1)
        pipe.hincrby(day, "turns", 1)
        if switched:
            pipe.hincrby(key, "switches", 1)
            pipe.hincrby(day, "switches", 1)
            pipe.hincrby(day, "cache_cost_micro", round(cache_cost_usd * MICRO))
        pipe.expire(key, self.ttl_s)
        pipe.expire(day, DAY_KEY_TTL_S)
        await self.store.call(pipe.execute())

    async def today(self, tenant: str) -> SessionDay:
        """Today's session turns, model switches and the prompt cache they threw away."""
        counts: Mapping[bytes | str, bytes | str] = await self.store.call(
            self.store.client.hgetall(self._day(tenant))
        )
        read = {_text(name): int(value) for name, value in counts.items()}
        return SessionDay(read.get("turns", 0), read.get("switches", 0),
                          read.get("cache_cost_micro", 0) / MICRO)  # fmt: skip

    def _day(self, tenant: str) -> str:
        day = datetime.fromtimestamp(self.clock(), UTC)
        return f"{PREFIX}:{{{tenant}}}:sessions:{day:%Y%m%d}"


def _key(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:session:{digest}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
