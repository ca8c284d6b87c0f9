"""A fitted gradient-boosted tree ensemble as plain arrays of numbers.

Node arrays padded to one width store as JSON numbers, load without running
code (no pickle) and predict all rows and trees at once in ``depth`` numpy steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

__all__ = ["TreeEnsemble"]

_NODE_ARRAYS: dict[str, type[np.generic]] = {
    "feature": np.int64,
    "threshold": np.float64,
    "left": np.int64,
}
_NODE_ARRAYS |= {"right": np.int64, "value": np.float64, "missing_left": np.bool_}
# sklearn gives a "split on missing" (NaN right, everything else left) the
# threshold +inf, which JSON cannot hold. The largest float splits finite values
# the same way, and predict() clamps +inf inputs to it so they go left too.
_MAX = float(np.finfo(np.float64).max)


@dataclass(frozen=True, slots=True, eq=False)
class TreeEnsemble:
    """Trees of a gradient-boosted regressor as padded arrays of shape (n_trees, max_nodes).

    Node 0 is each tree's root. A row goes left when ``x[feature] <= threshold``,
    or when ``x[feature]`` is NaN and ``missing_left``. Leaves point to
    themselves, so after ``depth`` steps every row sits on a leaf of every tree.

    Parameters
    ----------
    feature, threshold, left, right, value, missing_left : ndarray of shape (n_trees, max_nodes)
        Split feature and threshold, child indices within the tree, leaf value
        (learning rate included; 0 off the leaves) and where NaN goes.
    baseline : float
        Prediction before any tree (the training mean, for squared error).
    n_features : int
        Columns expected in ``X``.
    depth : int
        Longest root-to-leaf path, the number of descent steps.
    """

    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    value: NDArray[np.float64]
    missing_left: NDArray[np.bool_]
    baseline: float
    n_features: int
    depth: int
    _flat: tuple[NDArray[Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, dtype in _NODE_ARRAYS.items():
            array = np.array(getattr(self, name), dtype=dtype)  # a copy, so frozen means frozen
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        _check(self)
        start = np.arange(self.feature.shape[0]) * self.feature.shape[1]
        # Flat node arrays with global indices, children interleaved so that the
        # next node is children[2 * node + goes_right]: one take instead of three.
        children = np.stack([self.left, self.right], axis=-1) + start[:, None, None]
        flat = (self.feature, self.threshold, children, self.value, ~self.missing_left)
        object.__setattr__(self, "_flat", (*(a.ravel() for a in flat), start))

    @classmethod
    def from_estimator(cls, model: HistGradientBoostingRegressor) -> TreeEnsemble:
        """The trees of a fitted single-output, squared-error, all-numeric regressor."""
        if not isinstance(model, HistGradientBoostingRegressor):
            raise TypeError(f"expected a HistGradientBoostingRegressor, got {type(model).__name__}")
        check_is_fitted(model)
        if model.loss != "squared_error":
            raise ValueError(f"only squared_error loss is supported, got {model.loss!r}")
        if model.n_trees_per_iteration_ != 1 or model._baseline_prediction.size != 1:
            raise ValueError("only single-output models are supported")
        trees = [predictors[0].nodes for predictors in model._predictors]
        if model.is_categorical_ is not None or any(t["is_categorical"].any() for t in trees):
            raise ValueError("models with categorical features are not supported")

        # Pad every tree to the widest with leaves, then convert all trees at once.
        padded = np.zeros((len(trees), max(len(t) for t in trees)), trees[0].dtype)
        padded["is_leaf"] = 1
        for i, nodes in enumerate(trees):
            padded[i, : len(nodes)] = nodes
        split, own = padded["is_leaf"] == 0, np.arange(padded.shape[1])
        arrays = {
            "feature": np.where(split, padded["feature_idx"], 0),
            "threshold": np.where(split, np.minimum(padded["num_threshold"], _MAX), 0.0),
            # sklearn's leaves point at node 0; ours point at themselves.
            "left": np.where(split, padded["left"], own),
            "right": np.where(split, padded["right"], own),
            "value": np.where(split, 0.0, padded["value"]),
            "missing_left": split & (padded["missing_go_to_left"] == 1),
        }
        return cls(
            **arrays,
            baseline=float(model._baseline_prediction.ravel()[0]),
            n_features=int(model.n_features_in_),
            depth=max(int(predictors[0].get_max_depth()) for predictors in model._predictors),
        )

    @classmethod
    def from_numbers(cls, numbers: dict[str, Any], n_features: int) -> TreeEnsemble:
        """Rebuild from :meth:`to_numbers` output, checking it fits ``n_features`` columns.

        Raises ValueError naming the problem: a missing key, a mistyped or ragged
        array, mismatched shapes, a feature index outside ``[0, n_features)``, a
        child out of range or not after its parent, a non-finite number, a wrong
        ``depth``.
        """
        missing = sorted({*_NODE_ARRAYS, "baseline", "n_features", "depth"} - set(numbers))
        if missing:
            raise ValueError(f"tree ensemble is missing {', '.join(missing)}")
        if numbers["n_features"] != n_features:
            raise ValueError(f"n_features is {numbers['n_features']!r}, expected {n_features}")
        arrays = {name: _array(numbers[name], name, dtype) for name, dtype in _NODE_ARRAYS.items()}
        for name, kind in (("baseline", (int, float)), ("depth", int)):
            if not isinstance(numbers[name], kind) or isinstance(numbers[name], bool):
                raise ValueError(f"{name} must be a number, got {numbers[name]!r}")
        baseline, depth = float(numbers["baseline"]), numbers["depth"]
        return cls(**arrays, baseline=baseline, n_features=n_features, depth=depth)

    def to_numbers(self) -> dict[str, Any]:
        """JSON-ready lists and scalars that :meth:`from_numbers` reads back exactly."""
        numbers = {name: getattr(self, name).tolist() for name in _NODE_ARRAYS}
        scalars = {"baseline": self.baseline, "n_features": self.n_features, "depth": self.depth}
        return numbers | scalars

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predictions for the rows of ``X`` (NaN allowed), same as the source model's."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected X of shape (n, {self.n_features}), got {X.shape}")
        x_flat = np.minimum(X, _MAX).ravel()  # +inf goes left of a "split on missing"
        has_nan = bool(np.isnan(x_flat).any())
        feature, threshold, children, value, missing_right, start = self._flat
        row_start = (np.arange(len(X)) * self.n_features)[:, None]
        node = np.broadcast_to(start, (len(X), len(start)))
        for _ in range(self.depth):
            x = x_flat.take(row_start + feature.take(node))
            goes_right = x > threshold.take(node)  # False for NaN, so NaN goes left...
            if has_nan:  # ...unless its node says right (skipped when there is no NaN)
                goes_right |= np.isnan(x) & missing_right.take(node)
            node = children.take(2 * node + goes_right)
        return np.asarray(self.baseline + value.take(node).sum(axis=1), dtype=np.float64)


def _array(values: Any, name: str, dtype: type) -> NDArray[Any]:
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array") from None
    kinds = {np.int64: "i", np.float64: "if", np.bool_: "b"}[dtype]
    if array.size and array.dtype.kind not in kinds:
        raise ValueError(f"{name} must hold {np.dtype(dtype).name} values, got {array.dtype}")
    return array.astype(dtype)


def _check(trees: TreeEnsemble) -> None:
    shapes = {name: getattr(trees, name).shape for name in _NODE_ARRAYS}
    if len(set(shapes.values())) != 1 or len(trees.feature.shape) != 2 or not trees.feature.size:
        raise ValueError(f"node arrays must share one non-empty 2-d shape, got {shapes}")
    if trees.n_features < 1:
        raise ValueError(f"n_features must be at least 1, got {trees.n_features}")
    own = np.arange(trees.feature.shape[1])
    low, high = np.minimum(trees.left, trees.right), np.maximum(trees.left, trees.right)
    leaf = (low == own) & (high == own)
    problems = {
        "child index out of range": (low < 0) | (high >= len(own)),
        # Forward children make descent end at a leaf, whatever else is in the arrays.
        "child does not point forward": ~leaf & (low <= own),
        # Predict reads X[feature] at leaves too, so theirs must be valid as well.
        "feature index outside [0, n_features)": (trees.feature < 0)
        | (trees.feature >= trees.n_features),
        "non-finite threshold": ~np.isfinite(trees.threshold),
        "non-finite value": ~np.isfinite(trees.value),
    }
    for problem, bad in problems.items():
        if bad.any():
            tree, node = np.argwhere(bad)[0]
            raise ValueError(f"{problem} at tree {tree}, node {node}")
    if not np.isfinite(trees.baseline):
        raise ValueError(f"non-finite baseline {trees.baseline}")
    depth = _depth(trees.left, trees.right, leaf)
    if trees.depth != depth:
        raise ValueError(f"depth {trees.depth} does not match the trees' depth {depth}")


def _depth(left: NDArray[np.int64], right: NDArray[np.int64], leaf: NDArray[np.bool_]) -> int:
    """Longest root-to-leaf path; children come after parents, so one pass in node order."""
    depth = np.full(left.shape, -1)  # -1: not reached from the root
    depth[:, 0] = 0
    for j in range(left.shape[1]):
        trees = np.flatnonzero(~leaf[:, j] & (depth[:, j] >= 0))
        for child in (left[trees, j], right[trees, j]):
            depth[trees, child] = np.maximum(depth[trees, child], depth[trees, j] + 1)
    return int(depth.max())
