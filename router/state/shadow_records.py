"""Shadow comparisons in Redis: their spend cap, daily figures and graded-pair records.

    thinkroute:{t}:shadow:spend:<date>   micro-USD reserved + settled by shadow calls today
    thinkroute:{t}:shadow:day:<date>     hash of counts: offered, compared, comparable, agreed,
                                         ungraded, failed, refused, dropped
    thinkroute:{t}:shadow:pairs:<date>   list "served|reasoning|fast|score" of graded pairs
                                         (the newest MAX_PAIRS), for intervals and APGR
    thinkroute:{t}:shadow:records        stream; each entry one field, ``entry``: a JSON
                                         two-sided outcome record (see docs/quality.md)

The spend cap is exact under concurrency, as budgets are: one Lua script checks the
worst-case cost of a call against ``daily_usd`` and reserves it, or refuses; the
real cost replaces the reservation when the call ends. Every key carries the tenant
as a ``{hash tag}``, so a Redis Cluster keeps them in one slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.state.store import Store

__all__ = [
    "COUNTS",
    "GradedPair",
    "ShadowExportSummary",
    "ShadowRecords",
    "export_shadow_records",
    "shadow_training_record",
]

PREFIX = "thinkroute"
FIELD = "entry"
PAGE = 1000
DAY_KEY_TTL_S = 3 * 86_400
# Pairs kept per tenant and day for the interval: enough for a tight one, bounded.
MAX_PAIRS = 10_000
COUNTS = ("offered", "compared", "comparable", "agreed", "ungraded", "failed", "refused",
          "dropped")  # fmt: skip

# KEYS: spend key. ARGV: amount, limit (micro-USD), ttl. Reserve only if it fits.
_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if spent + amount > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class GradedPair:
    """One graded comparison: each tier's score, the served one, the prompt's score."""

    served_tier: str
    fast: float
    reasoning: float
    score: float | None  # the classifier's score of the prompt (None: not routed by score)

    @property
    def served(self) -> float:
        return self.fast if self.served_tier == "fast" else self.reasoning


class ShadowRecords:
    """A tenant's shadow spend, figures and records, held in Redis through a :class:`Store`."""

    def __init__(
        self, store: Store, *, max_records: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.max_records = max_records
        self.clock = clock
        self._reserve = store.script(_RESERVE)

    def _day(self, tenant: str, kind: str) -> str:
        day = datetime.fromtimestamp(self.clock(), UTC)
        return f"{PREFIX}:{{{tenant}}}:shadow:{kind}:{day:%Y%m%d}"

    async def reserve(self, tenant: str, *, amount_micro: int, limit_micro: int) -> bool:
        """Hold ``amount_micro`` of today's shadow spend; False if it would pass the limit."""
        key = self._day(tenant, "spend")
        result = await self.store.call(
            self._reserve(keys=[key], args=[amount_micro, limit_micro, DAY_KEY_TTL_S])
        )
        return int(result) == 1

    async def settle(self, tenant: str, *, reserved_micro: int, actual_micro: int) -> None:
        """Replace a reservation with the real cost (0 when the call failed)."""
        key = self._day(tenant, "spend")
        if actual_micro != reserved_micro:
            await self.store.call(self.store.client.incrby(key, actual_micro - reserved_micro))

    async def count(self, tenant: str, name: str, amount: int = 1) -> None:
        key = self._day(tenant, "day")
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hincrby(key, name, amount)
        pipe.expire(key, DAY_KEY_TTL_S)
        await self.store.call(pipe.execute())

    async def add(self, tenant: str, pair: GradedPair, record: dict[str, Any]) -> None:
        """Keep one graded pair: its figures for today and its record."""
        day, pairs = self._day(tenant, "day"), self._day(tenant, "pairs")
        score = "" if pair.score is None else f"{pair.score:.6f}"
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hincrby(day, "compared", 1)
        pipe.expire(day, DAY_KEY_TTL_S)
        pipe.lpush(pairs, f"{pair.served_tier}|{pair.fast:.6f}|{pair.reasoning:.6f}|{score}")
        pipe.ltrim(pairs, 0, MAX_PAIRS - 1)
        pipe.expire(pairs, DAY_KEY_TTL_S)
        pipe.xadd(records_key(tenant), {FIELD: data}, maxlen=self.max_records, approximate=True)
        await self.store.call(pipe.execute())

    async def today(self, tenant: str) -> tuple[dict[str, int], list[GradedPair], float]:
        """Today's counts, graded pairs and shadow spend (USD) of ``tenant``."""
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hgetall(self._day(tenant, "day"))
        pipe.lrange(self._day(tenant, "pairs"), 0, -1)
        pipe.get(self._day(tenant, "spend"))
        counts, raw_pairs, spend = await self.store.call(pipe.execute())
        figures = {name: int(counts.get(name.encode(), 0)) for name in COUNTS}
        pairs = []
        for raw in raw_pairs:
            served, fast, reasoning, score = _text(raw).split("|")
            pairs.append(
                GradedPair(served, float(fast), float(reasoning), float(score) if score else None)
            )
        return figures, pairs, int(spend or 0) / 1e6

    async def records(self, tenant: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(stream id, record)`` of a tenant's graded pairs, oldest first."""
        start, key = "-", records_key(tenant)
        while True:
            page = await self.store.call(self.store.client.xrange(key, start, "+", count=PAGE))
            for raw_id, fields in page:
                raw = fields.get(FIELD.encode(), fields.get(FIELD))
                if raw is not None:
                    yield _text(raw_id), json.loads(raw)
            if len(page) < PAGE:
                return
            start = "(" + _text(page[-1][0])


def records_key(tenant: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:shadow:records"


def shadow_training_record(entry_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ``classifier.data`` outcome record of one graded pair.

    With the chat text (a tenant with ``log_prompts: true``) ``thinkroute train``
    reads it as is; without, it carries the head's input ``features`` instead and
    no ``messages`` (see docs/quality.md).
    """
    tenant = str(record.get("tenant") or "")
    out: dict[str, Any] = {
        "id": f"{tenant}:shadow:{entry_id}",
        "source": f"thinkroute:{tenant}",
        "subset": "shadow",
        "fast": {"score": record["fast"]},
        "reasoning": {"score": record["reasoning"]},
        "label": "shadow",
        "request_id": record.get("request_id"),
    }
    if record.get("messages"):
        out["messages"] = record["messages"]
    elif record.get("features") is not None:
        out["features"] = record["features"]
    out["decision"] = {k: v for k, v in record.items() if k not in ("messages", "features")}
    return out


@dataclass(frozen=True, slots=True)
class ShadowExportSummary:
    written: int
    with_text: int
    without_text: int  # features only: written only when asked for (train reads text)


async def export_shadow_records(
    store: Store, tenant: str, output: str | Path, *, with_features: bool = False
) -> ShadowExportSummary:
    """Write a tenant's graded pairs as JSON Lines outcome records.

    Pairs kept without chat text (tenants without ``log_prompts``) are left out
    unless ``with_features``: ``thinkroute train`` reads text, and those carry
    only the head's input features.
    """
    written = with_text = without_text = 0
    with Path(output).open("w", encoding="utf-8") as out:
        async for entry_id, record in ShadowRecords(store).records(tenant):
            has_text = bool(record.get("messages"))
            if not has_text and not with_features:
                without_text += 1
                continue
            out.write(json.dumps(shadow_training_record(entry_id, record)) + "\n")
            written += 1
            with_text += has_text
            without_text += not has_text
    return ShadowExportSummary(written, with_text, without_text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
