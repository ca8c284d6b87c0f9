"""Does ``route --explain`` name the right kinds? Nearest-kind accuracy on held-out records.

Builds an explain index (see classifier/explain.py) from a random 80% of the
records, then asks, for each held-out record, whether the kind nearest to it
is its own kind (``kind_top1``), whether its own kind is among the three
nearest (``kind_top3``) and whether the nearest kind comes from its own source
(``source_top1``). It compares the shipped similarity (a cosine after
whitening by the within-kind covariance) with a raw cosine to each kind's mean
embedding, and times one lookup. Prints one
JSON object:

    python bench/explain_nearest.py --data ../shared/data/outcomes/train.jsonl \\
        --data ../shared/data/prompts/train.jsonl --data ../shared/data/everyday/train.jsonl

The data is read here, in a benchmark, never at run time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from classifier.artifact import read_artifact
from classifier.data import load_records
from classifier.explain import build_index, kind_of
from classifier.model import DEFAULT_ARTIFACT, embed, embedder_for, embedding_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, type=Path)
    parser.add_argument("--model", type=Path, default=DEFAULT_ARTIFACT, help="head whose space")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = [r for r in load_records(args.data) if r.pair != "weak/strong"]
    embedding = read_artifact(args.model).embedding
    vectors = embed(
        embedder_for(embedding), [r.text for r in records], **embedding_options(embedding)
    )
    held = np.random.default_rng(args.seed).random(len(records)) < 0.2
    fit_rows = np.flatnonzero(~held)
    index = build_index([records[i] for i in fit_rows], vectors[fit_rows], embedding=embedding)
    folded = {name.split("/(other)")[0] for name in index.names if name.endswith("/(other)")}

    def own_kind(i: int) -> str:
        kind = kind_of(records[i])
        return kind if kind in index.names or records[i].source not in folded else (
            f"{records[i].source}/(other)"
        )  # fmt: skip

    test_rows = np.flatnonzero(held)
    truth = [own_kind(int(i)) for i in test_rows]
    sources = [records[int(i)].source for i in test_rows]
    whitened = vectors[test_rows] @ index.whitening
    whitened /= np.linalg.norm(whitened, axis=1, keepdims=True)
    fit_kinds = np.array([own_kind(int(i)) for i in fit_rows])
    raw_centroids = np.array([vectors[fit_rows[fit_kinds == name]].mean(0) for name in index.names])
    raw_centroids /= np.linalg.norm(raw_centroids, axis=1, keepdims=True)
    report: dict[str, object] = {"records": len(records), "held_out": len(test_rows)}
    for name, queries, centroids in (
        ("whitened", whitened, index.centroids),
        ("raw_cosine", vectors[test_rows], raw_centroids),
    ):
        order = np.argsort(-(queries @ centroids.T), axis=1)[:, :3]
        top = [[index.names[j] for j in row] for row in order]
        pairs = list(zip(top, truth, sources, strict=True))
        report[name] = {
            "kind_top1": round(float(np.mean([t[0] == k for t, k, _ in pairs])), 3),
            "kind_top3": round(float(np.mean([k in t for t, k, _ in pairs])), 3),
            "source_top1": round(float(np.mean([t[0].split("/")[0] == s for t, _, s in pairs])), 3),
        }
    started = time.perf_counter()
    for vector in vectors[test_rows[:200]]:
        index.nearest(vector, 3)
    report["lookup_us"] = round(1e6 * (time.perf_counter() - started) / min(200, len(test_rows)), 1)
    report["kinds"] = len(index.names)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
