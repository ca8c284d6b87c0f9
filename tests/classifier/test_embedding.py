"""SentenceEmbedder on the real bundled model: both backends, the cache, awkward inputs.

The ONNX export (about 20 s, once) is reused from the user's cache when it is
already there; otherwise it goes to a temporary directory, once per module.
"""

import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from classifier.embedding import DEFAULT_MODEL, SentenceEmbedder, default_cache_dir, resolve_model

DIM = 384  # all-MiniLM-L6-v2
TEXTS = [
    "hi!",
    "Prove that there are infinitely many primes of the form 4k + 3.",
    "Write a Python function that merges two sorted lists, and explain its complexity.",
    "  Tell me a joke about cats, please.  ",
]


def _exported(cache_dir: str) -> bool:
    embedder = SentenceEmbedder(cache_dir=cache_dir)
    return (embedder._export_dir(resolve_model(DEFAULT_MODEL)) / "onnx" / "model.onnx").exists()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The user's export when it exists (only read), else a fresh directory to export into."""
    default = str(default_cache_dir())
    if _exported(default):
        yield default
        return
    fresh = tmp_path_factory.mktemp("onnx-cache")
    yield str(fresh)
    shutil.rmtree(fresh)  # 110 MB; pytest would keep it around for three sessions


@pytest.fixture(scope="module")
def onnx(cache_dir: str) -> SentenceEmbedder:
    return SentenceEmbedder(cache_dir=cache_dir, cache_size=16).fit()


@pytest.fixture(scope="module")
def torch() -> SentenceEmbedder:
    return SentenceEmbedder(backend="torch", cache_size=0).fit()


@pytest.fixture(params=["onnx", "torch"])
def embedder(request: pytest.FixtureRequest) -> SentenceEmbedder:
    return request.getfixturevalue(request.param)


def test_auto_backend_uses_the_onnx_export_in_cache_dir(onnx, cache_dir):
    assert onnx.backend_ == "onnx"
    assert _exported(cache_dir)


def test_a_second_load_reuses_the_export(onnx, cache_dir, monkeypatch):
    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(SentenceEmbedder, "_export", no_export)
    # Other session options (threads, spinning) change the speed, never the vectors.
    again = SentenceEmbedder(backend="onnx", cache_dir=cache_dir, num_threads=1, spin=True).fit()
    np.testing.assert_allclose(again.transform(TEXTS), onnx.transform(TEXTS), atol=1e-6)


def test_onnx_and_torch_give_the_same_vectors(onnx, torch):
    texts = [*TEXTS, "why? " * 100]
    cosine = np.sum(onnx.transform(texts) * torch.transform(texts), axis=1)
    assert cosine.min() > 0.99


def test_vectors_are_unit_length_with_the_model_width(embedder):
    vectors = embedder.transform(TEXTS)
    assert embedder.dim_ == DIM
    assert vectors.shape == (len(TEXTS), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_batch_gives_what_texts_one_at_a_time_and_encode_give(onnx):
    batch = onnx.transform(TEXTS)
    alone = np.vstack([onnx.transform([text]) for text in TEXTS])
    encoded = onnx.model_.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    np.testing.assert_allclose(batch, encoded, atol=1e-5)


def test_long_input_is_truncated_not_rejected(embedder):
    huge = "word " * 40_000  # 200k characters, far past the 256-token window
    vectors = embedder.transform([huge, huge[:2_000]])
    assert np.isfinite(vectors).all()
    # Only the first 256 tokens count, so the text and its 2000-character prefix agree.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder):
    assert embedder.transform([]).shape == (0, DIM)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        SentenceEmbedder(backend="tensorflow").fit()


@pytest.fixture
def computed(onnx, monkeypatch) -> list[str]:
    """The texts ``onnx`` actually runs through the model (cache misses), in order."""
    seen: list[str] = []
    encode = onnx._encode
    monkeypatch.setattr(onnx, "_encode", lambda texts: seen.extend(texts) or encode(texts))
    return seen


def test_cache_returns_identical_vectors_and_evicts_least_recent(onnx, computed, monkeypatch):
    monkeypatch.setattr(onnx, "cache_size", 2)
    a, b, c = "cache probe a", "cache probe b", "cache probe c"
    first = onnx.transform([a, b])
    np.testing.assert_array_equal(onnx.transform([b, a]), first[::-1])
    assert computed == [a, b]
    onnx.transform([c])  # full: evicts b, the least recently used
    np.testing.assert_array_equal(onnx.transform([a]), first[:1])
    onnx.transform([b])
    assert computed == [a, b, c, b]


def test_repeats_in_one_call_are_computed_once_and_cache_size_0_disables(
    onnx, computed, monkeypatch
):
    monkeypatch.setattr(onnx, "cache_size", 0)
    vectors = onnx.transform(["same text", "same text"])  # computed once
    onnx.transform(["same text"])  # and again: nothing was kept
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert computed == ["same text", "same text"]
