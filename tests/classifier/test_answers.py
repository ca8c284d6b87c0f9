"""Final-answer extraction on the shapes real replies take (written here, not copied from data)."""

from __future__ import annotations

import pytest

from classifier.answers import extract_answer, normalise_answer, same_answer

REPLIES = [
    # (reply, expected key, where it was found)
    (
        '```json\n{"reasoning": "2 pads * 30 sheets = 60 a week, 4 weeks", "answer": "240"}\n```',
        "240",
        "json",
    ),
    # LaTeX inside a JSON string is usually not valid JSON (an unescaped backslash).
    ('{"reasoning": "halve it", "answer": "\\frac{3}{4}"}', "0.75", "json"),
    ('{"answer": 12.50}', "12.5", "json"),
    ('{"reasoning": "...", "answer": "[1, 2, 3]"}', "[1, 2, 3]", "json"),
    ("We get $x = 7$, so the remainder is $\\boxed{7}$.", "7", "boxed"),
    ("Thus the probability is $\\boxed{\\dfrac{1}{3}}$.", "0.333333", "boxed"),
    ("Adding up: 1000 + 200 = 1200.\n\nThe answer is $1,200.", "1200", "phrase"),
    ("After reviewing the options...\n**Final Answer:** (C) 42 apples", "C", "phrase"),
    ("Let me think.\n<answer>Jonatan</answer>", "jonatan", "tag"),
    ("<answer>\n1 2\n3 4\n</answer>", "1 2 3 4", "tag"),
    ("Yes.", "yes", "short"),
    ("'abcBA'", "abcBA", "short"),  # a Python string literal keeps its case
    ("{'a': 1, 'b': [2, 3]}", "{'a': 1, 'b': [2, 3]}", "short"),
    ("He buys 3 packs of 4, 12 in all.\nSo he has 12 eggs left.", "12", "concluding_number"),
    ("Output: True", "yes", "phrase"),
    ("So the answer is 12, because 3 * 4 = 12.", "12", "phrase"),
    ("The final answer is: **42 apples**", "42", "phrase"),
    ("The answer is [1, 2, 3], sorted.", "[1, 2, 3]", "phrase"),
    # A short reply that is a sentence is keyed by the one number it states.
    ("The total is 300.", "300", "short"),
    ("It costs $4.50.", "4.5", "short"),
    ("The temperature was -12 degrees.", "-12", "short"),
    ("Adding them: 120 + 95 + 85.\nEach friend gets 4 cookies.", "4", "concluding_number"),
]


@pytest.mark.parametrize(("reply", "key", "how"), REPLIES)
def test_final_answer_is_found_and_normalised(reply: str, key: str, how: str) -> None:
    answer = extract_answer(reply)
    assert (answer.key, answer.how) == (key, how)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "Hello! How can I help you today?",
        None,
        # Writing and chat have no final answer to compare, even with numbers in them.
        "Here is a short poem about autumn:\n\nLeaves drift down in 3 slow spirals,\n"
        "the garden exhales, and the evening is long.\nI hope you enjoy it!",
        "Sure! To set up the project, first install the dependencies, then copy the example "
        "config and edit the database section. Let me know if anything is unclear, happy "
        "to help further with the deployment steps.",
    ],
)
def test_prose_without_a_final_answer_has_no_key(reply: str | None) -> None:
    answer = extract_answer(reply)
    assert answer.key is None and answer.how == "none" and not answer.is_found


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("$1,200.00", "1200"),
        ("1200 dollars", "1,200"),
        ("\\frac{5}{2}", "2.5"),
        ("5/2", "\\tfrac{5}{2}"),
        ("50\\%", "50"),
        ("x = -3", "-3"),
        ("\\text{(B)}", "B."),
        ("YES", "yes"),
        ('["a", "b"]', "['a', 'b']"),
        ('{"k": 1}', "{'k': 1}"),
        ("-0x1f", "-31"),
        ("1.5e3", "1500"),
    ],
)
def test_spellings_of_one_answer_share_a_key(first: str, second: str) -> None:
    assert normalise_answer(first) == normalise_answer(second) is not None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("12", "13"),
        ("0.75", "0.7"),
        ("'ab'", "'AB'"),
        ("A", "B"),
        ("yes", "no"),
        ("[1, 2]", "[2, 1]"),
    ],
)
def test_different_answers_have_different_keys(first: str, second: str) -> None:
    assert normalise_answer(first) != normalise_answer(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("The total is 300.", "300"),
        ("The total is 300.", "Answer: 300"),
        ("She has 12 apples left.", '{"answer": "12"}'),
        ("The bill comes to $1,200.", "The answer is 1200."),
    ],
)
def test_a_sentence_stating_a_number_agrees_with_the_number(first: str, second: str) -> None:
    assert same_answer(extract_answer(first), extract_answer(second)) is True


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("The total is 300.", "The total is 290."),
        # Not one number after a linking verb: compared as words, as before.
        ("It is March 5.", "5"),
        ("There are 3 apples and 4 pears.", "3"),
    ],
)
def test_sentences_that_differ_or_are_not_one_number_do_not_agree(first: str, second: str) -> None:
    assert same_answer(extract_answer(first), extract_answer(second)) is not True


def test_same_answer_is_undecided_without_two_keys() -> None:
    twelve = extract_answer("The answer is 12.")
    assert same_answer(twelve, extract_answer('{"answer": "12"}')) is True
    assert same_answer(twelve, extract_answer("The answer is 13.")) is False
    assert same_answer(twelve, extract_answer("")) is None
