"""A tenant's own head: the shipped head's score, moved by what the tenant's graded traffic shows.

The shipped head learned from the default training data; a tenant's traffic
may differ from it. A tenant head starts from the shipped head and corrects it:

    logit(p) = base_weight * logit(shipped score) + coef . standardised(x) + intercept

where ``x`` is the shipped head's own input (embedding, then text features).
The fit is a logistic regression whose penalty pulls ``coef`` to zero and
``base_weight`` to one: with no evidence it *is* the shipped head, so the
default data acts as the prior and the tenant's records move it only as far
as they can support. The penalty's strength is chosen by cross-validated log
loss on the tenant's records. Fitting is Newton's method over a few hundred
numbers: well under a second for thousands of records.

The label is whether the reasoning tier did better than the fast one on the
pair (``reasoning > fast``), the shipped head's own target.

A head is stored as plain numbers (:meth:`TenantHead.to_numbers`), never as
code: loading checks shapes and finiteness and cannot execute anything.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from classifier.metrics import apgr

__all__ = [
    "FORMAT",
    "PENALTIES",
    "TenantHead",
    "compare_heads",
    "fit_tenant_head",
    "is_held_out",
    "quality_kept_at_share",
]

FORMAT = "thinkroute.tenant-head/1"
# Candidate penalty strengths (sum of log losses + penalty/2 * |params - prior|^2).
PENALTIES: tuple[float, ...] = (3.0, 30.0, 300.0, 3000.0)
_EPS = 1e-6
# Newton's method on a penalised logistic loss converges in a handful of steps.
MAX_NEWTON_STEPS = 25


@dataclass(frozen=True, slots=True)
class TenantHead:
    """A fitted correction of the shipped head for one tenant (see the module docstring)."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef: NDArray[np.float64]
    base_weight: float
    intercept: float
    penalty: float

    @property
    def n_features(self) -> int:
        return int(self.coef.size)

    def score(self, X: ArrayLike, base_scores: ArrayLike) -> NDArray[np.float64]:
        """P(reasoning tier does better), per row of head input ``X`` and its shipped score."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features per row, got {X.shape[1]}")
        z = (
            self.base_weight * _logit(np.asarray(base_scores, dtype=np.float64))
            + ((X - self.mean) / self.scale) @ self.coef
            + self.intercept
        )
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_numbers(self) -> dict[str, Any]:
        """The head as JSON-ready numbers (what :meth:`from_numbers` reads)."""
        return {
            "format": FORMAT,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "base_weight": self.base_weight,
            "intercept": self.intercept,
            "penalty": self.penalty,
        }

    @classmethod
    def from_numbers(cls, numbers: Mapping[str, Any], *, n_features: int) -> TenantHead:
        """Rebuild a head from :meth:`to_numbers`; ValueError on a wrong format or shape."""
        if numbers.get("format") != FORMAT:
            raise ValueError(f"format is {numbers.get('format')!r}, expected {FORMAT!r}")
        arrays = {}
        for name in ("mean", "scale", "coef"):
            array = np.asarray(numbers[name], dtype=np.float64)
            if array.shape != (n_features,):
                raise ValueError(f"{name!r} has shape {array.shape}, expected ({n_features},)")
            if not np.isfinite(array).all():
                raise ValueError(f"{name!r} holds non-finite numbers")
            arrays[name] = array
        if (arrays["scale"] <= 0).any():
            raise ValueError("'scale' must be positive")
        scalars = {name: float(numbers[name]) for name in ("base_weight", "intercept", "penalty")}
        if not all(math.isfinite(v) for v in scalars.values()):
            raise ValueError("non-finite base_weight, intercept or penalty")
        return cls(arrays["mean"], arrays["scale"], arrays["coef"], **scalars)

    def checksum(self) -> str:
        """Names this exact head (scores cached under it stay valid)."""
        canonical = json.dumps(self.to_numbers(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def fit_tenant_head(
    X: ArrayLike,
    base_scores: ArrayLike,
    fast: ArrayLike,
    reasoning: ArrayLike,
    *,
    penalties: Sequence[float] = PENALTIES,
    folds: int = 3,
    random_state: int = 0,
) -> TenantHead:
    """Fit a tenant head on graded pairs: head input, shipped score, each tier's score.

    Parameters
    ----------
    X : array of shape (n, d)
        The shipped head's input for each pair's prompt.
    base_scores : array of shape (n,)
        The shipped head's score of each prompt.
    fast, reasoning : arrays of shape (n,)
        Each tier's graded score on the pair, in [0, 1].
    penalties : sequence of float
        Candidate strengths of the pull towards the shipped head; the one with
        the lowest cross-validated log loss is used (one candidate: no search).
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    base = np.asarray(base_scores, dtype=np.float64)
    y = (np.asarray(reasoning, dtype=np.float64) > np.asarray(fast, dtype=np.float64)).astype(
        np.float64
    )
    if X.shape[0] != base.size or base.size != y.size or X.shape[0] == 0:
        raise ValueError("X, base_scores, fast and reasoning must be non-empty and of one length")
    if not (np.isfinite(X).all() and np.isfinite(base).all()):
        raise ValueError("features and scores must be finite")
    penalty = _chosen_penalty(X, base, y, penalties, folds, random_state)
    return _fit(X, base, y, penalty)


def _chosen_penalty(
    X: NDArray[np.float64],
    base: NDArray[np.float64],
    y: NDArray[np.float64],
    penalties: Sequence[float],
    folds: int,
    random_state: int,
) -> float:
    if len(penalties) == 1 or X.shape[0] < 2 * folds:
        return float(max(penalties))  # too little to choose on: the strongest pull
    fold_of = np.random.default_rng(random_state).permutation(X.shape[0]) % folds
    losses = []
    for penalty in penalties:
        loss = 0.0
        for k in range(folds):
            train, test = fold_of != k, fold_of == k
            head = _fit(X[train], base[train], y[train], penalty)
            p = np.clip(head.score(X[test], base[test]), _EPS, 1 - _EPS)
            loss -= float(np.sum(y[test] * np.log(p) + (1 - y[test]) * np.log(1 - p)))
        losses.append(loss)
    return float(penalties[int(np.argmin(losses))])


def _fit(
    X: NDArray[np.float64], base: NDArray[np.float64], y: NDArray[np.float64], penalty: float
) -> TenantHead:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant column: nothing to learn from it
    Z = (X - mean) / scale
    prior = _logit(base)
    d = X.shape[1]

    # Parameters: coef (d), base_weight, intercept, over columns [Z, prior, 1]. The penalty
    # pulls coef to 0 and base_weight to 1 (the shipped head); the intercept is free.
    A = np.hstack([Z, prior[:, None], np.ones((Z.shape[0], 1))])
    pull = np.full(d + 2, penalty)
    pull[d + 1] = 1e-6  # the intercept: free, but the system stays solvable
    centre = np.zeros(d + 2)
    centre[d] = 1.0

    def loss(params: NDArray[np.float64]) -> float:
        z = A @ params
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * pull @ (params - centre) ** 2)

    params = centre.copy()
    current = loss(params)
    for _ in range(MAX_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ params, -30.0, 30.0)))
        gradient = A.T @ (p - y) + pull * (params - centre)
        hessian = (A * (p * (1.0 - p))[:, None]).T @ A + np.diag(pull)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-4 and loss(params - size * step) > current:  # damped: never uphill
            size /= 2.0
        params = params - size * step
        improved, current = current - loss(params), loss(params)
        if improved < 1e-7 * max(1.0, abs(current)):
            break
    return TenantHead(mean, scale, params[:d].copy(), float(params[d]), float(params[d + 1]),
                      float(penalty))  # fmt: skip


def is_held_out(record_id: str, share: float) -> bool:
    """Whether a record belongs to the held-out part, stably across trainings.

    The split depends on the record's id alone, so a record held out once is
    held out every time: a champion trained earlier never saw the records it
    is judged on now.
    """
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def quality_kept_at_share(
    scores: ArrayLike, fast: ArrayLike, reasoning: ArrayLike, share: float
) -> float | None:
    """Served score / always-reasoning score when the top ``share`` by score go to reasoning.

    None when always-reasoning scores nothing (the ratio is undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    fast, reasoning = np.asarray(fast, dtype=np.float64), np.asarray(reasoning, dtype=np.float64)
    if scores.size == 0 or reasoning.sum() <= 0:
        return None
    k = int(round(share * scores.size))
    chosen = np.zeros(scores.size, dtype=bool)
    chosen[np.argsort(-scores, kind="stable")[:k]] = True
    return float(np.where(chosen, reasoning, fast).sum() / reasoning.sum())


def compare_heads(
    champion: ArrayLike, challenger: ArrayLike, fast: ArrayLike, reasoning: ArrayLike
) -> dict[str, Any]:
    """Both heads' APGR on the same held-out pairs, and whether the challenger wins.

    The challenger wins only with a strictly higher APGR; with no gap between
    the tiers on these pairs there is nothing to win on (``apgr`` None).
    """
    fast, reasoning = np.asarray(fast, dtype=np.float64), np.asarray(reasoning, dtype=np.float64)
    n = int(fast.size)
    differing = int(np.sum(fast != reasoning))
    if n == 0 or abs(float(reasoning.sum() - fast.sum())) < 1e-9:
        return {"held_out": n, "differing": differing, "champion_apgr": None,
                "challenger_apgr": None, "challenger_wins": False}  # fmt: skip
    champion_apgr = apgr(champion, fast, reasoning)
    challenger_apgr = apgr(challenger, fast, reasoning)
    return {
        "held_out": n,
        "differing": differing,
        "champion_apgr": round(champion_apgr, 4),
        "challenger_apgr": round(challenger_apgr, 4),
        "challenger_wins": bool(challenger_apgr > champion_apgr + 1e-9),
    }


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)
