"""The gain model is a scikit-learn regressor that stores as numbers, and the gate discounts it."""

import json

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from classifier.gain import TreeGain
from classifier.head import DifficultyHead, GatedHead


@parametrize_with_checks(
    [TreeGain(max_iter=50)],
    expected_failed_checks=lambda _: {
        # The projection and the trees' smallest leaf count rows, not weights.
        "check_sample_weight_equivalence_on_dense_data": "PCA and leaf sizes count rows",
    },
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def data(rows=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 12))
    X[:, 0] *= 3  # the embedding's main direction of variation...
    # ...and one passthrough column carry the gain.
    y = np.clip(0.5 + 0.1 * X[:, 0] + 0.2 * (X[:, -1] > 0), 0, 1)
    return X, y


def test_gain_ranks_by_what_it_learned_and_passes_surface_columns_through():
    X, y = data()
    gain = TreeGain(n_components=4, n_passthrough=2, max_iter=100).fit(X, y)
    assert gain.components_.shape == (4, 10) and gain.trees_.n_features == 6
    held, truth = data(seed=1)
    assert np.corrcoef(gain.predict(held), truth)[0, 1] > 0.8


def test_numbers_round_trip_through_json_exactly():
    X, y = data()
    gain = TreeGain(n_components=3, n_passthrough=2, max_iter=30).fit(X, y)
    loaded = TreeGain.from_numbers(json.loads(json.dumps(gain.to_numbers())), n_features=12)
    np.testing.assert_array_equal(loaded.predict(X), gain.predict(X))


def test_numbers_for_another_width_are_refused():
    X, y = data()
    numbers = TreeGain(n_components=3, n_passthrough=2, max_iter=5).fit(X, y).to_numbers()
    with pytest.raises(ValueError, match="center has shape"):
        TreeGain.from_numbers(numbers, n_features=20)


def test_small_training_sets_still_split():
    X, y = data(rows=60)
    gain = TreeGain(n_components=3, max_iter=20).fit(X, y)
    assert np.ptp(gain.predict(X)) > 0.1


def gated(gate_open):
    X, y = data()
    gate = DifficultyHead(calibration=None).fit(X, X[:, 1] > 0)
    gain = TreeGain(n_components=4, max_iter=50).fit(X, y)
    return GatedHead(gate=gate, gain=gain, gate_open=gate_open), X


def test_an_open_gate_leaves_the_gain_alone_and_a_closed_one_discounts_it():
    head, X = gated(gate_open=0.5)
    gate = head.gate.predict_proba(X)[:, 1]
    gain = np.clip(head.gain.predict(X), 0, 1)
    open_, closed = gate >= 0.5, gate < 0.25
    np.testing.assert_allclose(head.raw_score(X)[open_], gain[open_], atol=0.007)
    assert np.all(head.raw_score(X)[closed] <= gain[closed] / 2 + 0.004)


def test_scores_are_probabilities_in_the_gain_s_order_where_the_gate_is_open():
    head, X = gated(gate_open=1e-9)  # the gate never closes
    head.calibration = np.array([1.5, -0.3])
    scores = head.score(X)
    assert np.all((scores > 0) & (scores < 1))
    order = np.argsort(head.gain.predict(X))
    assert np.all(np.diff(scores[order]) >= -1e-12)


@pytest.mark.parametrize("gate_open", [0.0, 1.5])
def test_gate_open_outside_its_range_is_refused(gate_open):
    head, _ = gated(gate_open=0.5)
    with pytest.raises(ValueError, match="gate_open"):
        GatedHead(gate=head.gate, gain=head.gain, gate_open=gate_open)


def test_an_easy_cue_discounts_the_score_and_nothing_else():
    """Where a cue of an easy question over material fires, the raw score loses
    easy_discount of itself; where it does not, the score is the plain gated gain."""
    head, X = gated(gate_open=0.5)
    X[:, -1] = 0.0
    X[: len(X) // 2, -1] = 1.0
    fires = X[:, -1] == 1.0
    plain = head.raw_score(X)
    easy = GatedHead(
        gate=head.gate,
        gain=head.gain,
        gate_open=0.5,
        easy_columns=(X.shape[1] - 1,),
        easy_discount=0.8,
    )
    np.testing.assert_allclose(easy.raw_score(X)[fires], 0.2 * plain[fires])
    np.testing.assert_array_equal(easy.raw_score(X)[~fires], plain[~fires])
    with pytest.raises(ValueError, match="easy_discount"):
        GatedHead(gate=head.gate, gain=head.gain, easy_discount=1.5)


def with_floor_cues():
    """A gated head and rows where the cue under test (the last column but one) fires on
    every other row and an easy cue (the last column) on every fourth, a subset of those;
    with the head's plain raw scores and gate."""
    head, X = gated(gate_open=0.5)
    X[:, -2:] = 0.0
    X[::2, -2] = 1.0
    X[::4, -1] = 1.0
    return head, X, head.raw_score(X), head.parts(X)[0]


def test_a_hard_cue_with_an_open_gate_lifts_a_low_gain_to_the_floor():
    """Where a cue of reasoning need fires, the gate is at least hard_gate and no easy
    cue fires, the raw score is at least hard_floor; everywhere else it is unchanged."""
    head, X, plain, gate = with_floor_cues()
    floored = GatedHead(
        gate=head.gate,
        gain=head.gain,
        gate_open=0.5,
        easy_columns=(X.shape[1] - 1,),
        hard_columns=(X.shape[1] - 2,),
        hard_floor=0.3,
        hard_gate=0.6,
    )
    lifted = (X[:, -2] == 1.0) & (X[:, -1] == 0.0) & (gate >= 0.6)
    assert lifted.any() and (~lifted & (X[:, -2] == 1.0)).any()
    raw = floored.raw_score(X)
    np.testing.assert_allclose(raw[lifted], np.maximum(plain[lifted], 0.3))
    np.testing.assert_array_equal(raw[~lifted], plain[~lifted])
    with pytest.raises(ValueError, match="hard_floor"):
        GatedHead(gate=head.gate, gain=head.gain, hard_floor=1.5)


def test_non_finite_vectors_are_refused():
    head, X = gated(gate_open=0.5)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        head.score(X)


def test_a_direct_cue_lifts_to_the_floor_whatever_the_gate_unless_an_easy_cue_fires():
    """A cue that asks for reasoning in so many words (how two people are related) is
    floored even where the gate is shut, which is where a one-line riddle lands."""
    head, X, plain, gate = with_floor_cues()
    direct = GatedHead(
        gate=head.gate,
        gain=head.gain,
        gate_open=0.5,
        easy_columns=(X.shape[1] - 1,),
        direct_columns=(X.shape[1] - 2,),
        hard_floor=0.3,
        hard_gate=0.6,
    )
    lifted = (X[:, -2] == 1.0) & (X[:, -1] == 0.0)
    assert (lifted & (gate < 0.25)).any()  # closed gates are lifted too
    raw = direct.raw_score(X)
    np.testing.assert_allclose(raw[lifted], np.maximum(plain[lifted], 0.3))
    np.testing.assert_array_equal(raw[~lifted], plain[~lifted])
