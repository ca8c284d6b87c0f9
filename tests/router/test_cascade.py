"""The cascade call over a real local upstream, and the rule for when it runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import litellm
import pytest

from router.policy import BUDGET_DEGRADED, LATENCY_LIMIT, RouteDecision, cascade_choice, decide
from router.requests import ChatRequest
from router.upstream.cascade import SELF, run_cascade
from router.upstream.simulator import SimulatedUpstream

# LiteLLM's lazily imported TypedDicts use ReadOnly, and pydantic warns while building them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"
)

QUESTION = ChatRequest(
    model="auto", messages=[{"role": "user", "content": "What is 3 * 4? Answer briefly."}]
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[SimulatedUpstream]:
    with SimulatedUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(upstream: SimulatedUpstream) -> None:
    upstream.reset()


def litellm_call(upstream: SimulatedUpstream) -> Any:
    """``call(target, request)`` through LiteLLM to the simulator: a real dispatch."""

    async def call(model: str, request: ChatRequest) -> dict[str, Any]:
        response = await litellm.acompletion(
            model=f"openai/{model}",
            api_base=upstream.base_url,
            api_key="sk-test",
            num_retries=0,
            **request.params_for_upstream(),
        )
        return dict(response.model_dump())

    return call


def cascade(upstream: SimulatedUpstream, verifier: str, **options: Any) -> Any:
    async def go() -> Any:
        return await run_cascade(
            QUESTION, call=litellm_call(upstream), fast="fast-model", verifier=verifier, **options
        )

    return anyio.run(go)


def test_agreeing_answers_keep_the_fast_answer_and_report_both_usages(
    upstream: SimulatedUpstream,
) -> None:
    upstream.control("fast-model", answer="3 times 4 is 12.\nThe answer is 12.")
    upstream.control("verifier-model", answer='{"reasoning": "3*4", "answer": "12"}')
    outcome = cascade(upstream, "verifier-model")
    assert outcome.result == "agreed"
    assert outcome.fast.content == "3 times 4 is 12.\nThe answer is 12."
    assert outcome.fast_answer.key == outcome.verifier_answer.key == "12"
    assert [c.target for c in outcome.calls] == ["fast-model", "verifier-model"]
    assert all(c.usage and c.usage["completion_tokens"] > 0 for c in outcome.calls)
    assert sorted(r["body"]["model"] for r in upstream.requests) == ["fast-model", "verifier-model"]


def test_disagreeing_answers_escalate(upstream: SimulatedUpstream) -> None:
    upstream.control("fast-model", answer="The answer is 12.")
    upstream.control("verifier-model", answer="So the result is $\\boxed{7}$.")
    outcome = cascade(upstream, "verifier-model")
    assert outcome.result == "escalate"
    assert (outcome.fast_answer.key, outcome.verifier_answer.key) == ("12", "7")
    assert len(outcome.calls) == 2  # both are charged


def test_prose_without_a_final_answer_leaves_the_prompt_decision(
    upstream: SimulatedUpstream,
) -> None:
    upstream.control("fast-model", answer="Here is a gentle poem about the sea and its long tides.")
    upstream.control("verifier-model", answer="The sea, again, in four quiet lines for you.")
    outcome = cascade(upstream, "verifier-model")
    assert outcome.result == "no_answer"
    assert outcome.fast.response is not None


@pytest.mark.parametrize("fault", [{"fail_status": 500}, {"fail_status": 429}, {"malformed": True}])
def test_a_failing_verifier_gives_no_answer_with_the_fast_answer(
    upstream: SimulatedUpstream, fault: dict[str, Any]
) -> None:
    upstream.control("fast-model", answer="The answer is 12.")
    upstream.control("verifier-model", **fault)
    outcome = cascade(upstream, "verifier-model")
    assert outcome.result == "no_answer"
    assert outcome.fast.content == "The answer is 12." and outcome.fast_answer.key == "12"
    assert outcome.verifier.response is None and outcome.verifier.error is not None
    assert [c.target for c in outcome.calls] == ["fast-model"]


def test_a_slow_verifier_times_out_into_no_answer(upstream: SimulatedUpstream) -> None:
    upstream.control("fast-model", answer="The answer is 12.")
    upstream.control("verifier-model", answer="The answer is 13.", latency_s=5.0)
    outcome = cascade(upstream, "verifier-model", verifier_timeout_s=0.2)
    assert outcome.result == "no_answer"
    assert outcome.verifier.timed_out and outcome.fast_answer.key == "12"


def test_a_failing_fast_call_is_reported_not_raised(upstream: SimulatedUpstream) -> None:
    upstream.control("fast-model", fail_status=503)
    upstream.control("verifier-model", answer="The answer is 12.")
    outcome = cascade(upstream, "verifier-model")
    assert outcome.result == "no_answer"
    assert outcome.fast.error is not None and outcome.verifier.content == "The answer is 12."
    assert [c.target for c in outcome.calls] == ["verifier-model"]  # still charged


def test_self_verifier_asks_the_fast_model_again_at_a_temperature(
    upstream: SimulatedUpstream,
) -> None:
    upstream.control("fast-model", answer="<answer>12</answer>")
    outcome = cascade(upstream, SELF, self_temperature=0.9)
    assert outcome.result == "agreed"
    bodies = [r["body"] for r in upstream.requests]
    assert [b["model"] for b in bodies] == ["fast-model", "fast-model"]
    assert sorted(str(b.get("temperature")) for b in bodies) == ["0.9", "None"]


def test_fast_and_verifier_run_concurrently() -> None:
    # Each call waits until both have started: run one after the other, this never finishes.
    started = {"fast": anyio.Event(), "check": anyio.Event()}

    async def call(target: str, request: ChatRequest) -> dict[str, Any]:
        started[target].set()
        with anyio.fail_after(5):
            for event in started.values():
                await event.wait()
        return {"choices": [{"message": {"content": "The answer is 12."}}], "usage": {}}

    async def go() -> Any:
        return await run_cascade(QUESTION, call=call, fast="fast", verifier="check")

    assert anyio.run(go).result == "agreed"


def test_timeout_must_be_positive() -> None:
    async def call(target: str, request: ChatRequest) -> dict[str, Any]:
        raise AssertionError("not called")

    async def go() -> Any:
        return await run_cascade(QUESTION, call=call, fast="f", verifier="v", verifier_timeout_s=0)

    with pytest.raises(ValueError, match="verifier_timeout_s"):
        anyio.run(go)


# -- when the cascade runs ------------------------------------------------------------

THRESHOLDS = {"balanced": 0.4}


def scored(score: float) -> RouteDecision:
    return decide(score, mode="balanced", thresholds=THRESHOLDS)


@pytest.mark.parametrize(
    ("decision", "options", "run", "reason"),
    [
        (scored(0.45), {}, True, "score_near_threshold"),
        (scored(0.30), {}, True, "score_near_threshold"),
        (scored(0.55), {}, True, "score_near_threshold"),
        (scored(0.05), {}, False, "score_clear"),  # clear chat stays fast
        (scored(0.95), {}, False, "score_clear"),  # clear olympiad maths goes to reasoning
        (scored(0.05), {"forced": True}, True, "client_asked_to_verify"),
        (scored(0.95), {"forced": True}, True, "client_asked_to_verify"),
        (scored(0.45), {"verifier": None}, False, "cascade_off"),
        (scored(0.45), {"verifier": ""}, False, "cascade_off"),
        (scored(0.45), {"tenant_enabled": False}, False, "cascade_off_for_tenant"),
        (
            scored(0.45),
            {"tenant_enabled": False, "forced": True},
            False,
            "cascade_off_for_tenant",
        ),
        (scored(0.45), {"allowed_tiers": ("fast",)}, False, "reasoning_not_allowed"),
        (scored(0.45), {"band": 0.01}, False, "score_clear"),
        # A cascaded stream waits for a whole answer before its first token: opt-in.
        (scored(0.45), {"stream": True}, False, "stream_not_cascaded"),
        (scored(0.45), {"stream": True, "streams_cascaded": True}, True, "score_near_threshold"),
        (scored(0.45), {"stream": True, "forced": True}, True, "client_asked_to_verify"),
        (scored(0.45), {"band": 0.05}, True, "score_near_threshold"),
        (
            RouteDecision("fast", 0.45, 0.4, "balanced", BUDGET_DEGRADED),
            {"forced": True},
            False,
            "decided_by_rule",
        ),
        (RouteDecision("fast", 0.45, 0.4, "balanced", LATENCY_LIMIT), {}, False, "decided_by_rule"),
        (
            RouteDecision("fast", 0.45, 0.4, "balanced", "conversation_stays_on_tier"),
            {},
            False,
            "conversation_stays_on_tier",
        ),
        (
            RouteDecision("fast", 0.45, 0.4, "balanced", "conversation_stays_on_tier"),
            {"forced": True},
            True,
            "client_asked_to_verify",
        ),
    ],
)
def test_cascade_choice(
    decision: RouteDecision, options: dict[str, Any], run: bool, reason: str
) -> None:
    choice = cascade_choice(decision, **{"verifier": "gemini-flash", **options})
    assert (choice.run, choice.reason) == (run, reason)


def test_band_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="band"):
        cascade_choice(scored(0.4), verifier="v", band=1.5)
