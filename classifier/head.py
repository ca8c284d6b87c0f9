"""The difficulty head: vectors in, P(reasoning model does better) out.

The shipped score combines two models (:class:`GatedHead`):

    P(better) = calibrate( max( gain x min(1, gate / gate_open) x (1 - easy_discount x easy),
                                hard_floor x ([hard cue] x [gate >= hard_gate] or [direct cue])
                                           x [no easy cue] ) )

The *gate* (a logistic regression, :class:`DifficultyHead`) learns from
prompt records (everyday chat versus competition maths and hard coding) what
kind of request this is; the *gain* (boosted trees, :class:`~classifier.gain.TreeGain`)
learns from measured outcomes how much a reasoning model wins on such a task.
A gate at or above ``gate_open`` leaves the gain's ranking alone, so it costs
nothing among reasoning-type tasks (a plain product cost 0.01 APGR there);
below it, the gate discounts the gain, which sends chat (never measured on
the outcome scale) to the fast tier.

``easy`` is the largest of a few structural cues (read from columns of the
input) that mark an easy question over hard-looking material: a figure looked
up in a table, correct code to explain. Neither model can learn those from
sources that lack them (a source left out of training took its whole kind of
material with it, and leave-one-source-out sent 98% of a table source's
look-ups to reasoning), so the discount is a fixed prior, not fitted.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from classifier.gain import TreeGain

__all__ = ["DifficultyHead", "GatedHead", "fit_platt"]

# Width of the soft floor that keeps the gain positive (the calibration works in
# log-odds) without tying every prompt predicted at or below zero.
_GAIN_FLOOR_WIDTH = 0.01
# A cue in [0, 1] counts as fired from here (as classifier.structure.fired_cues reads it).
_CUE_FIRES = 0.5


class DifficultyHead(ClassifierMixin, BaseEstimator):
    """Standardised logistic regression or small MLP, Platt-calibrated on held-out folds.

    Either model is a few plain arrays (:attr:`coefs_`, :attr:`intercepts_`)
    that load without running code and score a vector in microseconds.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength (the MLP's L2 penalty is ``1 / C``).
    hidden_units : int, default=0
        0 fits a logistic regression; more fits an MLP with one ReLU layer
        of that width.
    calibration : {"sigmoid", None}, default="sigmoid"
        ``"sigmoid"`` fits Platt scaling on out-of-fold decision values, so
        probabilities mean what they say; ``None`` keeps the raw model's.
    cv : int, default=5
        Folds used to produce the out-of-fold values for calibration.
    max_iter : int, default=2000
        Iterations allowed to the solver (epochs, for the MLP: a fixed budget
        that also regularises, so running out of it is not warned about).
    random_state : int, default=0
        Seed of the fold split.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation learned from the training vectors.
    coefs_, intercepts_ : list of ndarray
        Weights and biases per layer; the last layer has one output, the
        log-odds before calibration.
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
        hidden_units: int = 0,
        calibration: str | None = "sigmoid",
        cv: int = 5,
        max_iter: int = 2000,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.hidden_units = hidden_units
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
        checked: tuple[NDArray[np.float64], NDArray[Any]] = validate_data(
            self, X, y, dtype=np.float64
        )
        X, y = checked
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

        model = self._fit_model(Z, y01, weights)
        self.coefs_, self.intercepts_ = _layers(model)
        self.n_iter_ = int(np.max(model.n_iter_))
        self.calibration_ = np.array([1.0, 0.0])
        if self.calibration == "sigmoid":
            self.calibration_ = self._fit_platt(Z, y01, weights, mask)
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Calibrated log-odds that the reasoning model does better."""
        check_is_fitted(self)
        valid: NDArray[np.float64] = validate_data(self, X, dtype=np.float64, reset=False)
        raw = _forward((valid - self.mean_) / self.scale_, self.coefs_, self.intercepts_)
        slope, offset = self.calibration_
        return np.asarray(slope * raw + offset, dtype=np.float64)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Columns: P(class 0), P(class 1), where class 1 is "reasoning does better"."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        above = self.decision_function(X) > 0
        return self.classes_[above.astype(int)]

    def _fit_model(
        self, Z: NDArray[np.float64], y: NDArray[np.intp], w: NDArray[np.float64]
    ) -> LogisticRegression | MLPClassifier:
        if self.hidden_units <= 0:
            return LogisticRegression(C=self.C, max_iter=self.max_iter).fit(Z, y, sample_weight=w)
        mlp = MLPClassifier(
            hidden_layer_sizes=(self.hidden_units,),
            alpha=1.0 / self.C,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return mlp.fit(Z, y, sample_weight=w)

    def _fit_platt(
        self, Z: NDArray[np.float64], y: NDArray[np.intp], w: NDArray[np.float64], mask: NDArray
    ) -> NDArray[np.float64]:
        folds = min(self.cv, int(np.bincount(y).min()))
        if folds < 2:
            return np.array([1.0, 0.0])
        out_of_fold = np.empty(len(y))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for train, test in splitter.split(Z, y):
            fold_model = self._fit_model(Z[train], y[train], w[train])
            out_of_fold[test] = _forward(Z[test], *_layers(fold_model))
        return fit_platt(out_of_fold[mask], y[mask], w[mask])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def _layers(
    model: LogisticRegression | MLPClassifier,
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    if isinstance(model, LogisticRegression):
        return [model.coef_.T.copy()], [model.intercept_.copy()]
    return [w.copy() for w in model.coefs_], [b.copy() for b in model.intercepts_]


def _forward(
    Z: NDArray[np.float64], coefs: list[NDArray[np.float64]], intercepts: list[NDArray[np.float64]]
) -> NDArray[np.float64]:
    """Log-odds from standardised inputs: ReLU hidden layers, then one linear output."""
    h = Z
    for weights, bias in zip(coefs[:-1], intercepts[:-1], strict=True):
        h = np.maximum(h @ weights + bias, 0.0)
    return np.asarray((h @ coefs[-1] + intercepts[-1])[:, 0], dtype=np.float64)


def _probability(head: DifficultyHead, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``head.predict_proba(X)[:, 1]``, the same arithmetic without re-validating ``X``."""
    check_is_fitted(head, "coefs_")
    if X.shape[1] != head.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, the head expects {head.n_features_in_}")
    slope, offset = head.calibration_
    z = slope * _forward((X - head.mean_) / head.scale_, head.coefs_, head.intercepts_) + offset
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def fit_platt(
    decision: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Slope and offset mapping decision values to calibrated log-odds (Platt scaling).

    Returns the identity ``[1, 0]`` when ``y`` holds a single class.
    """
    decision, y = np.asarray(decision, dtype=np.float64), np.asarray(y)
    if len(np.unique(y)) < 2:
        return np.array([1.0, 0.0])
    platt = LogisticRegression(C=1e4, max_iter=2000)
    platt.fit(decision[:, None], y, sample_weight=sample_weight)
    return np.array([float(platt.coef_[0, 0]), float(platt.intercept_[0])])


def logit(p: ArrayLike) -> NDArray[np.float64]:
    """Log-odds, clipped away from 0 and 1 so products of small probabilities stay finite."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


class GatedHead:
    """P(reasoning model does better) from a gate and a gain model, calibrated.

    Parameters
    ----------
    gate : DifficultyHead
        Fitted on "does this request call for reasoning at all?".
    gain : TreeGain
        Fitted on "how much does the reasoning model win on this task?".
    gate_open : float, default=0.5
        Gate probability from which the gain counts in full; below it the gain
        is scaled by ``gate / gate_open``.
    calibration : array-like of shape (2,)
        Platt slope and offset over the log-odds of the discounted gain.
    easy_columns : sequence of int, default=()
        Input columns holding cues in [0, 1] of an easy question over material.
    easy_discount : float, default=0.0
        Share of the raw score removed where the largest of those cues is 1.
    hard_columns : sequence of int, default=()
        Input columns holding cues in [0, 1] of reasoning need.
    hard_floor : float, default=0.0
        Least raw score where one of those cues fires (>= 0.5), the gate is at
        least ``hard_gate`` and no easy cue fires; 0 disables the floor.
    hard_gate : float, default=0.5
        Gate probability from which the floor applies.
    direct_columns : sequence of int, default=()
        Input columns holding cues that ask for reasoning in so many words (how
        two people are related, "show that"): floored at ``hard_floor`` whatever
        the gate, which scores a one-line riddle like small talk.
    """

    def __init__(
        self,
        *,
        gate: DifficultyHead,
        gain: TreeGain,
        gate_open: float = 0.5,
        calibration: ArrayLike = (1.0, 0.0),
        easy_columns: tuple[int, ...] = (),
        easy_discount: float = 0.0,
        hard_columns: tuple[int, ...] = (),
        hard_floor: float = 0.0,
        hard_gate: float = 0.5,
        direct_columns: tuple[int, ...] = (),
    ) -> None:
        if not 0.0 < gate_open <= 1.0:
            raise ValueError(f"gate_open must lie in (0, 1], got {gate_open}")
        if not 0.0 <= easy_discount <= 1.0:
            raise ValueError(f"easy_discount must lie in [0, 1], got {easy_discount}")
        if not 0.0 <= hard_floor <= 1.0:
            raise ValueError(f"hard_floor must lie in [0, 1], got {hard_floor}")
        if not 0.0 <= hard_gate <= 1.0:
            raise ValueError(f"hard_gate must lie in [0, 1], got {hard_gate}")
        self.hard_columns = tuple(int(c) for c in hard_columns)
        self.hard_floor = float(hard_floor)
        self.hard_gate = float(hard_gate)
        self.direct_columns = tuple(int(c) for c in direct_columns)
        self.easy_columns = tuple(int(c) for c in easy_columns)
        self.easy_discount = float(easy_discount)
        self.gate = gate
        self.gain = gain
        self.gate_open = float(gate_open)
        self.calibration = np.asarray(calibration, dtype=np.float64)

    def raw_score(self, X: ArrayLike) -> NDArray[np.float64]:
        """The uncalibrated gain, discounted where the gate is below ``gate_open``, floored
        where a cue of reasoning need fires."""
        X = np.asarray(X, dtype=np.float64)
        # Checked once here instead of by scikit-learn in each model: on the request
        # path its validation costs more than the arithmetic (0.15 ms of 0.5). The
        # gate checks the width.
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ValueError(f"expected a finite 2-d array of vectors, got shape {X.shape}")
        gate, gain = self.parts(X)
        discount = np.minimum(1.0, gate / self.gate_open)
        positive = _GAIN_FLOOR_WIDTH * np.logaddexp(0.0, np.minimum(gain, 1.0) / _GAIN_FLOOR_WIDTH)
        easy = np.zeros(len(X))
        if self.easy_columns:
            easy = np.clip(X[:, list(self.easy_columns)].max(axis=1), 0.0, 1.0)
            discount = discount * (1.0 - self.easy_discount * easy)
        raw = positive * discount
        if self.hard_floor and (self.hard_columns or self.direct_columns):
            floored = np.zeros(len(X), dtype=bool)
            if self.hard_columns:
                floored |= (X[:, list(self.hard_columns)].max(axis=1) >= _CUE_FIRES) & (
                    gate >= self.hard_gate
                )
            if self.direct_columns:
                floored |= X[:, list(self.direct_columns)].max(axis=1) >= _CUE_FIRES
            floored &= easy < _CUE_FIRES
            raw = np.where(floored, np.maximum(raw, self.hard_floor), raw)
        return raw

    def parts(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The gate's P(reasoning-type request) and the gain model's predicted gain, per row."""
        return _probability(self.gate, X), self.gain.predict_unchecked(X)

    def score(self, X: ArrayLike) -> NDArray[np.float64]:
        """Calibrated P(reasoning model does better), one per row."""
        slope, offset = self.calibration
        return 1.0 / (1.0 + np.exp(-(slope * logit(self.raw_score(X)) + offset)))
