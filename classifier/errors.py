"""Errors raised by the classifier package.

ClassifierError
├── DataFormatError    a training or evaluation file has a bad record
├── TrainingDataError  the records read cannot train a head (a kind is missing)
└── ArtifactError      a saved classifier is missing, damaged or mismatched
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ArtifactError", "ClassifierError", "DataFormatError", "TrainingDataError"]


class ClassifierError(Exception):
    """Base class of every error the classifier raises on purpose."""


class DataFormatError(ClassifierError):
    """A data file holds a record that cannot be read; names the file and line."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}")


class TrainingDataError(ClassifierError, ValueError):
    """The records are readable but cannot train a head: says which kind is missing."""


class ArtifactError(ClassifierError):
    """A classifier artifact cannot be used; names the file and says why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
