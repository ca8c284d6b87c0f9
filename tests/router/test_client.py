"""router.client against a live proxy: answers with their decisions, route, usage, admin.

Real HTTP, real Redis, the simulated upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from router.client import AsyncClient, Client, decision_from_headers
from router.policy import RouteDecision
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

ADMIN_KEY = "sk-admin-client-0123456789"
CHAT = [{"role": "user", "content": "hey! any tips for a relaxing sunday afternoon?"}]
OLYMPIAD = [{"role": "user", "content": (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)}]  # fmt: skip


@pytest.fixture
def proxy(serve_on_redis, clean_upstream, run_id) -> BackgroundServer:
    # log_prompts: feedback needs the chat text it would train on.
    tenants = [{"name": run_id, "api_keys": [f"sk-{run_id}"], "budget": {"daily_usd": 5},
                "log_prompts": True}]  # fmt: skip
    return serve_on_redis(
        proxy_config(clean_upstream.base_url, tenants=tenants), admin_key=ADMIN_KEY
    )


@pytest.fixture
def client(proxy, run_id) -> Iterator[Client]:
    with Client(base_url=proxy.base_url, api_key=f"sk-{run_id}", admin_key=ADMIN_KEY,
                max_retries=0) as sdk:  # fmt: skip
        yield sdk


def test_an_answer_comes_with_its_decision_cost_and_request_id(client, clean_upstream):
    easy, hard = client.chat(CHAT), client.chat(OLYMPIAD)
    assert "answer to" in easy.answer.choices[0].message.content
    assert (easy.decision.tier, easy.decision.model) == ("fast", "fast")
    assert easy.decision.reason == "score_below_threshold" and easy.decision.mode == "balanced"
    assert easy.decision.score < easy.decision.threshold
    assert easy.decision.reasoning_effort is None
    assert (hard.decision.tier, hard.decision.model) == ("reasoning", "reasoning")
    assert hard.decision.reasoning_effort == clean_upstream.requests[-1]["body"]["reasoning_effort"]
    assert 0 < easy.cost_usd < hard.cost_usd
    assert easy.request_id and easy.request_id != hard.request_id
    assert easy.fallback is None


def test_route_gives_the_decision_a_completion_would_get_without_calling_a_model(
    client, clean_upstream
):
    decision = client.route(OLYMPIAD, model="auto:cheap")
    assert isinstance(decision, RouteDecision) and decision.mode == "cheap"
    assert clean_upstream.requests == []
    answered = client.chat(OLYMPIAD, model="auto:cheap").decision
    assert (answered.tier, answered.model, answered.reasoning_effort) == (
        decision.tier, decision.model, decision.reasoning_effort,
    )  # fmt: skip
    assert answered.score == pytest.approx(decision.score, abs=1e-4)
    evidence = client.explain(OLYMPIAD, model="auto:cheap")
    assert evidence["score"] == pytest.approx(decision.score, abs=1e-4)
    assert len(evidence["nearest_kinds"]) == 3 and "/" in evidence["nearest_kinds"][0]["kind"]


def test_a_stream_knows_its_decision_before_the_first_chunk(client):
    with client.stream(CHAT) as routed:
        assert routed.decision.tier == "fast" and routed.request_id
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in routed.answer if chunk.choices
        )
    assert "answer to" in text


def test_usage_and_feedback_are_the_tenants_own(client):
    routed = client.chat(CHAT)
    day = client.usage()["day"]
    assert day["requests"] == 1 and day["spend_usd"] == pytest.approx(routed.cost_usd, abs=1e-6)
    receipt = client.feedback(routed.request_id, score=0.0)
    assert receipt["request_id"] == routed.request_id and receipt["score"] == 0.0
    with pytest.raises(openai.NotFoundError):
        client.feedback("not-a-request-of-ours", score=1.0)


def test_admin_helpers_manage_tenants_and_keys(client, proxy, run_id):
    name = f"{run_id}-new"
    created = client.admin.create_tenant({"name": name, "budget": {"daily_usd": 1}})
    assert created["name"] == name
    issued = client.admin.issue_key(name)
    newcomer = Client(base_url=proxy.base_url, api_key=issued["key"], max_retries=0)
    assert newcomer.chat(CHAT).decision.tier == "fast"
    assert client.admin.usage(name)["day"]["requests"] == 1
    assert [k["id"] for k in client.admin.keys(name)] == [issued["id"]]
    client.admin.update_tenant(name, {"default_mode": "quality"})
    assert newcomer.route(CHAT).mode == "quality"
    client.admin.revoke_key(name, issued["id"])
    with pytest.raises(openai.AuthenticationError):
        newcomer.chat(CHAT)
    client.admin.delete_tenant(name)
    assert name not in {t["name"] for t in client.admin.tenants()}
    newcomer.close()


def test_a_tenant_key_cannot_use_the_admin_helpers(proxy, run_id):
    impostor = Client(base_url=proxy.base_url, api_key=f"sk-{run_id}", admin_key=f"sk-{run_id}",
                      max_retries=0)  # fmt: skip
    with pytest.raises(openai.AuthenticationError):
        impostor.admin.tenants()
    assert Client(base_url=proxy.base_url, api_key="x").admin is None


@pytest.mark.anyio
async def test_the_async_client_does_the_same(proxy, run_id):
    async with AsyncClient(base_url=proxy.base_url, api_key=f"sk-{run_id}",
                           admin_key=ADMIN_KEY, max_retries=0) as sdk:  # fmt: skip
        routed = await sdk.chat(OLYMPIAD)
        assert routed.decision.tier == "reasoning" and routed.cost_usd > 0
        assert (await sdk.route(CHAT)).tier == "fast"
        assert (await sdk.explain(CHAT))["nearest_kinds"]
        streamed = await sdk.stream(CHAT)
        assert streamed.decision.tier == "fast"
        assert [chunk async for chunk in streamed.answer]
        assert (await sdk.usage())["day"]["requests"] == 2
        assert run_id in {t["name"] for t in await sdk.admin.tenants()}


def test_headers_without_a_decision_read_as_empty_fields():
    decision = decision_from_headers(
        {"x-thinkroute-tier": "fast", "x-thinkroute-effort": "default"}
    )
    assert decision.tier == "fast" and decision.score is None and decision.reasoning_effort is None
