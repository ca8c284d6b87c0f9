"""A TreeEnsemble predicts what its HistGradientBoostingRegressor predicts, and loads safely."""

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError

from classifier.trees import TreeEnsemble

N_FEATURES = 6


def _data(rng, n_rows, nan_share):
    X = rng.normal(size=(n_rows, N_FEATURES))
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(scale=0.1, size=n_rows)
    X[rng.random(X.shape) < nan_share] = np.nan
    # Missing feature 4 moves the target, so some split is "missing versus the rest".
    y[np.isnan(X[:, 4])] += 10
    return X, y


def _fit(X, y, **params):
    params = {"max_iter": 50, "max_leaf_nodes": 15, "early_stopping": False} | params
    return HistGradientBoostingRegressor(**params).fit(X, y)


@pytest.fixture(scope="module")
def model():
    return _fit(*_data(np.random.default_rng(0), 400, nan_share=0.1))


@pytest.fixture(scope="module")
def rows():
    X, _ = _data(np.random.default_rng(1), 300, nan_share=0.1)
    X[:3, 4] = [np.inf, -np.inf, np.nan]  # both sides of a split on missing
    return X


def test_predictions_match_sklearn_with_nans(model, rows):
    # sklearn stores a split on missing as threshold +inf; make sure one is exercised.
    assert any(np.isinf(p[0].nodes["num_threshold"]).any() for p in model._predictors)
    trees = TreeEnsemble.from_estimator(model)
    assert np.isnan(rows).any()
    np.testing.assert_allclose(trees.predict(rows), model.predict(rows), rtol=0, atol=1e-9)


def test_model_trained_without_nans_sends_them_where_sklearn_does(rows):
    model = _fit(*_data(np.random.default_rng(2), 300, nan_share=0.0))
    trees = TreeEnsemble.from_estimator(model)
    np.testing.assert_allclose(trees.predict(rows), model.predict(rows), rtol=0, atol=1e-9)


def test_single_row(model, rows):
    trees = TreeEnsemble.from_estimator(model)
    assert trees.predict(rows[5:6])[0] == pytest.approx(model.predict(rows[5:6])[0], abs=1e-9)


def test_json_round_trip_predicts_identically(model, rows):
    trees = TreeEnsemble.from_estimator(model)
    text = json.dumps(trees.to_numbers(), allow_nan=False)  # strict JSON: no Infinity
    loaded = TreeEnsemble.from_numbers(json.loads(text), N_FEATURES)
    assert np.array_equal(loaded.predict(rows), trees.predict(rows))
    assert loaded.depth == trees.depth


def test_one_tree_of_depth_one():
    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 0.0, 1.0, 1.0])
    model = _fit(X, y, max_iter=1, min_samples_leaf=1)
    trees = TreeEnsemble.from_estimator(model)
    assert trees.feature.shape == (1, 3) and trees.depth == 1
    grid = np.array([[-1.0], [1.5], [1.6], [9.0], [np.nan]])
    np.testing.assert_allclose(trees.predict(grid), model.predict(grid), rtol=0, atol=1e-9)


def test_trees_that_are_single_leaves():
    model = _fit(np.zeros((4, 1)), np.arange(4.0), max_iter=3)
    trees = TreeEnsemble.from_estimator(model)
    assert trees.depth == 0
    assert trees.predict(np.ones((2, 1))) == pytest.approx(model.predict(np.ones((2, 1))))


def _set(name, tree, node, value):
    def corrupt(numbers):
        numbers[name][tree][node] = value

    return corrupt


def _point_back(numbers):
    """Send the first internal node after the root of tree 0 back to its parent's slot."""
    left = numbers["left"][0]
    node = next(j for j in range(1, len(left)) if left[j] != j)
    left[node] = node - 1


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_set("feature", 0, 0, N_FEATURES), r"feature index outside \[0, n_features\)"),
        (_set("feature", 0, 0, -1), r"feature index outside \[0, n_features\)"),
        (_set("left", 0, 0, 0), "child does not point forward"),
        (_set("right", 0, 0, 0), "child does not point forward"),
        (_point_back, "child does not point forward"),
        (_set("right", 0, 0, 10_000), "child index out of range"),
        (_set("left", 0, 0, -1), "child index out of range"),
        (_set("threshold", 0, 0, float("nan")), "non-finite threshold"),
        (_set("value", 0, -1, float("inf")), "non-finite value"),
        (lambda n: n.update(baseline=float("nan")), "non-finite baseline"),
        (lambda n: n["value"].pop(), "shape"),
        (lambda n: n["threshold"][0].pop(), "threshold is not a rectangular array"),
        (lambda n: n.update(feature=np.array(n["feature"]) + 0.5), "feature must hold int64"),
        (lambda n: n.update(depth=n["depth"] + 1), "depth"),
        (lambda n: n.pop("missing_left"), "missing missing_left"),
        (lambda n: n.update(n_features=N_FEATURES + 1), "n_features"),
    ],
)
def test_from_numbers_names_what_is_wrong(model, corrupt, message):
    numbers = json.loads(json.dumps(TreeEnsemble.from_estimator(model).to_numbers()))
    corrupt(numbers)
    with pytest.raises(ValueError, match=message):
        TreeEnsemble.from_numbers(numbers, N_FEATURES)


def test_from_estimator_refuses_an_unfitted_model():
    with pytest.raises(NotFittedError):
        TreeEnsemble.from_estimator(HistGradientBoostingRegressor())


def test_from_estimator_refuses_categorical_features():
    rng = np.random.default_rng(3)
    X = np.c_[rng.integers(0, 4, 200), rng.normal(size=200)]
    model = _fit(X, X[:, 0] + X[:, 1], max_iter=5, categorical_features=[0])
    with pytest.raises(ValueError, match="categorical"):
        TreeEnsemble.from_estimator(model)


def test_predict_checks_the_number_of_columns(model):
    with pytest.raises(ValueError, match="shape"):
        TreeEnsemble.from_estimator(model).predict(np.zeros((2, N_FEATURES + 1)))
