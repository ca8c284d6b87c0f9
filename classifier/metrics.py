"""Routing-quality metrics: PGR curve, APGR and CPT (RouteLLM's definitions).

For ``n`` prompts with a cheap and a costly score each, route the ``k`` with
the highest router score to the costly model. Quality at ``k`` is the mean of
the chosen answers' scores, and

    PGR(k) = (quality(k) - quality(0)) / (quality(n) - quality(0))

is the share of the quality gap recovered. APGR is the area under PGR as the
costly share ``k / n`` goes from 0 to 1 (random routing gives 0.5); CPT(x) is
the smallest costly share whose PGR reaches ``x``.

Prompts with tied router scores cannot be told apart, so the curve moves
through a tie group linearly (the expected value of breaking the tie at
random). That makes a constant score exactly as good as random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["RoutingCurve", "apgr", "cpt", "routing_curve"]


@dataclass(frozen=True)
class RoutingCurve:
    """PGR at every costly share ``k / n``, for ``k = 0 .. n``.

    Attributes
    ----------
    share : ndarray of shape (n + 1,)
        Fraction of prompts sent to the costly model.
    pgr : ndarray of shape (n + 1,)
        Performance gap recovered at that share (may leave [0, 1] when the
        costly model is worse on some prompts).
    quality : ndarray of shape (n + 1,)
        Mean score of the chosen answers at that share.
    """

    share: NDArray[np.float64]
    pgr: NDArray[np.float64]
    quality: NDArray[np.float64]

    @property
    def apgr(self) -> float:
        """Area under the PGR curve over shares 0 to 1 (trapezoidal rule)."""
        heights = (self.pgr[1:] + self.pgr[:-1]) / 2.0
        return float(np.sum(heights * np.diff(self.share)))

    def cpt(self, target: float) -> float:
        """Smallest costly share whose PGR reaches ``target`` (1.0 if never)."""
        reached = np.flatnonzero(self.pgr >= target - 1e-12)
        if reached.size == 0:
            return 1.0
        i = int(reached[0])
        if i == 0:
            return 0.0
        # PGR is linear between neighbouring points: solve for the crossing.
        lo, hi = self.pgr[i - 1], self.pgr[i]
        step = self.share[i] - self.share[i - 1]
        return float(self.share[i - 1] + step * (target - lo) / (hi - lo))


def routing_curve(
    router_scores: ArrayLike, cheap_scores: ArrayLike, costly_scores: ArrayLike
) -> RoutingCurve:
    """The PGR curve of a router over prompts with measured outcomes.

    Parameters
    ----------
    router_scores : array-like of shape (n,)
        Higher means "send to the costly model first".
    cheap_scores, costly_scores : array-like of shape (n,)
        Each model's measured score on each prompt.

    Raises
    ------
    ValueError
        If the arrays differ in length, are empty, or the two models score the
        same on average (PGR is undefined without a gap).
    """
    router = np.asarray(router_scores, dtype=np.float64)
    cheap = np.asarray(cheap_scores, dtype=np.float64)
    costly = np.asarray(costly_scores, dtype=np.float64)
    if not router.shape == cheap.shape == costly.shape or router.ndim != 1:
        raise ValueError("router, cheap and costly scores must be 1-d arrays of one length")
    n = router.size
    if n == 0:
        raise ValueError("no prompts with outcomes to evaluate")
    gain = costly - cheap
    total_gain = gain.sum()
    if abs(total_gain) < 1e-12:
        raise ValueError("the two models score the same on average: PGR is undefined")

    # Walk tie groups from the highest router score down; within a group every
    # prompt gains the group's mean, which is the expectation over tie orders.
    order = np.argsort(-router, kind="stable")
    sorted_scores, sorted_gain = router[order], gain[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    group_sums = np.add.reduceat(sorted_gain, group_starts)
    group_sizes = np.diff(np.r_[group_starts, n])
    per_prompt_gain = np.repeat(group_sums / group_sizes, group_sizes)

    cumulative = np.r_[0.0, np.cumsum(per_prompt_gain)]
    share = np.arange(n + 1, dtype=np.float64) / n
    quality = (cheap.sum() + cumulative) / n
    return RoutingCurve(share=share, pgr=cumulative / total_gain, quality=quality)


def apgr(router_scores: ArrayLike, cheap_scores: ArrayLike, costly_scores: ArrayLike) -> float:
    """Average performance gap recovered; see :func:`routing_curve`."""
    return routing_curve(router_scores, cheap_scores, costly_scores).apgr


def cpt(
    router_scores: ArrayLike, cheap_scores: ArrayLike, costly_scores: ArrayLike, target: float
) -> float:
    """Costly share needed to recover ``target`` of the gap; see :func:`routing_curve`."""
    return routing_curve(router_scores, cheap_scores, costly_scores).cpt(target)
