"""Would a two-stage encoder help on sources a head never saw? Leave-one-source-out figures.

The shipped head reads the static token-embedding layer (microseconds). A
two-stage encoder would run the full all-MiniLM-L6-v2 (attention, ~11 ms) and
a second head over it only where the static score falls within a band around
the balanced threshold. This measures, choosing by sources left out of
training and not by out-of-fold figures:

* ``static``: the head over the static embedding (as shipped);
* ``transformer``: the same head trained over the full transformer;
* ``two_stage``: the static score, replaced by the transformer head's where it
  lies within ``w`` log-odds of the static balanced threshold, for each ``w``,
  with thresholds refitted on the two-stage out-of-fold scores; beside it the
  share of records and of ``bench/route_latency.py``'s questions that would run
  the second stage.

Each figure row has the issue-15 targets: everyday-phrased reasoning-type and
fast-type sources, competition sources, chat sources (share sent to reasoning
at balanced, each source scored by a head that never saw it, averaged over
sources), APGR on unseen outcome sources, out-of-fold APGR, and the
hand-written probe of ``bench/everyday_probe.py`` (scored by the head fitted on
everything). Prints one JSON object.

    python bench/two_stage_loso.py [--data FILE ...] [--cache DIR] [--widths 0.5 1 2]

Slow: it embeds every record with both encoders and fits 26 heads per encoder
(an hour on two busy cores); embeddings and blind scores are cached in
``--cache`` (default ``/tmp/classifier-cache``): delete them after changing the data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from everyday_probe import CHAT, REASONING
from numpy.typing import NDArray
from route_latency import QUESTIONS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = [
    DATA / "outcomes" / "train.jsonl",
    DATA / "prompts" / "train.jsonl",
    DATA / "everyday" / "train.jsonl",
]
# The target groups: (sources, the expected tier whose share is read).
GROUPS = {
    "everyday_reasoning_to_reasoning": (
        ("bbh", "folio", "logicbench", "debugbench", "tatqa", "quixbugs"),
        "reasoning",
    ),
    "everyday_fast_to_reasoning": (
        ("conala", "dolly", "nq-open", "svamp", "debugbench", "tatqa", "quixbugs"),
        "fast",
    ),
    "competition_to_reasoning": (("aime24", "amc23", "olympiadbench", "math500"), "reasoning"),
    "chat_to_reasoning": (("alpaca_eval", "self-instruct", "dolly"), "fast"),
}
OUTCOME_SOURCES = ("zeroeval", "reasoning-gym")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/classifier-cache"))
    parser.add_argument("--widths", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0])
    args = parser.parse_args()

    from classifier.data import load_records

    records = load_records(args.data)
    args.cache.mkdir(parents=True, exist_ok=True)
    parts = {kind: _blind_parts(records, kind, args.cache) for kind in _KINDS}
    result: dict[str, Any] = {"records": len(records)}
    for kind, part in parts.items():
        result[kind] = _figures(records, part["oof"], part["blind"], part["thresholds"], part)
    first, second = parts["static"], parts["transformer"]
    centre = float(_logit(first["thresholds"]["balanced"]))
    result["two_stage"] = {}
    for width in args.widths:

        def combine(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.where(np.abs(_logit(a) - centre) <= width, b, a)  # noqa: B023

        oof = combine(first["oof"], second["oof"])
        thresholds = _operating_points(records, oof)
        extra = {name: combine(first[name], second[name]) for name in _EXTRA}
        row = _figures(records, oof, combine(first["blind"], second["blind"]), thresholds, extra)
        row["band"] = [round(float(_sigmoid(centre - width)), 4),
                       round(float(_sigmoid(centre + width)), 4)]  # fmt: skip
        row["second_stage_share_records"] = _share(np.abs(_logit(first["oof"]) - centre) <= width)
        row["second_stage_share_latency_questions"] = _share(
            np.abs(_logit(first["questions"]) - centre) <= width
        )
        result["two_stage"][str(width)] = row
    print(json.dumps(result))


_KINDS = ("static", "transformer")
_EXTRA = {"probe_reasoning": REASONING, "probe_chat": CHAT, "questions": QUESTIONS}


def _blind_parts(records: Sequence[Any], kind: str, cache: Path) -> dict[str, Any]:
    """Out-of-fold and blind (source left out) calibrated scores over one encoder, cached.

    Cached as ``X_<kind>.npy`` (the heads' inputs), ``extra_<kind>.npz`` (the
    full head's scores of the probe and the latency questions) and
    ``scores_<kind>.npz`` (raw out-of-fold and blind scores with their gate and
    gain parts, the calibration and the thresholds).
    """
    from sklearn.model_selection import StratifiedKFold

    from classifier.head import fit_platt
    from classifier.model import build_features
    from classifier.train import TrainingConfig, _fit_uncalibrated, embed_records

    config = TrainingConfig()
    matrix, extra, scores = (cache / f"{name}_{kind}" for name in ("X", "extra", "scores"))
    if not scores.with_suffix(".npz").exists():
        embedder = _embedder(kind)
        if matrix.with_suffix(".npy").exists():
            X = np.load(matrix.with_suffix(".npy"))
        else:
            X = embed_records(
                embedder,
                records,
                question_weight=config.question_weight,
                question=config.question,
            )
            np.save(matrix.with_suffix(".npy"), X)
        n = len(records)
        raw, gate, gain = np.zeros(n), np.zeros(n), np.zeros(n)
        # The folds of classifier.train.fit, keeping each held-out part's gate and gain.
        kinds = np.array([r.pair or f"prompt:{r.expected_tier}" for r in records])
        splitter = StratifiedKFold(config.folds, shuffle=True, random_state=config.random_state)
        for fit_rows, held_rows in splitter.split(X, kinds):
            head = _fit_uncalibrated(X[fit_rows], [records[i] for i in fit_rows], config)
            raw[held_rows] = head.raw_score(X[held_rows])
            gate[held_rows], gain[held_rows] = head.parts(X[held_rows])
        measured = np.array([r.measures_routing for r in records])
        wins = np.array([r.gap > 0 for r in records if r.measures_routing])
        calibration = fit_platt(_logit(raw[measured]), wins)
        head = _fit_uncalibrated(X, records, config)
        head.calibration = calibration
        texts_scores = {}
        for name, texts in _EXTRA.items():
            features = build_features(
                embedder, texts, question_weight=config.question_weight, question=config.question
            )
            texts_scores[name] = head.score(features)
            texts_scores[name + "_raw"] = head.raw_score(features)
            texts_scores[name + "_gate"], texts_scores[name + "_gain"] = head.parts(features)
        np.savez(extra.with_suffix(".npz"), **texts_scores)
        sources = np.array([r.source for r in records])
        blind = {name: np.full(n, np.nan) for name in ("raw_blind", "gate_blind", "gain_blind")}
        for source in sorted(set(sources.tolist())):
            held, kept = np.flatnonzero(sources == source), np.flatnonzero(sources != source)
            blind_head = _fit_uncalibrated(X[kept], [records[i] for i in kept.tolist()], config)
            blind["raw_blind"][held] = blind_head.raw_score(X[held])
            blind["gate_blind"][held], blind["gain_blind"][held] = blind_head.parts(X[held])
        oof = _calibrate(raw, calibration)
        np.savez(scores.with_suffix(".npz"), oof=oof, raw=raw, gate=gate, gain=gain,
                 calibration=calibration, **blind,
                 thresholds=json.dumps(_operating_points(records, oof)))  # fmt: skip
    cached = np.load(scores.with_suffix(".npz"))
    texts_scores = dict(np.load(extra.with_suffix(".npz")))
    return {
        "oof": cached["oof"],
        "blind": _calibrate(cached["raw_blind"], cached["calibration"]),
        "thresholds": json.loads(str(cached["thresholds"])),
        **{name: texts_scores[name] for name in _EXTRA},
    }


def _calibrate(raw: NDArray[np.float64], calibration: NDArray[np.float64]) -> NDArray[np.float64]:
    slope, offset = calibration
    return np.asarray(1.0 / (1.0 + np.exp(-(slope * _logit(raw) + offset))), dtype=np.float64)


def _embedder(kind: str) -> Any:
    from classifier.embedding import SentenceEmbedder
    from classifier.static_embedding import StaticEmbedder

    if kind == "static":
        return StaticEmbedder().fit()
    return SentenceEmbedder(
        backend="onnx", cache_size=0, cache_dir="/tmp/classifier-cache/onnx"
    ).fit()


def _figures(
    records: Sequence[Any],
    oof: NDArray[np.float64],
    blind: NDArray[np.float64],
    thresholds: dict[str, float],
    extra: dict[str, Any],
) -> dict[str, Any]:
    from classifier.evaluate import evaluate

    sources = np.array([r.source for r in records])
    tiers = np.array([r.expected_tier or "" for r in records])
    balanced = thresholds["balanced"]
    row: dict[str, Any] = {}
    for name, (group, tier) in GROUPS.items():
        shares = {s: _share(blind[(sources == s) & (tiers == tier)] >= balanced) for s in group}
        row[name] = round(float(np.mean(list(shares.values()))), 3)
        row[name + "_by_source"] = shares
    apgr = {}
    for source in OUTCOME_SOURCES:
        rows = np.flatnonzero(sources == source)
        apgr[source] = evaluate([records[i] for i in rows], blind[rows], thresholds)["apgr"]
    row["unseen_outcomes_apgr"] = round(float(np.mean(list(apgr.values()))), 3)
    row["unseen_outcomes_apgr_by_source"] = apgr
    report = evaluate(records, oof, thresholds)
    row["out_of_fold_apgr"] = report["apgr"]
    row["probe_reasoning_to_reasoning"] = _share(extra["probe_reasoning"] >= balanced)
    row["probe_chat_to_reasoning"] = _share(extra["probe_chat"] >= balanced)
    row["thresholds"] = {mode: round(value, 4) for mode, value in thresholds.items()}
    return row


def _operating_points(records: Sequence[Any], scores: NDArray[np.float64]) -> dict[str, float]:
    from classifier.train import operating_points

    return operating_points(records, scores)


def _share(mask: NDArray[np.bool_]) -> float:
    return round(float(np.mean(mask)), 3) if mask.size else float("nan")


def _logit(p: Any) -> NDArray[np.float64]:
    from classifier.head import logit

    return logit(p)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


if __name__ == "__main__":
    main()
