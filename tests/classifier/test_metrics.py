"""APGR and CPT against examples worked by hand."""

import numpy as np
import pytest

from classifier.metrics import apgr, cpt, routing_curve

CHEAP = [0.0, 1.0, 0.0]
COSTLY = [1.0, 1.0, 0.0]  # only the first prompt gains from the costly model


def test_router_that_ranks_the_gain_first_recovers_it_at_one_third():
    curve = routing_curve([0.9, 0.5, 0.1], CHEAP, COSTLY)
    assert curve.pgr.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert curve.apgr == pytest.approx(5 / 6)
    assert curve.cpt(0.5) == pytest.approx(1 / 6)
    assert curve.quality.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])


def test_router_that_ranks_the_gain_last_is_worse_than_random():
    assert apgr([0.1, 0.5, 0.9], CHEAP, COSTLY) == pytest.approx(1 / 6)
    assert cpt([0.1, 0.5, 0.9], CHEAP, COSTLY, 0.5) == pytest.approx(5 / 6)


def test_constant_scores_are_exactly_random():
    rng = np.random.default_rng(0)
    cheap, costly = rng.random(50), rng.random(50) + 0.2
    curve = routing_curve(np.full(50, 0.3), cheap, costly)
    assert curve.apgr == pytest.approx(0.5)
    assert curve.cpt(0.5) == pytest.approx(0.5)
    assert curve.cpt(0.8) == pytest.approx(0.8)


def test_ties_share_their_gain_evenly():
    curve = routing_curve([1.0, 1.0, 0.0], CHEAP, COSTLY)
    assert curve.pgr.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert curve.apgr == pytest.approx(2 / 3)


def test_prompts_where_the_costly_model_loses_push_pgr_above_one():
    curve = routing_curve([0.9, 0.8, 0.1], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0])
    assert curve.pgr.tolist() == pytest.approx([0.0, 1.0, 2.0, 1.0])
    assert curve.apgr == pytest.approx(3.5 / 3)
    assert curve.cpt(0.5) == pytest.approx(1 / 6)


def test_no_gap_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same on average"):
        routing_curve([0.1, 0.2], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="one length"):
        routing_curve([0.1], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="no prompts"):
        routing_curve([], [], [])
