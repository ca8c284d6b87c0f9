"""Cheap surface features and structural cues that sit beside the embedding.

A sentence embedding captures topic well but length and notation poorly (it
is a mean over tokens, and the model's window truncates long prompts). These
few counts add that back for microseconds of work, and the structural cues of
:mod:`classifier.structure` add what the request asks for.

Work is bounded whatever the prompt's length: the rates (digits, maths marks,
code marks and task words) are read from :func:`~classifier.structure.window_of`
(the first :data:`~classifier.structure.WINDOW_CHARS` characters and the
question), the same window the structural cues read. The three length columns
stay true to the whole text at constant or memchr cost: characters are its
``len``, lines its count of newlines, and words are counted exactly up to the
window and beyond it estimated from the window's words per character. So a
multi-MB prompt costs what its window costs (a 4 MB prompt took 1.2 s before
the cap).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from classifier.structure import STRUCTURE_NAMES, structural_features, window_of

__all__ = ["FEATURE_NAMES", "SURFACE_NAMES", "surface_features", "text_features"]

_MATH = re.compile(r"\\(?:frac|sqrt|sum|int|prod|lim|binom|cdot|le|ge|neq|pi)|\$|\^|[=<>≤≥∑∫√π]")
_CODE = re.compile(r"```|\bdef |\breturn\b|\bclass |[{};]|\bfunction\b|#include|=>|->|\bimport ")
_DIGIT = re.compile(r"\d")
_TASK = re.compile(
    r"\b(?:prove|show that|find|compute|calculate|determine|solve|how many|minimum|maximum|"
    r"probability|implement|algorithm|optimi[sz]e|complexity|step by step)\b",
    re.IGNORECASE,
)

SURFACE_NAMES: tuple[str, ...] = (
    "log_words",
    "log_chars",
    "digit_share",
    "math_marks_per_100_words",
    "code_marks_per_100_words",
    "task_words_per_100_words",
    "lines_log",
)
# Every column a head reads after the embedding, in order (see text_features).
FEATURE_NAMES: tuple[str, ...] = SURFACE_NAMES + STRUCTURE_NAMES


def text_features(texts: Sequence[str]) -> NDArray[np.float64]:
    """One row of :data:`FEATURE_NAMES` per text: surface counts, then structural cues."""
    return np.hstack([surface_features(texts), structural_features(texts)])


def surface_features(texts: Sequence[str]) -> NDArray[np.float64]:
    """One row of :data:`SURFACE_NAMES` per text."""
    rows = np.empty((len(texts), len(SURFACE_NAMES)), dtype=np.float64)
    for i, text in enumerate(texts):
        window = window_of(text)
        window_words = max(len(window.split()), 1)
        window_chars = max(len(window), 1)
        per_100_words = 100.0 / window_words
        words = window_words if window is text else window_words * len(text) / window_chars
        rows[i] = (
            math.log1p(words),
            math.log1p(max(len(text), 1)),
            len(_DIGIT.findall(window)) / window_chars,
            min(len(_MATH.findall(window)) * per_100_words, 100.0),
            min(len(_CODE.findall(window)) * per_100_words, 100.0),
            min(len(_TASK.findall(window)) * per_100_words, 100.0),
            math.log1p(text.count("\n")),
        )
    return rows
