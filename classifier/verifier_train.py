"""Train the verifier head on cascade records, judge it on prompts it never saw, save it.

Every training prompt contributes one row per cheap model that could play the
verifier (and ``self`` where the fast model was sampled again), weighted so each
prompt counts once: the head learns what agreement means in general, not for one
verifier. The label is whether the reasoning model scored higher than the fast one.

Judged two ways, never on a prompt it trained on: the held-out zeroeval split
(:func:`classifier.cascade_data.is_held_out`, by prompt id) with a named verifier,
and leave-one-source-out (train on zeroeval, judge reasoning-gym with ``self``).

Usage::

    python -m classifier.verifier_train --data ../shared/data/cascade/train.jsonl \\
        --out classifier/default/verifier.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.calibration import threshold_for_pgr
from classifier.cascade_data import SELF, CascadeRecord, is_held_out, read_cascade_records
from classifier.metrics import routing_curve
from classifier.verifier import FEATURE_NAMES, VerifierHead, answer_features

__all__ = ["fit_verifier", "training_rows", "verifier_scores"]

# Share of the quality gap each mode aims to recover (as the prompt head's modes).
MODE_PGR_TARGETS = {"cheap": 0.5, "balanced": 0.9, "quality": 0.98}
JUDGED_VERIFIERS = ("gemini-1.5-flash", "claude-3-5-haiku")


def training_rows(
    records: Sequence[CascadeRecord], prompt_scores: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Feature rows, labels and weights: one row per (prompt, possible verifier)."""
    rows, labels, weights = [], [], []
    for record, score in zip(records, prompt_scores, strict=True):
        verifiers = record.verifier_models()
        texts = [record.verifier_text(v) for v in verifiers] or [None]
        for text in texts:
            rows.append(answer_features(float(score), record.fast_text, text))
            labels.append(float(record.gap > 0))
            weights.append(1.0 / len(texts))
    return np.vstack(rows), np.array(labels), np.array(weights)


def fit_verifier(
    records: Sequence[CascadeRecord], prompt_scores: NDArray[np.float64], *, C: float = 1.0
) -> VerifierHead:
    """A head trained on these records, its mode thresholds set on them."""
    X, y, weights = training_rows(records, prompt_scores)
    head = VerifierHead(C=C).fit(X, y, sample_weight=weights)
    return head


def verifier_scores(
    head: VerifierHead,
    records: Sequence[CascadeRecord],
    prompt_scores: NDArray[np.float64],
    verifier: str,
) -> NDArray[np.float64]:
    """Escalation order for these records with one named verifier (``self`` allowed)."""
    if not records:
        return np.empty(0)
    X = np.vstack(
        [
            answer_features(float(score), record.fast_text, record.verifier_text(verifier))
            for record, score in zip(records, prompt_scores, strict=True)
        ]
    )
    return head.score(X)


def disagreement_scores(
    records: Sequence[CascadeRecord],
    prompt_scores: NDArray[np.float64],
    verifier: str,
) -> NDArray[np.float64]:
    """The rule without a head: disagreements first, each group by prompt score.

    What the proxy does without ``cascade.verifier_head``: differing answers escalate,
    the rest keep the prompt-only decision.
    """
    if not records:
        return np.empty(0)
    disagree = FEATURE_NAMES.index("disagree")
    differs = np.array(
        [answer_features(0.0, r.fast_text, r.verifier_text(verifier))[disagree] for r in records]
    )
    # Prompt scores lie in [0, 1]: half of one never lifts an agreement over a disagreement.
    return differs + 0.5 * np.asarray(prompt_scores, dtype=np.float64)


def set_thresholds(
    head: VerifierHead,
    records: Sequence[CascadeRecord],
    prompt_scores: NDArray[np.float64],
    verifier: str,
) -> None:
    """Each mode's threshold: the score that recovers its share of the gap on these records."""
    scores = verifier_scores(head, records, prompt_scores, verifier)
    curve = routing_curve(
        scores, [r.fast_score for r in records], [r.reasoning_score for r in records]
    )
    head.thresholds_ = {
        mode: round(float(threshold_for_pgr(scores, curve, target)), 6)
        for mode, target in MODE_PGR_TARGETS.items()
    }


def _apgr(
    head: VerifierHead, records: Sequence[CascadeRecord], scores: NDArray[np.float64], verifier: str
) -> dict[str, Any]:
    order = verifier_scores(head, records, scores, verifier)
    cheap = [r.fast_score for r in records]
    costly = [r.reasoning_score for r in records]
    cascade = routing_curve(order, cheap, costly)
    prompt_only = routing_curve(scores, cheap, costly)
    rule = routing_curve(disagreement_scores(records, scores, verifier), cheap, costly)
    return {
        "n": len(records),
        "apgr": round(cascade.apgr, 4),
        "cpt80": round(cascade.cpt(0.8), 4),
        "cpt90": round(cascade.cpt(0.9), 4),
        "disagree_then_prompt_apgr": round(rule.apgr, 4),
        "prompt_only_apgr": round(prompt_only.apgr, 4),
        "prompt_only_cpt90": round(prompt_only.cpt(0.9), 4),
    }


def judge(
    records: Sequence[CascadeRecord], prompt_scores: NDArray[np.float64], *, C: float = 1.0
) -> dict[str, Any]:
    """Held-out figures: never on a prompt the judged head trained on."""
    index = {id(r): i for i, r in enumerate(records)}

    def part(rows: Sequence[CascadeRecord]) -> tuple[list[CascadeRecord], NDArray[np.float64]]:
        chosen = list(rows)
        return chosen, prompt_scores[[index[id(r)] for r in chosen]]

    report: dict[str, Any] = {}
    train, train_scores = part([r for r in records if not is_held_out(r.id)])
    held, held_scores = part([r for r in records if is_held_out(r.id)])
    head = fit_verifier(train, train_scores, C=C)
    for verifier in JUDGED_VERIFIERS:
        report[f"zeroeval_held_out/{verifier}"] = _apgr(head, held, held_scores, verifier)
        for subset in sorted({r.subset for r in held}):
            rows, rows_scores = part([r for r in held if r.subset == subset])
            report[f"zeroeval_held_out/{verifier}/{subset}"] = _apgr(
                head, rows, rows_scores, verifier
            )
    # The prompt head trained on these very prompts, so its score is optimistic here;
    # a head that never sees it shows what the answers alone carry.
    blind = fit_verifier(train, np.full(len(train), 0.5), C=C)
    for verifier in JUDGED_VERIFIERS:
        order = verifier_scores(blind, held, np.full(len(held), 0.5), verifier)
        curve = routing_curve(
            order, [r.fast_score for r in held], [r.reasoning_score for r in held]
        )
        report[f"zeroeval_held_out/{verifier}/answers_only"] = {
            "n": len(held),
            "apgr": round(curve.apgr, 4),
            "cpt90": round(curve.cpt(0.9), 4),
        }
    zeroeval, zeroeval_scores = part([r for r in records if r.source == "zeroeval"])
    gym, gym_scores = part([r for r in records if r.source == "reasoning-gym"])
    train_zeroeval, train_zeroeval_scores = part([r for r in train if r.source == "zeroeval"])
    if gym:
        # Grouped by prompt: each fold is judged by a head that never saw its prompts.
        fold_of = np.array([int(r.id.encode().hex(), 16) % 5 for r in gym])
        order = np.zeros(len(gym))
        for fold in range(5):
            rest = [r for r, f in zip(gym, fold_of, strict=True) if f != fold]
            rest_scores = gym_scores[fold_of != fold]
            head_k = fit_verifier(
                rest + train_zeroeval, np.r_[rest_scores, train_zeroeval_scores], C=C
            )
            in_fold = np.flatnonzero(fold_of == fold)
            order[in_fold] = verifier_scores(
                head_k, [gym[i] for i in in_fold], gym_scores[in_fold], SELF
            )
        curve = routing_curve(order, [r.fast_score for r in gym], [r.reasoning_score for r in gym])
        report["reasoning-gym_grouped_5fold/self"] = {
            "n": len(gym),
            "apgr": round(curve.apgr, 4),
            "cpt90": round(curve.cpt(0.9), 4),
        }
    if zeroeval and gym:
        from_zeroeval = fit_verifier(zeroeval, zeroeval_scores, C=C)
        report["reasoning-gym_from_zeroeval/self"] = _apgr(from_zeroeval, gym, gym_scores, SELF)
        from_gym = fit_verifier(gym, gym_scores, C=C)
        for verifier in JUDGED_VERIFIERS:
            report[f"zeroeval_from_reasoning-gym/{verifier}"] = _apgr(
                from_gym, zeroeval, zeroeval_scores, verifier
            )
    return report


def prompt_head_scores(records: Sequence[CascadeRecord]) -> NDArray[np.float64]:
    """The shipped prompt head's score for each record's prompt."""
    from classifier.model import DifficultyClassifier

    return DifficultyClassifier.load().score_texts([r.prompt for r in records])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, type=Path, metavar="FILE")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    args = parser.parse_args(argv)
    records = read_cascade_records(args.data)
    scores = prompt_head_scores(records)
    report = judge(records, scores, C=args.C)
    shipped = [i for i, r in enumerate(records) if not is_held_out(r.id)]
    train = [records[i] for i in shipped]
    head = fit_verifier(train, scores[shipped], C=args.C)
    zeroeval_train = [i for i in shipped if records[i].source == "zeroeval"]
    set_thresholds(
        head, [records[i] for i in zeroeval_train], scores[zeroeval_train], "gemini-1.5-flash"
    )
    head.info_ = {
        "trained": datetime.now(UTC).strftime("%Y-%m-%d"),
        "records": len(train),
        "held_out": "zeroeval prompts with is_held_out(id) (30% by a hash of the id)",
        "label": "reasoning.score > fast.score",
        "thresholds_set_on": "zeroeval training part, gemini-1.5-flash as verifier",
        "judged": report,
    }
    head.save(args.out)
    print(json.dumps({"out": str(args.out), "thresholds": head.thresholds_, **report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
