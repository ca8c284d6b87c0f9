"""The head is a well-behaved scikit-learn classifier with calibrated output."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from classifier.head import DifficultyHead


@parametrize_with_checks(
    [DifficultyHead(cv=3)],
    expected_failed_checks=lambda _: {
        # Calibration draws shuffled folds, and repeating a row changes which
        # fold its copies land in, so weights and repetitions cannot match
        # exactly; uncalibrated, the head passes (see the test below).
        "check_sample_weight_equivalence_on_dense_data": "folds differ under repetition",
    },
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_uncalibrated_head_treats_weights_as_repetitions():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(60, 3)), np.r_[np.zeros(30), np.ones(30)]
    weights = rng.integers(1, 4, size=60)
    weighted = DifficultyHead(calibration=None).fit(X, y, sample_weight=weights)
    repeated = DifficultyHead(calibration=None).fit(np.repeat(X, weights, 0), np.repeat(y, weights))
    assert weighted.predict_proba(X) == pytest.approx(repeated.predict_proba(X), abs=1e-4)


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        DifficultyHead().predict_proba([[0.0, 1.0]])


def test_multiclass_targets_are_refused():
    with pytest.raises(ValueError, match="binary"):
        DifficultyHead().fit([[0.0], [1.0], [2.0]], [0, 1, 2])


def test_probabilities_are_calibrated_on_held_out_folds():
    # Labels drawn with a known probability: the calibrated output should match it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3))
    true_p = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5)))
    y = (rng.random(4000) < true_p).astype(int)
    head = DifficultyHead().fit(X, y)
    predicted = head.predict_proba(X)[:, 1]
    for lo, hi in [(0.0, 0.3), (0.3, 0.5), (0.5, 1.0)]:
        rows = (predicted >= lo) & (predicted < hi)
        assert abs(y[rows].mean() - predicted[rows].mean()) < 0.05


def test_calibrate_on_restricts_calibration_to_measured_rows():
    # Unmeasured rows with extreme labels must not drag the calibration.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 0.3).astype(int)
    measured = np.arange(2000) < 1000
    y[~measured] = (X[~measured, 0] > 0).astype(int)
    head = DifficultyHead().fit(X, y, calibrate_on=measured)
    assert head.predict_proba(X[measured])[:, 1].mean() == pytest.approx(0.3, abs=0.05)


def test_hidden_layer_learns_what_a_linear_head_cannot():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(600, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)  # XOR: no line separates it
    linear = DifficultyHead().fit(X, y)
    mlp = DifficultyHead(hidden_units=16, C=100.0, max_iter=500).fit(X, y)
    assert (linear.predict(X) == y).mean() < 0.7
    assert (mlp.predict(X) == y).mean() > 0.9
