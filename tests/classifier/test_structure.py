"""Structural cues fire on what a request asks, in any register."""

import numpy as np
import pytest

from classifier.features import FEATURE_NAMES, SURFACE_NAMES, surface_features, text_features
from classifier.structure import (
    STRUCTURE_NAMES,
    WINDOW_CHARS,
    fired_cues,
    question_of,
    request_of,
    structural_features,
    window_of,
)

TABLE = "Revenue | 2018 | 2019\nProduct | 1,200 | 1,450\nServices | 800 | 910\n\n"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        (TABLE + "What was the percentage change in Services revenue?", "numbers_to_reconcile"),
        ("My card says 120, 45 and 80 but the statement total is 260. Why doesn't it add up?",
         "numbers_to_reconcile"),
        ("Why does my loop never end?\n```python\nwhile i < 10:\n    print(i)\n```",
         "code_behaviour_question"),
        ("Add a docstring to this:\n```python\ndef f(x):\n    return x + 1\n```",
         "code_presentation_only"),
        ("can you show that the sum of two odd numbers is always even?", "proof_request"),
        ("Trick question: which weighs more, a kilo of feathers or a kilo of iron?", "trick_cue"),
        ("Anna is my mother's sister's daughter and Ben is my father's brother's son. "
         "How are Anna and Ben related to each other's parents?", "relations_riddle"),
        ("Summarise this abstract in two sentences.\n\nWe study sparse attention for long "
         "documents and report that a learned routing of tokens to blocks halves memory use.",
         "transform_material"),
        ("My three invoices are $120, $45 and $80 but the statement shows $260. Where could "
         "the difference come from?", "figures_disagree"),
        ("Rent is 40%, food 25%, savings 20% and other 20%. Does that add up?",
         "figures_disagree"),
        # the material's own words ("fixed") do not make it a debugging request
        ("Here is our changelog, summarise it in one line:\n" + "fixed a typo. " * 20,
         "transform_material"),
        ("John is married to Isabella. They have a child called Edward. Edward is married to "
         "Victoria. What is Isabella to Edward?", "relation_question"),
        ("Karen went to the park with her son Tom. Tom's sister Julie called her uncle Mark. "
         "How is Mark related to Karen?", "relation_question"),
        # code pasted without a fence is still code
        ("Why does my loop never end?\n\ni = 10\nwhile i != 0:\n    i -= 3\n    print(i)",
         "code_behaviour_question"),
        ("Careful: how many months have 28 days?", "trick_cue"),
        ("There's a catch. How many months have 28 days?", "trick_cue"),
        ("Can you give a rigorous proof that there are infinitely many primes?",
         "proof_request"),
    ],
)  # fmt: skip
def test_each_cue_fires_on_its_kind_of_request(text, cue):
    assert cue in fired_cues(structural_features([text])[0])


def test_looking_a_figure_up_is_not_reconciling_figures():
    row = structural_features([TABLE + "What was Product revenue in 2019?"])[0]
    assert "numbers_to_reconcile" not in fired_cues(row)
    # a change asked of the figures is reconciling them, not a disagreement to trace
    row = structural_features([TABLE + "What was the percentage change in Services revenue?"])[0]
    assert "figures_disagree" not in fired_cues(row)


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        # an instruction to read with care is not a warning that the obvious answer is wrong
        ("Read the reviews carefully and extract the positive and negative points.", "trick_cue"),
        ("How many fish did Tommy catch if Naomi caught 17 and he caught 3 more?", "trick_cue"),
        ("Poppy is solving a 1000-piece jigsaw puzzle and places a quarter of the pieces.",
         "trick_cue"),
        # a film's title, the primes "not necessarily distinct": no proof asked for
        ("Which of these films did Tarantino produce: Death Proof, Pulp Fiction?",
         "proof_request"),
        ("Let a and b be primes, not necessarily distinct, with a + b = 20. Find ab.",
         "proof_request"),
    ],
)  # fmt: skip
def test_a_word_of_the_cue_in_its_everyday_sense_does_not_fire_it(text, cue):
    assert cue not in fired_cues(structural_features([text])[0])


def test_small_talk_fires_nothing_and_rows_have_every_feature():
    rows = structural_features(["hi! how are you today?", "Write a haiku about rain."])
    assert rows.shape == (2, len(STRUCTURE_NAMES))
    assert [fired_cues(row) for row in rows] == [[], []]
    assert np.all((rows[:, :-1] >= 0) & (rows[:, :-1] <= 1))


@pytest.mark.parametrize(
    "text",
    [
        # an instruction that asks for work over the material is not a rework
        "Calculate the total of the last column.\n\nRent 1,200\nFood 450\nPower 80\n" * 2,
        "Why does this fail?\n\n```python\ndef f(xs):\n    return xs[len(xs)]\n```\n" * 2,
        # what the material will become is a prediction
        "What will this board look like after 3 steps? Reply as a list of rows.\n\n"
        "[[0,1,0],[0,1,0],[0,1,0]] [[0,0,0],[1,1,1],[0,0,0]] [[1,0,1],[0,1,0],[1,0,1]]",
    ],
)
def test_work_or_a_prediction_over_material_is_not_a_rework(text):
    assert "transform_material" not in fired_cues(structural_features([text])[0])


@pytest.mark.parametrize(
    "text",
    [
        "Write a toast for my sister's wedding; my father and my brother will speak too.",
        "What is a good gift to give my mother and father?",
    ],
)
def test_family_words_without_a_relation_asked_are_not_a_relation_question(text):
    assert "relation_question" not in fired_cues(structural_features([text])[0])


def test_the_request_is_an_instruction_put_before_its_material():
    material = "We study sparse attention for long documents. " * 10
    assert request_of("Summarise this abstract.\n\n" + material) == "Summarise this abstract."
    # the last paragraph still wins when it asks, or is short
    assert request_of("Summarise this.\n\n" + material + "\n\nWhy so long?") == "Why so long?"
    assert request_of(TABLE + "What changed?") == "What changed?"
    # one paragraph is its own request; a long first paragraph is material, not an instruction
    assert request_of("one line only") == "one line only"
    assert request_of(material + "\n\n" + material) == material.strip()[-400:]


def test_the_question_is_the_last_paragraph():
    assert question_of(TABLE + "What changed?") == "What changed?"
    assert question_of("one line only") == "one line only"


def test_a_huge_prompt_is_read_as_its_window_and_its_length_stays_true():
    """A multi-MB prompt costs what its window costs: the rates and cues read the first
    WINDOW_CHARS characters and the question; the length columns still say it is huge."""
    question = "Why does this loop never end?"
    body = "x = 1  # 2 + 3 = 5\n" * 200_000  # about 4 MB of code-like lines
    huge = body + "\n\n" + question
    window = window_of(huge)
    assert len(window) <= WINDOW_CHARS + 2 + len(question)
    assert window.endswith(question)

    huge_row, window_row = text_features([huge, window])
    names = list(FEATURE_NAMES)
    length_columns = {"log_words", "log_chars", "lines_log"}
    for name, huge_value, window_value in zip(names, huge_row, window_row, strict=True):
        if name not in length_columns:
            assert huge_value == window_value, name
    assert huge_row[names.index("log_chars")] == pytest.approx(np.log1p(len(huge)))
    assert huge_row[names.index("lines_log")] == pytest.approx(np.log1p(huge.count("\n")))
    # Words beyond the window are estimated from its words per character: close to the count.
    true_words = np.log1p(len(huge.split()))
    assert huge_row[names.index("log_words")] == pytest.approx(true_words, abs=0.05)


def test_a_prompt_within_the_window_is_read_whole():
    text = "What is 12 + 30?\n" * 10
    assert window_of(text) is text
    (row,) = surface_features([text])
    assert row[list(SURFACE_NAMES).index("log_words")] == pytest.approx(np.log1p(len(text.split())))


@pytest.mark.parametrize(
    ("question", "fires"),
    [
        ("What was Product revenue in 2019?", True),
        ("Which years does the table provide information for?", True),
        ("Translate this note into Spanish, keeping the table as it is.", True),
        ("What was the percentage change in Product revenue from 2018 to 2019?", False),
        ("Why do the segment figures not add up to the total?", False),
        ("Calculate the average of Services revenue.", False),
    ],
)
def test_a_look_up_over_a_table_is_told_from_working_the_figures(question, fires):
    (row,) = structural_features([TABLE + question])
    assert ("lookup_over_material" in fired_cues(row)) is fires


def test_a_look_up_needs_material_before_it():
    (row,) = structural_features(["What was the capital of France in 1900?"])
    assert "lookup_over_material" not in fired_cues(row)
