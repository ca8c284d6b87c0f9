"""Does retraining on a tenant's own feedback improve routing of its new traffic?

A tenant sends a kind of traffic the shipped head never saw. Its past requests
("history") were routed by that head and scored through ``POST /v1/feedback``;
``thinkroute export-decisions --feedback-only`` turned them into records, and
``thinkroute train`` refits the head on the shipped data plus those records.
This measures APGR on the tenant's later requests ("new traffic") for the head
before and after, from the shared outcome data::

    nice python bench/retrain_on_history.py [--tenant zeroeval] [--history 0.5] [--folds 2]

``--tenant`` names an outcome ``source`` (``zeroeval``) or a kind of prompt as
``classifier.kinds.kind_of`` names it (``zeroeval/math-l5``). The shipped
head saw all the shared data, so it cannot stand in for "never saw this
tenant": the baseline is the shipped recipe (``classifier.train.fit``, same
``TrainingConfig``) fitted without the tenant's records. The tenant's records
are shuffled (the data has no timestamps) and split into history and new
traffic. Two kinds of feedback on history are compared:

* ``served_only``: the client scored the answer it got, from the tier the
  baseline chose at ``balanced`` (the other tier's score is never seen);
* ``both_tiers``: the client also asked the other tier and scored it.

Each goes through the real export path (``router.state.decision_log.training_record``
then ``classifier.data``), so the records are the ones ``thinkroute train``
reads. ``--folds`` only sets how the calibration and thresholds are fitted
(fewer is faster); every head is fitted on all its records. Prints one JSON
object; ``apgr_delta_ci95`` is a paired bootstrap over new-traffic prompts.
Data is read from ``../shared/data`` and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.data import Record, load_records
from classifier.evaluate import evaluate
from classifier.head import GatedHead
from classifier.kinds import kind_of
from classifier.metrics import apgr
from classifier.static_embedding import StaticEmbedder
from classifier.tenant_head import fit_tenant_head, quality_kept_at_share
from classifier.train import TrainingConfig, embed_records, fit, operating_points
from router.state.decision_log import training_record

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = ("outcomes/train.jsonl", "prompts/train.jsonl")  # weak/strong: weight 0 when shipped
BOOTSTRAP_DRAWS = 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--tenant", default="zeroeval", help="a source, or a source/kind")
    parser.add_argument("--history", type=float, default=0.5, help="share of it that is history")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    records = load_records(args.data_dir / name for name in FILES)
    embedder = StaticEmbedder().fit()
    X = embed_records(embedder, records, progress=False)
    tenant = np.array([_is_tenant(r, args.tenant) for r in records])
    if not tenant.any():
        raise SystemExit(f"no outcome records belong to tenant {args.tenant!r}")
    rows = np.random.default_rng(args.seed).permutation(np.flatnonzero(tenant))
    cut = int(round(len(rows) * args.history))
    history, new = rows[:cut], rows[cut:]
    shipped = [records[i] for i in np.flatnonzero(~tenant)]
    X_shipped = X[~tenant]
    new_records = [records[i] for i in new]
    config = TrainingConfig(folds=args.folds, random_state=args.seed)

    # The head the tenant starts with, and how it routed the history.
    baseline, out_of_fold = fit(X_shipped, shipped, config)
    thresholds = operating_points(shipped, out_of_fold)
    served = np.where(baseline.score(X[history]) >= thresholds["balanced"], "reasoning", "fast")

    heads: dict[str, tuple[GatedHead, dict[str, float]]] = {"shipped_like": (baseline, thresholds)}
    feedback_counts: dict[str, dict[str, int]] = {}
    for variant in ("served_only", "both_tiers"):
        extra = _exported([records[i] for i in history], served, both=variant == "both_tiers")
        feedback_counts[variant] = _feedback_kinds(extra, served)
        X_extra = embed_records(embedder, extra, progress=False)
        train_records = [*shipped, *extra]
        head, scores = fit(np.vstack([X_shipped, X_extra]), train_records, config)
        heads[variant] = (head, operating_points(train_records, scores))

    X_new = X[new]
    reports = {
        name: _report(new_records, head.score(X_new), th) for name, (head, th) in heads.items()
    }
    base_scores = baseline.score(X_new)
    for name, (head, _) in heads.items():
        if name != "shipped_like":
            reports[name]["apgr_delta_ci95"] = _delta_ci(
                new_records, base_scores, head.score(X_new), args.seed
            )
    # The tenant head (router.heads' recipe): the baseline head corrected by the history's
    # shadow-graded pairs (both tiers, as shadow comparisons grade them), from features alone.
    history_records = [records[i] for i in history]
    tenant_head = fit_tenant_head(
        X[history], baseline.score(X[history]),
        [r.low_score for r in history_records], [r.high_score for r in history_records],
    )  # fmt: skip
    after = tenant_head.score(X_new, base_scores)
    share = float(np.mean(base_scores >= thresholds["balanced"]))
    reports["tenant_head"] = {
        **_report(new_records, after, thresholds),
        "apgr_delta_ci95": _delta_ci(new_records, base_scores, after, args.seed),
        "equal_cost": _equal_cost(new_records, base_scores, after, share, args.seed),
        "penalty": tenant_head.penalty,
    }
    oracle = evaluate(new_records, np.zeros(len(new)), thresholds)["baselines"]["oracle"]
    print(
        json.dumps(
            {
                "tenant": args.tenant,
                "history": len(history),
                "new_traffic": len(new),
                "history_reasoning_share": round(float(np.mean(served == "reasoning")), 4),
                "history_feedback": feedback_counts,
                "new_traffic_apgr": {name: r["apgr"] for name, r in reports.items()},
                "heads": reports,
                "random": {"apgr": 0.5, "cpt50": 0.5},
                "oracle": oracle,
                "training": {
                    "shipped_records": len(shipped),
                    "folds": args.folds,
                    "seed": args.seed,
                },  # fmt: skip
                "elapsed_s": round(time.perf_counter() - started, 1),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )
    return 0


def _is_tenant(record: Record, tenant: str) -> bool:
    if not record.has_outcome:
        return False
    return (kind_of(record) if "/" in tenant else record.source) == tenant


def _exported(history: list[Record], served: NDArray[np.str_], *, both: bool) -> list[Record]:
    """History as ``thinkroute export-decisions`` writes it once feedback came, read back."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exported.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for i, (record, tier) in enumerate(zip(history, served, strict=True)):
                measured = {"fast": record.low_score, "reasoning": record.high_score}
                scored = measured if both else {tier: measured[tier]}
                entry = {
                    "request_id": f"req-{i}", "tenant": "bench", "mode": "balanced",
                    "tier": str(tier), "served_tier": str(tier),
                    "messages": [{"role": "user", "content": record.text}],
                    "feedback": {t: {"score": s} for t, s in scored.items()},
                }  # fmt: skip
                exported = training_record(f"{i}-0", entry)
                out.write(json.dumps(exported, ensure_ascii=False) + "\n")
        return load_records([path])


def _feedback_kinds(records: list[Record], served: NDArray[np.str_]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for record, tier in zip(records, served, strict=True):
        score = record.low_score if tier == "fast" else record.high_score
        kinds[f"{tier}_{'right' if (score or 0) >= 0.5 else 'wrong'}"] += 1
        kinds["one_sided"] += record.is_one_sided
    return dict(sorted(kinds.items()))


def _report(
    records: list[Record], scores: NDArray[np.float64], thresholds: dict[str, float]
) -> dict[str, Any]:
    report = evaluate(records, scores, thresholds)
    balanced = report["operating_points"]["balanced"]
    keep = ("reasoning_share", "quality", "pgr", "usd_per_1k_requests")
    return {
        "apgr": report["apgr"],
        "cpt50": report["cpt50"],
        "cpt80": report["cpt80"],
        "balanced": {key: balanced[key] for key in keep},
    }


def _equal_cost(
    records: list[Record],
    before: NDArray[np.float64],
    after: NDArray[np.float64],
    share: float,
    seed: int,
) -> dict[str, Any]:
    """Quality kept by each head when both send the same share to reasoning, and the
    paired bootstrap 95% interval of after minus before."""
    low = np.array([r.low_score for r in records])
    high = np.array([r.high_score for r in records])

    def delta(rows: NDArray[np.int64]) -> float | None:
        kept_before = quality_kept_at_share(before[rows], low[rows], high[rows], share)
        kept_after = quality_kept_at_share(after[rows], low[rows], high[rows], share)
        if kept_before is None or kept_after is None:
            return None
        return kept_after - kept_before

    kept_before = quality_kept_at_share(before, low, high, share)
    kept_after = quality_kept_at_share(after, low, high, share)
    return {
        "reasoning_share": round(share, 4),
        "quality_kept_before": None if kept_before is None else round(kept_before, 4),
        "quality_kept_after": None if kept_after is None else round(kept_after, 4),
        "delta_ci95": _paired_bootstrap_ci(len(records), delta, seed),
    }


def _delta_ci(
    records: list[Record], before: NDArray[np.float64], after: NDArray[np.float64], seed: int
) -> list[float]:
    low = np.array([r.low_score for r in records])
    high = np.array([r.high_score for r in records])

    def delta(rows: NDArray[np.int64]) -> float | None:
        if abs(high[rows].sum() - low[rows].sum()) < 1e-9:
            return None  # no gap between the tiers in this draw: APGR is undefined
        return apgr(after[rows], low[rows], high[rows]) - apgr(before[rows], low[rows], high[rows])

    return _paired_bootstrap_ci(len(records), delta, seed)


def _paired_bootstrap_ci(
    n: int, delta: Callable[[NDArray[np.int64]], float | None], seed: int
) -> list[float]:
    """95% interval of ``delta`` over BOOTSTRAP_DRAWS resamples of ``n`` rows (a draw where
    it is undefined, None, is skipped)."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(BOOTSTRAP_DRAWS):
        value = delta(rng.integers(0, n, n))
        if value is not None:
            deltas.append(value)
    return [round(float(q), 4) for q in np.quantile(deltas, [0.025, 0.975])]


if __name__ == "__main__":
    sys.exit(main())
