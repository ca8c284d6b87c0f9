"""The official anthropic SDK against a live proxy: Messages API in, routed answers out."""

from __future__ import annotations

import anthropic
import pytest

from tests.router.conftest import ACME_KEY

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
CHAT = "hey! any tips for a relaxing sunday afternoon?"
OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)


@pytest.fixture
def client():
    """Anthropic clients on the proxy, closed after the test (they pool connections)."""
    made: list[anthropic.Anthropic] = []

    def make(proxy, key=ACME_KEY) -> anthropic.Anthropic:
        made.append(anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0))
        return made[-1]

    yield make
    for api in made:
        api.close()


def test_messages_are_routed_and_answered_in_anthropics_format(client, proxy, clean_upstream):
    raw = client(proxy).messages.with_raw_response.create(
        model="auto", max_tokens=200, system="Be brief.",
        messages=[{"role": "user", "content": CHAT}],
    )  # fmt: skip
    message = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert "answer to" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (sent,) = clean_upstream.requests
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_streamed_answer_matches_the_whole_one(client, proxy):
    api = client(proxy)
    question = [{"role": "user", "content": OLYMPIAD}]
    whole = api.messages.create(model="auto", max_tokens=300, messages=question)
    with api.messages.stream(model="auto", max_tokens=300, messages=question) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(block.text for block in whole.content if block.type == "text")
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_thinking_goes_to_the_reasoning_tier(client, proxy, clean_upstream):
    raw = client(proxy).messages.with_raw_response.create(
        model="auto", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": CHAT}],
    )  # fmt: skip
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    (sent,) = clean_upstream.requests
    assert sent["body"]["reasoning_effort"] == "low"


def test_errors_come_back_in_anthropics_shape(client, proxy):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client(proxy, key="sk-wrong-0000000").messages.create(
            model="auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(proxy).messages.create(
            model="auto", max_tokens=10, messages=[{"role": "robot", "content": "hi"}]
        )
    assert "messages.0.role" in bad.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        client(proxy).messages.create(
            model="claude-nonexistent", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


def test_count_tokens_answers_for_the_routed_model_without_calling_it(
    client, proxy, clean_upstream
):
    api = client(proxy)
    short = api.messages.count_tokens(model="auto", messages=[{"role": "user", "content": CHAT}])
    longer = api.messages.count_tokens(
        model="auto", system="Be brief.",
        messages=[{"role": "user", "content": CHAT + " " + OLYMPIAD}],
        tools=[{"name": "search", "description": "Search the web.",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    )  # fmt: skip
    assert 0 < short.input_tokens < longer.input_tokens
    assert clean_upstream.requests == []  # counting calls no model
    with pytest.raises(anthropic.AuthenticationError):
        client(proxy, key="sk-wrong-0000000").messages.count_tokens(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.BadRequestError) as bad:
        api.messages.count_tokens(model="auto", messages=[{"role": "robot", "content": "hi"}])
    assert (
        bad.value.body["type"] == "error"
        and "messages.0.role" in bad.value.body["error"]["message"]
    )
