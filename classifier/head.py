"""The difficulty head: vectors in, P(reasoning model does better) out."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

__all__ = ["DifficultyHead"]


class DifficultyHead(ClassifierMixin, BaseEstimator):
    """Standardised logistic regression with Platt calibration on held-out folds.

    A plain linear model keeps the shipped artifact a few hundred numbers that
    load without running code, and scores a vector in microseconds.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.
    calibration : {"sigmoid", None}, default="sigmoid"
        ``"sigmoid"`` fits Platt scaling on out-of-fold decision values, so
        probabilities mean what they say; ``None`` keeps the raw model's.
    cv : int, default=5
        Folds used to produce the out-of-fold values for calibration.
    max_iter : int, default=2000
        Iterations allowed to the solver.
    random_state : int, default=0
        Seed of the fold split.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation learned from the training vectors.
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    calibration_ : ndarray of shape (2,)
        Slope and offset applied to the decision value before the sigmoid.
    n_iter_ : int
        Solver iterations of the final fit.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))]
    >>> y = np.r_[np.zeros(20), np.ones(20)]
    >>> head = DifficultyHead().fit(X, y)
    >>> head.predict([[0, 0], [1, 1]]).tolist()
    [0.0, 1.0]
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        calibration: str | None = "sigmoid",
        cv: int = 5,
        max_iter: int = 2000,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.calibration = calibration
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        calibrate_on: ArrayLike | None = None,
    ) -> DifficultyHead:
        """Fit on vectors ``X`` and binary labels ``y``.

        Parameters
        ----------
        calibrate_on : array-like of bool, optional
            Rows whose out-of-fold values fit the calibration (default: all).
            Use it to calibrate on measured outcomes only, while weaker labels
            still shape the ranking.
        """
        if self.calibration not in ("sigmoid", None):
            raise ValueError(f"calibration must be 'sigmoid' or None, got {self.calibration!r}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        # raise_unknown gives sklearn's own "Unknown label type" error for junk labels.
        target_type = type_of_target(y, input_name="y", raise_unknown=True)
        if target_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {target_type}."
            )
        self.classes_, y01 = np.unique(y, return_inverse=True)
        weights = _check_sample_weight(sample_weight, X)
        mask = (
            np.ones(len(y01), dtype=bool)
            if calibrate_on is None
            else np.asarray(calibrate_on, dtype=bool)
        )

        self.mean_ = np.average(X, axis=0, weights=weights)
        scale = np.sqrt(np.average((X - self.mean_) ** 2, axis=0, weights=weights))
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = (X - self.mean_) / self.scale_

        model = self._linear().fit(Z, y01, sample_weight=weights)
        self.coef_ = model.coef_.ravel().copy()
        self.intercept_ = float(model.intercept_[0])
        self.n_iter_ = int(model.n_iter_[0])
        self.calibration_ = np.array([1.0, 0.0])
        if self.calibration == "sigmoid":
            self.calibration_ = self._fit_platt(Z, y01, weights, mask)
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Calibrated log-odds that the reasoning model does better."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        raw = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        slope, offset = self.calibration_
        return np.asarray(slope * raw + offset, dtype=np.float64)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Columns: P(class 0), P(class 1), where class 1 is "reasoning does better"."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        above = self.decision_function(X) > 0
        return self.classes_[above.astype(int)]

    def _linear(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter)

    def _fit_platt(
        self, Z: NDArray[np.float64], y: NDArray[np.intp], w: NDArray[np.float64], mask: NDArray
    ) -> NDArray[np.float64]:
        folds = min(self.cv, int(np.bincount(y).min()))
        if folds < 2:
            return np.array([1.0, 0.0])
        out_of_fold = np.empty(len(y))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for train, test in splitter.split(Z, y):
            fold_model = self._linear().fit(Z[train], y[train], sample_weight=w[train])
            out_of_fold[test] = fold_model.decision_function(Z[test])
        if len(np.unique(y[mask])) < 2:
            return np.array([1.0, 0.0])
        platt = LogisticRegression(C=1e4, max_iter=self.max_iter)
        platt.fit(out_of_fold[mask, None], y[mask], sample_weight=w[mask])
        return np.array([float(platt.coef_[0, 0]), float(platt.intercept_[0])])

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
