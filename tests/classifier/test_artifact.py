"""Saving and loading a head: numbers only, and loud about damage."""

import json

import numpy as np
import pytest

from classifier.artifact import (
    HEAD_FILE,
    HeadArtifact,
    _checksum,
    read_artifact,
    write_artifact,
)
from classifier.errors import ArtifactError
from classifier.features import FEATURE_NAMES
from classifier.gain import TreeGain
from classifier.head import DifficultyHead, GatedHead

DIM = 4
THRESHOLDS = {"cheap": 0.7, "balanced": 0.5, "quality": 0.3}


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, DIM + len(FEATURE_NAMES)))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    gate = DifficultyHead(calibration=None).fit(X, X[:, 1] > 0)
    gain = TreeGain(n_components=3, n_passthrough=len(FEATURE_NAMES), max_iter=20)
    gain.fit(X, y)
    easy = tuple(DIM + FEATURE_NAMES.index(n) for n in ("code_presentation_only", "log_words"))
    head = GatedHead(
        gate=gate,
        gain=gain,
        gate_open=0.4,
        calibration=[1.3, -0.2],
        easy_columns=easy,
        easy_discount=0.8,
        hard_columns=(DIM + FEATURE_NAMES.index("trick_cue"),),
        hard_floor=0.3,
        hard_gate=0.4,
        direct_columns=(DIM + FEATURE_NAMES.index("relation_question"),),
    )
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
    assert loaded.head.gate_open == 0.4
    assert (loaded.head.easy_columns, loaded.head.easy_discount) == (head.easy_columns, 0.8)
    assert loaded.head.direct_columns == head.direct_columns
    assert (directory / "MODEL_CARD.md").read_text() == "# card\n"


def test_saved_head_is_plain_json(saved):
    directory, _, _ = saved
    document = json.loads((directory / HEAD_FILE).read_text())
    assert set(document["head"]) == {
        "gate",
        "gain",
        "gate_open",
        "calibration",
        "easy_cues",
        "easy_discount",
        "hard_cues",
        "hard_floor",
        "hard_gate",
        "direct_cues",
    }
    assert set(document["head"]["gain"]) == {"n_passthrough", "center", "components", "trees"}


def edit(directory, change):
    path = directory / HEAD_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["head"]["gain"]["center"].__setitem__(0, 12.5), "checksum"),
        (lambda d: d["head"]["gate"]["layers"][0][1].__setitem__(0, 12.5), "checksum"),
        (lambda d: d.__setitem__("format", "something/9"), "format is 'something/9'"),
        (lambda d: d["embedding"].__setitem__("dim", 8), "shape"),
        (lambda d: d.__setitem__("features", ["log_words"]), "retrain the head"),
        (lambda d: d["thresholds"].__setitem__("balanced", 1.5), "thresholds must lie"),
        (lambda d: d.pop("thresholds"), "damaged"),
        (lambda d: d["embedding"].__setitem__("kind", "bag-of-words"), "'bag-of-words' embedding"),
        (lambda d: d["embedding"].__setitem__("question", "first_word"), "'first_word'"),
    ],
)
def test_damaged_or_mismatched_artifact_names_the_file(saved, change, problem):
    directory, _, _ = saved
    edit(directory, change)
    with pytest.raises(ArtifactError, match=problem) as caught:
        read_artifact(directory)
    assert str(directory / HEAD_FILE) in str(caught.value)


def rewrite_head(directory, change):
    """Change the head's numbers and re-sign them, as a mismatched (not damaged) file would be."""

    def changed(document):
        change(document["head"])
        document["checksum"] = _checksum(document["head"])

    edit(directory, changed)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda h: [row.pop() for row in h["gain"]["components"]], "gain: components have"),
        (lambda h: h["gain"]["center"].pop(), "gain: center has shape"),
        (lambda h: h["gain"]["trees"]["feature"][0].__setitem__(0, 99), "gain: .*feature"),
        (lambda h: h.__setitem__("gate_open", 0.0), "'gate_open' must lie in"),
    ],
)
def test_inconsistent_head_numbers_are_refused(saved, change, problem):
    directory, _, _ = saved
    rewrite_head(directory, change)
    with pytest.raises(ArtifactError, match=problem):
        read_artifact(directory)


def test_head_of_an_older_format_asks_for_retraining(saved):
    directory, _, _ = saved
    edit(directory, lambda d: d.__setitem__("format", "thinkroute.gated-head/1"))
    with pytest.raises(ArtifactError, match="retrain it"):
        read_artifact(directory)


def test_truncated_file_is_reported_as_damaged(saved):
    directory, _, _ = saved
    path = directory / HEAD_FILE
    path.write_text(path.read_text()[:100])
    with pytest.raises(ArtifactError, match="damaged: not valid JSON"):
        read_artifact(directory)


def test_missing_artifact_is_reported(tmp_path):
    with pytest.raises(ArtifactError, match="no classifier artifact"):
        read_artifact(tmp_path)


def test_an_artifact_without_easy_cues_loads_with_no_discount(saved):
    directory, head, X = saved

    def drop(document):  # as written before the discount existed
        del document["head"]["easy_cues"], document["head"]["easy_discount"]
        document["checksum"] = _checksum(document["head"])

    edit(directory, drop)
    loaded = read_artifact(directory)
    assert (loaded.head.easy_columns, loaded.head.easy_discount) == ((), 0.0)


def test_an_artifact_without_hard_cues_loads_with_no_floor(saved):
    directory, head, X = saved

    def drop(document):  # as written before the floor existed
        for key in ("hard_cues", "hard_floor", "hard_gate"):
            del document["head"][key]
        document["checksum"] = _checksum(document["head"])

    edit(directory, drop)
    loaded = read_artifact(directory)
    assert (loaded.head.hard_columns, loaded.head.hard_floor) == ((), 0.0)
    head.hard_columns, head.hard_floor = (), 0.0
    np.testing.assert_allclose(loaded.head.score(X), head.score(X))


def test_an_artifact_without_direct_cues_loads_with_none(saved):
    directory, head, X = saved

    def drop(document):  # as written before direct cues existed
        del document["head"]["direct_cues"]
        document["checksum"] = _checksum(document["head"])

    edit(directory, drop)
    loaded = read_artifact(directory)
    assert loaded.head.direct_columns == ()
    head.direct_columns = ()
    np.testing.assert_allclose(loaded.head.score(X), head.score(X))


def test_an_unknown_easy_cue_is_refused(saved):
    directory, _, _ = saved

    def unknown(document):
        document["head"]["easy_cues"] = ["no_such_cue"]
        document["checksum"] = _checksum(document["head"])

    edit(directory, unknown)
    with pytest.raises(ArtifactError, match="unknown features"):
        read_artifact(directory)
