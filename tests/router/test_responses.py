"""OpenAI's Responses API on the proxy, as the official openai SDK sees it.

A live proxy in front of the simulated upstream (and, for tool calls, a small
upstream that calls tools): every Responses feature a client uses, over
``client.responses.create`` and the SDK's stream helper.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router.upstream.simulator import REASONING_TOKENS, BackgroundServer
from tests.router.conftest import ACME_KEY, BETA_KEY, proxy_config

pytestmark = pytest.mark.filterwarnings(
    # LiteLLM touches pydantic model fields in ways pydantic 2.11 deprecates.
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

CHAT = "hey! any tips for a relaxing sunday afternoon?"
OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def connect() -> Iterator[Any]:
    """``connect(proxy, key)``: an SDK client, closed when the test ends."""
    opened: list[openai.OpenAI] = []

    def open_client(proxy, key=ACME_KEY):
        opened.append(openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0))
        return opened[-1]

    yield open_client
    for api in opened:
        api.close()


def last_sent(upstream) -> dict[str, Any]:
    return upstream.requests[-1]["body"]


# -- answers ------------------------------------------------------------------------


def test_a_string_input_is_routed_and_answered_as_a_response(connect, proxy, clean_upstream):
    raw = connect(proxy).responses.with_raw_response.create(
        model="auto", input=CHAT, instructions="Answer briefly.", temperature=0.3,
        max_output_tokens=50, metadata={"ticket": "42"},
    )  # fmt: skip
    response = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["x-thinkroute-reason"] == "score_below_threshold"
    assert float(raw.headers["x-thinkroute-cost-usd"]) > 0
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text.startswith("[fast-model] answer to: hey!")
    assert response.instructions == "Answer briefly." and response.metadata == {"ticket": "42"}
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    sent = last_sent(clean_upstream)
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": CHAT},
    ]
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 50
    assert "metadata" not in sent  # echoed to the client, not sent to the provider


def test_a_hard_problem_goes_to_reasoning_and_usage_counts_its_reasoning_tokens(
    connect, proxy, clean_upstream
):
    raw = connect(proxy).responses.with_raw_response.create(model="auto", input=OLYMPIAD)
    response = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    effort = raw.headers["x-thinkroute-effort"]
    assert last_sent(clean_upstream)["reasoning_effort"] == effort
    assert response.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS[effort]
    assert response.reasoning.effort == effort
    assert response.output_text.startswith("[reasoning-model]")


@pytest.fixture(scope="module")
def hybrid_proxy(upstream, classifier):
    """Both tiers on one hybrid model, its fast tier thinking off (effort none)."""
    from router.config import build_config
    from router.http.server import create_app
    from router.proxy import Router

    params = {"model": "openai/hybrid-reasoning", "api_base": upstream.base_url, "api_key": "sk-x"}
    config = build_config({
        "model_list": [{"model_name": "hybrid", "litellm_params": params}],
        "tiers": {"fast": {"model": "hybrid", "reasoning_effort": "none"},
                  "reasoning": {"model": "hybrid", "reasoning_effort": "medium"}},
        "tenants": [{"name": "acme", "api_keys": [ACME_KEY]}],
        "dispatch": {"num_retries": 0},
    })  # fmt: skip
    with BackgroundServer(create_app(Router(config=config, classifier=classifier))) as server:
        yield server


@pytest.mark.parametrize(
    ("effort", "tier"), [("none", "fast"), ("minimal", "reasoning"), ("high", "reasoning")]
)
def test_reasoning_effort_is_respected_like_reasoning_effort(
    connect, hybrid_proxy, clean_upstream, effort, tier
):
    raw = connect(hybrid_proxy).responses.with_raw_response.create(
        model="auto", input=OLYMPIAD if tier == "fast" else CHAT, reasoning={"effort": effort}
    )
    response = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == tier
    assert raw.headers["x-thinkroute-reason"] == "client_set_reasoning"
    assert last_sent(clean_upstream)["reasoning_effort"] == effort
    assert response.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS[effort]


def test_an_item_list_with_content_parts_becomes_the_conversation(connect, proxy, clean_upstream):
    connect(proxy).responses.create(
        model="fast",
        input=[
            {"role": "developer", "content": "Be terse."},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "What is 2+2?"}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "4"}]},
            {"role": "user", "content": [
                {"type": "input_text", "text": "And this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ]},
        ],
    )  # fmt: skip
    assert last_sent(clean_upstream)["messages"] == [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [
            {"type": "text", "text": "And this?"},
            {"type": "image_url",
             "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
        ]},
    ]  # fmt: skip


def test_a_json_schema_text_format_reaches_the_provider_as_a_response_format(
    connect, proxy, clean_upstream
):
    schema = {"type": "object", "properties": {"tip": {"type": "string"}}, "required": ["tip"]}
    response = connect(proxy).responses.create(
        model="auto", input=CHAT,
        text={"format": {"type": "json_schema", "name": "tip", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert last_sent(clean_upstream)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "tip", "schema": schema, "strict": True},
    }
    assert response.text.format.type == "json_schema"


def test_an_answer_cut_by_max_output_tokens_is_incomplete(connect, proxy, clean_upstream):
    response = connect(proxy).responses.create(model="auto", input=CHAT, max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "[fast-model] answer"


@pytest.mark.anyio
async def test_the_async_client_gets_the_same_answer(proxy, clean_upstream):
    aclient = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=ACME_KEY, max_retries=0)
    async with aclient:
        response = await aclient.responses.create(model="auto", input=CHAT)
    assert response.output_text.startswith("[fast-model] answer to: hey!")


# -- streams ------------------------------------------------------------------------


def test_a_stream_sends_the_events_the_sdk_accumulates(connect, proxy, clean_upstream):
    with connect(proxy).responses.stream(model="auto", input=OLYMPIAD) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.startswith("[reasoning-model] answer to: Let n")
    assert final.output_text == deltas and final.status == "completed"
    assert final.usage.output_tokens_details.reasoning_tokens > 0
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def test_a_raw_stream_ends_with_completed_and_carries_the_decision_headers(
    connect, proxy, clean_upstream
):
    raw = connect(proxy).responses.with_raw_response.create(model="auto", input=CHAT, stream=True)
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = list(raw.parse())
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.startswith("[fast-model] answer to")
    assert events[-1].response.usage.input_tokens > 0


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event(connect, proxy, clean_upstream):
    clean_upstream.control("fast-model", cut_stream_after=2)
    events = list(connect(proxy).responses.create(model="fast", input=CHAT, stream=True))
    kinds = [e.type for e in events]
    assert "response.completed" not in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"


# -- tool calls ---------------------------------------------------------------------


class ToolUpstream(BackgroundServer):
    """An OpenAI-compatible model that calls the first tool it is offered, once.

    A user turn gets a call to the first tool with ``{"city": "Paris"}``; a tool
    result gets a text answer quoting it. Both as JSON or as a stream.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            with self.lock:
                self.requests.append({"body": body})
            message, finish = self._answer(body)
            usage = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
            head = {"id": "chatcmpl-tool", "created": 1, "model": body["model"]}
            if not body.get("stream"):
                choice = {"index": 0, "message": message, "finish_reason": finish}
                return JSONResponse({**head, "object": "chat.completion", "choices": [choice],
                                     "usage": usage})  # fmt: skip
            return StreamingResponse(self._chunks(head, message, finish, usage),
                                     media_type="text/event-stream")  # fmt: skip

        super().__init__(app)

    @staticmethod
    def _answer(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"role": "assistant", "content": f"It is {last['content']}."}, "stop"
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_7", "type": "function",
                "function": {"name": name, "arguments": '{"city": "Paris"}'}}  # fmt: skip
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"

    @staticmethod
    async def _chunks(head, message, finish, usage):
        def sse(delta, finish_reason=None, **extra):
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        yield sse({"role": "assistant", "content": ""})
        if message.get("content"):
            yield sse({"content": message["content"]})
        for call in message.get("tool_calls") or ():
            arguments = call["function"]["arguments"]
            yield sse({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"],
                                                    "arguments": ""}}]})  # fmt: skip
            for piece in (arguments[:5], arguments[5:]):
                yield sse({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield sse({}, finish)
        chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        yield f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"


@pytest.fixture(scope="module")
def tool_upstream() -> Iterator[ToolUpstream]:
    with ToolUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def tool_proxy(tool_upstream, classifier):
    from router.http.server import create_app
    from router.proxy import Router

    router = Router(config=proxy_config(tool_upstream.base_url), classifier=classifier)
    with BackgroundServer(create_app(router)) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_round_trip(connect, tool_proxy, tool_upstream, stream):
    api = connect(tool_proxy)

    def create(**kwargs):
        if not stream:
            return api.responses.create(**kwargs)
        with api.responses.stream(**kwargs) as events:
            return events.get_final_response()

    question = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = create(model="fast", input=question, tools=[WEATHER_TOOL], tool_choice="auto")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.call_id) == ("get_weather", "call_7")
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = tool_upstream.requests[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": {
        k: WEATHER_TOOL[k] for k in ("name", "description", "parameters")}}]  # fmt: skip
    assert sent["tool_choice"] == "auto"

    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}
    second = create(model="fast", input=[*question, call.model_dump(), result],
                    tools=[WEATHER_TOOL])  # fmt: skip
    assert second.output_text == "It is sunny, 21 C."
    assert tool_upstream.requests[-1]["body"]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_7", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21 C"},
    ]  # fmt: skip


def test_namespaced_functions_round_trip_and_hosted_tools_are_left_out(
    connect, tool_proxy, tool_upstream
):
    namespace = {"type": "namespace", "name": "weather", "description": "Weather tools.",
                 "tools": [{**WEATHER_TOOL, "name": "now"}]}  # fmt: skip
    api = connect(tool_proxy)
    first = api.responses.create(
        model="fast", input="weather?", tools=[{"type": "web_search"}, namespace]
    )
    sent = tool_upstream.requests[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["weather__now"]
    (call,) = first.output
    assert (call.namespace, call.name) == ("weather", "now")
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
    second = api.responses.create(
        model="fast", input=[{"role": "user", "content": "weather?"},
                             call.model_dump(exclude_none=True), result],
        tools=[namespace],
    )  # fmt: skip
    assert second.output_text == "It is rain."
    assert (
        tool_upstream.requests[-1]["body"]["messages"][1]["tool_calls"][0]["function"]["name"]
        == "weather__now"
    )


def test_a_named_tool_choice_is_translated(connect, tool_proxy, tool_upstream):
    connect(tool_proxy).responses.create(
        model="fast", input="weather?", tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    )  # fmt: skip
    sent = tool_upstream.requests[-1]["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


# -- errors -------------------------------------------------------------------------


def test_a_bad_key_gets_a_401_in_openais_shape(connect, proxy):
    with pytest.raises(openai.AuthenticationError) as caught:
        connect(proxy, key="sk-wrong").responses.create(model="auto", input=CHAT)
    assert caught.value.body["code"] == "invalid_api_key"


def test_an_unknown_or_forbidden_model_is_refused(connect, proxy):
    with pytest.raises(openai.NotFoundError) as caught:
        connect(proxy).responses.create(model="gpt-9", input=CHAT)
    assert caught.value.body["param"] == "model"
    with pytest.raises(openai.PermissionDeniedError):
        connect(proxy, key=BETA_KEY).responses.create(model="reasoning", input=CHAT)


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
        ({"store": True}, "store", "unsupported_parameter"),
        ({"tools": [{"type": "function", "name": ""}]}, "tools[0].name", "invalid_request"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_request"),
        ({"reasoning": {"effort": ["high"]}}, "reasoning.effort", "invalid_request"),  # was a 500
        ({"text": {"format": {"type": "yaml"}}}, "text.format", "invalid_request"),
        ({"extra_body": {"api_base": "http://evil"}}, "api_base", "forbidden_parameter"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate", "invalid_request"),
    ],
)
def test_what_the_proxy_cannot_do_gets_a_clear_400(
    connect, proxy, clean_upstream, kwargs, param, code
):
    with pytest.raises(openai.BadRequestError) as caught:
        connect(proxy).responses.create(model="auto", input=CHAT, **kwargs)
    assert (caught.value.body["param"], caught.value.body["code"]) == (param, code)
    assert clean_upstream.requests == []


def test_an_item_reference_needs_storage_and_is_refused(connect, proxy):
    with pytest.raises(openai.BadRequestError) as caught:
        connect(proxy).responses.create(
            model="auto", input=[{"type": "item_reference", "id": "msg_1"}]
        )
    assert "does not store responses" in caught.value.message


def test_retrieving_a_response_says_none_are_kept(connect, proxy):
    with pytest.raises(openai.NotFoundError) as caught:
        connect(proxy).responses.retrieve("resp_123")
    assert caught.value.body["code"] == "response_not_found"


def test_an_upstream_failure_is_a_5xx_in_openais_shape(connect, proxy, clean_upstream):
    clean_upstream.control("fast-model", fail_status=503)
    clean_upstream.control("reasoning-model", fail_status=503)
    with pytest.raises(openai.APIStatusError) as caught:
        connect(proxy).responses.create(model="fast", input=CHAT)
    assert caught.value.status_code >= 500
    assert set(caught.value.body) >= {"message", "type", "code"}


def test_the_openapi_document_describes_exactly_what_the_parser_accepts():
    from router.config import build_config
    from router.http.responses.requests import KNOWN
    from router.http.server import create_app
    from router.proxy import Router

    app = create_app(Router(config=build_config({})), load_classifier=False)
    body = app.openapi()["paths"]["/v1/responses"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] and set(schema["properties"]) == KNOWN


# -- OpenAI's Codex CLI ---------------------------------------------------------------

CODEX = os.environ.get("CODEX_BIN") or shutil.which("codex")


@pytest.mark.skipif(CODEX is None, reason="Codex CLI not installed (npm i -g @openai/codex)")
def test_the_codex_cli_gets_an_answer_through_the_proxy(proxy, clean_upstream, tmp_path):
    provider = (f'model_providers.thinkroute={{name="thinkroute", base_url="{proxy.base_url}", '
                'env_key="THINKROUTE_KEY", wire_api="responses"}')  # fmt: skip
    run = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "-m", "auto", "-c", "model_provider=thinkroute",
         "-c", provider, "Say hello."],
        env={**os.environ, "CODEX_HOME": str(tmp_path), "THINKROUTE_KEY": ACME_KEY},
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "answer to: Say hello." in run.stdout
    sent = clean_upstream.requests[-1]["body"]
    assert sent["tools"] and all(t["type"] == "function" for t in sent["tools"])
