"""``thinkroute eval --cascade --plot FILE.png``: quality against cost, drawn.

The cascade's claims are made on cost, not on the share escalated: it pays the fast
and the verifier call on every prompt. So the curves put USD per 1k prompts on the
x axis (at the report's hidden-token multiplier) and the mean score of the answers
sent on the y axis, for the cascade, the prompt-only router and a random order, with
the 90%-of-the-gap line and where each router crosses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw_quality_cost"]

# The share of the quality gap the cost target is stated at (docs/cascade.md).
TARGET_PGR = "0.9"


def draw_quality_cost(report: dict[str, Any], path: Path) -> None:
    """Draw a :func:`classifier.cascade_eval.cascade_report` as a PNG (or any format
    matplotlib knows by ``path``'s suffix).

    Raises
    ------
    SystemExit
        If matplotlib is missing, or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit("--plot needs matplotlib: pip install 'thinkroute[plot]'") from exc
    rows = report["curve"]
    lines = (
        ("cascade", f"cascade, verifier {report['verifier']}, {report['order']} order "
                    f"(APGR {report['cascade']['apgr']:.3f})", "-"),
        ("prompt_only", f"prompt-only router, {report['baseline']} "
                        f"(APGR {report['prompt_only']['apgr']:.3f})", "-"),
        ("random", "random order (APGR 0.5)", "--"),
    )  # fmt: skip
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for name, label, style in lines:
        axes.plot(
            [row[f"{name}_usd_per_1k"] for row in rows],
            [row[f"{name}_quality"] for row in rows],
            linestyle=style,
            label=label,
        )
    fast, reasoning = rows[0]["random_quality"], rows[-1]["random_quality"]
    target = fast + float(TARGET_PGR) * (reasoning - fast)
    axes.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    point = report["at_pgr"][TARGET_PGR]
    crossings = [point["cascade_usd_per_1k"], point["prompt_only_usd_per_1k"]]
    axes.scatter(crossings, [target, target], color="black", s=14, zorder=3)
    ratio = point["cost_ratio"]
    axes.annotate(
        # "\\$": a bare "$" starts matplotlib's maths mode.
        f"90% of the gap: \\${crossings[0]:.2f} vs \\${crossings[1]:.2f} per 1k"
        + (f" ({ratio:.2f}x)" if ratio is not None else ""),
        (min(crossings), target),
        textcoords="offset points",
        xytext=(0, 6),
        fontsize=8,
    )
    axes.set_xlabel(
        f"USD per 1k prompts (reasoning bills {report['hidden_tokens_per_visible']:g} "
        "hidden tokens per visible one)"
    )
    axes.set_ylabel("mean score of the answers sent")
    axes.set_title(f"Quality against cost, {report['n']} prompts", fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise SystemExit(f"--plot: cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(figure)
