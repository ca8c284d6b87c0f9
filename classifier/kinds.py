"""The kind of a training prompt: its source and subset, the unit explanations speak in.

An operator asking "why did this prompt score 0.8?" wants to know what it resembles in
training, by kind ("BIG-Bench Hard's web-of-lies puzzles"), never by text. The explain
index (:mod:`classifier.explain`) keeps per kind a centroid, its size and its measured
gain; this names the kinds.
"""

from __future__ import annotations

from classifier.data import Record

__all__ = ["kind_of"]


def kind_of(record: Record) -> str:
    """``source/subset`` with the ``easy``/``hard`` level dropped (a level is not a kind)."""
    parts = [part for part in record.subset.split("/") if part not in ("easy", "hard", "")]
    return f"{record.source}/{parts[0]}" if parts else record.source
