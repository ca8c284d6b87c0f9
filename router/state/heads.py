"""Tenant heads in Redis: stored versions, the active one, the ones before it.

    thinkroute:{t}:heads:versions   hash version -> JSON document (the head's numbers, what it
                                    was trained on, its champion/challenger figures)
    thinkroute:{t}:heads:seq        counter naming versions v1, v2, ...
    thinkroute:{t}:heads:active     JSON pointer {"version": "v3" | null, "revision": n}; absent
                                    or version null: the shipped head
    thinkroute:{t}:heads:history    list of the pointers activation replaced, newest first
                                    (rollback pops one)
    thinkroute:{t}:heads:curve      JSON [[score, fast, reasoning], ...]: the tenant's graded
                                    pairs scored by the active head, for quality targets

Heads are JSON numbers, never pickles: reading one cannot run code. The pointer is
small and is what every replica polls (one GET per tenant per refresh interval);
the document and curve are read only when the pointer changes. Activation and
rollback are each one Lua script, so two admins at once cannot lose a history entry.
"""

from __future__ import annotations

import json
from typing import Any

from router.state.store import Store

__all__ = ["HeadStore"]

PREFIX = "thinkroute"
# Versions kept per tenant; older ones go unless active or in the rollback history.
MAX_VERSIONS = 20
MAX_HISTORY = 20

# KEYS: active, history. ARGV: new pointer ("" for the shipped head), history cap.
_ACTIVATE = """
local current = redis.call('GET', KEYS[1]) or ''
redis.call('LPUSH', KEYS[2], current)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('SET', KEYS[1], ARGV[1])
return current
"""
# KEYS: active, history. Returns {1, restored pointer ("": the shipped head)} or {0}.
_ROLLBACK = """
local previous = redis.call('LPOP', KEYS[2])
if not previous then return {0} end
if previous == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], previous) end
return {1, previous}
"""


def _key(tenant: str, kind: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:heads:{kind}"


class HeadStore:
    """A tenant's head versions and which one is active, held in Redis through a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._activate = store.script(_ACTIVATE)
        self._rollback = store.script(_ROLLBACK)

    async def save(self, tenant: str, document: dict[str, Any]) -> str:
        """Keep a new head version; returns its name (``v1``, ``v2``, ...)."""
        number = await self.store.call(self.store.client.incr(_key(tenant, "seq")))
        version = f"v{int(number)}"
        data = json.dumps({**document, "version": version}, separators=(",", ":"))
        await self.store.call(self.store.client.hset(_key(tenant, "versions"), version, data))
        await self._prune(tenant)
        return version

    async def document(self, tenant: str, version: str) -> dict[str, Any] | None:
        raw = await self.store.call(self.store.client.hget(_key(tenant, "versions"), version))
        return None if raw is None else dict(json.loads(raw))

    async def documents(self, tenant: str) -> list[dict[str, Any]]:
        """Every kept version, oldest first."""
        raw = await self.store.call(self.store.client.hgetall(_key(tenant, "versions")))
        documents = [json.loads(value) for value in raw.values()]
        return sorted(documents, key=lambda d: int(str(d["version"])[1:]))

    async def pointer(self, tenant: str) -> str | None:
        """The raw active pointer (what replicas poll); None: the shipped head, never changed."""
        raw = await self.store.call(self.store.client.get(_key(tenant, "active")))
        return None if raw is None else _text(raw)

    async def active_version(self, tenant: str) -> str | None:
        raw = await self.pointer(tenant)
        return None if raw is None else json.loads(raw).get("version")

    async def activate(self, tenant: str, version: str | None) -> None:
        """Make ``version`` (None: the shipped head) active; the one before goes to history."""
        current = await self.pointer(tenant)
        revision = 0 if current is None else int(json.loads(current).get("revision", 0)) + 1
        pointer = json.dumps({"version": version, "revision": revision}, separators=(",", ":"))
        keys = [_key(tenant, "active"), _key(tenant, "history")]
        await self.store.call(self._activate(keys=keys, args=[pointer, MAX_HISTORY]))

    async def rollback(self, tenant: str) -> tuple[bool, str | None]:
        """Restore the version active before the last activation: (done, restored version)."""
        keys = [_key(tenant, "active"), _key(tenant, "history")]
        result = await self.store.call(self._rollback(keys=keys, args=[]))
        if int(result[0]) == 0:
            return False, None
        restored = _text(result[1])
        return True, json.loads(restored).get("version") if restored else None

    async def history(self, tenant: str) -> list[str | None]:
        """Versions rollback would restore, newest first (None: the shipped head)."""
        raw = await self.store.call(self.store.client.lrange(_key(tenant, "history"), 0, -1))
        return [json.loads(_text(r)).get("version") if _text(r) else None for r in raw]

    async def touch(self, tenant: str) -> None:
        """Bump the pointer's revision, so replicas reload (e.g. after a new curve)."""
        current = await self.pointer(tenant)
        pointer = json.loads(current) if current else {"version": None, "revision": 0}
        pointer["revision"] = int(pointer.get("revision") or 0) + 1
        data = json.dumps(pointer, separators=(",", ":"))
        await self.store.call(self.store.client.set(_key(tenant, "active"), data))

    async def save_curve(self, tenant: str, curve: list[tuple[float, float, float]]) -> None:
        data = json.dumps([[round(s, 6), f, r] for s, f, r in curve], separators=(",", ":"))
        await self.store.call(self.store.client.set(_key(tenant, "curve"), data))

    async def curve(self, tenant: str) -> list[tuple[float, float, float]]:
        raw = await self.store.call(self.store.client.get(_key(tenant, "curve")))
        if raw is None:
            return []
        return [(float(s), float(f), float(r)) for s, f, r in json.loads(raw)]

    async def _prune(self, tenant: str) -> None:
        documents = await self.documents(tenant)
        if len(documents) <= MAX_VERSIONS:
            return
        keep = {await self.active_version(tenant), *await self.history(tenant)}
        stale = [d["version"] for d in documents[: len(documents) - MAX_VERSIONS]]
        stale = [v for v in stale if v not in keep]
        if stale:
            await self.store.call(self.store.client.hdel(_key(tenant, "versions"), *stale))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
