"""Shadow comparisons: config, grading, records, live quality figures through the proxy."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import httpx
import pytest

from classifier.data import read_records
from classifier.metrics import apgr
from router.cli import main as cli_main
from router.config import build_config
from router.errors import ConfigError
from router.observe.quality import (
    MIN_PAIRS_FOR_APGR,
    estimated_apgr,
    quality_figures,
    ratio_interval,
)
from router.policy import RouteDecision
from router.requests import ChatRequest
from router.state.shadow_records import GradedPair, ShadowRecords, export_shadow_records
from router.upstream.shadow import ShadowJob, ShadowRunner, judge_points, parse_verdict
from tests.router.conftest import CHAT, OLYMPIAD, REDIS_URL, proxy_config
from tests.router.fakes import InMemoryBudgets

BASE: dict[str, Any] = {
    "model_list": [
        {"model_name": "fast", "litellm_params": {"model": "openai/fast-model"}},
        {"model_name": "reasoning", "litellm_params": {"model": "openai/reasoning-model"}},
        {"model_name": "judge", "litellm_params": {"model": "openai/judge-model"}},
    ],
}


def test_shadow_defaults_to_off_and_a_tenant_section_replaces_the_global_one():
    config = build_config({
        **BASE,
        "shadow": {"rate": 0.02, "daily_usd": 5, "judge": "judge"},
        "tenants": [{"name": "a", "shadow": {"rate": 1.0}}, {"name": "b"}],
    })  # fmt: skip
    a, b = config.tenants
    assert build_config(BASE).shadow.rate == 0.0
    assert config.shadow_for(a).rate == 1.0 and config.shadow_for(a).judge is None
    assert config.shadow_for(b).rate == 0.02 and config.shadow_for(b).judge == "judge"
    assert config.shadow_for(None).daily_usd == 5.0


@pytest.mark.parametrize(
    ("shadow", "complaint"),
    [
        ({"rate": 1.5}, "shadow.rate"),
        ({"rate": -0.1}, "shadow.rate"),
        ({"daily_usd": -1}, "shadow.daily_usd"),
        ({"judge": "nobody"}, "'nobody' is not a model_name"),
        ({"sample": 0.1}, "shadow.sample"),
    ],
)
def test_bad_shadow_settings_are_refused_with_the_field_named(shadow, complaint):
    with pytest.raises(ConfigError, match=complaint):
        build_config({**BASE, "shadow": shadow})


def test_a_tenant_judge_must_be_a_configured_model():
    with pytest.raises(ConfigError, match="tenants.a.shadow.judge"):
        build_config({**BASE, "tenants": [{"name": "a", "shadow": {"judge": "gpt-x"}}]})


# -- grading, pure -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("VERDICT: A", "A"),
        ("Both are close.\nverdict: **tie**", "TIE"),
        ("B", "B"),
        ("VERDICT: A ... on reflection VERDICT: B", "B"),
        ("I cannot decide", None),
        (None, None),
    ],
)
def test_a_judge_verdict_is_read_from_its_reply(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    ("fast_first", "reasoning_first", "fast_points"),
    [
        ("A", "B", 1.0),  # the fast answer won in both orders
        ("B", "A", 0.0),
        ("A", "A", 0.5),  # a judge that always picks the first position: a tie
        ("TIE", "TIE", 0.5),
        ("A", None, 1.0),
        (None, None, None),
    ],
)
def test_both_orders_cancel_position_bias(fast_first, reasoning_first, fast_points):
    assert judge_points(fast_first, reasoning_first) == fast_points


def test_quality_kept_is_a_ratio_of_means_with_an_interval_around_it():
    pairs = [GradedPair("fast", 1.0, 1.0, 0.1)] * 8 + [GradedPair("fast", 0.0, 1.0, 0.2)] * 2
    figures = quality_figures({"comparable": 10, "agreed": 8}, pairs)
    assert figures["compared"] == 10 and figures["agreement"] == 0.8
    assert figures["quality_kept"] == 0.8
    low, high = figures["quality_kept_95"]
    assert low < 0.8 < high
    assert figures["estimated_apgr"] is None  # too few pairs to say


def test_a_few_pairs_that_all_agree_do_not_claim_certainty():
    kept, low, high = ratio_interval([1.0] * 5, [1.0] * 5)
    assert kept == 1.0 and low < 0.8 and high > 1.0


def test_estimated_apgr_matches_the_offline_definition_once_there_are_enough_pairs():
    rng = random.Random(7)
    pairs = []
    for _ in range(200):
        score = rng.random()
        fast = 0.0 if rng.random() < score else 1.0  # harder prompts: the fast tier fails more
        pairs.append(GradedPair("fast", fast, 1.0, score))
    expected = apgr([p.score for p in pairs], [p.fast for p in pairs], [p.reasoning for p in pairs])
    assert estimated_apgr(pairs) == pytest.approx(expected, abs=1e-4)
    assert estimated_apgr(pairs[: MIN_PAIRS_FOR_APGR - 1]) is None


# -- through the real proxy and the simulated upstream -------------------------------

ADMIN_KEY = "sk-admin-shadow-0123456789"
AGREED = "Twelve apples.\nThe answer is 12."


def shadow_proxy(serve_on_redis, upstream, run_id, *, log_prompts=False, **shadow):
    return serve_on_redis(shadow_config(upstream, run_id, log_prompts=log_prompts, **shadow),
                          admin_key=ADMIN_KEY, metrics_key=ADMIN_KEY)  # fmt: skip


def shadow_config(upstream, run_id, *, log_prompts=False, **shadow):
    """A proxy whose tenants ``<run>a`` (shadowed as asked) and ``<run>b`` (never) are
    served by the simulator; a ``judge`` model is configured for judge tests."""
    raw = proxy_config(upstream.base_url).model_dump()
    judge = {**raw["model_list"][0], "model_name": "judge"}
    judge["litellm_params"] = {**judge["litellm_params"], "model": "openai/judge-model"}
    raw["model_list"].append(judge)
    raw["tenants"] += [
        {"name": f"{run_id}a", "api_keys": [f"sk-{run_id}-a"], "log_prompts": log_prompts,
         "shadow": {"rate": 1.0, **shadow}},
        {"name": f"{run_id}b", "api_keys": [f"sk-{run_id}-b"]},
    ]  # fmt: skip
    return build_config(raw)


def chat(server, key, messages, **body):
    response = httpx.post(f"{server.url}/v1/chat/completions",
                          json={"model": "auto", "messages": messages, **body},
                          headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return response


def quality(server, key):
    usage = httpx.get(f"{server.url}/v1/usage", headers={"authorization": f"Bearer {key}"},
                      timeout=10)  # fmt: skip
    assert usage.status_code == 200, usage.text
    return usage.json()["quality"]


def settled(server, key, *, until):
    """The quality figures once ``until(figures)`` holds (shadowing runs after the answer)."""
    deadline = time.monotonic() + 30
    figures = quality(server, key)
    while not until(figures) and time.monotonic() < deadline:
        time.sleep(0.05)
        figures = quality(server, key)
    return figures


def done(count):
    return lambda q: q["compared"] + q["ungraded"] + q["failed"] + q["refused"] >= count


def test_rate_one_shadows_every_routed_request_and_usage_counts_the_pairs(
    serve_on_redis, clean_upstream, run_id
):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer="The answer is 12.")
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    served = [chat(server, f"sk-{run_id}-a", m).headers["x-thinkroute-tier"]
              for m in (CHAT, OLYMPIAD, CHAT)]  # fmt: skip
    assert served == ["fast", "reasoning", "fast"]
    figures = settled(server, f"sk-{run_id}-a", until=done(3))
    assert figures["compared"] == 3 and figures["comparable"] == 3
    assert figures["agreement"] == 1.0 and figures["quality_kept"] == 1.0
    assert figures["shadow_spend_usd"] > 0
    models = [r["body"]["model"] for r in clean_upstream.requests]
    # Each request asked its tier, then the other one in the background.
    assert sorted(models) == ["fast-model"] * 3 + ["reasoning-model"] * 3


def test_disagreement_without_a_judge_takes_the_reasoning_tier_as_right(
    serve_on_redis, clean_upstream, run_id
):
    clean_upstream.control("fast-model", answer="The answer is 11.")
    clean_upstream.control("reasoning-model", answer="The answer is 12.")
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT)
    chat(server, f"sk-{run_id}-a", OLYMPIAD)
    figures = settled(server, f"sk-{run_id}-a", until=done(2))
    assert figures["compared"] == 2 and figures["agreement"] == 0.0
    # The fast answer served once (scored 0), the reasoning answer once (1): kept 1 of 2.
    assert figures["quality_kept"] == 0.5


def test_rate_zero_shadows_nothing(serve_on_redis, clean_upstream, run_id):
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id, rate=0.0)
    chat(server, f"sk-{run_id}-a", CHAT)
    chat(server, f"sk-{run_id}-b", CHAT)  # b has no shadow section, and the default is off
    time.sleep(0.3)
    assert [r["body"]["model"] for r in clean_upstream.requests] == ["fast-model", "fast-model"]
    assert quality(server, f"sk-{run_id}-a")["compared"] == 0


def test_the_daily_cap_stops_shadowing_and_says_so(serve_on_redis, clean_upstream, run_id):
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id, daily_usd=0)
    answer = chat(server, f"sk-{run_id}-a", CHAT)
    figures = settled(server, f"sk-{run_id}-a", until=done(1))
    assert figures["refused"] == 1 and figures["compared"] == 0
    assert figures["shadow_spend_usd"] == 0
    assert answer.json()["choices"][0]["message"]["content"]
    assert [r["body"]["model"] for r in clean_upstream.requests] == ["fast-model"]


def test_a_failing_shadow_call_changes_nothing_for_the_client(
    serve_on_redis, clean_upstream, run_id
):
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    before = chat(server, f"sk-{run_id}-b", OLYMPIAD)  # not shadowed
    clean_upstream.control("fast-model", fail_status=500)
    after = chat(server, f"sk-{run_id}-a", OLYMPIAD)  # served by reasoning, shadowed to fast
    figures = settled(server, f"sk-{run_id}-a", until=done(1))
    assert figures["failed"] == 1 and figures["compared"] == 0
    assert after.status_code == 200
    assert after.json()["choices"] == before.json()["choices"]
    assert after.headers["x-thinkroute-tier"] == "reasoning"


def test_a_judge_grades_answers_that_cannot_be_compared(serve_on_redis, clean_upstream, run_id):
    clean_upstream.control("fast-model", answer="Whiskers, a soft and friendly name.")
    clean_upstream.control("reasoning-model", answer="Maybe Miso: short, warm and unusual.")
    # A judge that always names the first answer: both orders cancel it into a tie.
    clean_upstream.control("judge-model", answer="VERDICT: A")
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id, judge="judge")
    chat(server, f"sk-{run_id}-a", CHAT)
    figures = settled(server, f"sk-{run_id}-a", until=done(1))
    assert figures["compared"] == 1 and figures["comparable"] == 0
    assert figures["agreement"] is None and figures["quality_kept"] == 1.0
    judged = [r for r in clean_upstream.requests if r["body"]["model"] == "judge-model"]
    assert len(judged) == 2  # both orders
    first, second = (r["body"]["messages"][-1]["content"] for r in judged)
    assert first.index("Whiskers") < first.index("Miso")
    assert second.index("Miso") < second.index("Whiskers")


def test_without_a_judge_incomparable_pairs_are_ungraded(serve_on_redis, clean_upstream, run_id):
    clean_upstream.control("fast-model", answer="Whiskers, a soft and friendly name.")
    clean_upstream.control("reasoning-model", answer="Maybe Miso: short, warm and unusual.")
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT)  # prose: no final answers to compare
    figures = settled(server, f"sk-{run_id}-a", until=done(1))
    assert figures["ungraded"] == 1 and figures["compared"] == 0
    assert figures["quality_kept"] is None


def test_cached_answers_are_not_shadowed(serve_on_redis, clean_upstream, run_id):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer=AGREED)
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT, temperature=0)
    assert settled(server, f"sk-{run_id}-a", until=done(1))["compared"] == 1
    hit = chat(server, f"sk-{run_id}-a", CHAT, temperature=0)
    assert hit.headers["x-thinkroute-cache"] == "hit"
    time.sleep(0.3)
    assert quality(server, f"sk-{run_id}-a")["compared"] == 1
    assert len(clean_upstream.requests) == 2


def test_a_finished_stream_is_shadowed(serve_on_redis, clean_upstream, run_id):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer=AGREED)
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    text = chat(server, f"sk-{run_id}-a", CHAT, stream=True).text
    assert "[DONE]" in text
    figures = settled(server, f"sk-{run_id}-a", until=done(1))
    assert figures["compared"] == 1 and figures["agreement"] == 1.0


def test_one_tenant_never_sees_anothers_quality(serve_on_redis, clean_upstream, run_id):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer=AGREED)
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT)
    assert settled(server, f"sk-{run_id}-a", until=done(1))["compared"] == 1
    theirs = quality(server, f"sk-{run_id}-b")
    assert theirs["compared"] == 0 and theirs["shadow_spend_usd"] == 0
    assert theirs["quality_kept"] is None


@pytest.mark.anyio
async def test_records_keep_features_not_text_for_a_tenant_that_logs_no_prompts(
    serve_on_redis, clean_upstream, run_id, store, tmp_path
):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer=AGREED)
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT)
    assert settled(server, f"sk-{run_id}-a", until=done(1))["compared"] == 1
    records = [r async for _, r in ShadowRecords(store).records(f"{run_id}a")]
    assert len(records) == 1
    (record,) = records
    assert "messages" not in record and CHAT[0]["content"] not in json.dumps(record)
    assert len(record["features"]) > 100 and record["fast"] == record["reasoning"] == 1.0
    assert record["served_tier"] == "fast" and record["score"] is not None
    summary = await export_shadow_records(store, f"{run_id}a", tmp_path / "out.jsonl")
    assert summary.written == 0 and summary.without_text == 1


def test_export_writes_records_thinkroute_train_reads(
    serve_on_redis, clean_upstream, run_id, tmp_path, monkeypatch
):
    clean_upstream.control("fast-model", answer="The answer is 11.")
    clean_upstream.control("reasoning-model", answer="The answer is 12.")
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id, log_prompts=True)
    chat(server, f"sk-{run_id}-a", CHAT)
    chat(server, f"sk-{run_id}-a", OLYMPIAD)
    assert settled(server, f"sk-{run_id}-a", until=done(2))["compared"] == 2
    output = tmp_path / "shadow.jsonl"
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    assert cli_main(["export-decisions", "--tenant", f"{run_id}a", "--shadow",
                     "--output", str(output)]) == 0  # fmt: skip
    records = list(read_records(output))
    assert len(records) == 2
    assert {(r.low_score, r.high_score) for r in records} == {(0.0, 1.0)}
    assert {r.text for r in records} == {CHAT[0]["content"], OLYMPIAD[0]["content"]}


def test_metrics_and_the_dashboard_show_each_tenants_quality(
    serve_on_redis, clean_upstream, run_id
):
    clean_upstream.control("fast-model", answer=AGREED)
    clean_upstream.control("reasoning-model", answer=AGREED)
    server = shadow_proxy(serve_on_redis, clean_upstream, run_id)
    chat(server, f"sk-{run_id}-a", CHAT)
    assert settled(server, f"sk-{run_id}-a", until=done(1))["compared"] == 1
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    text = httpx.get(f"{server.url}/metrics", headers=admin, timeout=10).text
    assert f'thinkroute_quality_kept{{bound="estimate",tenant="{run_id}a"}} 1.0' in text
    assert f'thinkroute_shadow_pairs{{outcome="compared",tenant="{run_id}a"}} 1.0' in text
    assert f'tenant="{run_id}b"' not in text  # not shadowed: no series
    summary = httpx.get(f"{server.url}/v1/dashboard/summary", headers=admin, timeout=10).json()
    rows = {row["tenant"]: row for row in summary["tenants"]}
    assert rows[f"{run_id}a"]["quality"]["compared"] == 1
    assert rows[f"{run_id}b"]["quality"]["compared"] == 0
    # A tenant's own key sees its own row only.
    own = httpx.get(f"{server.url}/v1/dashboard/summary", timeout=10,
                    headers={"authorization": f"Bearer sk-{run_id}-b"})  # fmt: skip
    if own.status_code == 200:
        assert [row["tenant"] for row in own.json()["tenants"]] == [f"{run_id}b"]


# -- the runner, with its I/O passed in ------------------------------------------------


class MemoryRecords:
    """:class:`ShadowRecords` in dicts: spend, counts and kept pairs of one day."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.kept: list[tuple[GradedPair, dict[str, Any]]] = []

    async def reserve(self, tenant, *, amount_micro, limit_micro):
        if self.spent.get(tenant, 0) + amount_micro > limit_micro:
            return False
        self.spent[tenant] = self.spent.get(tenant, 0) + amount_micro
        return True

    async def settle(self, tenant, *, reserved_micro, actual_micro):
        self.spent[tenant] += actual_micro - reserved_micro

    async def count(self, tenant, name, amount=1):
        self.counts[tenant, name] = self.counts.get((tenant, name), 0) + amount

    async def add(self, tenant, pair, record):
        self.kept.append((pair, record))


def reply(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}  # fmt: skip


def runner_for(call, records=None, *, budgets=None, **shadow):
    config = shadow_config(_NoUpstream(), "tenant-x", **shadow)
    runner = ShadowRunner(config=config, call=call, records=records or MemoryRecords(),
                          budgets=budgets, max_in_flight=2, max_queued=3, drain_s=0.2)  # fmt: skip
    return runner, config.tenants[-2]


class _NoUpstream:
    base_url = "http://127.0.0.1:9/v1"  # nothing listens: these runners never dial out


def job(tenant, answer="The answer is 12.", tier="fast"):
    decision = RouteDecision(tier, 0.3, 0.5, "balanced", "below_threshold", tier)
    request = ChatRequest(model="auto", messages=[{"role": "user", "content": "3 * 4?"}])
    return ShadowJob(tenant, request, decision, tier, reply(answer))


@pytest.mark.anyio
async def test_a_decisive_judge_scores_each_side_and_is_asked_in_both_orders():
    asked: list[str] = []

    async def call(params, target):
        asked.append(target.model_name)
        if target.model_name != "judge":
            return reply("Miso, short and warm.")
        shown = params["messages"][-1]["content"]
        # This judge prefers Miso wherever it is shown.
        return reply(
            "VERDICT: A" if shown.index("Miso") < shown.index("Whiskers") else "VERDICT: B"
        )

    records = MemoryRecords()
    runner, tenant = runner_for(call, records, judge="judge")
    assert runner.offer(job(tenant, "Whiskers, a friendly name."))
    await runner.wait()
    ((pair, record),) = records.kept
    assert (pair.fast, pair.reasoning) == (0.0, 1.0) and record["graded_by"] == "judge"
    assert asked == ["reasoning", "judge", "judge"]


@pytest.mark.anyio
async def test_more_comparisons_than_the_queue_holds_are_dropped_and_counted():
    release = asyncio.Event()

    async def call(params, target):
        await release.wait()
        return reply("The answer is 12.")

    records = MemoryRecords()
    runner, tenant = runner_for(call, records)
    offered = [runner.offer(job(tenant)) for _ in range(5)]
    assert offered == [True, True, True, False, False]
    release.set()
    await runner.wait()
    assert records.counts[tenant.name, "dropped"] == 2
    assert records.counts[tenant.name, "agreed"] == 3 and len(records.kept) == 3


@pytest.mark.anyio
async def test_shutdown_waits_briefly_then_cancels_and_takes_no_more():
    async def call(params, target):
        await asyncio.sleep(60)  # a shadow call that would outlive the server
        return reply("x")

    records = MemoryRecords()
    runner, tenant = runner_for(call, records)
    assert runner.offer(job(tenant))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(runner.aclose(), timeout=5)
    assert not runner._tasks and not records.kept
    assert not runner.offer(job(tenant))


@pytest.mark.anyio
async def test_a_tenant_charged_for_shadowing_pays_from_its_own_budget():
    async def call(params, target):
        return reply("The answer is 12.")

    budgets = InMemoryBudgets()
    runner, tenant = runner_for(call, budgets=budgets, charge_tenant=True)
    runner.offer(job(tenant))
    await runner.wait()
    assert budgets.spent_micro > 0
    free, tenant = runner_for(call, budgets=(unused := InMemoryBudgets()))
    free.offer(job(tenant))
    await free.wait()
    assert unused.spent_micro == 0
