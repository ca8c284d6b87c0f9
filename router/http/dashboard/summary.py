"""What ``GET /v1/dashboard/summary`` answers: fleet-wide figures read from Redis.

Two sources, both written by every replica into the shared Redis, so any
replica shows the whole fleet:

- the decision log (``thinkroute:{t}:decisions``): the recent window's routing
  split, latency percentiles, cache hits, fallbacks and spend against
  always-reasoning, for routed requests (``auto`` models);
- budget usage (``thinkroute:{t}:usage:day:<date>``): today's (UTC) spend,
  savings, requests and cache hits over every request, and the cascade's runs by
  outcome (its escalation rate).

The per-process Prometheus counters (``/metrics``) are not used: one
replica's counters are not the fleet's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from router.config import TenantConfig
from router.http.dashboard.figures import Entry, bucket_series, window_figures
from router.state.budgets import CASCADE_OUTCOMES, Budgets, cascade_report
from router.state.decision_log import FIELD, decisions_key
from router.state.store import Store

__all__ = ["BUCKETS", "MAX_ENTRIES", "read_entries", "summarize"]

BUCKETS = 30
# The newest entries read per tenant and refresh: bounds the work of a page left open
# on a busy fleet. A window holding more is summarised from its newest entries (``sampled``).
MAX_ENTRIES = 5_000
TODAY_FIELDS = ("requests", "cache_hits", "spend_usd", "estimated_savings_usd")


async def read_entries(store: Store, tenant: str, *, since_ms: int, limit: int) -> list[Entry]:
    """A tenant's decision-log entries appended since ``since_ms``, oldest first (at most
    ``limit``, the newest)."""
    page = await store.call(
        store.client.xrevrange(decisions_key(tenant), "+", str(since_ms), count=limit)
    )
    entries: list[Entry] = []
    for raw_id, fields in reversed(page):
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        raw = fields.get(FIELD.encode(), fields.get(FIELD))
        if raw is not None:
            entries.append((int(entry_id.split("-", 1)[0]), json.loads(raw)))
    return entries


async def summarize(
    tenants: Sequence[TenantConfig],
    *,
    log_store: Store | None,
    budgets: Budgets | None,
    window_s: int,
    now_s: float | None = None,
    quality: Callable[[TenantConfig], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Per tenant and in total: the window's figures and today's usage.

    ``log_store`` None means the decision log is off (no window figures);
    ``budgets`` None means no Redis (no usage); ``quality`` reads a tenant's live
    quality figures from shadow comparisons (None: not kept).
    """
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    bucket_ms = window_s * 1000 // BUCKETS
    start_ms = now_ms - bucket_ms * BUCKETS

    async def one(tenant: TenantConfig) -> tuple[list[Entry] | None, dict[str, Any] | None]:
        entries = today = None
        if log_store is not None:
            entries = await read_entries(
                log_store, tenant.name, since_ms=start_ms, limit=MAX_ENTRIES
            )
        if budgets is not None:
            today = (await budgets.usage(tenant))["day"]
        return entries, today

    results = await asyncio.gather(*(one(tenant) for tenant in tenants))
    qualities: list[dict[str, Any] | None] = [None] * len(tenants)
    if quality is not None:
        qualities = list(await asyncio.gather(*(quality(tenant) for tenant in tenants)))
    rows: list[dict[str, Any]] = []
    everything: list[Entry] = []
    for tenant, (entries, today), kept in zip(tenants, results, qualities, strict=True):
        rows.append(
            {
                "tenant": tenant.name,
                "window": None if entries is None else window_figures(entries),
                "sampled": entries is not None and len(entries) >= MAX_ENTRIES,
                "today": today,
                "quality": kept,
            }
        )
        everything.extend(entries or ())
    everything.sort(key=lambda pair: pair[0])
    has_log = log_store is not None
    series = []
    if has_log:
        series = bucket_series(everything, start_ms=start_ms, bucket_ms=bucket_ms, buckets=BUCKETS)
    return {
        "object": "thinkroute.dashboard.summary",
        "generated_at_ms": now_ms,
        "window_s": window_s,
        "bucket_s": bucket_ms / 1000,
        "scope": "fleet",  # every figure is read from the shared Redis
        "decision_log": has_log,
        "max_entries_per_tenant": MAX_ENTRIES,
        "tenants": rows,
        "total": {
            "window": window_figures(everything) if has_log else None,
            "today": _sum_today([row["today"] for row in rows]) if budgets else None,
        },
        "series": series,
    }


def _sum_today(days: list[dict[str, Any] | None]) -> dict[str, Any]:
    total: dict[str, Any] = {name: 0 for name in TODAY_FIELDS}
    for day in days:
        for name in TODAY_FIELDS:
            total[name] += (day or {}).get(name) or 0
    outcomes = {name: sum(((day or {}).get("cascade") or {}).get(name, 0) for day in days)
                for name in CASCADE_OUTCOMES}  # fmt: skip
    total["cascade"] = cascade_report(outcomes)
    total["spend_usd"] = round(total["spend_usd"], 6)
    total["estimated_savings_usd"] = round(total["estimated_savings_usd"], 6)
    return total
