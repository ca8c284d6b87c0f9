"""What the classifier asks of an embedder, whichever way it computes its vectors.

Two embedders implement it: :class:`classifier.embedding.SentenceEmbedder`
(the full sentence-transformers model, through ONNX Runtime or PyTorch) and
:class:`classifier.static_embedding.StaticEmbedder` (the model's
token-embedding layer alone, in numpy). A head is trained over one of them
and its artifact names which (``embedding.kind``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder"]


class Embedder(Protocol):
    """Texts in, unit vectors out, as a fitted scikit-learn transformer."""

    kind: ClassVar[str]  # what an artifact records: "transformer" or "static"
    model: str
    batch_size: int
    dim_: int
    max_seq_length_: int
    backend_: str

    def fit(self, X: Any = None, y: Any = None) -> Embedder: ...

    def transform(self, X: Sequence[str]) -> NDArray[np.float32]: ...
