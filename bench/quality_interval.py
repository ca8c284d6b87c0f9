"""Does ``quality_kept``'s 95% interval cover the true value? A simulation where it is known.

    .venv/bin/python bench/quality_interval.py [--runs 2000] [--seed 0]

A simulated tenant: each routed prompt has a reasoning-tier score (right with
probability ``p_reasoning``) and a fast-tier score (right more often where the
reasoning tier is right); the router serves the fast tier for a share of them,
more often where the fast tier is right (a router better than chance). Graded
pairs are drawn at random, as shadow sampling draws them; for each sample size
the interval of :func:`router.observe.quality.ratio_interval` is computed
``--runs`` times and checked against the true ratio (from a million prompts).
Also with judge-style scores (0, 0.5, 1). Prints one JSON object: coverage and
mean width per sample size; 0.95 is the target.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from router.observe.quality import ratio_interval

SIZES = (10, 30, 100, 300, 1000)


def draw(rng: random.Random, *, graded: str) -> tuple[float, float]:
    """(served score, reasoning score) of one routed prompt."""
    if graded == "judge":
        reasoning = rng.choice((0.5, 1.0, 1.0, 0.5, 0.0))
        fast = 1.0 - reasoning if reasoning != 0.5 else 0.5
    else:
        reasoning = 1.0 if rng.random() < 0.8 else 0.0
        fast = 1.0 if rng.random() < (0.85 if reasoning else 0.15) else 0.0
    served_fast = rng.random() < (0.8 if fast >= reasoning else 0.4)
    return (fast if served_fast else reasoning), reasoning


def truth(rng: random.Random, graded: str, n: int = 1_000_000) -> float:
    served = reasoning = 0.0
    for _ in range(n):
        s, r = draw(rng, graded=graded)
        served += s
        reasoning += r
    return served / reasoning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    result: dict[str, object] = {"runs": args.runs, "target": 0.95}
    for graded in ("agreement", "judge"):
        true_kept = truth(rng, graded)
        rows = {}
        for n in SIZES:
            covered = undefined = 0
            width = 0.0
            for _ in range(args.runs):
                pairs = [draw(rng, graded=graded) for _ in range(n)]
                found = ratio_interval([p[0] for p in pairs], [p[1] for p in pairs])
                if found is None:
                    undefined += 1
                    continue
                _, low, high = found
                covered += low <= true_kept <= high
                width += high - low
            defined = args.runs - undefined
            rows[str(n)] = {
                "coverage": round(covered / defined, 4) if defined else None,
                "mean_width": round(width / defined, 4) if defined else None,
                "undefined": undefined,
            }
        result[graded] = {"true_quality_kept": round(true_kept, 4), "by_pairs": rows}
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
