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


def tool_loop(results: list[str], *, same_call: bool = False) -> list[dict]:
    """An agent's messages: a human request, then tool calls and their results."""
    messages: list[dict] = [{"role": "user", "content": EASY}]
    for k, text in enumerate(results):
        arguments = {"command": "pytest -q"} if same_call else {"command": f"step {k}"}
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"t{k}", "name": "bash", "input": arguments}
                ],
            }
        )
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{k}", "content": text,
             "is_error": text.startswith("boom")}]})  # fmt: skip
    return messages


COMMAND = {"type": "object", "properties": {"command": {"type": "string"}}}
TOOLS = [{"name": "bash", "description": "Run a shell command.", "input_schema": COMMAND}]


def test_a_tool_relay_turn_goes_fast_without_thinking(claude, clean_upstream):
    # A long file read in the tool result is not what is scored: the human request is.
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking=THINKING, tools=TOOLS,
        messages=tool_loop(["def f(x):\n    return x * 2\n" * 200]),
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert "reasoning_effort" not in sent(clean_upstream)
    assert raw.parse().content  # a valid message


def test_three_failing_tool_results_escalate_as_a_stalled_agent(claude, clean_upstream):
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking=THINKING, tools=TOOLS,
        messages=tool_loop(["boom: 2 failed", "boom: 2 failed", "boom: 1 failed"]),
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    assert raw.headers["x-thinkroute-reason"] == "agent_stalled"


def test_the_same_call_again_and_again_is_a_stall_too(claude, clean_upstream):
    raw = claude().messages.with_raw_response.create(
        model="auto", max_tokens=4000, tools=TOOLS,
        messages=tool_loop(["ok", "ok", "ok"], same_call=True),
    )  # fmt: skip
    assert raw.headers["x-thinkroute-reason"] == "agent_stalled"


def test_a_prompt_past_the_fast_window_goes_to_a_tier_it_fits(
    serve_on_redis, clean_upstream, run_id
):
    config = proxy_config(clean_upstream.base_url)
    fast = config.model_list[0]
    small = fast.model_copy(
        update={"model_info": fast.model_info.model_copy(update={"max_input_tokens": 9_000})}
    )
    config = config.model_copy(update={"model_list": [small, *config.model_list[1:]]})
    server = serve_on_redis(config)
    huge = "Here is our changelog, summarise it in one line:\n" + "fixed a typo. " * 3_000
    body = {"model": "auto", "messages": [{"role": "user", "content": huge}]}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {ACME_KEY}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200
    assert response.headers["x-thinkroute-tier"] == "reasoning"
    assert response.headers["x-thinkroute-reason"] == "context_window"
