"""Saving and loading a head: numbers only, and loud about damage."""

import json

import numpy as np
import pytest

from classifier.artifact import HEAD_FILE, HeadArtifact, read_artifact, write_artifact
from classifier.errors import ArtifactError
from classifier.features import FEATURE_NAMES
from classifier.head import DifficultyHead, GatedHead

DIM = 4
THRESHOLDS = {"cheap": 0.7, "balanced": 0.5, "quality": 0.3}


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, DIM + len(FEATURE_NAMES)))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    gate = DifficultyHead(calibration=None).fit(X, X[:, 1] > 0)
    gain = DifficultyHead(hidden_units=5, max_iter=50, calibration=None).fit(X, y)
    head = GatedHead(gate=gate, gain=gain, calibration=[1.3, -0.2])
    artifact = HeadArtifact(
        head=head, embedding={"model": "fake", "dim": DIM}, thresholds=THRESHOLDS
    )
    write_artifact(artifact, tmp_path, card="# card\n")
    return tmp_path, head, X


def test_round_trip_gives_identical_scores(saved):
    directory, head, X = saved
    loaded = read_artifact(directory)
    assert loaded.thresholds == THRESHOLDS
    assert loaded.embedding == {"model": "fake", "dim": DIM}
    np.testing.assert_array_equal(loaded.head.score(X), head.score(X))
    np.testing.assert_array_equal(loaded.head.calibration, [1.3, -0.2])
    assert (directory / "MODEL_CARD.md").read_text() == "# card\n"


def test_saved_head_is_plain_json(saved):
    directory, _, _ = saved
    document = json.loads((directory / HEAD_FILE).read_text())
    assert set(document["head"]) == {"gate", "gain", "calibration"}
    assert set(document["head"]["gain"]) == {
        "C",
        "hidden_units",
        "mean",
        "scale",
        "layers",
        "calibration",
    }


def edit(directory, change):
    path = directory / HEAD_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["head"]["gain"]["layers"][0][1].__setitem__(0, 12.5), "checksum"),
        (lambda d: d.__setitem__("format", "something/9"), "format is 'something/9'"),
        (lambda d: d["embedding"].__setitem__("dim", 8), "shape"),
        (lambda d: d.__setitem__("features", ["log_words"]), "retrain the head"),
        (lambda d: d["thresholds"].__setitem__("balanced", 1.5), "thresholds must lie"),
        (lambda d: d.pop("thresholds"), "damaged"),
        (lambda d: d["embedding"].__setitem__("kind", "bag-of-words"), "'bag-of-words' embedding"),
    ],
)
def test_damaged_or_mismatched_artifact_names_the_file(saved, change, problem):
    directory, _, _ = saved
    edit(directory, change)
    with pytest.raises(ArtifactError, match=problem) as caught:
        read_artifact(directory)
    assert str(directory / HEAD_FILE) in str(caught.value)


def test_truncated_file_is_reported_as_damaged(saved):
    directory, _, _ = saved
    path = directory / HEAD_FILE
    path.write_text(path.read_text()[:100])
    with pytest.raises(ArtifactError, match="damaged: not valid JSON"):
        read_artifact(directory)


def test_missing_artifact_is_reported(tmp_path):
    with pytest.raises(ArtifactError, match="no classifier artifact"):
        read_artifact(tmp_path)
