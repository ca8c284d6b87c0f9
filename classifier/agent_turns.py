"""Signs in an agent's conversation that the score of its text cannot see.

A coding agent's turn is often only tool results (a file read, a test run); the
classifier scores the last human request (see :mod:`classifier.text`), never the raw
tool output. What the tool turns do tell is whether the agent is stuck: the same
call made again and again, or tool after tool failing. A stalled run is escalated
one step by the policy (reason ``agent_stalled``).

Messages are in OpenAI's chat shape; Anthropic ``tool_result`` blocks arrive as
``role: tool`` messages, an ``is_error`` result prefixed ``Error:``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from classifier.text import message_text

__all__ = ["STALL_RUN", "has_stalled", "is_failed_tool_result", "is_stalled"]

# This many failed tool results in a row, or identical tool calls in a row, is a stall.
STALL_RUN = 3
# How a failed tool result reads: an error flag, a traceback, a shell's complaint. Only the
# start of a result is read: a long file that mentions "error" somewhere is not a failure.
_FAILURE = re.compile(
    r"^\s*(error\b|fatal\b|exception\b|traceback \(most recent call last\))"
    r"|\b(exit (code|status)|exited with( code)?) [1-9]\d*"
    r"|\bcommand (failed|not found)\b|no such file or directory|permission denied"
    r"|\b\d+ (failed|errors?)\b",
    re.IGNORECASE,
)
_HEAD_CHARS = 400


def is_failed_tool_result(message: Mapping[str, Any]) -> bool:
    """Whether a ``role: tool`` message reports a failure."""
    return bool(_FAILURE.search(message_text(message)[:_HEAD_CHARS]))


def is_stalled(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the agent loop since the last human turn has stalled: its last
    ``STALL_RUN`` tool results all failed, or its last ``STALL_RUN`` tool calls were the
    same call (name and arguments).

    >>> call = {"role": "assistant", "tool_calls": [
    ...     {"type": "function", "function": {"name": "run_tests", "arguments": "{}"}}]}
    >>> failed = {"role": "tool", "content": "Error: 3 failed, 10 passed"}
    >>> is_stalled([{"role": "user", "content": "fix the tests"}] + [call, failed] * 3)
    True
    """
    results: list[bool] = []  # newest first: whether each tool result failed
    calls: list[str] = []  # newest first: each tool call as name and arguments
    for message in reversed(_loop(messages)):
        role = message.get("role")
        if role == "tool":
            results.append(is_failed_tool_result(message))
        elif role == "assistant":
            calls.extend(_call_keys(message))
    failed_run = len(results) >= STALL_RUN and all(results[:STALL_RUN])
    repeated = len(calls) >= STALL_RUN and len(set(calls[:STALL_RUN])) == 1
    return failed_run or repeated


def _loop(messages: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The agent loop: the messages after the last human turn (one with text), oldest first."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user" and message_text(message).strip():
            return messages[index + 1 :]
    return messages


def _call_keys(message: Mapping[str, Any]) -> list[str]:
    """A message's tool calls, newest first, each as one comparable string."""
    keys = []
    for call in reversed(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        arguments = str(function.get("arguments"))
        # The same arguments in another key order are the same call.
        with contextlib.suppress(ValueError):
            arguments = json.dumps(json.loads(arguments), sort_keys=True)
        keys.append(f"{function.get('name')}:{arguments}")
    return keys


def has_stalled(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the agent loop since the last human turn stalled at any point (see
    :func:`is_stalled`), even if its latest tool results succeed again.

    A loop once escalated stays on the stronger tier until the human speaks again:
    dropping back on the first good tool result would throw away the reasoning model's
    prompt cache and hand a recovering agent back to the model that stalled (replayed
    sessions, ``bench/agent_sessions.py``: two model switches per stalled session).

    >>> call = {"role": "assistant", "tool_calls": [
    ...     {"type": "function", "function": {"name": "run_tests", "arguments": "{}"}}]}
    >>> failed = {"role": "tool", "content": "Error: 3 failed, 10 passed"}
    >>> read = {"role": "assistant", "tool_calls": [
    ...     {"type": "function", "function": {"name": "read", "arguments": "{}"}}]}
    >>> loop = [{"role": "user", "content": "fix the tests"}] + [call, failed] * 3
    >>> ok = [read, {"role": "tool", "content": "def f(): ..."}]
    >>> is_stalled(loop + ok), has_stalled(loop + ok)
    (False, True)
    """
    failed_run = same_run = 0
    last_call = None
    for message in _loop(messages):  # oldest first: one pass, the runs as they grew
        role = message.get("role")
        if role == "tool":
            failed_run = failed_run + 1 if is_failed_tool_result(message) else 0
        elif role == "assistant":
            for key in reversed(_call_keys(message)):
                same_run = same_run + 1 if key == last_call else 1
                last_call = key
        if failed_run >= STALL_RUN or same_run >= STALL_RUN:
            return True
    return False
