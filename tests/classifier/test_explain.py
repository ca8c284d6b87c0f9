"""The explain index: which kinds of training prompts a prompt sits nearest to, from the
committed numbers alone (no training data read, no training text stored, no pickle)."""

import json
import shutil

import numpy as np
import pytest

from classifier import data as data_module
from classifier.artifact import HEAD_FILE
from classifier.errors import ArtifactError
from classifier.explain import INDEX_ARRAYS, INDEX_FILE, read_index
from classifier.explain_index import main as index_main
from classifier.model import DEFAULT_ARTIFACT, DifficultyClassifier, embed, embedder_for

MATHS = "Solve for x when {a}x + {b} = {c}, and give x as a reduced fraction."
GREETING = "Hey there, hope your {day} is going well! Any tips for a relaxing {day}?"
DEBUG = "My function never returns: def f(n): while n > {a}: n += 1. Why does it loop forever?"
POEM = "Write a short, cheerful poem about {thing} for my {relative}'s birthday card."
DAYS = ["Monday", "weekend", "Sunday", "holiday", "Friday", "evening", "morning", "break"]
THINGS = ["autumn leaves", "the sea", "a garden", "old friends", "coffee", "snow", "a cat", "rain"]
RELATIVES = ["aunt", "grandfather", "sister", "cousin", "uncle", "mother", "nephew", "father"]


def _records() -> list[dict]:
    """Four kinds: measured maths outcomes, chat and poems (fast), debugging (reasoning)."""
    records = []
    for i in range(8):
        records.append(
            {"id": f"m/{i}", "source": "maths", "subset": "algebra/hard",
             "prompt": MATHS.format(a=i + 2, b=3 * i + 1, c=7 * i + 5),
             "fast": {"score": float(i % 4 == 0)}, "reasoning": {"score": 1.0}}
        )  # fmt: skip
        records.append(
            {"id": f"c/{i}", "source": "chat", "subset": "greetings",
             "prompt": GREETING.format(day=DAYS[i]), "expected_tier": "fast"}
        )  # fmt: skip
        records.append(
            {"id": f"d/{i}", "source": "code", "subset": "debug",
             "prompt": DEBUG.format(a=i * 10 - 3), "expected_tier": "reasoning"}
        )  # fmt: skip
        records.append(
            {"id": f"p/{i}", "source": "writing", "subset": "poems",
             "prompt": POEM.format(thing=THINGS[i], relative=RELATIVES[i]),
             "expected_tier": "fast"}
        )  # fmt: skip
    return records


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An index built from a data file that is gone by the time it is used."""
    directory = tmp_path_factory.mktemp("explain")
    data = directory / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert index_main(["--data", str(data), "--out", str(directory / "index")]) == 0
    data.unlink()
    return directory / "index"


@pytest.fixture
def no_training_data(monkeypatch):
    """Reading any record file at run time fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("training data read at run time")

    monkeypatch.setattr(data_module, "read_records", refuse)
    monkeypatch.setattr(data_module, "load_records", refuse)


def test_the_index_holds_names_and_numbers_never_training_text(built):
    document = (built / INDEX_FILE).read_text()
    arrays = (built / INDEX_ARRAYS).read_bytes()
    for record in _records():
        assert record["prompt"] not in document
        assert record["prompt"].encode() not in arrays
    assert "never returns" not in document and b"never returns" not in arrays
    with np.load(built / INDEX_ARRAYS, allow_pickle=False) as stored:
        assert sorted(stored.files) == ["centroids", "whitening"]
        assert all(stored[name].dtype == np.float32 for name in stored.files)
    kinds = json.loads(document)["kinds"]
    assert [k["kind"] for k in kinds] == ["chat/greetings", "code/debug", "maths/algebra",
                                          "writing/poems"]  # fmt: skip
    maths = kinds[2]
    # Two of the eight maths prompts were won by both models: mean gain 6/8.
    assert (maths["records"], maths["mean_gain"], maths["expected_tier"]) == (8, 0.75, None)
    assert (kinds[0]["mean_gain"], kinds[0]["expected_tier"]) == (None, "fast")


def test_explain_answers_from_the_index_alone_with_any_head(built, tmp_path, no_training_data):
    # The shipped head with this index beside it: the index needs no head of its own.
    shutil.copy(DEFAULT_ARTIFACT / HEAD_FILE, tmp_path / HEAD_FILE)
    for name in (INDEX_FILE, INDEX_ARRAYS):
        shutil.copy(built / name, tmp_path / name)
    clf = DifficultyClassifier.load(tmp_path)

    maths = clf.explain_text("Solve for x when 12x + 40 = 100, and give x as a reduced fraction.")
    json.dumps(maths)  # JSON-ready as it is
    nearest = maths["nearest_kinds"]
    assert [k["kind"] for k in nearest][0] == "maths/algebra"
    assert nearest[0] == {"kind": "maths/algebra", "similarity": nearest[0]["similarity"],
                          "records": 8, "mean_gain": 0.75, "expected_tier": None}  # fmt: skip
    assert [k["similarity"] for k in nearest] == sorted((k["similarity"] for k in nearest),
                                                        reverse=True)  # fmt: skip
    chat = clf.explain_text("Hey, hope your Tuesday is going well! Any tips for a relaxing night?")
    assert chat["nearest_kinds"][0]["kind"] == "chat/greetings"
    assert len(clf.explain_text("hello", top_k=2)["nearest_kinds"]) == 2


def test_a_head_without_an_index_uses_the_shipped_one(tmp_path, no_training_data):
    shutil.copy(DEFAULT_ARTIFACT / HEAD_FILE, tmp_path / HEAD_FILE)
    clf = DifficultyClassifier.load(tmp_path)
    assert clf.explain_index is not None
    assert clf.explain_index.names == read_index(DEFAULT_ARTIFACT).names


def test_an_index_in_another_space_embeds_the_text_in_its_own(built, tmp_path, no_training_data):
    """A head retrained over another embedding keeps explaining with the index it has."""
    for name in (INDEX_FILE, INDEX_ARRAYS):
        shutil.copy(built / name, tmp_path / name)
    document = json.loads((tmp_path / INDEX_FILE).read_text())
    head = json.loads((DEFAULT_ARTIFACT / HEAD_FILE).read_text())
    head["embedding"]["question_weight"] = 0.25  # not the index's 0.5: another space
    (tmp_path / HEAD_FILE).write_text(json.dumps(head))
    clf = DifficultyClassifier.load(tmp_path)
    assert not clf.explain_index.is_in_space(clf.artifact.embedding)

    text = "My loop never returns: def g(k): while k > 5: k += 2. Why does it loop forever?\n\nWhy?"
    own = embed(embedder_for(document["embedding"]), [text], question_weight=0.5)[0]
    assert clf.explain_text(text)["nearest_kinds"] == clf.explain_index.nearest(own, 3)
    assert clf.explain_text(text)["nearest_kinds"][0]["kind"] == "code/debug"


def test_a_damaged_or_unsafe_index_is_refused_by_name(built, tmp_path):
    for name in (INDEX_FILE, INDEX_ARRAYS):
        shutil.copy(built / name, tmp_path / name)
    with np.load(tmp_path / INDEX_ARRAYS) as stored:
        centroids, whitening = stored["centroids"].copy(), stored["whitening"]
    centroids[0, 0] += 0.5
    np.savez(tmp_path / INDEX_ARRAYS, centroids=centroids, whitening=whitening)
    with pytest.raises(ArtifactError, match="checksum"):
        read_index(tmp_path)
    # An object array needs pickle to load: refused, never unpickled.
    np.savez(tmp_path / INDEX_ARRAYS, centroids=np.array([{"a": 1}], dtype=object),
             whitening=whitening)  # fmt: skip
    with pytest.raises(ArtifactError, match="damaged"):
        read_index(tmp_path)
    (tmp_path / INDEX_ARRAYS).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        read_index(tmp_path)
    (tmp_path / INDEX_FILE).write_text('{"format": "something/9"}')
    with pytest.raises(ArtifactError, match="format"):
        read_index(tmp_path)


def test_the_shipped_index_places_maths_near_maths_and_chat_near_chat(no_training_data):
    shipped = sum(path.stat().st_size for path in DEFAULT_ARTIFACT.iterdir())
    assert shipped < 30 * 2**20
    document = json.loads((DEFAULT_ARTIFACT / INDEX_FILE).read_text())
    # Names and figures only: every kind entry is these four fields, no field holds prose.
    assert all(set(k) == {"kind", "records", "mean_gain", "expected_tier"}
               for k in document["kinds"])  # fmt: skip
    assert all(len(k["kind"]) <= 64 and "/" in k["kind"] for k in document["kinds"])
    # No string anywhere but how it was made (a command line of file names) is longer than
    # a name: there is no room for a prompt.
    assert max(len(text) for text in _strings({**document, "made": None})) <= 64
    assert set(document["made"]) == {"command", "date", "data", "records"}
    assert all(path.endswith(".jsonl") for path in document["made"]["data"])
    with np.load(DEFAULT_ARTIFACT / INDEX_ARRAYS, allow_pickle=False) as stored:
        assert all(stored[name].dtype == np.float32 for name in stored.files)
    clf = DifficultyClassifier.load()
    maths = clf.explain_text(
        "Find the number of ordered pairs of positive integers (a, b) with a + b = 1000 such "
        "that neither a nor b has a zero digit."
    )
    maths_kinds = (
        "zeroeval/math", "math500/", "aime24/", "amc23/", "olympiadbench/",
        "reasoning-gym/algebra", "reasoning-gym/arithmetic", "mt-bench/math",
    )  # fmt: skip
    assert maths["nearest_kinds"][0]["kind"].startswith(maths_kinds), maths["nearest_kinds"]
    chat = clf.explain_text("hi! what's a nice name for a grey kitten?")
    chat_kinds = ("alpaca_eval/", "dolly/", "self-instruct/", "mt-bench/roleplay",
                  "mt-bench/humanities", "nq-open/", "arena-hard-v2/creative")  # fmt: skip
    assert chat["nearest_kinds"][0]["kind"].startswith(chat_kinds), chat["nearest_kinds"]
    assert chat["nearest_kinds"][0]["expected_tier"] == "fast"


def _strings(value):
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
