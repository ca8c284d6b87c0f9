"""The cascade through the real proxy: fast and verifier answers compared, then escalated.

A live proxy over real Redis and real LiteLLM, in front of the simulated upstream, whose
``answer`` knob makes the fast, verifier and reasoning models say what a test needs.
Scores are fixed (a stand-in scorer), so the band rule is what is tested, not the head.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from router.config import build_config
from router.errors import ConfigError
from router.proxy import Router
from tests.router.conftest import UPSTREAM_KEY

PRICES = {
    "fast": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
    "flash": {"input_cost_per_token": 0.5e-6, "output_cost_per_token": 1e-6},
    "reasoning": {"input_cost_per_token": 5e-6, "output_cost_per_token": 2e-5},
}
METRICS_KEY = "sk-scrape-0123456789"
# Where a score lies against the shipped balanced threshold: within the band on either
# side, or clear of it.
NEAR_BELOW, NEAR_ABOVE, CLEAR_CHAT, CLEAR_HARD = "near_below", "near_above", "chat", "hard"
QUESTION = [
    {"role": "user", "content": "Our three invoices are 120, 95 and 85; what is the total?"}
]


class FixedScorer:
    """The real classifier, but every text scores the same: ``where`` against its balanced
    threshold (0.05 below or above it, or clear chat 0.01, clear maths 0.99)."""

    def __init__(self, inner: Any, where: str) -> None:
        threshold = inner.thresholds["balanced"]
        self.inner = inner
        self.score = {NEAR_BELOW: threshold - 0.05, NEAR_ABOVE: threshold + 0.05,
                      CLEAR_CHAT: 0.01, CLEAR_HARD: 0.99}[where]  # fmt: skip
        self.fingerprint = f"fixed-{uuid.uuid4().hex[:8]}"  # its scores are its own

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_texts(self, texts: list[str]) -> list[float]:
        return [self.score] * len(texts)


def cascade_config(upstream_url: str, tenant: str, **cascade: Any) -> Any:
    def model(name: str) -> dict[str, Any]:
        params = {"model": f"openai/{name}-model", "api_base": upstream_url,
                  "api_key": UPSTREAM_KEY}  # fmt: skip
        return {"model_name": name, "litellm_params": params, "model_info": PRICES[name]}

    tenant_options = cascade.pop("tenant_options", {})
    others = [{"name": name, "api_keys": [f"sk-{name}-key"]} for name in cascade.pop("others", [])]
    return build_config(
        {
            "model_list": [model("fast"), model("flash"), model("reasoning")],
            "tiers": {"fast": {"model": "fast"}, "reasoning": {"model": "reasoning"}},
            "tenants": [
                {"name": tenant, "api_keys": [f"sk-{tenant}-key"], **tenant_options},
                *others,
            ],
            "cache": {"enabled": False},
            "dispatch": {"num_retries": 0, "timeout_s": 10},
            "cascade": {"verifier": "flash", **cascade},
        }
    )


@pytest.fixture
def tenant(run_id: str) -> str:
    return f"{run_id}-t"


@pytest.fixture
def start(serve_on_redis, clean_upstream, classifier, tenant):
    def make(score: str, **cascade: Any):
        config = cascade_config(clean_upstream.base_url, tenant, **cascade)
        return serve_on_redis(config, scorer=FixedScorer(classifier, score),
                              metrics_key=METRICS_KEY)  # fmt: skip

    return make


def ask(server, tenant: str, *, model: str = "auto", **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": QUESTION, **body}
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    return httpx.post(f"{server.url}/v1/chat/completions", json=payload, headers=headers,
                      timeout=30)  # fmt: skip


def answers(upstream, *, fast: str, flash: str, reasoning: str = "The answer is 300.") -> None:
    upstream.control("fast-model", answer=fast)
    upstream.control("flash-model", answer=flash)
    upstream.control("reasoning-model", answer=reasoning)


def called(upstream) -> list[str]:
    return sorted(r["body"]["model"] for r in upstream.requests)


def content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def usage_cost(usage: dict[str, Any], prices: dict[str, float]) -> float:
    return (usage["prompt_tokens"] * prices["input_cost_per_token"]
            + usage["completion_tokens"] * prices["output_cost_per_token"])  # fmt: skip


def test_agreement_keeps_the_fast_answer_and_charges_both_calls(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="The answer is 300.", flash="Answer: 300")
    response = ask(server, tenant)
    assert response.status_code == 200
    assert content(response) == "The answer is 300."
    assert response.headers["x-thinkroute-cascade"] == "agreed"
    assert response.headers["x-thinkroute-tier"] == "fast"
    assert response.headers["x-thinkroute-reason"] == "verifier_agreed"
    assert response.headers["x-thinkroute-verifier"] == "flash"
    assert called(clean_upstream) == ["fast-model", "flash-model"]
    # The cost header is both calls, as the books are.
    usage = httpx.get(f"{server.url}/v1/usage",
                      headers={"authorization": f"Bearer sk-{tenant}-key"}).json()  # fmt: skip
    charged = float(response.headers["x-thinkroute-cost-usd"])
    assert usage["day"]["spend_usd"] == pytest.approx(charged, abs=2e-6)
    assert usage["day"]["requests"] == 1
    fast_only = usage_cost(response.json()["usage"], PRICES["fast"])
    assert charged > fast_only  # the verifier's call is in it


def test_disagreement_escalates_to_the_reasoning_tier(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.",
            reasoning="Adding them: 120 + 95 + 85 = 300. The answer is 300.")  # fmt: skip
    response = ask(server, tenant)
    assert response.status_code == 200
    assert content(response).endswith("The answer is 300.")
    assert response.headers["x-thinkroute-cascade"] == "escalated"
    assert response.headers["x-thinkroute-tier"] == "reasoning"
    assert response.headers["x-thinkroute-reason"] == "verifier_disagreed"
    assert "x-thinkroute-fallback" not in response.headers
    assert called(clean_upstream) == ["fast-model", "flash-model", "reasoning-model"]
    # The reasoning tier got the client's request, not the fast call's.
    bodies = {r["body"]["model"]: r["body"] for r in clean_upstream.requests}
    assert bodies["reasoning-model"]["messages"] == QUESTION
    assert float(response.headers["x-thinkroute-cost-usd"]) > usage_cost(
        response.json()["usage"], PRICES["reasoning"]
    )


def test_no_comparable_answer_keeps_the_prompt_only_decision(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(
        clean_upstream,
        fast="Here are some thoughts on your invoices and how to file them",
        flash="Invoices are documents a seller sends a buyer listing goods and prices",
    )
    response = ask(server, tenant)
    assert response.headers["x-thinkroute-cascade"] == "no_answer"
    assert response.headers["x-thinkroute-tier"] == "fast"
    assert response.headers["x-thinkroute-reason"] == "score_below_threshold"
    assert content(response).startswith("Here are some thoughts")
    assert called(clean_upstream) == ["fast-model", "flash-model"]


def test_on_the_reasoning_side_agreement_saves_the_reasoning_call(start, tenant, clean_upstream):
    server = start(NEAR_ABOVE)
    answers(clean_upstream, fast="The answer is 300.", flash="300")
    response = ask(server, tenant)
    assert response.headers["x-thinkroute-cascade"] == "agreed"
    assert response.headers["x-thinkroute-tier"] == "fast"
    assert called(clean_upstream) == ["fast-model", "flash-model"]


@pytest.mark.parametrize(
    ("score", "options", "header"),
    [
        (CLEAR_CHAT, {}, "skipped:score_clear"),
        (CLEAR_HARD, {}, "skipped:score_clear"),
        (NEAR_BELOW, {"tenant_options": {"cascade": False}}, "skipped:cascade_off_for_tenant"),
        (NEAR_BELOW, {"band": 0.01}, "skipped:score_clear"),
    ],
)
def test_clear_scores_and_switched_off_tenants_skip_it(
    start, tenant, clean_upstream, score, options, header
):
    server = start(score, **options)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    response = ask(server, tenant)
    assert response.status_code == 200
    assert response.headers["x-thinkroute-cascade"] == header
    assert "x-thinkroute-verifier" not in response.headers
    assert len(clean_upstream.requests) == 1  # one tier, no verifier


def test_auto_verify_forces_it_on_a_clear_score(start, tenant, clean_upstream):
    server = start(CLEAR_CHAT)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    response = ask(server, tenant, model="auto:verify")
    assert response.headers["x-thinkroute-cascade"] == "escalated"
    assert response.headers["x-thinkroute-mode"] == "balanced"  # the tenant's default mode


def test_a_failing_verifier_never_fails_the_request(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="The answer is 300.", flash="300")
    clean_upstream.control("flash-model", fail_status=500)
    response = ask(server, tenant)
    assert response.status_code == 200
    assert content(response) == "The answer is 300."
    assert response.headers["x-thinkroute-cascade"] == "no_answer"


def test_a_verifier_slower_than_its_timeout_is_no_answer(start, tenant, clean_upstream):
    server = start(NEAR_BELOW, verifier_timeout_s=0.3)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    clean_upstream.control("flash-model", latency_s=3.0)
    response = ask(server, tenant)
    assert response.status_code == 200
    assert content(response) == "The answer is 290."  # the prompt-only decision: fast
    assert response.headers["x-thinkroute-cascade"] == "no_answer"


def test_a_failing_fast_call_falls_back_to_reasoning(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="x", flash="300")
    clean_upstream.control("fast-model", fail_status=500)
    response = ask(server, tenant)
    assert response.status_code == 200
    assert response.headers["x-thinkroute-cascade"] == "fast_failed"
    assert response.headers["x-thinkroute-tier"] == "reasoning"
    assert response.headers["x-thinkroute-fallback"] == "fast failed"


def test_everything_failing_is_an_upstream_error_and_charges_what_was_made(
    start, tenant, clean_upstream
):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="x", flash="300")
    clean_upstream.control("fast-model", fail_status=500)
    clean_upstream.control("reasoning-model", fail_status=503)
    response = ask(server, tenant)
    assert response.status_code in (502, 503)
    assert response.json()["error"]["type"]  # OpenAI's error shape, not a traceback
    usage = httpx.get(f"{server.url}/v1/usage",
                      headers={"authorization": f"Bearer sk-{tenant}-key"}).json()  # fmt: skip
    assert usage["day"]["spend_usd"] > 0  # the verifier answered, and is paid for
    assert usage["day"]["reserved_usd"] == 0  # nothing left held


def test_a_budget_that_cannot_cover_three_calls_skips_it(start, tenant, clean_upstream):
    # Room for one fast request (~$0.0021 reserved) but not for the cascade's worst case.
    server = start(NEAR_BELOW, tenant_options={"budget": {"daily_usd": 0.01}})
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    response = ask(server, tenant)
    assert response.status_code == 200
    assert response.headers["x-thinkroute-cascade"] == "skipped:budget_cannot_cover_cascade"
    assert called(clean_upstream) == ["fast-model"]


def test_streams_skip_it_unless_asked(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    body = {"model": "auto", "messages": QUESTION, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers,
                      timeout=30) as response:  # fmt: skip
        response.read()
    assert response.headers["x-thinkroute-cascade"] == "skipped:stream_not_cascaded"
    assert called(clean_upstream) == ["fast-model"]


def test_a_cascaded_stream_replays_the_chosen_answer(start, tenant, clean_upstream):
    from openai import OpenAI

    server = start(NEAR_BELOW, streams=True)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.",
            reasoning="The answer is 300.")  # fmt: skip
    client = OpenAI(base_url=f"{server.url}/v1", api_key=f"sk-{tenant}-key")
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The answer is 300."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert raw.headers["x-thinkroute-cascade"] == "escalated"
    assert raw.headers["x-thinkroute-tier"] == "reasoning"


def test_the_metric_counts_what_it_did(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    assert ask(server, tenant).headers["x-thinkroute-cascade"] == "escalated"
    scrape = {"authorization": f"Bearer {METRICS_KEY}"}
    metrics = httpx.get(f"{server.url}/metrics", headers=scrape).text
    assert f'thinkroute_cascade_total{{outcome="escalated",tenant="{tenant}"}} 1.0' in metrics


def usage_today(server, tenant: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    response = httpx.get(f"{server.url}/v1/usage", headers=headers, timeout=10)
    assert response.status_code == 200
    day: dict[str, Any] = response.json()["day"]
    return day


def test_usage_counts_each_outcome_and_the_escalation_rate(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    assert usage_today(server, tenant)["cascade"]["escalation_rate"] is None  # no run yet
    seen = []
    replies = [
        ("The answer is 300.", "300"),
        ("The answer is 290.", "Answer: 300"),
        ("The total is 300.", "The answer is 300."),  # a sentence, compared by its number
        ("Some thoughts on invoices", "Invoices list goods and prices"),
    ]
    for fast, flash in replies:
        answers(clean_upstream, fast=fast, flash=flash)
        seen.append(ask(server, tenant).headers["x-thinkroute-cascade"])
    assert seen == ["agreed", "escalated", "agreed", "no_answer"]
    # A stream outside the cascade is a request, not a run.
    body = {"model": "auto", "messages": QUESTION, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer sk-{tenant}-key"}) as stream:  # fmt: skip
        stream.read()
    assert stream.headers["x-thinkroute-cascade"] == "skipped:stream_not_cascaded"

    day = usage_today(server, tenant)
    assert day["requests"] == 5
    assert day["cascade"] == {"runs": 4, "agreed": 2, "kept": 0, "escalated": 1,
                              "no_answer": 1, "fast_failed": 0,
                              "escalation_rate": 0.25}  # fmt: skip


def test_no_cascade_block_means_no_header(serve_on_redis, clean_upstream, classifier, tenant):
    config = cascade_config(clean_upstream.base_url, tenant).model_copy(update={"cascade": None})
    server = serve_on_redis(config, scorer=FixedScorer(classifier, NEAR_BELOW))
    response = ask(server, tenant)
    assert response.status_code == 200
    assert "x-thinkroute-cascade" not in response.headers


@pytest.mark.anyio
async def test_the_sdk_takes_the_same_path(clean_upstream, classifier, tenant):
    config = cascade_config(clean_upstream.base_url, tenant, verifier="self")
    answers(clean_upstream, fast="The answer is 300.", flash="unused")
    router = Router(config=config, classifier=FixedScorer(classifier, CLEAR_CHAT))
    try:
        completion = await router.acompletion({"model": "auto:verify", "messages": QUESTION})
    finally:
        await router.aclose()
    assert completion.cascade == "agreed"  # the fast model sampled twice says the same
    assert completion.decision.reason == "verifier_agreed"
    temperatures = [r["body"].get("temperature") for r in clean_upstream.requests]
    assert sorted(temperatures, key=str) == [0.7, None]


def test_an_unknown_verifier_is_a_config_error(clean_upstream, tenant):
    with pytest.raises(ConfigError, match="cascade.verifier"):
        cascade_config(clean_upstream.base_url, tenant, verifier="nope")


def test_the_route_endpoint_says_whether_it_would_run(start, tenant, clean_upstream):
    server = start(NEAR_BELOW)
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    body = {"model": "auto", "messages": QUESTION}
    planned = httpx.post(f"{server.url}/v1/route", json=body, headers=headers).json()
    assert planned["cascade"] == {"run": True, "reason": "score_near_threshold"}
    assert clean_upstream.requests == []  # deciding calls no model


def test_models_lists_auto_verify_where_a_cascade_is_configured(start, tenant):
    server = start(NEAR_BELOW)
    headers = {"authorization": f"Bearer sk-{tenant}-key"}
    listed = [m["id"] for m in httpx.get(f"{server.url}/v1/models", headers=headers).json()["data"]]
    assert "auto:verify" in listed


def test_the_verifier_head_can_keep_differing_answers_where_reasoning_rarely_helps(
    start, tenant, clean_upstream
):
    # A clear chat score, forced through the cascade: the answers differ, and the head
    # (P(reasoning better) about 0.2 here, threshold 0.41) keeps the fast one.
    server = start(CLEAR_CHAT, verifier_head=True)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    response = ask(server, tenant, model="auto:verify")
    assert response.headers["x-thinkroute-cascade"] == "kept"
    assert response.headers["x-thinkroute-reason"] == "verifier_head_kept"
    assert called(clean_upstream) == ["fast-model", "flash-model"]


def test_the_verifier_head_escalates_differing_answers_near_the_threshold(
    start, tenant, clean_upstream
):
    server = start(NEAR_BELOW, verifier_head=True)
    answers(clean_upstream, fast="The answer is 290.", flash="The answer is 300.")
    response = ask(server, tenant)
    assert response.headers["x-thinkroute-cascade"] == "escalated"
    assert response.headers["x-thinkroute-tier"] == "reasoning"
