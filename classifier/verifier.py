"""The verifier head: P(the reasoning model does better) from two answers and the prompt score.

Prompt text only recognises the kind of task; inside a task the fast answer carries
the signal. Given the fast model's reply, a second cheap reply to the same prompt
(another model, or the fast model sampled again) and the prompt head's score, the
head predicts whether the reasoning tier would answer better. Its features are
whether the two final answers agree (see :mod:`classifier.answers`), how each was
found, reply lengths, hedging words, and the prompt score; the model is a logistic
regression, saved as plain JSON numbers (``verifier.json``) that loading checks and
cannot execute.

Examples
--------
>>> head = VerifierHead.load()                                         # doctest: +SKIP
>>> head.score([answer_features(0.4, "The answer is 12.", "The answer is 13.")])  # doctest: +SKIP
array([0.71])
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from classifier.answers import HOW, extract_answer
from classifier.errors import ArtifactError

__all__ = ["FEATURE_NAMES", "VerifierHead", "answer_features"]

FORMAT = "thinkroute.verifier-head/1"
DEFAULT_PATH = Path(__file__).resolve().parent / "default" / "verifier.json"
MODES = ("cheap", "balanced", "quality")

_HEDGES = re.compile(
    r"\b(?:might|maybe|perhaps|possibly|probably|likely|unclear|not sure|assum\w*|"
    r"approximately|roughly|estimate\w*|however|wait|actually|mistake|error|re-?evaluate|"
    r"inconsistent|cannot|can't|impossible|seems?)\b",
    re.IGNORECASE,
)
# Where the fast answer was found, collapsed: a structured final answer, a phrase, or a guess.
_HOW_GROUPS = {
    "json": "structured",
    "tag": "structured",
    "boxed": "structured",
    "phrase": "phrase",
    "short": "phrase",
    "concluding_number": "guessed",
    "none": "none",
}
assert set(_HOW_GROUPS) == set(HOW)

FEATURE_NAMES = (
    "prompt_score",
    "agree",
    "disagree",
    "undecided",
    "agree_x_prompt_score",
    "disagree_x_prompt_score",
    "undecided_x_prompt_score",
    "fast_structured",
    "fast_phrase",
    "fast_guessed",
    "verifier_found",
    "log_fast_chars",
    "log_verifier_chars",
    "log_length_ratio",
    "fast_hedges_per_kchar",
    "verifier_hedges_per_kchar",
    "log_key_chars",
    "key_is_number",
)


def answer_features(
    prompt_score: float, fast_text: str | None, verifier_text: str | None
) -> NDArray[np.float64]:
    """One feature row (in :data:`FEATURE_NAMES` order) for a fast and a verifier reply.

    Parameters
    ----------
    prompt_score : float
        The prompt head's P(reasoning does better) for this prompt.
    fast_text, verifier_text : str or None
        The two replies; ``None`` for a verifier that gave no reply (failed, timed out,
        or no second sample exists), which counts as undecided.
    """
    fast = extract_answer(fast_text)
    verifier = extract_answer(verifier_text)
    both = fast.key is not None and verifier.key is not None
    agree = float(both and fast.key == verifier.key)
    disagree = float(both and fast.key != verifier.key)
    undecided = float(not both)
    fast_chars = len(fast_text or "")
    verifier_chars = len(verifier_text or "")
    group = _HOW_GROUPS[fast.how]
    key = fast.key or ""
    return np.array(
        [
            prompt_score,
            agree,
            disagree,
            undecided,
            agree * prompt_score,
            disagree * prompt_score,
            undecided * prompt_score,
            float(group == "structured"),
            float(group == "phrase"),
            float(group == "guessed"),
            float(verifier.key is not None),
            math.log1p(fast_chars),
            math.log1p(verifier_chars),
            math.log1p(verifier_chars) - math.log1p(fast_chars) if verifier_text else 0.0,
            1000 * len(_HEDGES.findall(fast_text or "")) / max(fast_chars, 200),
            1000 * len(_HEDGES.findall(verifier_text or "")) / max(verifier_chars, 200),
            math.log1p(len(key)),
            float(bool(re.fullmatch(r"-?\d+(?:\.\d+)?", key))),
        ],
        dtype=np.float64,
    )


class VerifierHead:
    """Logistic regression over :func:`answer_features`, stored as plain numbers.

    Parameters
    ----------
    C : float
        Inverse L2 strength of the logistic regression.
    """

    def __init__(self, *, C: float = 1.0) -> None:
        self.C = C

    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> VerifierHead:
        """Learn from feature rows and labels (1 = the reasoning model did better)."""
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES) or X.shape[0] != y.shape[0]:
            raise ValueError(f"expected rows of {len(FEATURE_NAMES)} features, one label each")
        if len(np.unique(y)) < 2:
            raise ValueError("training labels need both outcomes (reasoning wins and not)")
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
        model = LogisticRegression(C=self.C, max_iter=2000)
        model.fit((X - self.mean_) / self.scale_, y, sample_weight=sample_weight)
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        self.thresholds_: dict[str, float] = {}
        self.info_: dict[str, Any] = {}
        return self

    def score(self, X: ArrayLike) -> NDArray[np.float64]:
        """P(reasoning does better) for each feature row; higher escalates first."""
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this VerifierHead is not fitted yet: call fit or load")
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        logits = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        probabilities: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-logits))
        return probabilities

    # -- the artifact ----------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the head as JSON numbers (with a checksum over them)."""
        numbers = {
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }
        document = {
            "format": FORMAT,
            "feature_names": list(FEATURE_NAMES),
            "C": self.C,
            "numbers": numbers,
            "checksum": _checksum(numbers),
            "thresholds": self.thresholds_,
            "info": self.info_,
        }
        path = Path(path)
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> VerifierHead:
        """Read a saved head; checks format, feature names, shapes and checksum.

        Raises
        ------
        ArtifactError
            If the file is missing, not this format, or its numbers are damaged.
        """
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(path, f"cannot read the verifier head: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ArtifactError(path, f"not a verifier head (expected format {FORMAT})")
        if document.get("feature_names") != list(FEATURE_NAMES):
            raise ArtifactError(path, "trained on other features than this version computes")
        numbers = document.get("numbers")
        if not isinstance(numbers, dict) or document.get("checksum") != _checksum(numbers):
            raise ArtifactError(path, "checksum mismatch: the numbers were changed or damaged")
        width = len(FEATURE_NAMES)
        head = cls(C=float(document.get("C", 1.0)))
        head.mean_ = _array(numbers.get("mean"), width, path, "mean")
        head.scale_ = _array(numbers.get("scale"), width, path, "scale")
        head.coef_ = _array(numbers.get("coef"), width, path, "coef")
        head.intercept_ = float(_array([numbers.get("intercept")], 1, path, "intercept")[0])
        if np.any(head.scale_ <= 0):
            raise ArtifactError(path, "scale must be positive")
        thresholds = document.get("thresholds") or {}
        if not isinstance(thresholds, dict) or not all(
            mode in MODES and isinstance(value, int | float) and 0.0 <= value <= 1.0
            for mode, value in thresholds.items()
        ):
            raise ArtifactError(path, f"thresholds must map {MODES} to numbers in [0, 1]")
        head.thresholds_ = {mode: float(value) for mode, value in thresholds.items()}
        head.info_ = document.get("info") or {}
        return head


def _array(value: Any, width: int, path: Path, name: str) -> NDArray[np.float64]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(path, f"{name} is not a list of numbers") from exc
    if array.shape != (width,) or not np.all(np.isfinite(array)):
        raise ArtifactError(path, f"{name} must hold {width} finite numbers")
    return array


def _checksum(numbers: dict[str, Any]) -> str:
    canonical = json.dumps(numbers, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def feature_matrix(
    prompt_scores: Sequence[float],
    fast_texts: Sequence[str | None],
    verifier_texts: Sequence[str | None],
) -> NDArray[np.float64]:
    """Stack :func:`answer_features` rows for many prompts."""
    rows = [
        answer_features(score, fast, verifier)
        for score, fast, verifier in zip(prompt_scores, fast_texts, verifier_texts, strict=True)
    ]
    return np.vstack(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
