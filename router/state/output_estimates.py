"""Each tenant's real output per tier, learned from settled requests: what to reserve.

A request without ``max_tokens`` reserves an estimate of its output. The config's
``output_token_estimates`` (1,024 fast, 8,192 reasoning tokens) are a cold-start
guess, often a hundred times what a tenant's answers really take; once a tenant
has ``reservations.min_samples`` settled requests on a tier, a high quantile of
their real output (``reservations.quantile``, p95 by default) is reserved instead.

Memory is bounded: per tenant, tier and era one Redis hash of at most
``len(BUCKET_BOUNDS)`` counters, a fixed histogram of output tokens per choice
(reasoning tokens included) whose buckets are exact up to 16 tokens, then grow by
an eighth each (a quantile is read as its bucket's upper bound: never low, at most
12.5% high; a tenant's answers usually fill a few dozen of them). Samples are
added by the settle script itself (no round trip of their own, and exactly once
per reservation). Eras are ``reservations.window_h`` long;
the estimate reads the current and the previous one, so what a tenant did more
than two windows ago no longer counts, and the keys expire on their own.

    {t}:outest:<tier>:<era>   hash: bucket upper bound -> requests

Reading is cached per process for ``cache_s`` (a second): a burst of requests
costs Redis one read per tenant and tier, not one each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.config import Config
from router.state.store import Store

__all__ = ["BUCKET_BOUNDS", "Estimate", "OutputEstimates", "Sample", "bucket_of", "quantile_of"]

PREFIX = "thinkroute"


def _bounds(exact_to: int = 16, growth: float = 1.125, top: int = 2**21) -> tuple[int, ...]:
    bounds = list(range(1, exact_to + 1))
    while bounds[-1] < top:
        bounds.append(max(bounds[-1] + 1, math.ceil(bounds[-1] * growth)))
    return tuple(bounds)


# 1..16, then about 12.5% apart up to 2.2M tokens: 115 buckets.
BUCKET_BOUNDS = _bounds()


def bucket_of(tokens: int) -> int:
    """The upper bound of the bucket ``tokens`` falls in (the last for anything above)."""
    for bound in BUCKET_BOUNDS:
        if tokens <= bound:
            return bound
    return BUCKET_BOUNDS[-1]


def quantile_of(counts: Mapping[int, int], quantile: float) -> int | None:
    """The ``quantile`` of a histogram (bucket upper bound -> count) as a bucket's upper
    bound: at least that share of the samples is at or below it. None when empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    needed = max(1, math.ceil(quantile * total))
    seen = 0
    for bound in sorted(counts):
        seen += counts[bound]
        if seen >= needed:
            return bound
    return max(counts)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The output tokens a request without ``max_tokens`` reserves, and where they come from."""

    output_tokens: int
    is_learned: bool  # False: the config's cold-start estimate
    samples: int  # settled requests in the window

    def as_dict(self) -> dict[str, Any]:
        source = "learned" if self.is_learned else "cold_start"
        return {"output_tokens": self.output_tokens, "source": source, "samples": self.samples}


@dataclass(frozen=True, slots=True)
class Sample:
    """One settled request's output, for the settle script to count: key, field, TTL."""

    key: str
    bucket: int
    ttl_s: int


class OutputEstimates:
    """Learned reservation estimates per tenant and tier, kept in Redis."""

    def __init__(
        self,
        store: Store,
        *,
        quantile: float = 0.95,
        min_samples: int = 20,
        window_s: float = 86_400.0,
        cache_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.quantile = quantile
        self.min_samples = min_samples
        self.window_s = window_s
        self.cache_s = cache_s
        self.clock = clock
        # (tenant, tier) -> (read at, histogram); concurrent misses share one read.
        self._cache: dict[tuple[str, str], tuple[float, dict[int, int]]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[dict[int, int]]] = {}

    @classmethod
    def from_config(cls, store: Store | None, config: Config) -> OutputEstimates | None:
        """As the config's ``reservations`` say; None without Redis or with learning off."""
        settings = config.reservations
        if store is None or not settings.learn_output:
            return None
        return cls(
            store,
            quantile=settings.quantile,
            min_samples=settings.min_samples,
            window_s=settings.window_h * 3600,
        )

    def sample(self, tenant: str, tier: str, output_tokens: int) -> Sample:
        """What settling a request with this output per choice adds to the tenant's books."""
        era = int(self.clock() // self.window_s)
        ttl = math.ceil(2 * self.window_s) + 60
        return Sample(_key(tenant, tier, era), bucket_of(max(output_tokens, 0)), ttl)

    def forget(self, tenant: str, tier: str) -> None:
        """Drop the cached histogram while it is still cold: a sample this process just
        settled may be the one that makes it learned, and the next request should see it."""
        cached = self._cache.get((tenant, tier))
        if cached is not None and sum(cached[1].values()) < self.min_samples:
            del self._cache[(tenant, tier)]

    async def estimate(self, tenant: str, tier: str, cold_start: int) -> Estimate:
        """The estimate in force: the quantile once ``min_samples`` settled, else ``cold_start``.

        Raises :class:`router.errors.StoreUnavailableError` when Redis cannot be read.
        """
        counts = await self._counts(tenant, tier)
        samples = sum(counts.values())
        learned = quantile_of(counts, self.quantile) if samples >= self.min_samples else None
        if learned is None:
            return Estimate(cold_start, False, samples)
        return Estimate(learned, True, samples)

    async def in_force(self, tenant: str, cold_start: Mapping[str, int]) -> dict[str, Any]:
        """Every tier's estimate, as ``/v1/usage`` shows it."""
        tiers = {}
        for tier, fixed in cold_start.items():
            tiers[tier] = (await self.estimate(tenant, tier, fixed)).as_dict()
        return {"quantile": self.quantile, "min_samples": self.min_samples, "tiers": tiers}

    async def _counts(self, tenant: str, tier: str) -> dict[int, int]:
        slot = (tenant, tier)
        now = self.clock()
        cached = self._cache.get(slot)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        loop = asyncio.get_running_loop()
        reading = self._reading.get(slot)
        # A read under way in this event loop is shared (the SDK's sync face has its own).
        if reading is not None and reading.get_loop() is loop:
            try:
                return await asyncio.shield(reading)
            except asyncio.CancelledError:
                if not reading.cancelled():
                    raise  # this task was cancelled, not the read
        future: asyncio.Future[dict[int, int]] = loop.create_future()
        self._reading[slot] = future
        try:
            counts = await self._read(tenant, tier, now)
        except asyncio.CancelledError:
            future.cancel()  # whoever waited on it reads for itself
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            if self._reading.get(slot) is future:
                del self._reading[slot]
        self._cache[slot] = (now, counts)
        future.set_result(counts)
        return counts

    async def _read(self, tenant: str, tier: str, now: float) -> dict[int, int]:
        era = int(now // self.window_s)
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hgetall(_key(tenant, tier, era))
        pipe.hgetall(_key(tenant, tier, era - 1))
        histograms: list[dict[bytes, bytes]] = await self.store.call(pipe.execute())
        counts: dict[int, int] = {}
        for histogram in histograms:
            for bound, count in histogram.items():
                counts[int(bound)] = counts.get(int(bound), 0) + int(count)
        return counts


def _key(tenant: str, tier: str, era: int) -> str:
    return f"{PREFIX}:{{{tenant}}}:outest:{tier}:{era}"
