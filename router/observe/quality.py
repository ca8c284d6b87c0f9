"""Live quality figures from graded shadow pairs: agreement, quality kept, estimated APGR.

Pure arithmetic over what :mod:`router.state.shadow_records` keeps (see docs/quality.md):

- ``agreement``: share of comparable pairs (both answers had a final answer) that agreed;
- ``quality_kept``: served-answer score / always-reasoning score, summed over graded
  pairs (a ratio of means), with a 95% interval by the delta method;
- ``estimated_apgr``: the routing APGR of the prompt scores over the graded pairs, once
  there are ``MIN_PAIRS_FOR_APGR`` of them and at least ``MIN_GAP_PAIRS`` where the
  tiers scored differently (fewer leave the curve to chance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["MIN_GAP_PAIRS", "MIN_PAIRS_FOR_APGR", "quality_figures", "ratio_interval"]

Z_95 = 1.959963984540054
MIN_PAIRS_FOR_APGR = 30
MIN_GAP_PAIRS = 5
# (served, reasoning) scores added for the interval only: z^2 / 2 ~ 2 kept, 2 lost.
PSEUDO_PAIRS = ((1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (0.0, 1.0))


class Pair(Protocol):
    @property
    def fast(self) -> float: ...
    @property
    def reasoning(self) -> float: ...
    @property
    def served(self) -> float: ...
    @property
    def score(self) -> float | None: ...


def ratio_interval(
    served: Sequence[float], reasoning: Sequence[float]
) -> tuple[float, float, float] | None:
    """``sum(served) / sum(reasoning)`` and its 95% interval; None when undefined.

    The delta method for a ratio of means: with ``R`` the ratio and
    ``d_i = s_i - R r_i``, ``se = sqrt(sum d_i^2 / (n (n - 1))) / mean(r)`` and the
    interval is ``R +- 1.96 se`` (low end clipped at 0). The spread is taken over
    the pairs plus ``PSEUDO_PAIRS`` (two where the served answer kept the reasoning
    one's score, two where it lost it, in the spirit of Agresti-Coull), so a few
    pairs that all agree do not give a zero-width interval; they widen it, never
    move its centre. ``bench/quality_interval.py`` measures its coverage.
    """
    total = sum(reasoning)
    if not served or total <= 0:
        return None
    ratio = sum(served) / total
    s = [*served, *(pair[0] for pair in PSEUDO_PAIRS)]
    r = [*reasoning, *(pair[1] for pair in PSEUDO_PAIRS)]
    n, mean_r = len(s), sum(r) / len(r)
    spread = sum((a - ratio * b) ** 2 for a, b in zip(s, r, strict=True))
    se = math.sqrt(spread / (n * (n - 1))) / mean_r
    return ratio, max(ratio - Z_95 * se, 0.0), ratio + Z_95 * se


def quality_figures(counts: Mapping[str, int], pairs: Sequence[Pair]) -> dict[str, Any]:
    """``GET /v1/usage``'s ``quality``: today's comparisons of one tenant."""
    comparable = counts.get("comparable", 0)
    kept = ratio_interval([p.served for p in pairs], [p.reasoning for p in pairs])
    figures: dict[str, Any] = {
        "compared": len(pairs) if pairs else counts.get("compared", 0),
        "comparable": comparable,
        "agreement": counts.get("agreed", 0) / comparable if comparable else None,
        "quality_kept": None if kept is None else round(kept[0], 4),
        "quality_kept_95": None if kept is None else [round(kept[1], 4), round(kept[2], 4)],
        "estimated_apgr": estimated_apgr(pairs),
        "ungraded": counts.get("ungraded", 0),
        "failed": counts.get("failed", 0),
        "refused": counts.get("refused", 0),
        "dropped": counts.get("dropped", 0),
    }
    return figures


def estimated_apgr(pairs: Sequence[Pair]) -> float | None:
    """APGR of the prompt scores over graded pairs, or None until there are enough."""
    scored = [p for p in pairs if p.score is not None]
    gap_pairs = sum(1 for p in scored if p.fast != p.reasoning)
    if len(scored) < MIN_PAIRS_FOR_APGR or gap_pairs < MIN_GAP_PAIRS:
        return None
    gain = sum(p.reasoning - p.fast for p in scored)
    if abs(gain) < 1e-12:
        return None
    # The PGR curve (classifier.metrics.routing_curve), walked here without numpy.
    ordered = sorted(scored, key=lambda p: -(p.score or 0.0))
    n, area, cumulative, i = len(ordered), 0.0, 0.0, 0
    previous = 0.0
    while i < n:
        j = i
        while j < n and ordered[j].score == ordered[i].score:
            j += 1
        group = sum(p.reasoning - p.fast for p in ordered[i:j]) / (j - i)
        for _ in range(i, j):
            cumulative += group
            current = cumulative / gain
            area += (previous + current) / 2 / n
            previous = current
        i = j
    return round(area, 4)
