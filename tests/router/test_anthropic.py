"""The Messages API translation, checked against the official Anthropic SDK's own types.

Requests go through :func:`parse_chat_request` to prove the proxy accepts what
:func:`to_openai` makes; messages and stream events are parsed by the SDK's
pydantic models, and whole exchanges run through ``AsyncAnthropic`` over an
in-memory transport, so the wire format is what Anthropic's clients read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from router.errors import (
    AuthenticationError,
    BudgetExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
    StoreUnavailableError,
    ThinkrouteError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from router.http.anthropic import (
    api_key_from_headers,
    error_body,
    format_sse,
    from_openai,
    stream_events,
    to_openai,
)
from router.requests import parse_chat_request
from router.state.cache import chunks_from_response

try:  # the SDK's HTTP library: httpx2 since anthropic 2, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

EVENTS = TypeAdapter(RawMessageStreamEvent)
PNG = (  # a 1x1 pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    return {**body, **fields}


def translate(body: dict[str, Any]) -> dict[str, Any]:
    """to_openai, and proof that the proxy's own validation accepts the result."""
    out = to_openai(body)
    parse_chat_request(out)
    return out


# -- to_openai ------------------------------------------------------------------------


def test_text_request_passes_model_and_sampling():
    out = translate(
        request(
            model="auto:quality",
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["\n\nHuman:", "END"],
            metadata={"user_id": "user-7"},
        )
    )
    assert out == {
        "model": "auto:quality",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\nHuman:", "END"],
        "user": "user-7",
    }  # top_k is dropped: OpenAI has none


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("You are terse.", [{"role": "system", "content": "You are terse."}]),
        (
            [
                {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Answer in French."},
            ],
            [{"role": "system", "content": "You are terse.\n\nAnswer in French."}],
        ),
        ("", []),
    ],
)
def test_system_prompt_becomes_first_message(system, expected):
    out = translate(request(system=system))
    assert out["messages"] == [*expected, {"role": "user", "content": "Hello"}]


def test_images_become_image_url_parts():
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What is in these?"},
    ]
    out = translate(request(messages=[{"role": "user", "content": content}]))
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What is in these?"},
            ],
        }
    ]


def test_documents_become_text_and_file_parts():
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Hi"}},
        {
            "type": "document",
            "title": "spec.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        },
    ]
    out = translate(request(messages=[{"role": "user", "content": content}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Hi"},
        {
            "type": "file",
            "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"},
        },
    ]


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "cache_control": {"type": "ephemeral"},
}


def test_multi_turn_tool_use_round_trip():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome? Show the radar too."},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [
                        {"type": "text", "text": "24°C"},
                        {"type": "text", "text": "cloudy"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]
    out = translate(request(messages=messages, tools=[WEATHER_TOOL]))
    assert out["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome? Show the radar too."},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "24°C\ncloudy"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attachments returned by tool call toolu_2:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Current weather for a city.",
            },
        }
    ]


def test_tool_only_turn_and_error_result():
    messages = [
        {"role": "user", "content": "Run it."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_9", "name": "run", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_9",
                    "content": "exit 1",
                    "is_error": True,
                }
            ],
        },
    ]
    tool = {"name": "run", "input_schema": {"type": "object"}}
    out = translate(request(messages=messages, tools=[tool]))
    assert out["messages"][1]["content"] is None
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_9", "content": "Error: exit 1"}
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice(tool_choice, expected):
    out = translate(request(tools=[WEATHER_TOOL], tool_choice=tool_choice))
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2049}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, "high"),
        ({"thinking": {"type": "disabled"}}, "none"),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, "high"),
        ({"output_config": {"effort": "low"}}, "low"),
        ({}, None),
    ],
)
def test_thinking_becomes_reasoning_effort(fields, effort):
    out = translate(request(max_tokens=32000, **fields))
    assert out.get("reasoning_effort") == effort
    assert parse_chat_request(out).requested_effort == effort


def test_structured_output_becomes_response_format():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    out = translate(request(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_stream_asks_for_usage_and_ignored_fields_are_not_forwarded():
    out = translate(
        request(stream=True, service_tier="auto", cache_control={"type": "ephemeral"}, top_k=5)
    )
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert set(out) == {"model", "messages", "max_tokens", "stream", "stream_options"}
    assert parse_chat_request(out).include_usage


def test_final_assistant_message_is_a_prefill():
    messages = [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": [{"type": "text", "text": "The colour is"}]},
    ]
    out = translate(request(messages=messages))
    assert out["messages"][-1] == {"role": "assistant", "content": "The colour is"}


def _tool_history(result: dict[str, Any]) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "X"}}
    return [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"foo": 1}, "foo"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages.0.name"),
        ({"messages": [{"role": "user", "content": []}]}, "messages.0.content"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": [{"text": "no type"}]},
                ]
            },
            "messages.2.content.0.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
            "messages.0.content.0.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages.0.content.0.source.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "x",
                                },
                            }
                        ],
                    }
                ]
            },
            "messages.0.content.0.source.media_type",
        ),
        (
            {"messages": _tool_history({"type": "tool_result", "tool_use_id": "toolu_404"})},
            "messages.2.content.0",
        ),
        ({"messages": _tool_history({"type": "text", "text": "forgot"})}, "messages.2"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f"}],
                    },
                ]
            },
            "messages.1.content.0.input",
        ),
        ({"system": [{"type": "image"}]}, "system.0.type"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"metadata": {"user_id": "u", "team": "t"}}, "metadata.team"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool", "name": "g"}},
            "tool_choice.name",
        ),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_malformed_requests_name_the_field(fields, param):
    body = request(**fields)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequestError) as caught:
        to_openai(body)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")
    assert caught.value.status_code == 400


def test_body_must_be_an_object():
    with pytest.raises(InvalidRequestError):
        to_openai(["not", "an", "object"])


# -- from_openai ----------------------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str = "stop", **usage: Any) -> dict:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fast-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19, **usage},
    }


def test_text_response():
    message = from_openai(completion({"content": "Hi there."}), model="auto")
    assert message == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "auto",
        "content": [{"type": "text", "text": "Hi there."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    assert Message.model_validate(message).content[0].text == "Hi there."


def test_reasoning_becomes_a_thinking_block_and_cached_tokens_are_split_out():
    response = completion(
        {"content": "42", "reasoning_content": "6 times 7."},
        prompt_tokens=100,
        prompt_tokens_details={"cached_tokens": 64},
    )
    message = Message.model_validate(from_openai(response, model="auto:quality"))
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "6 times 7." and message.content[0].signature == ""
    assert message.usage.input_tokens == 36 and message.usage.cache_read_input_tokens == 64


def test_tool_calls_become_tool_use_blocks():
    calls = [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": '}},
    ]  # fmt: skip
    message = from_openai(
        completion({"content": None, "tool_calls": calls}, "tool_calls"), model="m"
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"
    Message.model_validate(message)


@pytest.mark.parametrize(
    ("message", "finish_reason", "stop_reason", "stop_sequence"),
    [
        ({"content": "a"}, "stop", "end_turn", None),
        ({"content": "a"}, "length", "max_tokens", None),
        ({"content": "a"}, "content_filter", "refusal", None),
        ({"content": None, "refusal": "I can't help with that."}, "stop", "refusal", None),
        (
            {
                "content": None,
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": ""}}],
            },
            "stop",
            "tool_use",
            None,
        ),
    ],
)
def test_finish_reasons(message, finish_reason, stop_reason, stop_sequence):
    translated = from_openai(completion(message, finish_reason), model="auto")
    assert (translated["stop_reason"], translated["stop_sequence"]) == (stop_reason, stop_sequence)
    Message.model_validate(translated)


def test_matched_stop_sequence_is_reported_when_the_upstream_names_it():
    response = completion({"content": "one two"})
    response["choices"][0]["stop_reason"] = "END"  # vLLM names the matched stop string
    message = from_openai(response, model="auto")
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_response_without_id_or_usage_still_validates():
    message = from_openai({"choices": [{"message": {"content": "x"}}]}, model="auto")
    assert message["id"].startswith("msg_")
    assert Message.model_validate(message).usage.output_tokens == 0


# -- stream_events --------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    ]  # fmt: skip
    return {"id": "chatcmpl-xyz", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "reasoning-model", "choices": choices, **extra}  # fmt: skip


USAGE = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}


async def events_of(chunks: list[dict[str, Any]], model: str = "auto") -> list[tuple[str, dict]]:
    async def source() -> AsyncIterator[dict[str, Any]]:
        for item in chunks:
            yield item

    events = [event async for event in stream_events(source(), model=model)]
    for name, data in events:
        assert data["type"] == name
        if name != "ping":
            EVENTS.validate_python(data)  # each event parses as the SDK's own type
    return events


def outline(events: list[tuple[str, dict]]) -> list[str]:
    """Event names, with the block index and kind where there is one."""
    out = []
    for name, data in events:
        if name == "content_block_start":
            out.append(f"start {data['index']} {data['content_block']['type']}")
        elif name == "content_block_delta":
            out.append(f"delta {data['index']} {data['delta']['type']}")
        elif name == "content_block_stop":
            out.append(f"stop {data['index']}")
        else:
            out.append(name)
    return out


@pytest.mark.anyio
async def test_text_stream():
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": ", world"}),
        chunk({}, "stop"),
        chunk(usage=USAGE),
    ]
    events = await events_of(chunks)
    assert outline(events) == [
        "message_start", "ping", "start 0 text", "delta 0 text_delta", "delta 0 text_delta",
        "stop 0", "message_delta", "message_stop",
    ]  # fmt: skip
    start = events[0][1]["message"]
    assert start["id"] == "msg_xyz" and start["model"] == "auto" and start["content"] == []
    assert start["stop_reason"] is None
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "output_tokens": 9,
            "input_tokens": 20,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


@pytest.mark.anyio
async def test_reasoning_then_text_stream():
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Let me think"}),
        chunk({"reasoning_content": " carefully."}),
        chunk({"content": "The answer"}),
        chunk({"content": " is 42."}),
        chunk({}, "length"),
        chunk(usage=USAGE),
    ]
    events = await events_of(chunks)
    assert outline(events) == [
        "message_start", "ping", "start 0 thinking", "delta 0 thinking_delta",
        "delta 0 thinking_delta", "stop 0", "start 1 text", "delta 1 text_delta",
        "delta 1 text_delta", "stop 1", "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


@pytest.mark.anyio
async def test_tool_calls_split_over_chunks_stream():
    def call(index: int, arguments: str, **head: Any) -> dict:
        function = {"arguments": arguments}
        if "name" in head:
            function["name"] = head.pop("name")
        return chunk({"tool_calls": [{"index": index, **head, "function": function}]})

    chunks = [
        chunk({"role": "assistant", "content": "Let me check."}),
        call(0, "", id="call_a", type="function", name="get_weather"),
        call(0, '{"ci'),
        call(0, 'ty": "Par'),
        call(0, 'is"}'),
        call(1, '{"city": "Rome"}', id="call_b", type="function", name="get_weather"),
        chunk({}, "tool_calls"),
        chunk(usage=USAGE),
    ]
    events = await events_of(chunks)
    assert outline(events) == [
        "message_start", "ping", "start 0 text", "delta 0 text_delta", "stop 0",
        "start 1 tool_use", "delta 1 input_json_delta", "delta 1 input_json_delta",
        "delta 1 input_json_delta", "stop 1", "start 2 tool_use", "delta 2 input_json_delta",
        "stop 2", "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[5][1]["content_block"] == {
        "type": "tool_use", "id": "call_a", "name": "get_weather", "input": {},
    }  # fmt: skip
    arguments = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["index"] == 1
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.anyio
async def test_replayed_cache_hit_stream_matches_the_message():
    """A cache hit replays chunks_from_response; the stream must add up to from_openai."""
    function = {"name": "get_weather", "arguments": '{"city": "Oslo, Norway"}'}
    calls = [{"id": "call_1", "type": "function", "function": function}]
    response = completion(
        {"content": "A fairly long answer that the replay cuts into several pieces.",
         "reasoning_content": "Short thought.", "tool_calls": calls},
        "tool_calls",
    )  # fmt: skip
    events = await events_of(chunks_from_response(response, include_usage=True))
    expected = Message.model_validate(from_openai(response, model="auto"))
    assert await accumulate(events) == expected.model_dump(exclude_none=True)


async def accumulate(events: list[tuple[str, dict]]) -> dict[str, Any]:
    """The final message as the SDK's own stream accumulator builds it."""
    body = "".join(format_sse(name, data) for name, data in events)
    client = sdk_client(lambda _: httpx.Response(200, text=body, headers=SSE))
    async with client, client.messages.stream(**SDK_REQUEST) as stream:
        final = await stream.get_final_message()
    return final.model_dump(exclude_none=True)


@pytest.mark.anyio
async def test_empty_stream_still_opens_and_closes():
    events = await events_of([])
    assert outline(events) == ["message_start", "ping", "message_delta", "message_stop"]


@pytest.mark.anyio
async def test_upstream_failure_propagates():
    async def failing() -> AsyncIterator[dict[str, Any]]:
        yield chunk({"content": "partial"})
        raise UpstreamError("the provider hung up")

    names = []
    with pytest.raises(UpstreamError):
        async for name, _ in stream_events(failing(), model="auto"):
            names.append(name)
    assert names[-1] == "content_block_delta"


def test_format_sse():
    assert format_sse("ping", {"type": "ping"}) == 'event: ping\ndata: {"type":"ping"}\n\n'
    assert format_sse("x", {"text": "a\nb é"}) == 'event: x\ndata: {"text":"a\\nb é"}\n\n'


# -- errors and keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (InvalidRequestError("bad"), "invalid_request_error"),
        (AuthenticationError("who?"), "authentication_error"),
        (PermissionDeniedError("no"), "permission_error"),
        (ModelNotFoundError("gone"), "not_found_error"),
        (BudgetExceededError("spent", retry_after_s=60), "rate_limit_error"),
        (ThinkrouteError("oops"), "api_error"),
        (UpstreamError("bad gateway"), "api_error"),
        (StoreUnavailableError("redis down"), "overloaded_error"),
        (UpstreamUnavailableError("no provider"), "overloaded_error"),
        (UpstreamTimeoutError("slow"), "timeout_error"),
    ],
)
def test_error_body(error, error_type):
    body = error_body(error, request_id="req_1")
    assert body == {
        "type": "error",
        "error": {"type": error_type, "message": error.message},
        "request_id": "req_1",
    }
    ErrorResponse.model_validate(body)


def test_request_too_large_uses_anthropics_own_type():
    body = error_body(RequestTooLargeError("over 32 MB"))
    assert body == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "over 32 MB"},
    }


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"x-api-key": "sk-a"}, "sk-a"),
        ({"X-Api-Key": " sk-a "}, "sk-a"),
        ({"Authorization": "Bearer sk-b"}, "sk-b"),
        ({"authorization": "bearer sk-b", "x-api-key": "sk-a"}, "sk-a"),
        ({"authorization": "Basic abc"}, None),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_api_key_from_headers(headers, key):
    assert api_key_from_headers(headers) == key


# -- through the official SDK ---------------------------------------------------------

SSE = {"content-type": "text/event-stream"}
SDK_REQUEST: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hello"}],
}


def sdk_client(handler: Any) -> anthropic.AsyncAnthropic:
    transport = httpx.MockTransport(handler)
    return anthropic.AsyncAnthropic(
        api_key="sk-acme-0123456789",
        base_url="http://thinkroute.test",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )


@pytest.mark.anyio
async def test_sdk_round_trip():
    """The SDK's request body translates and validates; our answer parses as its Message."""
    seen: list[dict[str, Any]] = []

    def handler(http_request: httpx.Request) -> httpx.Response:
        assert http_request.url.path == "/v1/messages"
        assert api_key_from_headers(http_request.headers) == "sk-acme-0123456789"
        chat = parse_chat_request(to_openai(json.loads(http_request.content)))
        seen.append({"messages": chat.messages, **chat.params})
        answer = completion({"content": "Bonjour", "reasoning_content": "French."})
        return httpx.Response(200, json=from_openai(answer, model=chat.model))

    async with sdk_client(handler) as client:
        message = await client.messages.create(
            **SDK_REQUEST,
            system=[{"type": "text", "text": "Answer in French."}],
            thinking={"type": "enabled", "budget_tokens": 4096},
            tools=[WEATHER_TOOL],
            tool_choice={"type": "auto"},
            stop_sequences=["###"],
            metadata={"user_id": "u-1"},
        )
    assert message.content[1].text == "Bonjour" and message.model == "auto"
    assert seen[0]["reasoning_effort"] == "medium" and seen[0]["user"] == "u-1"
    assert seen[0]["messages"][0] == {"role": "system", "content": "Answer in French."}


@pytest.mark.anyio
async def test_sdk_stream():
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Hmm."}),
        chunk({"content": "Calling."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_z", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={**USAGE, "prompt_tokens_details": {"cached_tokens": 5}}),
    ]  # fmt: skip

    async def handler(http_request: httpx.Request) -> httpx.Response:
        chat = parse_chat_request(to_openai(json.loads(http_request.content)))
        assert chat.stream and chat.include_usage

        async def upstream() -> AsyncIterator[dict[str, Any]]:
            for item in chunks:
                yield item

        body = "".join([format_sse(n, d) async for n, d in stream_events(upstream(), model="auto")])
        return httpx.Response(200, text=body, headers=SSE)

    client = sdk_client(handler)
    async with client, client.messages.stream(**SDK_REQUEST) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == ["Calling."]
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (15, 9)
    assert final.usage.cache_read_input_tokens == 5


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "exception"),
    [
        (InvalidRequestError("messages.0.role: bad"), anthropic.BadRequestError),
        (AuthenticationError("Incorrect API key provided."), anthropic.AuthenticationError),
        (PermissionDeniedError("no"), anthropic.PermissionDeniedError),
        (ModelNotFoundError("no such model"), anthropic.NotFoundError),
        (RequestTooLargeError("too big"), anthropic.APIStatusError),
        (BudgetExceededError("spent", retry_after_s=None), anthropic.RateLimitError),
        (UpstreamUnavailableError("down"), anthropic.InternalServerError),
    ],
)
async def test_sdk_raises_the_matching_error(error, exception):
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(error.status_code, json=error_body(error))

    async with sdk_client(handler) as client:
        with pytest.raises(exception) as caught:
            await client.messages.create(**SDK_REQUEST)
    assert caught.value.status_code == error.status_code
    assert caught.value.body["error"]["message"] == error.message


@pytest.mark.anyio
async def test_sdk_reads_an_error_event_mid_stream():
    error = UpstreamTimeoutError("the provider did not answer in time")
    body = format_sse("message_start", (await events_of([]))[0][1]) + format_sse(
        "error", error_body(error)
    )

    async with sdk_client(lambda _: httpx.Response(200, text=body, headers=SSE)) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            async with client.messages.stream(**SDK_REQUEST) as stream:
                await stream.get_final_message()
    assert "did not answer in time" in str(caught.value)
