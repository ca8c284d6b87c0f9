"""Leave-one-source-out fits every head without the source it judges."""

import numpy as np
import pytest

from classifier.data import Record
from classifier.errors import TrainingDataError
from classifier.unseen import leave_one_source_out


class ConstantHead:
    """Scores every row by its first column; remembers nothing but its calibration."""

    calibration = np.array([1.0, 0.0])

    def score(self, X):
        return X[:, 0]


def make_records():
    rows = []
    for i in range(10):
        rows.append(Record(f"a/{i}", "a", "", "t", "fast/reasoning", float(i % 2), 1.0))
        rows.append(Record(f"b/{i}", "b", "", "t", expected_tier="reasoning"))
        rows.append(Record(f"c/{i}", "c", "", "t", expected_tier="fast"))
    return rows


def test_blind_heads_never_see_the_source_they_judge():
    records = make_records()
    X = np.array([[0.9 if r.source == "b" or i % 4 == 0 else 0.1] for i, r in enumerate(records)])
    seen = []

    def fit_blind(rows, kept):
        seen.append({r.source for r in kept})
        if not any(r.expected_tier == "fast" for r in kept):
            raise TrainingDataError("no chat")
        return ConstantHead()

    thresholds = {"cheap": 0.8, "balanced": 0.5, "quality": 0.2}
    report = leave_one_source_out(
        X, records, fit_blind=fit_blind, calibration=np.array([2.0, 0.0]), thresholds=thresholds
    )
    assert seen == [{"b", "c"}, {"a", "c"}, {"a", "b"}]
    assert set(report["groups"]) == {"a", "b"}  # without c nothing can train
    assert report["groups"]["b"]["by_tier"] == {"reasoning": 1.0}
    assert report["groups"]["a"]["apgr"] is not None
    # a's wins are its even records; the three scored 0.9 (0, 4, 8) are routed at balanced:
    # 3 of the 5 wins, the share of the gap the balanced threshold recovers on a new source
    assert report["groups"]["a"]["pgr_at_balanced"] == 0.6
    assert report["summary"]["pgr_at_balanced"] == 0.6
    assert report["groups"]["b"]["pgr_at_balanced"] is None  # prompts measure no gap
    assert report["summary"]["reasoning_to_reasoning"] == 1.0
    assert report["summary"]["fast_to_reasoning"] is None


def test_skipped_sources_are_not_fitted():
    records = make_records()
    calls = []
    report = leave_one_source_out(
        np.zeros((len(records), 1)),
        records,
        fit_blind=lambda rows, kept: calls.append(1) or ConstantHead(),
        calibration=np.array([1.0, 0.0]),
        thresholds={"cheap": 0.8, "balanced": 0.5, "quality": 0.2},
        skip=lambda source: source != "c",
    )
    assert len(calls) == 1 and set(report["groups"]) == {"c"}
    with pytest.raises(KeyError):
        report["groups"]["a"]
