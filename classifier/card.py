"""Write the model card that travels with every trained head."""

from __future__ import annotations

from typing import Any

from classifier.artifact import HeadArtifact
from classifier.features import FEATURE_NAMES

__all__ = ["render_card"]


# How the card names each of classifier.structure.QUESTION_RULES.
_QUESTIONS = {
    "last_paragraph": "the request's last paragraph",
    "request": "the request's own words (its last paragraph, or a short instruction put "
    "before its material)",
}


def render_card(artifact: HeadArtifact) -> str:
    """Markdown stating what the head was trained on, how, and how well it did."""
    training = artifact.training
    embedding = artifact.embedding
    head = artifact.head
    if embedding.get("kind") == "static":
        how = "its token-embedding layer alone, mean-pooled: static, no attention"
    else:
        how = f"the whole sentence transformer, through the {embedding.get('backend')} backend"
    lines = [
        "# thinkroute difficulty head",
        "",
        "Predicts P(the reasoning model answers better than the fast model) for a prompt.",
        "",
        f"- Trained: {training.get('date', 'unknown')}",
        f"- Embedding: `{embedding['model']}`, {how} "
        f"({embedding['dim']}-d, {embedding.get('max_seq_length')} tokens)",
        f"- Question: the embedding of {_QUESTIONS[embedding.get('question', 'last_paragraph')]} "
        f"added at weight {embedding.get('question_weight', 0.0):g} (0: the whole text alone)",
        "- Head: a gain model (gradient-boosted trees over a PCA projection of the embedding, "
        "the surface features and the structural cues: how much does the reasoning model "
        "win?), discounted by a gate (logistic regression: does the request call for "
        f"reasoning?) where the gate is below {artifact.head.gate_open:g}"
        + (
            f", and by {artifact.head.easy_discount:g} of itself where a cue of an easy "
            "question over hard-looking material fires (a fixed prior: "
            + ", ".join(f"`{FEATURE_NAMES[c - embedding['dim']]}`" for c in head.easy_columns)
            + ")"
            if artifact.head.easy_columns and artifact.head.easy_discount
            else ""
        )
        + (
            f", and raised to at least {head.hard_floor:g} where a cue of reasoning need "
            f"fires while the gate is at least {head.hard_gate:g} (a fixed prior: "
            + ", ".join(f"`{FEATURE_NAMES[c - embedding['dim']]}`" for c in head.hard_columns)
            + ")"
            if head.hard_columns and head.hard_floor
            else ""
        )
        + (
            f", and to at least {head.hard_floor:g} whatever the gate where a cue asks for "
            "reasoning in so many words (a fixed prior: "
            + ", ".join(f"`{FEATURE_NAMES[c - embedding['dim']]}`" for c in head.direct_columns)
            + ")"
            if head.direct_columns and head.hard_floor
            else ""
        )
        + "; the result is Platt-calibrated on out-of-fold scores of the measured "
        "fast/reasoning outcomes",
        f"- Configuration: `{training.get('config', {})}`",
        "- Explanations (`thinkroute route --explain`): the explain index beside this head "
        "(`explain.json` + `explain.npz`, written by the same command; `thinkroute "
        "explain-index` rebuilds it alone) holds per kind of training prompt (source/subset) "
        "a centroid of its embeddings, its size, mean measured gain and expected tier: no "
        "training text, and nothing of this head's weights (see classifier/explain.py)",
        "",
        *training.get("notes", []),
        *([""] if training.get("notes") else []),
    ]
    for name, report in artifact.metrics.items():
        lines += [f"## Metrics: {name.replace('_', ' ')}", "", *_report_lines(report), ""]
    lines += [
        "Reproduce with:",
        "",
        "```sh",
        training.get("command", "thinkroute train --data FILE --out DIR"),
        "```",
        "",
        "## Training data",
        "",
        "| source:kind | records |",
        "|---|---|",
        *[f"| {key} | {count} |" for key, count in training.get("records", {}).items()],
        "",
        "## Operating points",
        "",
        "A request goes to the reasoning tier when its score is at or above the mode's threshold.",
        "Thresholds recover these shares of the fast-to-reasoning quality gap on out-of-fold "
        f"scores: `{training.get('mode_pgr_targets', {})}`.",
        "",
        "| mode | threshold |",
        "|---|---|",
        *[f"| {mode} | {value:.4f} |" for mode, value in artifact.thresholds.items()],
        "",
    ]
    return "\n".join(lines)


def _report_lines(report: dict[str, Any]) -> list[str]:
    lines = [report["description"], ""] if "description" in report else []
    if "groups" in report:  # leave-one-source-out: one row per unseen source
        summary = report.get("summary", {})
        lines += [
            f"- mean over unseen outcome sources: APGR {_fmt(summary.get('apgr'))}, quality gap "
            f"recovered at balanced {_fmt(summary.get('pgr_at_balanced'))} (against its target on "
            "the training mix, under Operating points)",
            "- mean over unseen prompt sources, sent to reasoning at balanced: "
            f"expected `reasoning` {_fmt(summary.get('reasoning_to_reasoning'))}, "
            f"expected `fast` {_fmt(summary.get('fast_to_reasoning'))}",
            "",
            "| held-out source | n | APGR | CPT50 | gap recovered at balanced "
            "| expected reasoning → reasoning | expected fast → reasoning |",
            "|---|---|---|---|---|---|---|",
        ]
        for group, entry in report["groups"].items():
            tiers = entry.get("by_tier", {})
            lines.append(
                f"| {group} | {entry['n']} | {_fmt(entry.get('apgr'))} "
                f"| {_fmt(entry.get('cpt50'))} | {_fmt(entry.get('pgr_at_balanced'))} "
                f"| {_fmt(tiers.get('reasoning'))} "
                f"| {_fmt(tiers.get('fast'))} |"
            )
        return lines
    lines += [
        f"- records: {report.get('n')}, with outcomes: {report.get('n_outcomes')}",
        f"- APGR {_fmt(report.get('apgr'))}, CPT(50%) {_fmt(report.get('cpt50'))}, "
        f"CPT(80%) {_fmt(report.get('cpt80'))}",
    ]
    baselines = report.get("baselines") or {}
    for name, entry in baselines.items():
        lines.append(
            f"- {name}: APGR {_fmt(entry['apgr'])}, CPT(50%) {_fmt(entry['cpt50'])}, "
            f"CPT(80%) {_fmt(entry['cpt80'])}"
        )
    for source, entry in report.get("by_source", {}).items():
        lines.append(
            f"- source `{source}` (n={entry['n']}): APGR {_fmt(entry['apgr'])}, "
            f"CPT(50%) {_fmt(entry['cpt50'])}"
        )
    for mode, point in report.get("operating_points", {}).items():
        lines.append(
            f"- at `{mode}`: reasoning share {_fmt(point['reasoning_share'])}, "
            f"PGR {_fmt(point['pgr'])}, "
            f"modelled ${_fmt(point['usd_per_1k_requests'])} per 1k requests"
        )
    for tier, entry in report.get("tiers", {}).items():
        if entry["n"]:
            lines.append(
                f"- prompts expected to need `{tier}` (n={entry['n']}): "
                f"{_fmt(entry['reasoning_share'])} sent to reasoning at balanced"
            )
    return lines


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"
