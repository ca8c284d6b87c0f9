"""Leave-one-source-out: how a head does on sources of prompts it never saw.

Real traffic is not the training mix, so a head is chosen by how it scores
whole sources left out of its training (``thinkroute train --report-unseen``),
not by out-of-fold figures, where every source's style was seen. For each
source in turn, a head is fitted on all the others and judged on that source,
with the shipped calibration and thresholds, as a new user's prompts would be:

* outcome sources (fast and reasoning model measured): APGR, CPT(50%) and the
  share of the quality gap the balanced threshold recovers there: calibration
  across sources, since the threshold was chosen to recover 92% of it on the
  training mix;
* prompt sources: the share of each expected tier sent to the reasoning tier
  at the balanced threshold.

The summary averages sources alike (a big source counts no more than a
small one), since the question is how the head does on the *next* source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.data import TIERS, Record
from classifier.errors import TrainingDataError
from classifier.evaluate import evaluate
from classifier.head import GatedHead

__all__ = ["leave_one_source_out", "summarise"]

FitBlind = Callable[[NDArray[np.float64], Sequence[Record]], GatedHead]


def leave_one_source_out(
    X: NDArray[np.float64],
    records: Sequence[Record],
    *,
    fit_blind: FitBlind,
    calibration: NDArray[np.float64],
    thresholds: dict[str, float],
    skip: Callable[[str], bool] = lambda source: False,
) -> dict[str, Any]:
    """Score each source by a head fitted without it; one entry per source, and a summary.

    Parameters
    ----------
    X : ndarray of shape (n_records, n_features)
        The heads' inputs for ``records``.
    fit_blind : callable
        Fits an uncalibrated head on (rows of ``X``, their records).
    calibration, thresholds
        The shipped head's, applied to every blind head.
    skip : callable
        Sources not to report (e.g. ones whose records train nothing).

    Sources whose absence leaves nothing to train on (the only everyday-chat
    source, say) are left out of the report.
    """
    sources = np.array([r.source for r in records])
    groups: dict[str, Any] = {}
    for source in sorted({str(s) for s in sources}):
        if skip(source):
            continue
        held, kept = np.flatnonzero(sources == source), np.flatnonzero(sources != source)
        try:
            blind = fit_blind(X[kept], [records[i] for i in kept.tolist()])
        except TrainingDataError:  # the rest cannot train a head: nothing to judge it by
            continue
        blind.calibration = np.asarray(calibration, dtype=np.float64)
        scores = blind.score(X[held])
        held_records = [records[i] for i in held.tolist()]
        report = evaluate(held_records, scores, thresholds)
        groups[source] = {
            "n": len(held),
            "apgr": report["apgr"],
            "cpt50": report["cpt50"],
            "pgr_at_balanced": report["operating_points"].get("balanced", {}).get("pgr"),
            "reasoning_share": round(float(np.mean(scores >= thresholds["balanced"])), 4),
            "by_tier": {
                tier: entry["reasoning_share"]
                for tier, entry in report["tiers"].items()
                if entry["n"]
            },
        }
    return {
        "description": (
            "Each source left out of training in turn and scored by a head fitted on all the "
            "others (shipped calibration and thresholds): outcome sources by APGR and the "
            "share of the quality gap recovered at balanced, prompt sources by the share of "
            "each expected tier sent to reasoning at balanced."
        ),
        "groups": groups,
        "summary": summarise(groups),
    }


def summarise(groups: dict[str, Any]) -> dict[str, float | None]:
    """Means over sources: APGR and gap recovered at balanced of outcome sources, reasoning
    share of each expected tier."""

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    summary = {
        name: mean([g[name] for g in groups.values() if g.get(name) is not None])
        for name in ("apgr", "pgr_at_balanced")
    }
    for tier in TIERS:
        shares = [g["by_tier"][tier] for g in groups.values() if tier in g["by_tier"]]
        summary[f"{tier}_to_reasoning"] = mean(shares)
    return summary
