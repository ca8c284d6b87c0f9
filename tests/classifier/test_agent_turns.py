"""What counts as a stalled agent: failing tool results, or the same call again and again."""

from __future__ import annotations

import json

import pytest

from classifier.agent_turns import has_stalled, is_failed_tool_result, is_stalled

HUMAN = {"role": "user", "content": "The test suite fails on main; find out why and fix it."}


def call(name: str = "run_tests", **arguments: object) -> dict:
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": function}]}  # fmt: skip


def result(text: str) -> dict:
    return {"role": "tool", "tool_call_id": "c", "content": text}


FAILED = "Error: FAILED tests/test_api.py::test_login - AssertionError"
PASSED = "collected 40 items\n40 passed in 2.1s"


@pytest.mark.parametrize(
    "text",
    [
        "Error: file not found",  # Anthropic's is_error, as the proxy passes it on
        "Traceback (most recent call last):\n  File ...",
        "make: *** [test] exited with code 2",
        "bash: rg: command not found",
        "cat: src/app.py: No such file or directory",
        "=== 3 failed, 12 passed in 0.81s ===",
    ],
)
def test_failed_tool_results_are_recognised(text):
    assert is_failed_tool_result(result(text))


@pytest.mark.parametrize(
    "text",
    [
        PASSED,
        "def handle_error(exc):\n    ...",  # code that mentions errors is not a failure
        "x = 1\n" * 200 + "raise Error('late in a long file')",
    ],
)
def test_ordinary_tool_output_is_not_a_failure(text):
    assert not is_failed_tool_result(result(text))


@pytest.mark.parametrize(
    ("loop", "stalled"),
    [
        ([call(path="a"), result(FAILED)] * 3, True),
        ([call(path="a"), result(FAILED)] * 2, False),  # two is not yet a run
        ([call(path="a"), result(FAILED)] * 3 + [call(path="b"), result(PASSED)], False),
        ([call("read", path="x.py"), result(PASSED)] * 3, True),  # the same call thrice
        ([], False),
        (
            [
                call("read", path="a.py"),
                result(PASSED),
                call("read", path="b.py"),
                result(PASSED),
                call("read", path="c.py"),
                result(PASSED),
            ],
            False,
        ),  # fmt: skip
    ],
)
def test_a_stall_is_a_run_since_the_last_human_turn(loop, stalled):
    assert is_stalled([HUMAN, *loop]) is stalled


def test_a_new_human_turn_starts_a_new_run():
    failing = [call(path="a"), result(FAILED)] * 3
    assert not is_stalled([HUMAN, *failing, {"role": "user", "content": "try another way"}])


def test_arguments_in_another_key_order_are_the_same_call():
    first = {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "grep", "arguments": '{"pattern": "x", "path": "."}'}}]}  # fmt: skip
    second = {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "grep", "arguments": '{"path": ".", "pattern": "x"}'}}]}  # fmt: skip
    loop = [first, result("no matches"), second, result("no matches"), first, result("none")]
    assert is_stalled([HUMAN, *loop])


def test_a_loop_that_stalled_stays_stalled_until_the_human_speaks():
    # Dropping back to the fast tier on the first good result would switch model twice.
    failing = [call(path="a"), result(FAILED)] * 3
    recovered = [*failing, call(path="b"), result(PASSED), call(path="c"), result(PASSED)]
    assert not is_stalled([HUMAN, *recovered])  # the run itself is over
    assert has_stalled([HUMAN, *recovered])
    assert not has_stalled([HUMAN, *recovered, {"role": "user", "content": "thanks, now X"}])
    assert not has_stalled([HUMAN, *([call(path="a"), result(FAILED)] * 2)])
    assert has_stalled([HUMAN, *[call("read", path="x.py"), result(PASSED)] * 3])
