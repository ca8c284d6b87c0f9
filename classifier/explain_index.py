"""Build an explain index from training data: ``thinkroute explain-index --data FILE --out DIR``.

The index (see :mod:`classifier.explain`) is made in the embedding space of a
head artifact (``--like DIR``, default the shipped head), so the head's own
embedding of a prompt can be compared with it at no extra cost, but nothing of
the head's weights goes in: any head over the same embedding can use it.
Only kind names, counts, mean gains, expected tiers and centroids are written.

>>> main(["--data", "../shared/data/outcomes/train.jsonl", "--out", "/tmp/x"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier.artifact import read_artifact
from classifier.base import Embedder
from classifier.data import Record, load_records
from classifier.evaluate import add_data_argument
from classifier.explain import ExplainIndex, build_index, write_index
from classifier.model import DEFAULT_ARTIFACT, embed, embedder_for, embedding_options

__all__ = ["add_arguments", "embed_and_build", "made_by", "main", "run"]

# Texts embedded per step: bounded memory whatever the data's size.
_STEP = 2048


def embed_and_build(
    records: Sequence[Record],
    embedder: Embedder,
    *,
    embedding: dict[str, Any],
    made: dict[str, Any] | None = None,
) -> ExplainIndex:
    """Embed ``records`` as ``embedding`` says (its question rule and weight) and index them."""
    kept = [r for r in records if r.pair != "weak/strong"]
    texts = [r.text for r in kept]
    options = embedding_options(embedding)
    blocks = [
        embed(embedder, texts[start : start + _STEP], **options)
        for start in range(0, len(texts), _STEP)
    ]
    vectors = np.vstack(blocks) if blocks else np.empty((0, int(embedding["dim"])))
    return build_index(kept, vectors, embedding=embedding, made=made)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``thinkroute explain-index``: the data to summarise, where to write, which space."""
    add_data_argument(parser)
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR",
        help="directory to write explain.json and explain.npz into (e.g. classifier/default)",
    )  # fmt: skip
    parser.add_argument(
        "--like", type=Path, metavar="DIR",
        help="the head artifact whose embedding space to build in (default: the shipped head)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Build and write an explain index from ``--data`` in ``--like``'s embedding space."""
    # The head's embedding settings only: not its weights, nor any index beside it.
    embedding = read_artifact(args.like or DEFAULT_ARTIFACT).embedding
    records = load_records(args.data)
    made = made_by(
        "thinkroute explain-index", args.data, args.out, records,
        extra=[f"--like {args.like}"] if args.like else [],
    )  # fmt: skip
    index = embed_and_build(records, embedder_for(embedding), embedding=embedding, made=made)
    path = write_index(index, args.out)
    print(f"wrote {path}: {len(index.names)} kinds from {sum(index.counts)} records")
    return 0


def made_by(
    program: str,
    data: Sequence[str | Path],
    out: str | Path,
    records: Sequence[Record],
    *,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """How an index was made, for its ``made`` field: file names and counts, never text."""
    command = [program, *(f"--data {path}" for path in data), f"--out {out}", *extra]
    return {
        "command": " ".join(command),
        "date": dt.date.today().isoformat(),
        "data": [str(path) for path in data],
        "records": sum(1 for r in records if r.pair != "weak/strong"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="thinkroute explain-index", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
