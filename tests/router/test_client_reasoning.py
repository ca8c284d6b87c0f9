"""client_reasoning: route: a client's own reasoning setting is a ceiling, not an order.

Coding agents send thinking on nearly every call; with ``respect`` (the default) none of
their traffic is routed. Driven by the official Anthropic and OpenAI SDKs against a live
proxy over the simulated upstream, with the shipped head scoring.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.router.conftest import ACME_KEY, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
AGENT_KEY = "sk-agent-0123456789"
EASY = "hey! any tips for a relaxing sunday afternoon?"
HARD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)
THINKING = {"type": "enabled", "budget_tokens": 1024}  # Anthropic's budget for effort "low"


@pytest.fixture
def server(serve_on_redis, clean_upstream, run_id):
    agent = {"name": f"{run_id}-agent", "api_keys": [AGENT_KEY], "client_reasoning": "route"}
    return serve_on_redis(proxy_config(clean_upstream.base_url, tenants=[agent]))


@pytest.fixture
def claude(server):
    """Anthropic clients on the proxy, for the routing tenant and for a respecting one."""
    made: list[anthropic.Anthropic] = []

    def make(key: str = AGENT_KEY) -> anthropic.Anthropic:
        made.append(anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0))
        return made[-1]

    yield make
    for api in made:
        api.close()


def sent(upstream) -> dict:
    (request,) = upstream.requests
    return request["body"]


def test_a_turn_that_does_not_need_thinking_goes_fast_without_it(claude, clean_upstream):
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking=THINKING,
        messages=[{"role": "user", "content": EASY}],
    )  # fmt: skip
    message = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["x-thinkroute-reason"] == "score_below_threshold"
    assert raw.headers["x-thinkroute-score"]  # scored, as any routed request
    body = sent(clean_upstream)
    assert body["model"] == "fast-model"
    assert "reasoning_effort" not in body and "thinking" not in body
    # A valid message with no thinking block, although the client asked for thinking.
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason == "end_turn"


def test_its_stream_is_a_valid_anthropic_stream(claude, clean_upstream):
    with claude().messages.stream(
        model="auto", max_tokens=4000, thinking=THINKING,
        messages=[{"role": "user", "content": EASY}],
    ) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and [block.type for block in final.content] == ["text"]
    assert final.usage.output_tokens > 0
    assert sent(clean_upstream)["model"] == "fast-model"


def test_a_turn_that_needs_reasoning_stays_within_the_clients_effort(claude, clean_upstream):
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking=THINKING,
        messages=[{"role": "user", "content": HARD}],
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    assert raw.headers["x-thinkroute-effort"] == "low"  # the policy's, at most the client's
    assert sent(clean_upstream)["reasoning_effort"] == "low"


def test_an_effort_above_the_ceiling_is_lowered_to_it(server, clean_upstream):
    # The reasoning tier's effort is medium, a step lower at least: never under "low".
    body = {"model": "auto", "reasoning_effort": "minimal",
            "messages": [{"role": "user", "content": HARD}]}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {AGENT_KEY}"}, timeout=30)  # fmt: skip
    assert response.headers["x-thinkroute-tier"] == "reasoning"
    assert response.headers["x-thinkroute-reason"] == "client_reasoning_ceiling"
    assert sent(clean_upstream)["reasoning_effort"] == "minimal"


def test_thinking_turned_off_by_the_client_allows_only_the_fast_tier(claude, clean_upstream):
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=400, thinking={"type": "disabled"},
        messages=[{"role": "user", "content": HARD}],
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["x-thinkroute-reason"] == "client_reasoning_ceiling"


def test_a_respecting_tenant_gets_exactly_what_it_asked(claude, clean_upstream):
    raw = claude(ACME_KEY).messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking=THINKING,
        messages=[{"role": "user", "content": EASY}],
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    assert raw.headers["x-thinkroute-reason"] == "client_set_reasoning"
    assert sent(clean_upstream)["reasoning_effort"] == "low"


@pytest.mark.parametrize(("text", "tier"), [(EASY, "fast"), (HARD, "reasoning")])
def test_openai_reasoning_effort_is_a_ceiling_too(server, clean_upstream, text, tier):
    body = {"model": "auto", "reasoning_effort": "high",
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {AGENT_KEY}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200
    assert response.headers["x-thinkroute-tier"] == tier
    upstream_effort = sent(clean_upstream).get("reasoning_effort")
    assert upstream_effort == (None if tier == "fast" else response.headers["x-thinkroute-effort"])


def test_a_named_model_keeps_the_clients_reasoning(server, clean_upstream):
    body = {"model": "reasoning", "reasoning_effort": "high",
            "messages": [{"role": "user", "content": EASY}]}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {AGENT_KEY}"}, timeout=30)  # fmt: skip
    assert response.headers["x-thinkroute-reason"] == "client_named_model"
    assert sent(clean_upstream)["reasoning_effort"] == "high"


def test_the_route_endpoint_decides_the_same_way(server, clean_upstream):
    body = {"model": "auto", "reasoning_effort": "high",
            "messages": [{"role": "user", "content": EASY}]}  # fmt: skip
    headers = {"authorization": f"Bearer {AGENT_KEY}"}
    planned = httpx.post(f"{server.url}/v1/route", json=body, headers=headers).json()
    assert planned["tier"] == "fast" and planned["score"] is not None
