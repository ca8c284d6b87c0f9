"""Outcome records with one side scored: feedback on the answer that was served."""

import json

import numpy as np
import pytest

from classifier.data import UNSCORED, Record, read_records
from classifier.errors import DataFormatError, TrainingDataError
from classifier.features import FEATURE_NAMES


def read(tmp_path, *objects):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return list(read_records(path))


def test_the_unscored_side_is_read_as_an_even_chance(tmp_path):
    fast_wrong, reasoning_right, with_null = read(
        tmp_path,
        {"id": "a", "prompt": "2+2?", "fast": {"score": 0.0}},
        {"id": "b", "prompt": "Prove it.", "reasoning": {"score": 1.0}},
        {"id": "c", "prompt": "Hi", "fast": {"score": 1.0}, "reasoning": None},
    )
    assert (fast_wrong.pair, fast_wrong.low_score, fast_wrong.high_score) == (
        "fast/reasoning", 0.0, UNSCORED
    )  # fmt: skip
    assert (reasoning_right.low_score, reasoning_right.high_score) == (UNSCORED, 1.0)
    assert with_null.gap == UNSCORED - 1.0
    assert all(r.is_one_sided for r in (fast_wrong, reasoning_right, with_null))
    (both,) = read(tmp_path, {"id": "d", "prompt": "x", "fast": 1, "reasoning": 0})
    assert not both.is_one_sided and both.gap == -1.0


def test_one_sided_csv_rows_and_bad_one_sided_records(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text("id,prompt,fast_score,reasoning_score\na,2+2?,,0.25\n", encoding="utf-8")
    (row,) = read_records(path)
    assert (row.low_score, row.high_score, row.is_one_sided) == (UNSCORED, 0.25, True)
    with pytest.raises(DataFormatError, match="'reasoning' score"):
        read(tmp_path, {"id": "e", "prompt": "x", "reasoning": {"score": 2}})
    with pytest.raises(DataFormatError, match="'strong' score"):  # only feedback is one-sided
        read(tmp_path, {"id": "f", "prompt": "x", "weak": {"score": 1.0}})


def test_one_sided_records_teach_the_gain_but_never_calibrate_or_measure(tmp_path):
    """A guessed side must not bend the calibration, the thresholds or APGR."""
    from classifier.evaluate import evaluate
    from classifier.train import TrainingConfig, fit, operating_points

    rng = np.random.default_rng(0)
    both = [
        Record(id=f"b{i}", source="s", subset="x", text=f"t{i}", pair="fast/reasoning",
               low_score=float(rng.random() < 0.5), high_score=1.0)
        for i in range(60)
    ]  # fmt: skip
    # Feedback that would read as a sure reasoning win on every prompt.
    one_sided = [
        Record(id=f"o{i}", source="feedback", subset="x", text=f"o{i}", pair="fast/reasoning",
               low_score=0.0, high_score=UNSCORED, is_one_sided=True)
        for i in range(60)
    ]  # fmt: skip
    chat = [
        Record(id=f"c{i}", source="chat", subset="x", text=f"c{i}", expected_tier="fast")
        for i in range(20)
    ]
    records = both + one_sided + chat
    X = rng.normal(size=(len(records), 9 + len(FEATURE_NAMES)))  # embedding, then features
    _, scores = fit(X, records, TrainingConfig(folds=2, gain_trees=20))
    report = evaluate(records, scores, operating_points(records, scores))
    assert report["n_outcomes"] == len(both)
    assert set(report["by_source"]) == {"s"}
    only_both = evaluate(both, scores[: len(both)], operating_points(both, scores[: len(both)]))
    assert report["apgr"] == only_both["apgr"]
    assert operating_points(records, scores) == operating_points(both, scores[: len(both)])
    with pytest.raises(TrainingDataError, match="both scores"):
        fit(X[len(both) :], one_sided + chat, TrainingConfig(folds=2, gain_trees=20))
    with pytest.raises(TrainingDataError, match="expected_tier 'fast'"):
        fit(X[: len(both)], both, TrainingConfig(folds=2, gain_trees=20))
