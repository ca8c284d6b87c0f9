"""StaticEmbedder on the real bundled model: what it computes, and what it never loads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from classifier.embedding import DEFAULT_MODEL, resolve_model
from classifier.static_embedding import StaticEmbedder

DIM = 384  # all-MiniLM-L6-v2
TEXTS = [
    "hi!",
    "Prove that there are infinitely many primes of the form 4k + 3.",
    "Write a Python function that merges two sorted lists, and explain its complexity.",
    "  Tell me a joke about cats, please.  ",
]


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder().fit()


def test_vectors_are_the_models_embedding_layer_mean_pooled(static):
    """The same numbers the full model feeds its first transformer layer, averaged."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(DEFAULT_MODEL)
    model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    expected = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text, truncation=True, max_length=256, return_tensors="pt")
            hidden = model.embeddings(input_ids=ids["input_ids"])[0].mean(0).numpy()
            expected.append(hidden / np.linalg.norm(hidden))
    np.testing.assert_allclose(static.transform(TEXTS), np.array(expected), atol=1e-5)


def test_vectors_are_unit_length_with_the_model_width(static):
    vectors = static.transform(TEXTS)
    assert static.dim_ == DIM and static.max_seq_length_ == 256 and static.backend_ == "static"
    assert vectors.shape == (len(TEXTS), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_batch_gives_what_texts_one_at_a_time_give(static):
    alone = np.vstack([static.transform([text]) for text in TEXTS])
    np.testing.assert_allclose(static.transform(TEXTS), alone, atol=1e-6)
    small_batches = StaticEmbedder(batch_size=3).fit().transform(TEXTS)
    np.testing.assert_allclose(small_batches, alone, atol=1e-6)


def test_long_input_is_truncated_not_rejected(static):
    huge = "word " * 40_000  # 200k characters, far past the 256-token window
    vectors = static.transform([huge, huge[:2_000]])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_a_shorter_window_reads_fewer_tokens():
    text = "one two three " + "filler " * 300
    short = StaticEmbedder(max_seq_length=8).fit()
    assert short.max_seq_length_ == 8
    np.testing.assert_allclose(short.transform([text]), short.transform([text[:40]]), atol=1e-6)


def test_empty_input_gives_an_empty_matrix(static):
    assert static.transform([]).shape == (0, DIM)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"model_type": "mpnet"}, "only bert"),
        ({"model_type": "bert", "max_position_embeddings": 512}, "no embedding layer"),
    ],
)
def test_a_model_it_cannot_read_is_rejected_by_name(tmp_path, config, problem):
    source = Path(resolve_model(DEFAULT_MODEL))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
    save_file({"pooler.dense.bias": np.zeros(4, dtype=np.float32)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=problem):
        StaticEmbedder(model=str(tmp_path)).fit()


def test_the_shipped_classifier_loads_without_torch_onnx_or_a_cache(tmp_path):
    """Startup reads two files: no model export, no cache directory, no deep-learning runtime."""
    code = (
        "import sys\n"
        "from classifier.model import DifficultyClassifier\n"
        "clf = DifficultyClassifier.load(backend='onnx', cache_size=16)\n"
        "score = clf.score_messages([{'role': 'user', 'content': 'hi'}])\n"
        "assert 0.0 <= score <= 1.0, score\n"
        "loaded = sorted({'torch', 'onnxruntime', 'sentence_transformers'} & set(sys.modules))\n"
        "print(clf.embedder.backend_, loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINKROUTE_")}
    env.update(THINKROUTE_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["static []"]
    assert not (tmp_path / "cache").exists()
