"""``thinkroute score|eval --cascade``: judge verify-then-escalate offline.

The cascade asks the fast model and a verifier, then escalates in the verifier head's
order (see :mod:`classifier.verifier`). Offline, the verifier's reply is the one the
data holds (``--verifier MODEL`` names the ``fast_answers`` entry; ``self`` takes the
fast model's next sample). ``eval`` reports APGR/CPT beside the prompt-only router
(the prompt head's score alone) and a quality-versus-cost table: the cascade pays the
fast and verifier calls on every prompt and the reasoning call on escalated ones; the
prompt-only router pays one tier per prompt. The reasoning model bills
``--hidden-tokens`` hidden tokens per visible output token. ``--plot FILE.png`` draws
quality against cost per 1k prompts for the cascade, the prompt-only router and a random
order (see :mod:`classifier.cascade_plot`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.cascade_data import (
    CHARS_PER_TOKEN,
    SELF,
    CascadeRecord,
    ModelPrice,
    is_held_out,
    model_price,
    read_cascade_records,
)
from classifier.metrics import RoutingCurve, routing_curve
from classifier.verifier import VerifierHead

__all__ = [
    "ROLES",
    "add_cascade_arguments",
    "cascade_report",
    "run_cascade_eval",
    "run_cascade_score",
]

DEFAULT_HIDDEN_TOKENS = 4.0
PGR_TARGETS = (0.5, 0.8, 0.9, 0.95)
# Reasoning shares the report's curve lists, and the plot draws.
REPORT_CURVE_POINTS = 11
PLOT_CURVE_POINTS = 101
# The calls a cascade makes; ``role_prices`` may price each as a configured model would.
ROLES = ("fast", "verifier", "reasoning")
# Chat framing around a prompt, in tokens.
FRAMING_TOKENS = 10


def add_cascade_arguments(parser: argparse.ArgumentParser, *, costs: bool) -> None:
    """The ``--cascade`` flags of ``thinkroute score`` (``costs=False``) and ``eval``."""
    group = parser.add_argument_group("cascade (verify, then escalate)")
    group.add_argument(
        "--cascade",
        action="store_true",
        help="judge the cascade on cascade records (with fast_answers) instead of the prompt head",
    )
    group.add_argument(
        "--verifier",
        metavar="MODEL",
        help="which fast_answers model plays the verifier; 'self' samples the fast model again",
    )
    group.add_argument(
        "--verifier-head",
        type=Path,
        metavar="FILE.json",
        help="verifier head (default: the shipped classifier/default/verifier.json)",
    )
    group.add_argument(
        "--part",
        choices=("all", "held-out", "train"),
        default="all",
        help="records to judge: 'held-out' is the zeroeval split the shipped head never saw",
    )
    group.add_argument(
        "--baseline",
        choices=("prompt-head", "task-prior"),
        default="prompt-head",
        help="the prompt-only router to compare with: the prompt head's score, or each "
        "subset's mean gain on the records outside --part (a perfect task recogniser)",
    )
    if costs:
        group.add_argument(
            "--order",
            choices=("head", "disagreement"),
            default="head",
            help="the cascade's escalation order: the verifier head's score, or differing "
            "answers first, then by prompt score (the proxy without cascade.verifier_head)",
        )
        group.add_argument(
            "--hidden-tokens",
            type=float,
            default=DEFAULT_HIDDEN_TOKENS,
            metavar="N",
            help="hidden reasoning tokens billed per visible output token (default: %(default)s)",
        )
        group.add_argument(
            "--price",
            action="append",
            default=[],
            metavar="MODEL=IN/OUT",
            help="USD per million input/output tokens, overriding LiteLLM's map; repeatable",
        )


def _load(
    args: argparse.Namespace,
) -> tuple[list[CascadeRecord], NDArray[np.float64], NDArray[np.float64], VerifierHead]:
    from classifier.model import DifficultyClassifier

    if not args.verifier:
        raise SystemExit("--cascade needs --verifier MODEL (a fast_answers model, or 'self')")
    every = read_cascade_records(args.data)
    records, others = every, []
    if args.part != "all":
        keep = args.part == "held-out"
        records = [r for r in every if is_held_out(r.id) == keep]
        others = [r for r in every if is_held_out(r.id) != keep]
    if not records:
        raise SystemExit(f"no cascade records in --part {args.part}")
    head = VerifierHead.load(args.verifier_head)
    # The verifier head takes the prompt head's score as a feature whatever the baseline.
    prompt_scores = DifficultyClassifier.load(args.model).score_texts([r.prompt for r in records])
    prompt_scores = np.asarray(prompt_scores, dtype=np.float64)
    baseline = prompt_scores
    if args.baseline == "task-prior":
        baseline = _task_prior(records, others)
    return records, prompt_scores, baseline, head


def _task_prior(
    records: Sequence[CascadeRecord], others: Sequence[CascadeRecord]
) -> NDArray[np.float64]:
    """Each record's subset's mean gain, learnt on ``others`` (never on the records judged)."""
    gains: dict[tuple[str, str], list[float]] = {}
    for record in others:
        gains.setdefault((record.source, record.subset), []).append(record.gap)
    missing = {(r.source, r.subset) for r in records} - set(gains)
    if missing:
        raise SystemExit(
            f"--baseline task-prior needs records of {sorted(missing)[:3]} outside --part "
            "(use --part held-out)"
        )
    return np.array([float(np.mean(gains[(r.source, r.subset)])) for r in records])


def escalation_scores(
    head: VerifierHead,
    records: Sequence[CascadeRecord],
    prompt_scores: NDArray[np.float64],
    verifier: str,
    order: str = "head",
) -> NDArray[np.float64]:
    """The order the cascade escalates in: the head's P(reasoning does better) per record,
    or (``order="disagreement"``) differing answers first, each group by prompt score."""
    from classifier.verifier_train import disagreement_scores, verifier_scores

    if order == "disagreement":
        return disagreement_scores(records, prompt_scores, verifier)
    return verifier_scores(head, records, prompt_scores, verifier)


def run_cascade_score(args: argparse.Namespace) -> int:
    records, prompt_scores, _, head = _load(args)
    scores = escalation_scores(head, records, prompt_scores, args.verifier)
    threshold = head.thresholds_.get(args.mode, 0.5)
    for record, score in zip(records, scores, strict=True):
        tier = "reasoning" if score >= threshold else "fast"
        line = {"id": record.id, "score": round(float(score), 6), "tier": tier}
        sys.stdout.write(json.dumps(line) + "\n")
    return 0


def run_cascade_eval(args: argparse.Namespace) -> int:
    records, prompt_scores, baseline, head = _load(args)
    scores = escalation_scores(head, records, prompt_scores, args.verifier, args.order)
    options: dict[str, Any] = {
        "verifier": args.verifier,
        "hidden_tokens": args.hidden_tokens,
        "given_prices": _prices(args.price),
        # Set by the ``thinkroute`` command from ``--config``: the tiers' own prices.
        "role_prices": getattr(args, "role_prices", None),
        "baseline": args.baseline,
        "order": args.order,
    }
    report = cascade_report(records, baseline, scores, **options)
    if getattr(args, "plot", None):
        from classifier.cascade_plot import draw_quality_cost

        dense = cascade_report(records, baseline, scores, curve_points=PLOT_CURVE_POINTS, **options)
        draw_quality_cost(dense, args.plot)
    print(json.dumps(report) if args.json else _format(report))
    return 0


def _prices(values: list[str]) -> dict[str, tuple[float, float]]:
    prices = {}
    for value in values:
        model, _, pair = value.partition("=")
        try:
            given_in, given_out = (float(x) for x in pair.split("/"))
        except ValueError:
            raise SystemExit(
                f"--price wants MODEL=IN/OUT (USD per million tokens), got {value!r}"
            ) from None
        prices[model] = (given_in, given_out)
    return prices


# -- the report ---------------------------------------------------------------------


def cascade_report(
    records: Sequence[CascadeRecord],
    prompt_scores: NDArray[np.float64],
    scores: NDArray[np.float64],
    *,
    verifier: str,
    hidden_tokens: float = DEFAULT_HIDDEN_TOKENS,
    given_prices: dict[str, tuple[float, float]] | None = None,
    role_prices: dict[str, ModelPrice] | None = None,
    baseline: str = "prompt-head",
    curve_points: int = REPORT_CURVE_POINTS,
    order: str = "head",
) -> dict[str, Any]:
    """APGR/CPT of the cascade and of the prompt-only router, and what each costs.

    Parameters
    ----------
    records : sequence of CascadeRecord
    prompt_scores : ndarray of shape (n,)
        The prompt-only router's order (the prompt head's scores, or a task prior).
    scores : ndarray of shape (n,)
        The cascade's escalation order (the verifier head's scores).
    verifier : str
        The verifier model (or ``self``).
    hidden_tokens : float
        Hidden reasoning tokens billed per visible output token of the reasoning model.
    given_prices : dict, optional
        ``model -> (input, output)`` USD per million tokens, over LiteLLM's map.
    role_prices : dict, optional
        ``role -> ModelPrice`` for ``fast``, ``verifier`` or ``reasoning``: every call of
        that role priced so, whichever model the data recorded (what a configured
        deployment would cost for the same tokens).
    baseline : str
        What ``prompt_scores`` are, for the report.
    curve_points : int
        Evenly spaced reasoning shares, 0 to 1, in the quality-versus-cost ``curve``.
    order : str
        What ``scores`` are (``head`` or ``disagreement``), for the report.
    """
    cheap = [r.fast_score for r in records]
    costly = [r.reasoning_score for r in records]
    cascade = routing_curve(scores, cheap, costly)
    prompt_only = routing_curve(prompt_scores, cheap, costly)
    costs = _Costs(records, verifier, given_prices or {}, role_prices or {})
    answered = [r.verifier_text(verifier) is not None for r in records]
    report: dict[str, Any] = {
        "n": len(records),
        "verifier": verifier,
        "verifier_reply_share": round(float(np.mean(answered)), 4),
        "hidden_tokens_per_visible": hidden_tokens,
        "baseline": baseline,
        "order": order,
        "cascade": _summary(cascade),
        "prompt_only": _summary(prompt_only),
        "prices_usd_per_mtok": costs.price_table(),
        "at_pgr": {},
        "curve": [],
    }
    for target in PGR_TARGETS:
        share_c, share_p = cascade.cpt(target), prompt_only.cpt(target)
        a_c, b_c = costs.cascade_usd(scores, share_c)
        a_p, b_p = costs.prompt_only_usd(prompt_scores, share_p)
        cost_c, cost_p = a_c + b_c * hidden_tokens, a_p + b_p * hidden_tokens
        report["at_pgr"][str(target)] = {
            "cascade_share": round(share_c, 4),
            "prompt_only_share": round(share_p, 4),
            "cascade_usd_per_1k": round(1000 * cost_c / len(records), 4),
            "prompt_only_usd_per_1k": round(1000 * cost_p / len(records), 4),
            "cost_ratio": round(cost_c / cost_p, 4) if cost_p > 0 else None,
            # The hidden-token multiplier at which the cascade costs as much as the
            # prompt-only router (ratio 1), and at which it costs 0.8 of it.
            "break_even_hidden_tokens": _solve(a_c, b_c, a_p, b_p, 1.0),
            "hidden_tokens_for_ratio_0.8": _solve(a_c, b_c, a_p, b_p, 0.8),
        }
    fast_mean, reasoning_mean = float(np.mean(cheap)), float(np.mean(costly))
    for share in np.linspace(0.0, 1.0, curve_points):
        a_c, b_c = costs.cascade_usd(scores, share)
        a_p, b_p = costs.prompt_only_usd(prompt_scores, share)
        a_r, b_r = costs.random_usd(share)
        report["curve"].append(
            {
                "reasoning_share": round(float(share), 2),
                "cascade_quality": round(_at(cascade, share, "quality"), 4),
                "cascade_usd_per_1k": round(1000 * (a_c + b_c * hidden_tokens) / len(records), 4),
                "prompt_only_quality": round(_at(prompt_only, share, "quality"), 4),
                "prompt_only_usd_per_1k": round(
                    1000 * (a_p + b_p * hidden_tokens) / len(records), 4
                ),
                # A random order: quality and cost both linear in the share escalated.
                "random_quality": round(fast_mean + share * (reasoning_mean - fast_mean), 4),
                "random_usd_per_1k": round(1000 * (a_r + b_r * hidden_tokens) / len(records), 4),
            }
        )
    return report


def _summary(curve: RoutingCurve) -> dict[str, float]:
    return {
        "apgr": round(curve.apgr, 4),
        "cpt50": round(curve.cpt(0.5), 4),
        "cpt80": round(curve.cpt(0.8), 4),
        "cpt90": round(curve.cpt(0.9), 4),
    }


def _at(curve: RoutingCurve, share: float, what: str) -> float:
    return float(np.interp(share, curve.share, getattr(curve, what)))


def _solve(a_c: float, b_c: float, a_p: float, b_p: float, ratio: float) -> float | None:
    """``h >= 0`` with ``a_c + b_c h = ratio (a_p + b_p h)``, if there is one."""
    slope = b_c - ratio * b_p
    if abs(slope) < 1e-15:
        return None
    h = (ratio * a_p - a_c) / slope
    return round(h, 3) if h >= 0 else None


class _Costs:
    """Modelled USD per prompt, split into a fixed part and a part per hidden-token multiple."""

    def __init__(
        self,
        records: Sequence[CascadeRecord],
        verifier: str,
        given: dict[str, tuple[float, float]],
        roles: dict[str, ModelPrice],
    ) -> None:
        self._given = given
        self._roles = roles
        self._prices: dict[str, ModelPrice] = {}
        n = len(records)
        self.fast = np.zeros(n)
        self.verify = np.zeros(n)
        self.reasoning_fixed = np.zeros(n)
        self.reasoning_per_hidden = np.zeros(n)
        for i, record in enumerate(records):
            prompt_tokens = len(record.prompt) / CHARS_PER_TOKEN + FRAMING_TOKENS
            fast_tokens = len(record.fast_text) / CHARS_PER_TOKEN
            self.fast[i] = self._price("fast", record.fast_model).cost_usd(
                prompt_tokens, fast_tokens
            )
            answer = record.verifier_answer(verifier)
            # A reply missing from the data was still a call: charge one like the fast reply.
            model = answer[0] if answer else (record.fast_model if verifier == SELF else verifier)
            reply_tokens = len(answer[1] if answer else record.fast_text) / CHARS_PER_TOKEN
            self.verify[i] = self._price("verifier", model).cost_usd(prompt_tokens, reply_tokens)
            visible = (
                record.reasoning_output_chars / CHARS_PER_TOKEN
                if record.reasoning_output_chars is not None
                else fast_tokens
            )
            reasoning = self._price("reasoning", record.reasoning_model)
            self.reasoning_fixed[i] = reasoning.cost_usd(prompt_tokens, visible)
            self.reasoning_per_hidden[i] = reasoning.cost_usd(0.0, visible)

    def _price(self, role: str, model: str) -> ModelPrice:
        """The role's configured price if given, else the data's model's."""
        name = role if role in self._roles else model  # the report's price table lists it so
        if name not in self._prices:
            if role in self._roles:
                self._prices[name] = self._roles[role]
                return self._prices[name]
            try:
                self._prices[name] = model_price(model, self._given)
            except KeyError as exc:
                raise SystemExit(str(exc.args[0])) from exc
        return self._prices[name]

    def price_table(self) -> dict[str, dict[str, Any]]:
        return {
            model: {
                "input": round(price.input_usd_per_mtok, 4),
                "output": round(price.output_usd_per_mtok, 4),
                "source": price.source,
            }
            for model, price in sorted(self._prices.items())
        }

    def cascade_usd(self, scores: NDArray[np.float64], share: float) -> tuple[float, float]:
        """Total USD as (fixed, per hidden multiple) when the top ``share`` escalate."""
        fixed, per_hidden = self._escalated(scores, share)
        return float(self.fast.sum() + self.verify.sum() + fixed), per_hidden

    def prompt_only_usd(self, scores: NDArray[np.float64], share: float) -> tuple[float, float]:
        """Total USD when the top ``share`` go straight to reasoning and the rest stay fast."""
        fixed, per_hidden = self._escalated(scores, share)
        order = np.argsort(-scores, kind="stable")
        k = share * len(scores)
        fast_left = self.fast.sum() - _partial_sum(self.fast[order], k)
        return float(fast_left + fixed), per_hidden

    def random_usd(self, share: float) -> tuple[float, float]:
        """Expected total USD of a prompt-only router that sends a random ``share`` to
        reasoning (the rest fast)."""
        fixed = (1.0 - share) * self.fast.sum() + share * self.reasoning_fixed.sum()
        return float(fixed), float(share * self.reasoning_per_hidden.sum())

    def _escalated(self, scores: NDArray[np.float64], share: float) -> tuple[float, float]:
        order = np.argsort(-scores, kind="stable")
        k = share * len(scores)
        return (
            _partial_sum(self.reasoning_fixed[order], k),
            _partial_sum(self.reasoning_per_hidden[order], k),
        )


def _partial_sum(ordered: NDArray[np.float64], k: float) -> float:
    """Sum of the first ``k`` values, ``k`` fractional (linear within the next one)."""
    whole = int(np.floor(k))
    total = float(ordered[:whole].sum())
    if whole < ordered.size:
        total += (k - whole) * float(ordered[whole])
    return total


def _format(report: dict[str, Any]) -> str:
    lines = [
        f"{report['n']} cascade records, verifier {report['verifier']} "
        f"(reply on {report['verifier_reply_share']:.1%}), reasoning bills "
        f"{report['hidden_tokens_per_visible']:g} hidden tokens per visible one; "
        f"cascade order = {report['order']}, prompt-only = {report['baseline']}",
        f"{'':14s} {'APGR':>7s} {'CPT50':>7s} {'CPT80':>7s} {'CPT90':>7s}",
    ]
    for name in ("cascade", "prompt_only"):
        entry = report[name]
        lines.append(
            f"{name:14s} {entry['apgr']:7.3f} {entry['cpt50']:7.3f} {entry['cpt80']:7.3f} "
            f"{entry['cpt90']:7.3f}"
        )
    lines.append(
        f"{'PGR':>6s} {'share':>7s} {'$/1k':>8s} {'prompt':>7s} {'$/1k':>8s} {'ratio':>6s} "
        f"{'even@h':>7s}"
    )
    for target, point in report["at_pgr"].items():
        even = point["break_even_hidden_tokens"]
        lines.append(
            f"{float(target):6.2f} {point['cascade_share']:7.3f} "
            f"{point['cascade_usd_per_1k']:8.3f} {point['prompt_only_share']:7.3f} "
            f"{point['prompt_only_usd_per_1k']:8.3f} {point['cost_ratio'] or 0:6.3f} "
            f"{'-' if even is None else f'{even:.2f}':>7s}"
        )
    lines.append(f"{'share':>6s} {'quality':>8s} {'$/1k':>8s} {'prompt q':>9s} {'$/1k':>8s}")
    for row in report["curve"]:
        lines.append(
            f"{row['reasoning_share']:6.1f} {row['cascade_quality']:8.3f} "
            f"{row['cascade_usd_per_1k']:8.3f} {row['prompt_only_quality']:9.3f} "
            f"{row['prompt_only_usd_per_1k']:8.3f}"
        )
    prices = ", ".join(
        f"{model} {p['input']:g}/{p['output']:g} ({p['source']})"
        for model, p in report["prices_usd_per_mtok"].items()
    )
    lines.append(f"prices USD per 1M tokens in/out: {prices}")
    return "\n".join(lines)
