"""The kinds of training prompts, as numbers: what an explanation compares a prompt with.

An operator asking "why did this prompt score 0.8?" wants to know what it
resembles in training: "it sits nearest to BIG-Bench Hard's web-of-lies
puzzles, where the reasoning model was expected to be needed". A
:class:`KindTable` keeps, per kind of training prompt (its source and subset,
see :func:`kind_of`), the unit centroid of its embeddings, its record count,
the mean measured gain of the reasoning model (outcome kinds only), its
expected tier (prompt kinds only) and the mean out-of-fold score the head gave
it. No training text goes in, only names and numbers, so the table travels
inside the artifact and explanations need no training data at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.data import Record

__all__ = ["KindTable", "kind_of"]

# Kinds with fewer records are folded into their source's "(other)" kind.
MIN_KIND_RECORDS = 5
_DECIMALS = 5


def kind_of(record: Record) -> str:
    """``source/subset`` with the ``easy``/``hard`` level dropped (a level is not a kind)."""
    parts = [part for part in record.subset.split("/") if part not in ("easy", "hard", "")]
    return f"{record.source}/{parts[0]}" if parts else record.source


@dataclass(frozen=True, slots=True, eq=False)
class KindTable:
    """Per kind of training prompt: name, unit centroid, size, mean gain, tier, mean score.

    Parameters
    ----------
    names : list of str
        ``source/subset`` of each kind.
    centroids : ndarray of shape (n_kinds, dim)
        Unit-length mean embedding of each kind's records.
    counts : ndarray of shape (n_kinds,)
    mean_gain : list of float or None
        Mean ``reasoning - fast`` score over the kind's measured outcomes.
    expected_tier : list of str or None
        The tier a person expects the kind's prompt records to need.
    mean_score : ndarray of shape (n_kinds,)
        Mean out-of-fold score the head gave the kind's records.
    """

    names: list[str]
    centroids: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean_gain: list[float | None]
    expected_tier: list[str | None]
    mean_score: NDArray[np.float64]

    @classmethod
    def build(
        cls,
        records: Sequence[Record],
        embeddings: NDArray[np.float64],
        scores: NDArray[np.float64],
    ) -> KindTable:
        """Summarise ``records`` (embedded as ``embeddings``, scored out of fold as ``scores``)."""
        kinds = np.array([kind_of(r) for r in records])
        names, counts = np.unique(kinds, return_counts=True)
        small = set(names[counts < MIN_KIND_RECORDS])
        kinds = np.array(
            [
                f"{r.source}/(other)" if k in small else k
                for k, r in zip(kinds, records, strict=True)
            ]
        )
        rows: dict[str, Any] = {"names": [], "centroids": [], "counts": []}
        rows |= {"mean_gain": [], "expected_tier": [], "mean_score": []}
        for name in sorted(set(kinds)):
            members = np.flatnonzero(kinds == name)
            centroid = embeddings[members].mean(axis=0)
            measured = [records[i].gap for i in members.tolist() if records[i].measures_routing]
            tiers = {records[i].expected_tier for i in members.tolist()} - {None}
            rows["names"].append(str(name))
            rows["centroids"].append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
            rows["counts"].append(len(members))
            rows["mean_gain"].append(round(float(np.mean(measured)), 4) if measured else None)
            rows["expected_tier"].append(tiers.pop() if len(tiers) == 1 else None)
            rows["mean_score"].append(float(np.mean(scores[members])))
        return cls(
            names=rows["names"],
            centroids=np.round(np.array(rows["centroids"]), _DECIMALS),
            counts=np.array(rows["counts"], dtype=np.int64),
            mean_gain=rows["mean_gain"],
            expected_tier=rows["expected_tier"],
            mean_score=np.round(np.array(rows["mean_score"]), 4),
        )

    def nearest(self, vector: NDArray[np.float64], k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` kinds whose centroids are most similar (cosine) to one embedding."""
        unit = np.asarray(vector, dtype=np.float64)
        unit = unit / max(float(np.linalg.norm(unit)), 1e-12)
        similarity = self.centroids @ unit
        order = np.argsort(-similarity, kind="stable")[: max(0, k)]
        return [
            {
                "kind": self.names[i],
                "similarity": round(float(similarity[i]), 4),
                "records": int(self.counts[i]),
                "mean_gain": self.mean_gain[i],
                "expected_tier": self.expected_tier[i],
                "mean_score": round(float(self.mean_score[i]), 4),
            }
            for i in order
        ]

    def to_numbers(self) -> dict[str, Any]:
        """JSON-ready lists that :meth:`from_numbers` reads back."""
        return {
            "names": list(self.names),
            "centroids": self.centroids.tolist(),
            "counts": self.counts.tolist(),
            "mean_gain": list(self.mean_gain),
            "expected_tier": list(self.expected_tier),
            "mean_score": self.mean_score.tolist(),
        }

    @classmethod
    def from_numbers(cls, numbers: dict[str, Any], dim: int) -> KindTable:
        """Rebuild from :meth:`to_numbers`, checking shapes against ``dim``-d embeddings.

        Raises
        ------
        ValueError
            Naming the part whose shape or values do not fit.
        """
        names = [str(name) for name in numbers["names"]]
        centroids = np.asarray(numbers["centroids"], dtype=np.float64)
        counts = np.asarray(numbers["counts"], dtype=np.int64)
        mean_score = np.asarray(numbers["mean_score"], dtype=np.float64)
        mean_gain = [None if g is None else float(g) for g in numbers["mean_gain"]]
        tiers = [None if t is None else str(t) for t in numbers["expected_tier"]]
        n = len(names)
        if centroids.shape != (n, dim):
            raise ValueError(f"kind centroids have shape {centroids.shape}, expected ({n}, {dim})")
        if not (len(counts) == len(mean_score) == len(mean_gain) == len(tiers) == n):
            raise ValueError("kind table columns differ in length")
        if not (np.isfinite(centroids).all() and np.isfinite(mean_score).all()):
            raise ValueError("kind table holds non-finite numbers")
        return cls(names, centroids, counts, mean_gain, tiers, mean_score)
