"""The dashboard's figures from decision-log entries: pure functions, no I/O.

An entry is what :func:`router.state.decision_log.decision_entry` wrote, paired with
the time Redis appended it (its stream id, in epoch milliseconds). Every entry
is one routed request (model ``auto``/``auto:<mode>``), served or failed
mid-stream; requests refused before routing are not in the log.

    window = window_figures(entries)                      # one tenant or many
    series = bucket_series(entries, start_ms=..., bucket_ms=..., buckets=30)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Entry", "bucket_series", "percentile", "window_figures"]

# (appended at, epoch ms; the entry)
Entry = tuple[int, Mapping[str, Any]]
PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def window_figures(entries: Iterable[Entry]) -> dict[str, Any]:
    """Routing split, money, cache, fallbacks, session switches and latency percentiles of
    some entries.

    ``cache_hit_rate`` is over cache lookups (hits and misses): a request the
    cache may not answer (``bypass``, e.g. a sampled temperature) says nothing
    about the cache. Savings are against sending the same usage to the
    reasoning tier; a cache hit costs nothing and has no baseline, so it adds
    to neither.
    """
    count = fast = reasoning = fallbacks = hits = lookups = errors = switches = 0
    spend = baseline = cache_lost = 0.0
    total_ms: list[float] = []
    upstream_ms: list[float] = []
    routing_ms: list[float] = []
    for _, entry in entries:
        count += 1
        served = entry.get("served_tier")
        fast += served == "fast"
        reasoning += served == "reasoning"
        fallbacks += bool(entry.get("fallback"))
        cache = entry.get("cache")
        hits += cache == "hit"
        lookups += cache in ("hit", "miss")
        errors += int(entry.get("status") or 200) >= 400
        spend += float(entry.get("cost_usd") or 0.0)
        baseline += float(entry.get("baseline_usd") or 0.0)
        # A session moved to another model: its prompt cache paid again (router.sessions).
        switches += bool(entry.get("session_switch"))
        cache_lost += float(entry.get("session_cache_cost_usd") or 0.0)
        total_ms.append(float(entry.get("total_ms") or 0.0))
        routing_ms.append(float(entry.get("routing_ms") or 0.0))
        if cache != "hit":  # a hit never reached a model
            upstream_ms.append(float(entry.get("upstream_ms") or 0.0))
    savings = max(baseline - spend, 0.0)
    return {
        "requests": count,
        "fast": fast,
        "reasoning": reasoning,
        "reasoning_share": reasoning / count if count else None,
        "fallbacks": fallbacks,
        "errors": errors,
        "cache_hits": hits,
        "cache_lookups": lookups,
        "cache_hit_rate": hits / lookups if lookups else None,
        "spend_usd": round(spend, 6),
        "baseline_usd": round(baseline, 6),
        "savings_usd": round(savings, 6),
        "savings_share": savings / baseline if baseline > 0 else None,
        "session_switches": switches,
        "session_cache_cost_usd": round(cache_lost, 6),
        "latency_ms": {
            "total": _percentiles(total_ms),
            "upstream": _percentiles(upstream_ms),
            "routing": _percentiles(routing_ms),
        },
    }


def bucket_series(
    entries: Iterable[Entry], *, start_ms: int, bucket_ms: int, buckets: int
) -> list[dict[str, Any]]:
    """Per time bucket, oldest first: requests by served tier, hits, fallbacks, latency."""
    groups: list[list[Mapping[str, Any]]] = [[] for _ in range(buckets)]
    for appended_ms, entry in entries:
        index = (appended_ms - start_ms) // bucket_ms
        if 0 <= index < buckets:
            groups[index].append(entry)
    series = []
    for index, group in enumerate(groups):
        total_ms = [float(e.get("total_ms") or 0.0) for e in group]
        series.append(
            {
                "start_ms": start_ms + index * bucket_ms,
                "fast": sum(e.get("served_tier") == "fast" for e in group),
                "reasoning": sum(e.get("served_tier") == "reasoning" for e in group),
                "cache_hits": sum(e.get("cache") == "hit" for e in group),
                "fallbacks": sum(bool(e.get("fallback")) for e in group),
                "p50_ms": _round(percentile(total_ms, 50)),
                "p95_ms": _round(percentile(total_ms, 95)),
            }
        )
    return series


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    return {f"p{p}": _round(percentile(values, p)) for p in PERCENTILES}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
