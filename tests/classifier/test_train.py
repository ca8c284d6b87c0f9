"""Training reports how a head does on sources it never saw (leave one source out)."""

import numpy as np

from classifier.card import render_card
from classifier.data import Record
from classifier.static_embedding import StaticEmbedder
from classifier.train import TrainingConfig, train


def outcome(i, source, subset, text, wins):
    low = 0.0 if wins else 1.0
    return Record(f"{source}/{i}", source, subset, text, "fast/reasoning", low, 1.0)


def prompt(i, source, text, tier):
    return Record(f"{source}/{tier}/{i}", source, "x", text, expected_tier=tier)


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
        loop = f"Why does loop {i} never end? while i < {i}: pass"
        rows.append(prompt(i, "mixed", loop, "reasoning"))
        rows.append(prompt(i, "mixed", f"Add a docstring to def f{i}(x): return x", "fast"))
    return rows


def test_each_source_left_out_is_scored_by_a_head_that_never_saw_it():
    artifact = train(
        records(), StaticEmbedder().fit(), config=TrainingConfig(folds=2, gain_trees=30),
        report_unseen=True, progress=False,
    )  # fmt: skip
    report = artifact.metrics["unseen_sources"]
    groups = report["groups"]
    assert set(groups) == {"puzzles", "sums", "olympiad", "mixed", "chat"}
    assert set(groups["chat"]["by_tier"]) == {"fast"}
    assert groups["olympiad"]["apgr"] is None  # prompt records measure no APGR
    assert set(groups["olympiad"]["by_tier"]) == {"reasoning"}
    assert set(groups["mixed"]["by_tier"]) == {"fast", "reasoning"}  # a source with both tiers
    for name in ("puzzles", "sums"):
        assert groups[name]["n"] == 40 and groups[name]["apgr"] is not None
    summary = report["summary"]
    assert summary["apgr"] == round(np.mean([groups[s]["apgr"] for s in ("puzzles", "sums")]), 4)
    expected = np.mean([groups[s]["by_tier"]["reasoning"] for s in ("olympiad", "mixed")])
    assert summary["reasoning_to_reasoning"] == round(expected, 4)
    expected = np.mean([groups[s]["by_tier"]["fast"] for s in ("chat", "mixed")])
    assert summary["fast_to_reasoning"] == round(expected, 4)
    # calibration across sources: how much of the gap balanced recovers on a new source
    for name in ("puzzles", "sums"):
        assert 0.0 <= groups[name]["pgr_at_balanced"] <= 1.0
    assert "gap recovered at balanced" in render_card(artifact)
    assert list(artifact.metrics)[0] == "unseen_sources"  # the card leads with it
