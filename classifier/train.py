"""Train a difficulty head: ``thinkroute train --data FILE [--data FILE ...] --out DIR``.

Labels, by record kind (see :mod:`classifier.data`):

* fast/reasoning outcomes: 1 when the reasoning model scored higher. These
  are the measurements the score is calibrated on.
* weak/strong outcomes: 1 when the strong chat model scored higher. A
  related but different question (no reasoning model), so they weigh less.
* prompt records: 1 when a person expects the reasoning tier. They carry
  an expectation, not a measurement: they shape the ranking (everyday chat
  low, olympiad maths high) but not the calibration.

Operating points come from out-of-fold scores, never from scores of the
records a model was fitted on.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from classifier.artifact import HeadArtifact, write_artifact
from classifier.calibration import threshold_for_pgr
from classifier.card import render_card
from classifier.data import Record, load_records
from classifier.embedding import DEFAULT_MODEL, SentenceEmbedder
from classifier.evaluate import evaluate
from classifier.features import surface_features
from classifier.head import DifficultyHead
from classifier.metrics import routing_curve

__all__ = ["TrainingConfig", "embed_records", "fit_head", "main", "train"]

# Share of the fast-to-reasoning quality gap each mode aims to recover.
MODE_PGR_TARGETS = {"cheap": 0.5, "balanced": 0.8, "quality": 0.95}


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Weights of the weaker label kinds and the head's regularisation."""

    strong_weak_weight: float = 0.3
    prompt_weight: float = 1.0
    C: float = 0.1
    folds: int = 5
    random_state: int = 0


def labels_and_weights(
    records: Sequence[Record], config: TrainingConfig
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    """Binary labels, sample weights, and which rows are measured fast/reasoning outcomes."""
    y = np.empty(len(records), dtype=np.int64)
    w = np.empty(len(records), dtype=np.float64)
    measured = np.zeros(len(records), dtype=bool)
    for i, record in enumerate(records):
        if record.pair == "fast/reasoning":
            y[i], w[i], measured[i] = int(record.gap > 0), 1.0, True
        elif record.pair == "weak/strong":
            y[i], w[i] = int(record.gap > 0), config.strong_weak_weight
        else:
            y[i], w[i] = int(record.expected_tier == "reasoning"), config.prompt_weight
    return y, w, measured


def embed_records(
    embedder: SentenceEmbedder, records: Sequence[Record], *, progress: bool = True
) -> NDArray[np.float64]:
    """The head's input matrix for ``records``, embedding in batches behind a progress bar."""
    texts = [record.text for record in records]
    step = max(embedder.batch_size * 8, 1)
    blocks = []
    for start in tqdm(
        range(0, len(texts), step), desc="embedding", unit="batch", disable=not progress
    ):
        blocks.append(embedder.transform(texts[start : start + step]).astype(np.float64))
    embedded = np.vstack(blocks) if blocks else np.empty((0, embedder.dim_))
    return np.hstack([embedded, surface_features(texts)])


def fit_head(
    X: NDArray[np.float64], records: Sequence[Record], config: TrainingConfig
) -> tuple[DifficultyHead, NDArray[np.float64]]:
    """Fit the head on everything, and return it with out-of-fold scores for every record."""
    y, w, measured = labels_and_weights(records, config)
    if len(np.unique(y)) < 2:
        raise ValueError("training needs records of both labels (some harder, some not)")
    out_of_fold = np.zeros(len(records))
    # Stratify on label and kind together so each fold sees every kind.
    strata = y * 3 + np.array([_kind_index(r) for r in records])
    folds = min(config.folds, int(np.bincount(strata).min(initial=len(records))) or 2)
    splitter = StratifiedKFold(max(folds, 2), shuffle=True, random_state=config.random_state)
    for fit_rows, held_rows in splitter.split(X, strata):
        fold_head = _new_head(config).fit(
            X[fit_rows], y[fit_rows], sample_weight=w[fit_rows], calibrate_on=measured[fit_rows]
        )
        out_of_fold[held_rows] = fold_head.predict_proba(X[held_rows])[:, 1]
    head = _new_head(config).fit(X, y, sample_weight=w, calibrate_on=measured)
    return head, out_of_fold


def operating_points(records: Sequence[Record], scores: NDArray[np.float64]) -> dict[str, float]:
    """Thresholds for each mode from out-of-fold scores on fast/reasoning outcomes."""
    rows = [i for i, r in enumerate(records) if r.pair == "fast/reasoning"]
    if not rows:
        rows = [i for i, r in enumerate(records) if r.has_outcome]
    if not rows:
        raise ValueError("operating points need records with measured outcomes")
    chosen = [records[i] for i in rows]
    curve = routing_curve(
        scores[rows], [r.low_score for r in chosen], [r.high_score for r in chosen]
    )
    return {
        mode: threshold_for_pgr(scores[rows], curve, target)
        for mode, target in MODE_PGR_TARGETS.items()
    }


def train(
    records: Sequence[Record],
    embedder: SentenceEmbedder,
    *,
    config: TrainingConfig = TrainingConfig(),
    progress: bool = True,
) -> tuple[HeadArtifact, dict[str, Any]]:
    """Fit a head on ``records``; returns the artifact and its out-of-fold report."""
    X = embed_records(embedder, records, progress=progress)
    head, out_of_fold = fit_head(X, records, config)
    thresholds = operating_points(records, out_of_fold)
    report = evaluate(records, out_of_fold, thresholds)
    artifact = HeadArtifact(
        head=head,
        embedding={
            "model": embedder.model,
            "dim": embedder.dim_,
            "max_seq_length": embedder.max_seq_length_,
            "backend": embedder.backend_,
        },
        thresholds=thresholds,
        metrics={"out_of_fold": report},
        training={
            "date": dt.date.today().isoformat(),
            "records": _counts(records),
            "config": {
                "strong_weak_weight": config.strong_weak_weight,
                "prompt_weight": config.prompt_weight,
                "C": config.C,
                "folds": config.folds,
            },
            "mode_pgr_targets": MODE_PGR_TARGETS,
        },
    )
    return artifact, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="JSONL or CSV records; repeat for several files",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory to write head.json and MODEL_CARD.md into",
    )
    parser.add_argument(
        "--embedding-model",
        default=DEFAULT_MODEL,
        help="sentence-transformers model name or path (default: %(default)s)",
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    parser.add_argument(
        "--strong-weak-weight", type=float, default=TrainingConfig.strong_weak_weight
    )
    parser.add_argument("--prompt-weight", type=float, default=TrainingConfig.prompt_weight)
    parser.add_argument("--C", type=float, default=TrainingConfig.C, help="inverse regularisation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    records = load_records(args.data)
    embedder = SentenceEmbedder(model=args.embedding_model, backend=args.backend, cache_size=0)
    config = TrainingConfig(
        strong_weak_weight=args.strong_weak_weight, prompt_weight=args.prompt_weight, C=args.C
    )
    artifact, report = train(records, embedder.fit(), config=config, progress=not args.quiet)
    path = write_artifact(artifact, args.out, card=render_card(artifact))
    summary = report.get("apgr")
    print(f"wrote {path} ({len(records)} records; out-of-fold APGR {summary})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="thinkroute train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _new_head(config: TrainingConfig) -> DifficultyHead:
    return DifficultyHead(C=config.C, random_state=config.random_state)


def _kind_index(record: Record) -> int:
    return {"fast/reasoning": 0, "weak/strong": 1}.get(record.pair or "", 2)


def _counts(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        key = f"{record.source}:{record.pair or 'prompt'}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
