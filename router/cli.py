"""The ``thinkroute`` command: one entry point, a subcommand per job.

Each subcommand's arguments and work live beside the code they drive; this
module only wires them together and turns expected failures into one-line
messages instead of tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from classifier import evaluate, train
from classifier.errors import ClassifierError
from router.policy import MODES, decide, explain

__all__ = ["main"]


def _add_route_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="the user's message to route")
    parser.add_argument("--mode", choices=MODES, default="balanced")
    parser.add_argument("--model", metavar="DIR", help="classifier artifact (default: shipped)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")


def _run_route(args: argparse.Namespace) -> int:
    from classifier.model import DifficultyClassifier

    classifier = DifficultyClassifier.load(args.model)
    score = classifier.score_messages([{"role": "user", "content": args.question}])
    decision = decide(score, mode=args.mode, thresholds=classifier.thresholds)
    if args.json:
        print(json.dumps({**decision.as_dict(), "explanation": explain(decision)}))
    else:
        print(f"tier: {decision.tier}\nscore: {decision.score:.4f}")
        print(f"threshold: {decision.threshold:.4f} ({decision.mode})\nwhy: {explain(decision)}")
    return 0


COMMANDS = {
    "train": (
        "train a difficulty head on outcome and prompt records",
        train.add_arguments,
        train.run,
    ),
    "eval": (
        "APGR, CPT and tier shares of a head on records",
        evaluate.add_eval_arguments,
        evaluate.run_eval,
    ),
    "score": (
        "print each record's score and tier as JSON lines",
        evaluate.add_score_arguments,
        evaluate.run_score,
    ),
    "calibrate": (
        "find the threshold for a target reasoning share or gap recovered",
        evaluate.add_calibrate_arguments,
        evaluate.run_calibrate,
    ),
    "route": ("show where one question would go, and why", _add_route_arguments, _run_route),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thinkroute", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, add_arguments, run) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ClassifierError, FileNotFoundError) as exc:
        print(f"thinkroute {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
