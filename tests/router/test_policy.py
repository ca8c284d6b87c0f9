"""Routing decisions as a table: score and mode in, decision out."""

import pytest

from router.policy import RouteDecision, decide, explain

THRESHOLDS = {"cheap": 0.8, "balanced": 0.5, "quality": 0.2}


@pytest.mark.parametrize(
    ("score", "mode", "tier", "threshold"),
    [
        (0.9, "cheap", "reasoning", 0.8),
        (0.6, "cheap", "fast", 0.8),
        (0.6, "balanced", "reasoning", 0.5),
        (0.5, "balanced", "reasoning", 0.5),  # at the threshold counts as above
        (0.49, "balanced", "fast", 0.5),
        (0.3, "quality", "reasoning", 0.2),
        (0.1, "quality", "fast", 0.2),
    ],
)
def test_decide(score, mode, tier, threshold):
    decision = decide(score, mode=mode, thresholds=THRESHOLDS)
    assert decision == RouteDecision(
        tier=tier,
        score=score,
        threshold=threshold,
        mode=mode,
        reason="score_at_or_above_threshold" if tier == "reasoning" else "score_below_threshold",
    )


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode 'turbo'"):
        decide(0.5, mode="turbo", thresholds=THRESHOLDS)


def test_explanation_names_score_threshold_and_mode():
    text = explain(decide(0.75, mode="balanced", thresholds=THRESHOLDS))
    assert "0.750" in text and "0.500" in text and "balanced" in text
