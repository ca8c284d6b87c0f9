"""Training a head from the command line and loading it back over the embedder it names."""

import json

import numpy as np
import pytest

from classifier.artifact import HEAD_FILE, read_artifact
from classifier.explain import INDEX_ARRAYS, INDEX_FILE
from classifier.model import DEFAULT_ARTIFACT, EMBEDDERS, DifficultyClassifier, embed
from classifier.static_embedding import StaticEmbedder
from classifier.train import main as train_main

CHAT = ["what's a nice name for a cat?", "hi!", "any tips for a relaxing sunday afternoon?"]
OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)


HARD = "Prove by induction that 7^n - 1 is divisible by 6 for every integer n >= {}."
EASY = "Say hello to my friend number {}, please!"


def _records() -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(60):
        hard = i % 2 == 0
        prompt = HARD.format(i) if hard else EASY.format(i)
        gap = rng.random() < (0.8 if hard else 0.05)
        records.append(
            {
                "id": f"outcome/{i}",
                "source": "synthetic",
                "subset": "hard" if hard else "easy",
                "prompt": prompt,
                "fast": {"score": 0.0 if gap else 1.0},
                "reasoning": {"score": 1.0},
            }
        )
    for i in range(20):
        tier = "reasoning" if i % 2 else "fast"
        prompt = f"Prove that {i}^n - 1 is divisible by {i - 1}." if i % 2 else f"Greet guest {i}."
        records.append(
            {"id": f"prompt/{i}", "source": "s", "prompt": prompt, "expected_tier": tier}
        )
    return records


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    directory = tmp_path_factory.mktemp("trained")
    data = directory / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert train_main(["--data", str(data), "--out", str(directory / "head"), "--quiet"]) == 0
    return directory / "head", data


def test_cli_trains_over_the_static_embedding_by_default_and_says_so(trained):
    head, data = trained
    artifact = read_artifact(head)
    assert artifact.embedding["kind"] == "static" and artifact.embedding["dim"] == 384
    card = (head / "MODEL_CARD.md").read_text()
    assert "token-embedding layer" in card and f"--data {data}" in card
    assert "--embedding" not in artifact.training["command"]  # the default needs no flag


def test_loaded_head_scores_with_the_embedder_it_was_trained_over(trained):
    head, _ = trained
    # The proxy passes transformer settings whatever the artifact: they are dropped here.
    clf = DifficultyClassifier.load(head, backend="onnx", cache_size=8, num_threads=1)
    assert isinstance(clf.embedder, StaticEmbedder)
    texts = [HARD.format(101), EASY.format(101)]
    scores = clf.score_texts(texts)
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_an_artifact_without_a_kind_loads_the_transformer(trained, tmp_path, monkeypatch):
    """Heads written before the static embedding existed keep their embedder."""
    head, _ = trained
    document = json.loads((head / HEAD_FILE).read_text())
    del document["embedding"]["kind"]
    (tmp_path / HEAD_FILE).write_text(json.dumps(document))
    built = []

    class Recording(StaticEmbedder):
        kind = "transformer"

        def __init__(self, *, model: str = "m", backend: str = "auto") -> None:
            built.append({"model": model, "backend": backend})
            super().__init__(model=model)
            self.backend = backend

    monkeypatch.setitem(EMBEDDERS, "transformer", Recording)
    DifficultyClassifier.load(tmp_path, backend="torch", cache_size=8)
    assert built[-1] == {"model": "all-MiniLM-L6-v2", "backend": "torch"}


def test_shipped_head_sends_chat_fast_and_olympiad_maths_to_reasoning():
    clf = DifficultyClassifier.load()
    assert read_artifact(DEFAULT_ARTIFACT).embedding["kind"] == "static"
    thresholds = clf.thresholds
    assert thresholds["quality"] < thresholds["balanced"] < thresholds["cheap"]
    chat = [clf.score_messages([{"role": "user", "content": text}]) for text in CHAT]
    assert max(chat) < thresholds["balanced"]
    assert clf.score_messages([{"role": "user", "content": OLYMPIAD}]) >= thresholds["balanced"]


def test_explain_answers_from_the_artifact_alone(trained):
    head, data = trained
    training_texts = [r["prompt"] for r in _records()]
    data.unlink()  # no training data at run time
    # Training wrote an explain index beside the head: names and numbers, no text.
    for name in (HEAD_FILE, INDEX_FILE, INDEX_ARRAYS):
        stored = (head / name).read_bytes()
        assert not any(text.encode() in stored for text in training_texts)
        assert len(stored) < 30 * 2**20

    clf = DifficultyClassifier.load(head)
    proof = "Can you show that 7^n - 1 is divisible by 6 for every n >= 200?"
    explained = clf.explain_messages([{"role": "user", "content": proof}], top_k=2)
    json.dumps(explained)  # JSON-able as it is
    assert explained["score"] == pytest.approx(clf.score_texts([proof])[0], abs=1e-6)
    assert "proof_request" in explained["cues"]
    assert explained["features"]["proof_request"] == 1.0
    nearest = explained["nearest_kinds"]
    assert len(nearest) == 2 and nearest[0]["similarity"] >= nearest[1]["similarity"]
    # Kinds are named by source and subset, the outcome kind with its measured gain.
    assert [k["kind"] for k in nearest] == ["synthetic", "s"]
    assert nearest[0]["mean_gain"] is not None and nearest[1]["mean_gain"] is None
    chat = clf.explain_text(EASY.format(500))
    assert chat["cues"] == [] and chat["score"] < explained["score"]
    assert clf.explain_text("") == {
        "score": 0.0, "gate": 0.0, "gain": 0.0, "cues": [], "features": {}, "nearest_kinds": []
    }  # fmt: skip


def test_the_question_embedding_is_added_only_where_it_differs_from_the_text():
    class Counting(StaticEmbedder):
        def transform(self, X):
            calls.append(list(X))
            return super().transform(X)

    calls: list = []
    embedder = Counting().fit()
    texts = ["Is 91 prime?", "Revenue | 2018 | 2019\nA | 1 | 2\n\nWhat was the change in A?"]
    mixed = embed(embedder, texts, question_weight=0.5)
    assert calls[-1] == ["What was the change in A?"]  # the one-paragraph text needs none
    plain = embedder.transform(texts)
    np.testing.assert_allclose(mixed[0], plain[0], atol=1e-6)
    question = embedder.transform(["What was the change in A?"])[0]
    expected = plain[1] + 0.5 * question
    np.testing.assert_allclose(mixed[1], expected / np.linalg.norm(expected), atol=1e-6)


def test_a_head_embeds_the_question_by_the_rule_it_was_trained_with(trained, tmp_path):
    """A head trained now reads the request's own words (an instruction put before its
    material); a head written before the rule was recorded keeps reading the last paragraph."""
    head, _ = trained
    summary = "Summarise this abstract.\n\n" + "We study sparse attention for long texts. " * 8
    current = DifficultyClassifier.load(head)
    assert current.artifact.embedding["question"] == "request"
    embedder = current.embedder
    by_request = embed(embedder, [summary], question_weight=0.5, question="request")
    by_last = embed(embedder, [summary], question_weight=0.5, question="last_paragraph")
    assert not np.allclose(by_request, by_last)
    np.testing.assert_allclose(current.input_features([{"role": "user", "content": summary}])[
        : embedder.dim_], by_request[0])  # fmt: skip

    document = json.loads((head / HEAD_FILE).read_text())
    del document["embedding"]["question"]  # as written before the rule was recorded
    (tmp_path / HEAD_FILE).write_text(json.dumps(document))
    older = DifficultyClassifier.load(tmp_path)
    np.testing.assert_allclose(older.input_features([{"role": "user", "content": summary}])[
        : embedder.dim_], by_last[0])  # fmt: skip
