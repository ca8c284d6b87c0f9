"""Training reports how a head does on kinds of prompts it never saw."""

import numpy as np

from classifier.data import Record
from classifier.static_embedding import StaticEmbedder
from classifier.train import TrainingConfig, train


def outcome(i, source, subset, text, wins):
    low = 0.0 if wins else 1.0
    return Record(f"{source}/{i}", source, subset, text, "fast/reasoning", low, 1.0)


def prompt(i, source, text, tier):
    return Record(f"{source}/{i}", source, "x", text, expected_tier=tier)


def records():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        puzzle, sum_ = f"Solve the knights puzzle number {i}.", f"What is {i} + {i + 1}?"
        rows.append(outcome(i, "puzzles", "easy/logic", puzzle, rng.random() < 0.7))
        rows.append(outcome(i, "sums", "arithmetic", sum_, rng.random() < 0.1))
    for i in range(20):
        rows.append(prompt(i, "chat", f"Say hi to friend {i}.", "fast"))
        rows.append(prompt(i, "olympiad", f"Prove that {i}^n - 1 is even.", "reasoning"))
    return rows


def test_each_kind_left_out_is_scored_by_a_head_that_never_saw_it():
    artifact = train(
        records(), StaticEmbedder().fit(), config=TrainingConfig(folds=2, gain_trees=30),
        report_unseen=True, progress=False,
    )  # fmt: skip
    groups = artifact.metrics["unseen_kinds"]["groups"]
    # Leaving out the only chat source leaves nothing to teach the gate: no report, no crash.
    assert set(groups) == {"puzzles/logic", "sums/arithmetic", "olympiad"}
    assert groups["olympiad"]["expected_tier"] == "reasoning"
    assert groups["olympiad"]["apgr"] is None  # prompt records measure no APGR
    for name in ("puzzles/logic", "sums/arithmetic"):
        assert groups[name]["n"] == 40 and 0.0 <= groups[name]["reasoning_share"] <= 1.0
