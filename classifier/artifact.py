"""Save and load a trained head as plain JSON numbers, never as code.

An artifact is a directory holding ``head.json`` (the numbers and what they
were trained with) and ``MODEL_CARD.md`` (the same facts for people). Loading
parses JSON only, checks the format, versions and shapes, and verifies a
checksum over the numbers, so a damaged or mismatched file is reported by
name instead of routing traffic on garbage.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from classifier.errors import ArtifactError
from classifier.features import FEATURE_NAMES
from classifier.gain import TreeGain
from classifier.head import DifficultyHead, GatedHead
from classifier.structure import QUESTION_RULES

__all__ = ["FORMAT", "HEAD_FILE", "CARD_FILE", "HeadArtifact", "read_artifact", "write_artifact"]

# /3: structural cues joined the features and a table of training kinds (for
# explanations) joined the head; /2: the gain became boosted trees (/1 was an MLP).
FORMAT = "thinkroute.gated-head/3"
HEAD_FILE = "head.json"
CARD_FILE = "MODEL_CARD.md"
MODES = ("cheap", "balanced", "quality")
# Embedders a head may be trained over (see classifier.model.EMBEDDERS); an
# artifact without a kind predates the static one and used the transformer.
EMBEDDING_KINDS = ("transformer", "static")


@dataclass
class HeadArtifact:
    """Everything needed to rebuild a classifier except the embedding weights."""

    head: GatedHead
    embedding: dict[str, Any]
    thresholds: dict[str, float]
    include_system: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""  # of the head's numbers, as stored: names this exact head


def write_artifact(artifact: HeadArtifact, directory: str | Path, *, card: str) -> Path:
    """Write ``head.json`` and ``MODEL_CARD.md`` into ``directory``; returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dim = int(artifact.embedding["dim"])
    numbers = {
        "gate": _head_numbers(artifact.head.gate),
        "gain": artifact.head.gain.to_numbers(),
        "gate_open": artifact.head.gate_open,
        "calibration": artifact.head.calibration.tolist(),
        "easy_cues": [FEATURE_NAMES[c - dim] for c in artifact.head.easy_columns],
        "easy_discount": artifact.head.easy_discount,
        "hard_cues": [FEATURE_NAMES[c - dim] for c in artifact.head.hard_columns],
        "hard_floor": artifact.head.hard_floor,
        "hard_gate": artifact.head.hard_gate,
        "direct_cues": [FEATURE_NAMES[c - dim] for c in artifact.head.direct_columns],
    }
    document = {
        "format": FORMAT,
        "versions": {"thinkroute": _thinkroute_version(), "scikit-learn": sklearn.__version__},
        "embedding": artifact.embedding,
        "text": {"include_system": artifact.include_system},
        "features": list(FEATURE_NAMES),
        "head": numbers,
        "checksum": _checksum(numbers),
        "thresholds": artifact.thresholds,
        "metrics": artifact.metrics,
        "training": artifact.training,
    }
    path = directory / HEAD_FILE
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    (directory / CARD_FILE).write_text(card, encoding="utf-8")
    return path


def read_artifact(directory: str | Path) -> HeadArtifact:
    """Load an artifact written by :func:`write_artifact`.

    Raises
    ------
    ArtifactError
        If the file is missing, is not JSON, has another format, fails its
        checksum, or its shapes do not fit its embedding and features.
    """
    directory = Path(directory)
    path = directory / HEAD_FILE if directory.is_dir() else directory
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(path, "no classifier artifact here (expected head.json)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(path, f"damaged: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        advice = ": retrain it" if str(found).startswith("thinkroute.gated-head/") else ""
        raise ArtifactError(path, f"format is {found!r}, this thinkroute reads {FORMAT!r}{advice}")
    try:
        return _parse(document, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(path, f"damaged: {exc!r}") from exc


def _parse(document: dict[str, Any], path: Path) -> HeadArtifact:
    numbers = document["head"]
    if _checksum(numbers) != document.get("checksum"):
        raise ArtifactError(path, "damaged: checksum of the head's numbers does not match")
    if document["features"] != list(FEATURE_NAMES):
        raise ArtifactError(
            path,
            f"trained with features {document['features']}, this thinkroute computes "
            f"{list(FEATURE_NAMES)}: retrain the head",
        )
    kind = document["embedding"].get("kind", EMBEDDING_KINDS[0])
    if kind not in EMBEDDING_KINDS:
        raise ArtifactError(
            path, f"trained over a {kind!r} embedding, this thinkroute knows {EMBEDDING_KINDS}"
        )
    question = document["embedding"].get("question", "last_paragraph")
    if question not in QUESTION_RULES:
        raise ArtifactError(
            path,
            f"finds the question by {question!r}, this thinkroute knows {sorted(QUESTION_RULES)}",
        )
    width = int(document["embedding"]["dim"]) + len(FEATURE_NAMES)
    gate = _stored_head(numbers["gate"], width, path, "gate")
    try:
        gain = TreeGain.from_numbers(numbers["gain"], n_features=width)
    except ValueError as exc:
        raise ArtifactError(path, f"gain: {exc}") from exc
    gate_open = _finite(numbers["gate_open"])
    if not 0.0 < gate_open <= 1.0:
        raise ArtifactError(path, f"'gate_open' must lie in (0, 1], got {gate_open}")
    calibration = [_finite(v) for v in numbers["calibration"]]
    if len(calibration) != 2:
        raise ArtifactError(path, "'calibration' must hold a slope and an offset")
    easy_columns = _cue_columns(numbers, "easy_cues", width, path)
    easy_discount = _finite(numbers.get("easy_discount", 0.0))
    if not 0.0 <= easy_discount <= 1.0:
        raise ArtifactError(path, f"'easy_discount' must lie in [0, 1], got {easy_discount}")
    # A head written before the floor existed has none: it scores as it always did.
    hard_columns = _cue_columns(numbers, "hard_cues", width, path)
    hard_floor = _finite(numbers.get("hard_floor", 0.0))
    hard_gate = _finite(numbers.get("hard_gate", 0.5))
    direct_columns = _cue_columns(numbers, "direct_cues", width, path)
    if not (0.0 <= hard_floor <= 1.0 and 0.0 <= hard_gate <= 1.0):
        raise ArtifactError(
            path, f"'hard_floor' and 'hard_gate' must lie in [0, 1], got {hard_floor}, {hard_gate}"
        )
    thresholds = {mode: float(document["thresholds"][mode]) for mode in MODES}
    if not all(0.0 <= t <= 1.0 for t in thresholds.values()):
        raise ArtifactError(path, f"thresholds must lie in [0, 1], got {thresholds}")
    # A head written before the explain index (classifier.explain) may still carry a kind
    # table ("kinds"): nothing reads it any more.
    trained_with = document.get("versions", {}).get("scikit-learn")
    if trained_with and trained_with.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        # The head is plain numbers, so this is a note, not a failure.
        warnings.warn(
            f"{path}: trained with scikit-learn {trained_with}, running {sklearn.__version__}",
            UserWarning,
            stacklevel=3,
        )

    return HeadArtifact(
        head=GatedHead(
            gate=gate,
            gain=gain,
            gate_open=gate_open,
            calibration=calibration,
            easy_columns=easy_columns,
            easy_discount=easy_discount,
            hard_columns=hard_columns,
            hard_floor=hard_floor,
            hard_gate=hard_gate,
            direct_columns=direct_columns,
        ),
        embedding=document["embedding"],
        thresholds=thresholds,
        include_system=bool(document.get("text", {}).get("include_system", False)),
        metrics=document.get("metrics", {}),
        training=document.get("training", {}),
        checksum=str(document["checksum"]),
    )


def _cue_columns(numbers: dict[str, Any], key: str, width: int, path: Path) -> tuple[int, ...]:
    """Input columns of the features ``numbers[key]`` names (none when it is absent)."""
    names = numbers.get(key, [])
    unknown = [name for name in names if name not in FEATURE_NAMES]
    if unknown:
        raise ArtifactError(path, f"{key!r} names unknown features {unknown}")
    return tuple(width - len(FEATURE_NAMES) + FEATURE_NAMES.index(name) for name in names)


def _stored_head(numbers: dict[str, Any], width: int, path: Path, name: str) -> DifficultyHead:
    def array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
        result = np.asarray(value, dtype=np.float64)
        if result.shape != shape:
            raise ArtifactError(path, f"{name} {what} has shape {result.shape}, expected {shape}")
        if not np.all(np.isfinite(result)):
            raise ArtifactError(path, f"{name} {what} holds non-finite numbers")
        return result

    head = DifficultyHead(
        C=float(numbers["C"]), hidden_units=int(numbers["hidden_units"]), calibration=None
    )
    head.mean_ = array(numbers["mean"], (width,), "'mean'")
    head.scale_ = array(numbers["scale"], (width,), "'scale'")
    head.coefs_, head.intercepts_ = [], []
    fan_in = width
    for depth, (weights, bias) in enumerate(numbers["layers"]):
        fan_out = len(bias)
        head.coefs_.append(array(weights, (fan_in, fan_out), f"layer {depth} weights"))
        head.intercepts_.append(array(bias, (fan_out,), f"layer {depth} bias"))
        fan_in = fan_out
    if fan_in != 1 or not head.coefs_:
        raise ArtifactError(path, f"{name} must end in one output, not {fan_in}")
    head.classes_ = np.array([0, 1])
    head.n_features_in_ = width
    head.calibration_ = array(numbers["calibration"], (2,), "'calibration'")
    return head


def _head_numbers(head: DifficultyHead) -> dict[str, Any]:
    return {
        "C": head.C,
        "hidden_units": head.hidden_units,
        "mean": head.mean_.tolist(),
        "scale": head.scale_.tolist(),
        "layers": [
            [w.tolist(), b.tolist()] for w, b in zip(head.coefs_, head.intercepts_, strict=True)
        ],
        "calibration": head.calibration_.tolist(),
    }


def _checksum(numbers: object) -> str:
    canonical = json.dumps(numbers, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _thinkroute_version() -> str:
    try:
        return importlib.metadata.version("thinkroute")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite number {value!r}")
    return number
