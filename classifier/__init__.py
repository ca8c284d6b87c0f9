"""Estimate, per prompt, whether a reasoning model will answer better than a fast one.

>>> from classifier import DifficultyClassifier
>>> clf = DifficultyClassifier.load()                      # doctest: +SKIP
>>> clf.score_messages([{"role": "user", "content": "Hi!"}])  # doctest: +SKIP
"""

from classifier.data import Record, load_records
from classifier.embedding import SentenceEmbedder
from classifier.errors import ArtifactError, ClassifierError, DataFormatError
from classifier.head import DifficultyHead
from classifier.metrics import apgr, cpt, routing_curve
from classifier.model import DifficultyClassifier
from classifier.static_embedding import StaticEmbedder
from classifier.text import text_for_scoring

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ClassifierError",
    "DataFormatError",
    "DifficultyClassifier",
    "DifficultyHead",
    "Record",
    "SentenceEmbedder",
    "StaticEmbedder",
    "apgr",
    "cpt",
    "load_records",
    "routing_curve",
    "text_for_scoring",
]
