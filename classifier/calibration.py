"""Pick a score threshold from data: by reasoning share or by gap recovered.

The threshold is policy, not model: the same head serves every mode, and
each mode is one number chosen here on held-out scores (RouteLLM's
``calibrate_threshold`` does the same by quantile).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from classifier.metrics import RoutingCurve

__all__ = ["threshold_for_pgr", "threshold_for_share"]


def threshold_for_share(scores: ArrayLike, share: float) -> float:
    """The threshold that sends ``share`` of these prompts to the reasoning tier.

    A prompt goes to the reasoning tier when its score is at or above the
    threshold; the value returned lies halfway between the last prompt in and
    the first prompt out, so small score jitter does not flip either.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    ranked = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if ranked.size == 0:
        raise ValueError("no scores to calibrate on")
    k = int(round(share * ranked.size))
    if k == 0:
        return float(min(1.0, ranked[0] + 1e-9)) if ranked[0] < 1.0 else 1.0
    if k >= ranked.size:
        return float(ranked[-1])
    return float((ranked[k - 1] + ranked[k]) / 2.0)


def threshold_for_pgr(scores: ArrayLike, curve: RoutingCurve, target: float) -> float:
    """The threshold whose reasoning share first recovers ``target`` of the gap."""
    return threshold_for_share(scores, curve.cpt(target))
