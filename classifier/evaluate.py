"""Judge a head on data: ``thinkroute eval``, ``thinkroute score`` and ``thinkroute calibrate``.

``eval`` reports APGR and CPT on outcome records (overall and per source,
beside the random and oracle rows) and, on prompt records, the share each
expected tier sends to the reasoning tier at the default operating point.
``score`` prints every record's score so the metrics can be checked
independently. ``calibrate`` finds the threshold for a target.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier import cascade_eval
from classifier.calibration import threshold_for_pgr, threshold_for_share
from classifier.cost import DEFAULT_PRICES, estimate_prompt_tokens, routed_cost_usd
from classifier.data import TIERS, Record, load_records
from classifier.metrics import RoutingCurve, routing_curve

__all__ = ["add_data_argument", "evaluate", "run_calibrate", "run_eval", "run_score"]

DEFAULT_MODE = "balanced"
MODES = ("cheap", "balanced", "quality")


def evaluate(
    records: Sequence[Record], scores: NDArray[np.float64], thresholds: dict[str, float]
) -> dict[str, Any]:
    """The report ``thinkroute eval --json`` prints, for precomputed scores."""
    scores = np.asarray(scores, dtype=np.float64)
    headline = _headline_rows(records)
    report: dict[str, Any] = {
        "n": len(records),
        "n_outcomes": len(headline),
        "apgr": None,
        "cpt50": None,
        "cpt80": None,
        "baselines": None,
        "by_source": {},
        "operating_points": {},
        "tiers": _tier_shares(records, scores, thresholds[DEFAULT_MODE]),
        "default_mode": DEFAULT_MODE,
    }
    if headline:
        curve = _curve(records, scores, headline)
        if curve is not None:
            report.update(_summary(curve))
            report["baselines"] = {
                "random": {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8},
                # Ignored: _curve is None only without rows, and the router's curve had them.
                "oracle": _summary(_curve(records, _oracle(records), headline)),  # type: ignore[arg-type]
            }
        report["operating_points"] = {
            mode: _operating_point(records, scores, headline, thresholds[mode]) for mode in MODES
        }
        report["operating_points"]["always_fast"] = _operating_point(
            records, scores, headline, np.inf
        )
        report["operating_points"]["always_reasoning"] = _operating_point(
            records, scores, headline, -np.inf
        )
        report["cost_model"] = {tier: price.as_dict() for tier, price in DEFAULT_PRICES.items()}
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.has_outcome and not record.is_one_sided:
            by_source[record.source].append(i)
    for source, rows in sorted(by_source.items()):
        curve = _curve(records, scores, rows)
        entry: dict[str, Any] = {"n": len(rows), "apgr": None, "cpt50": None, "cpt80": None}
        if curve is not None:
            entry.update(_summary(curve))
        report["by_source"][source] = entry
    return report


def _headline_rows(records: Sequence[Record]) -> list[int]:
    """Fast/reasoning outcomes with both scores when there are any, else weak/strong ones."""
    for pair in ("fast/reasoning", "weak/strong"):
        rows = [i for i, r in enumerate(records) if r.pair == pair and not r.is_one_sided]
        if rows:
            return rows
    return []


def _curve(
    records: Sequence[Record], scores: NDArray[np.float64], rows: list[int]
) -> RoutingCurve | None:
    chosen = [records[i] for i in rows]
    try:
        return routing_curve(
            scores[rows],
            np.array([r.low_score for r in chosen], dtype=np.float64),
            np.array([r.high_score for r in chosen], dtype=np.float64),
        )
    except ValueError:  # no gap between the models on these rows: PGR is undefined
        return None


def _summary(curve: RoutingCurve) -> dict[str, float]:
    return {
        "apgr": round(curve.apgr, 4),
        "cpt50": round(curve.cpt(0.5), 4),
        "cpt80": round(curve.cpt(0.8), 4),
    }


def _oracle(records: Sequence[Record]) -> NDArray[np.float64]:
    return np.array([r.gap if r.has_outcome else 0.0 for r in records])


def _operating_point(
    records: Sequence[Record], scores: NDArray[np.float64], rows: list[int], threshold: float
) -> dict[str, Any]:
    chosen = [records[i] for i in rows]
    hard = scores[rows] >= threshold
    gaps = np.array([r.gap for r in chosen])
    total_gap = gaps.sum()
    tokens = [estimate_prompt_tokens(r.text) for r in chosen]
    return {
        "threshold": None if not np.isfinite(threshold) else round(float(threshold), 4),
        "reasoning_share": round(float(hard.mean()), 4),
        "quality": round(
            float(np.mean([r.low_score for r in chosen]) + gaps[hard].sum() / len(rows)), 4
        ),
        "pgr": None if abs(total_gap) < 1e-12 else round(float(gaps[hard].sum() / total_gap), 4),
        "usd_per_1k_requests": round(1000 * routed_cost_usd(tokens, hard.tolist()) / len(rows), 4),
    }


def _tier_shares(
    records: Sequence[Record], scores: NDArray[np.float64], threshold: float
) -> dict[str, dict[str, Any]]:
    tiers: dict[str, dict[str, Any]] = {}
    for tier in TIERS:
        rows = [i for i, r in enumerate(records) if r.expected_tier == tier]
        share = float(np.mean(scores[rows] >= threshold)) if rows else None
        tiers[tier] = {
            "n": len(rows),
            "reasoning_share": None if share is None else round(share, 4),
        }
    return tiers


# -- commands ---------------------------------------------------------------


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    _data_and_model(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw quality against reasoning share, with random and oracle",
    )
    cascade_eval.add_cascade_arguments(parser, costs=True)


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    _data_and_model(parser)
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help="whose threshold decides each tier (default: %(default)s)",
    )
    cascade_eval.add_cascade_arguments(parser, costs=False)


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    _data_and_model(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-reasoning-share",
        type=float,
        metavar="SHARE",
        help="fraction of requests to send to the reasoning tier",
    )
    target.add_argument(
        "--target-pgr",
        type=float,
        metavar="FRACTION",
        help="fraction of the fast-to-reasoning quality gap to recover",
    )


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data FILE``, repeatable: what every classifier command reads."""
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="JSONL or CSV records; repeat for several files",
    )


def _data_and_model(parser: argparse.ArgumentParser) -> None:
    add_data_argument(parser)
    parser.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="artifact directory (default: the shipped classifier)",
    )


def _scored(args: argparse.Namespace) -> tuple[list[Record], NDArray[np.float64], dict[str, float]]:
    from classifier.model import DifficultyClassifier

    records = load_records(args.data)
    classifier = DifficultyClassifier.load(args.model)
    scores = classifier.score_texts([r.text for r in records])
    return records, scores, classifier.thresholds


def run_eval(args: argparse.Namespace) -> int:
    if args.cascade:
        return cascade_eval.run_cascade_eval(args)
    records, scores, thresholds = _scored(args)
    report = evaluate(records, scores, thresholds)
    if args.plot:
        _plot(records, scores, args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print(_format_report(report))
    return 0


def run_score(args: argparse.Namespace) -> int:
    if args.cascade:
        return cascade_eval.run_cascade_score(args)
    records, scores, thresholds = _scored(args)
    threshold = thresholds[args.mode]
    out = sys.stdout
    for record, score in zip(records, scores, strict=True):
        tier = "reasoning" if score >= threshold else "fast"
        out.write(
            json.dumps({"id": record.id, "score": round(float(score), 6), "tier": tier}) + "\n"
        )
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    records, scores, _ = _scored(args)
    rows = _headline_rows(records)
    if args.target_reasoning_share is not None:
        threshold = threshold_for_share(scores, args.target_reasoning_share)
        target = {"reasoning_share": args.target_reasoning_share}
    else:
        curve = _curve(records, scores, rows) if rows else None
        if curve is None:
            raise SystemExit("--target-pgr needs outcome records with a quality gap")
        threshold = threshold_for_pgr(scores[rows], curve, args.target_pgr)
        target = {"pgr": args.target_pgr}
    result: dict[str, Any] = {"target": target, "threshold": round(threshold, 6), "n": len(records)}
    result["reasoning_share"] = round(float(np.mean(scores >= threshold)), 4)
    tokens = [estimate_prompt_tokens(r.text) for r in records]
    for name, routed in (
        ("usd_per_1k_requests", (scores >= threshold).tolist()),
        ("always_reasoning_usd_per_1k_requests", [True] * len(records)),
        ("always_fast_usd_per_1k_requests", [False] * len(records)),
    ):
        result[name] = round(1000 * routed_cost_usd(tokens, routed) / len(records), 4)
    if rows:
        result["on_outcomes"] = _operating_point(records, scores, rows, threshold)
    print(json.dumps(result))
    return 0


def _format_report(report: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"{report['n']} records, {report['n_outcomes']} with measured outcomes"]
    if report["apgr"] is not None:
        lines.append(f"{'':24s} {'APGR':>7s} {'CPT50':>7s} {'CPT80':>7s}")
        rows = [("router", report)] + list(report["baselines"].items())
        rows += [(f"  {source}", entry) for source, entry in report["by_source"].items()]
        for name, entry in rows:
            lines.append(
                f"{name:24s} {fmt(entry['apgr']):>7s} {fmt(entry['cpt50']):>7s} "
                f"{fmt(entry['cpt80']):>7s}"
            )
        lines.append(
            f"{'operating point':24s} {'thresh':>7s} {'share':>7s} {'PGR':>7s} {'$/1k':>7s}"
        )
        for mode, point in report["operating_points"].items():
            lines.append(
                f"{mode:24s} {fmt(point['threshold']):>7s} {fmt(point['reasoning_share']):>7s} "
                f"{fmt(point['pgr']):>7s} {fmt(point['usd_per_1k_requests']):>7s}"
            )
    for tier, entry in report["tiers"].items():
        if entry["n"]:
            lines.append(
                f"expected {tier:9s} n={entry['n']:<5d} sent to reasoning at "
                f"{report['default_mode']}: {entry['reasoning_share']:.1%}"
            )
    return "\n".join(lines)


def _plot(records: Sequence[Record], scores: NDArray[np.float64], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _headline_rows(records)
    curve = _curve(records, scores, rows) if rows else None
    if curve is None:
        raise SystemExit("--plot needs outcome records with a quality gap")
    oracle = _curve(records, _oracle(records), rows)
    assert oracle is not None
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(curve.share, curve.quality, label=f"router (APGR {curve.apgr:.3f})")
    axes.plot(oracle.share, oracle.quality, linestyle=":", label="oracle")
    axes.plot([0, 1], [curve.quality[0], curve.quality[-1]], linestyle="--", label="random")
    axes.set_xlabel("share of requests sent to the reasoning model")
    axes.set_ylabel("mean score of the chosen answers")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
