"""Verify, then escalate: ask the fast tier and a verifier together and compare final answers.

The fast model and a cheap verifier (another model, or the fast tier again at a
temperature: ``SELF``) answer the same request concurrently. Their final answers are
extracted (:mod:`classifier.answers`) and compared:

- ``agreed``: both answers have a key and the keys match; keep the fast answer.
- ``escalate``: both have a key and they differ; re-ask the reasoning tier.
- ``no_answer``: no comparable answer (open-ended prose, the verifier failed or
  timed out, or the fast call failed): the prompt-only decision stands.

Nothing here raises for an upstream fault: every call's response, usage and error
is in the result so the caller can charge each call and decide what to send.
I/O is passed in: ``call(target, request)`` is the coroutine that asks one target.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import anyio

from classifier.answers import NO_ANSWER, Answer, extract_answer
from router.requests import ChatRequest

__all__ = [
    "SELF",
    "CascadeAnswer",
    "CascadeCall",
    "CascadeOutcome",
    "CascadeTargets",
    "answer_cascaded",
    "run_cascade",
]

logger = logging.getLogger(__name__)

SELF = "self"
# The fast tier sampled again must be able to differ from its greedy answer.
SELF_TEMPERATURE = 0.7
DEFAULT_VERIFIER_TIMEOUT_S = 30.0

TargetT = TypeVar("TargetT")
CascadeResult = Literal["agreed", "escalate", "no_answer"]
Call = Callable[[TargetT, ChatRequest], Awaitable[dict[str, Any]]]
# What a client sees in x-thinkroute-cascade for a cascade that ran.
# "kept": the verifier head kept the fast answer although the two final answers differ.
Label = Literal["agreed", "kept", "escalated", "no_answer", "fast_failed"]


@dataclass(frozen=True, slots=True)
class CascadeCall(Generic[TargetT]):
    """One call the cascade made: what it asked, what came back (or why not), what it used."""

    target: TargetT
    response: dict[str, Any] | None = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = (self.response or {}).get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def content(self) -> str | None:
        try:
            content = (self.response or {})["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None
        return content if isinstance(content, str) else None


@dataclass(frozen=True, slots=True)
class CascadeOutcome(Generic[TargetT]):
    """What the cascade found; ``fast.response`` is the answer to keep unless it escalates."""

    result: CascadeResult
    fast: CascadeCall[TargetT]
    verifier: CascadeCall[TargetT]
    fast_answer: Answer
    verifier_answer: Answer

    @property
    def calls(self) -> tuple[CascadeCall[TargetT], ...]:
        """The calls that returned a response: each one is billed upstream."""
        return tuple(c for c in (self.fast, self.verifier) if c.response is not None)


async def run_cascade(
    request: ChatRequest,
    *,
    call: Call[TargetT],
    fast: TargetT,
    verifier: TargetT | Literal["self"],
    verifier_timeout_s: float = DEFAULT_VERIFIER_TIMEOUT_S,
    self_temperature: float = SELF_TEMPERATURE,
) -> CascadeOutcome[TargetT]:
    """Ask ``fast`` and ``verifier`` concurrently, compare their final answers.

    ``verifier=SELF`` asks the fast target again with ``temperature=self_temperature``.
    The verifier gets ``verifier_timeout_s``; the fast call runs under the caller's own
    limits. Both are non-streaming: a cascaded stream is sent from the chosen answer.
    """
    if not (verifier_timeout_s > 0 and math.isfinite(verifier_timeout_s)):
        raise ValueError(f"verifier_timeout_s must be a positive number, got {verifier_timeout_s}")
    if verifier == SELF:
        verifier_target: TargetT = fast
        params = {**request.params, "temperature": self_temperature}
        verifier_request = dataclasses.replace(request, params=params, stream=False)
    else:
        verifier_target = verifier  # type: ignore[assignment]  # not SELF: a target
        verifier_request = dataclasses.replace(request, stream=False)
    fast_request = dataclasses.replace(request, stream=False)
    calls: dict[str, CascadeCall[TargetT]] = {}

    async def ask(name: str, target: TargetT, asked: ChatRequest, timeout_s: float) -> None:
        # Each call keeps its own failure: one failing must not cancel the other.
        with anyio.move_on_after(timeout_s) as scope:
            try:
                calls[name] = CascadeCall(target, response=await call(target, asked))
            except Exception as exc:  # an upstream fault of any kind: recorded, not raised
                logger.info("cascade %s call failed: %s", name, type(exc).__name__)
                calls[name] = CascadeCall(target, error=exc)
        if scope.cancelled_caught:
            calls[name] = CascadeCall(target, error=TimeoutError(), timed_out=True)

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "fast", fast, fast_request, math.inf)
        group.start_soon(ask, "verifier", verifier_target, verifier_request, verifier_timeout_s)

    fast_call, verifier_call = calls["fast"], calls["verifier"]
    fast_answer = extract_answer(fast_call.content) if fast_call.response else NO_ANSWER
    verifier_answer = extract_answer(verifier_call.content) if verifier_call.response else NO_ANSWER
    return CascadeOutcome(
        result=_compare(fast_answer, verifier_answer),
        fast=fast_call,
        verifier=verifier_call,
        fast_answer=fast_answer,
        verifier_answer=verifier_answer,
    )


def _compare(fast: Answer, verifier: Answer) -> CascadeResult:
    if fast.key is None or verifier.key is None:
        return "no_answer"
    return "agreed" if fast.key == verifier.key else "escalate"


@dataclass(frozen=True, slots=True)
class CascadeTargets(Generic[TargetT]):
    """The three models of a cascade: the fast tier, its verifier (or ``SELF``), and the
    reasoning tier asked when they disagree."""

    fast: TargetT
    verifier: TargetT | Literal["self"]
    reasoning: TargetT


@dataclass(slots=True)
class CascadeAnswer(Generic[TargetT]):
    """The answer a cascade sends and every call billed on the way to it.

    ``answered_by`` is the target whose ``response`` is sent; ``escalated`` is true when
    the reasoning tier answered because the verifier disagreed. ``error`` is set (and
    ``response`` is None) when no call produced an answer to send; ``billed`` still lists
    the calls that were made, so they can be charged before the error is raised.
    """

    label: Label
    response: dict[str, Any] | None
    answered_by: TargetT | None
    billed: list[tuple[TargetT, dict[str, Any]]]
    escalated: bool = False
    error: BaseException | None = None


async def answer_cascaded(
    request: ChatRequest,
    *,
    call: Call[TargetT],
    targets: CascadeTargets[TargetT],
    decided: Literal["fast", "reasoning"],
    may_fall_back: bool = True,
    verifier_timeout_s: float = DEFAULT_VERIFIER_TIMEOUT_S,
    escalate_when: Callable[[str | None, str | None], bool] | None = None,
) -> CascadeAnswer[TargetT]:
    """Verify, then escalate: the answer to send for a request the cascade runs on.

    Agreement sends the fast answer. Disagreement asks the reasoning tier. With no
    comparable answer the prompt-only decision (``decided``) stands: the fast answer,
    or the reasoning tier's. A failed fast call goes to the reasoning tier where
    ``may_fall_back`` (as an uncascaded request would fall back), else fails.
    ``escalate_when(fast_text, verifier_text)``, if given, decides where both replies
    have a final answer (the verifier head), in place of comparing them.
    """
    outcome = await run_cascade(
        request, call=call, fast=targets.fast, verifier=targets.verifier,
        verifier_timeout_s=verifier_timeout_s,
    )  # fmt: skip
    billed = [(c.target, c.usage or {}) for c in outcome.calls]
    fast_failed = outcome.fast.response is None
    result = outcome.result
    kept_label: Label = "agreed"
    if escalate_when is not None and result != "no_answer":
        kept_label = "agreed" if result == "agreed" else "kept"
        escalates = escalate_when(outcome.fast.content, outcome.verifier.content)
        result = "escalate" if escalates else "agreed"
    if result == "agreed" or (result == "no_answer" and decided == "fast"):
        if not fast_failed:
            label: Label = kept_label if result == "agreed" else "no_answer"
            return CascadeAnswer(label, outcome.fast.response, targets.fast, billed)
        if not may_fall_back:
            return CascadeAnswer("fast_failed", None, None, billed, error=outcome.fast.error)
    label = "escalated" if result == "escalate" else "no_answer"
    if fast_failed:
        label = "fast_failed"
    try:
        response = await call(targets.reasoning, request)
    except Exception as exc:  # charged for what was made, then raised by the caller
        return CascadeAnswer(label, None, None, billed, error=exc)
    billed.append((targets.reasoning, _usage(response)))
    escalated = result == "escalate"
    return CascadeAnswer(label, response, targets.reasoning, billed, escalated=escalated)


def _usage(response: dict[str, Any]) -> dict[str, Any]:
    usage = response.get("usage")
    return usage if isinstance(usage, dict) else {}
