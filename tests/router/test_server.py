"""The proxy as a client sees it: the official openai SDK against a live proxy and upstream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.router.conftest import ACME_KEY, BETA_KEY, FAST_PRICES, REASONING_PRICES, UPSTREAM_KEY

pytestmark = pytest.mark.filterwarnings(
    # LiteLLM touches pydantic model fields in ways pydantic 2.11 deprecates.
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

CHAT = "hey! any tips for a relaxing sunday afternoon?"


@pytest.fixture(scope="module", params=["direct", "litellm"])
def transport(request):
    """Every test here runs over both ways to reach an OpenAI-compatible upstream: the
    proxy's direct transport and LiteLLM's own, which must behave the same."""
    return request.param


@pytest.fixture(scope="module")
def proxy(make_proxy, transport):
    return make_proxy(direct_openai=transport == "direct")


OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)


def client(proxy, key=ACME_KEY, **kwargs):
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, **kwargs)


def ask(text):
    return [{"role": "user", "content": text}]


def test_chit_chat_goes_fast_and_says_why(proxy, clean_upstream):
    raw = client(proxy).chat.completions.with_raw_response.create(model="auto", messages=ask(CHAT))
    completion = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["x-thinkroute-model"] == "fast"
    assert raw.headers["x-thinkroute-reason"] == "score_below_threshold"
    assert float(raw.headers["x-thinkroute-score"]) < float(raw.headers["x-thinkroute-threshold"])
    assert raw.headers["x-request-id"]
    assert "answer to" in completion.choices[0].message.content
    usage = completion.usage
    expected = (usage.prompt_tokens * FAST_PRICES["input_cost_per_token"]
                + usage.completion_tokens * FAST_PRICES["output_cost_per_token"])  # fmt: skip
    assert float(raw.headers["x-thinkroute-cost-usd"]) == pytest.approx(expected, rel=1e-6)
    (sent,) = clean_upstream.requests
    assert sent["body"]["model"] == "fast-model"
    assert "reasoning_effort" not in sent["body"]
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_olympiad_problem_goes_to_reasoning_with_effort_and_reasoning_tokens_are_charged(
    proxy, clean_upstream
):
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="auto", messages=ask(OLYMPIAD)
    )
    completion = raw.parse()
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    assert raw.headers["x-thinkroute-effort"] in ("low", "medium", "high")
    (sent,) = clean_upstream.requests
    assert sent["body"]["model"] == "reasoning-model"
    assert sent["body"]["reasoning_effort"] == raw.headers["x-thinkroute-effort"]
    usage = completion.usage
    assert usage.completion_tokens_details.reasoning_tokens > 0
    expected = (usage.prompt_tokens * REASONING_PRICES["input_cost_per_token"]
                + usage.completion_tokens * REASONING_PRICES["output_cost_per_token"])  # fmt: skip
    assert float(raw.headers["x-thinkroute-cost-usd"]) == pytest.approx(expected, rel=1e-6)


def test_stream_with_usage_matches_the_non_streamed_answer(proxy, clean_upstream):
    api = client(proxy)
    whole = api.chat.completions.create(model="auto", messages=ask(CHAT))
    chunks = list(
        api.chat.completions.create(
            model="auto", messages=ask(CHAT), stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_without_usage_hides_the_usage_chunk(proxy, clean_upstream):
    with httpx.stream(
        "POST", f"{proxy.base_url}/chat/completions",
        headers={"authorization": f"Bearer {ACME_KEY}"},
        json={"model": "auto", "messages": ask(CHAT), "stream": True},
    ) as response:  # fmt: skip
        assert response.headers["x-thinkroute-tier"] == "fast"
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks and all(chunk["choices"] and "usage" not in chunk for chunk in chunks)
    assert clean_upstream.requests[0]["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_async_client_gets_routed_answers(proxy, clean_upstream):
    api = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=ACME_KEY, max_retries=0)
    completion = await api.chat.completions.create(model="auto:cheap", messages=ask(CHAT))
    assert completion.choices[0].message.content
    await api.close()


def test_route_endpoint_decides_without_calling_a_model(proxy, clean_upstream):
    response = httpx.post(
        f"{proxy.base_url}/route",
        headers={"authorization": f"Bearer {ACME_KEY}"},
        json={"model": "auto:quality", "messages": ask(OLYMPIAD)},
    )
    decision = response.json()
    assert response.status_code == 200
    assert decision["tier"] == "reasoning" and decision["mode"] == "quality"
    assert decision["model"] == "reasoning" and decision["explanation"]
    assert clean_upstream.requests == []


def test_route_endpoint_explains_the_score_only_when_asked(proxy, clean_upstream):
    def route(**extra):
        return httpx.post(
            f"{proxy.base_url}/route",
            headers={"authorization": f"Bearer {ACME_KEY}"},
            json={"model": "auto", "messages": ask(OLYMPIAD), **extra},
        )

    assert "score_evidence" not in route().json()
    evidence = route(explain=True).json()["score_evidence"]
    kinds = evidence["nearest_kinds"]
    assert kinds and all("/" in kind["kind"] and -1 <= kind["similarity"] <= 1 for kind in kinds)
    # An olympiad functional equation sits nearest kinds of reasoning work (expected to need
    # reasoning, or won by the reasoning model when measured), with their figures.
    assert all(
        kind["expected_tier"] == "reasoning" or (kind["mean_gain"] or 0) > 0 for kind in kinds
    ), kinds
    assert set(kinds[0]) == {"kind", "similarity", "records", "mean_gain", "expected_tier"}
    assert set(evidence) >= {"score", "gate", "gain", "cues", "features"}
    assert "score_evidence" not in route(explain=False).json()
    for bad in ("yes", 1, None, [True], {"on": True}):
        refused = route(explain=bad)
        assert refused.status_code == 400, bad
        error = refused.json()["error"]
        assert error["param"] == "explain" and error["type"] == "invalid_request_error"
    assert clean_upstream.requests == []


def test_models_lists_auto_modes_and_what_the_tenant_may_call(proxy):
    acme = [m.id for m in client(proxy).models.list()]
    beta = [m.id for m in client(proxy, key=BETA_KEY).models.list()]
    assert acme == ["auto", "auto:cheap", "auto:balanced", "auto:quality", "fast", "reasoning"]
    assert beta == ["auto", "auto:cheap", "auto:balanced", "auto:quality", "fast"]


def test_concrete_model_passes_through_and_client_effort_is_respected(proxy, clean_upstream):
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="reasoning", messages=ask(CHAT), reasoning_effort="high"
    )
    assert raw.headers["x-thinkroute-tier"] == "direct"
    assert clean_upstream.requests[0]["body"]["reasoning_effort"] == "high"
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="auto", messages=ask(CHAT), reasoning_effort="low"
    )
    assert raw.headers["x-thinkroute-tier"] == "reasoning"
    assert raw.headers["x-thinkroute-reason"] == "client_set_reasoning"


def test_tenant_cannot_call_a_model_outside_its_list(proxy):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(proxy, key=BETA_KEY).chat.completions.create(model="reasoning", messages=ask(CHAT))
    assert refused.value.code == "model_not_allowed"


def test_fallback_to_fast_when_the_reasoning_model_fails(proxy, clean_upstream):
    clean_upstream.control("reasoning-model", fail_status=500)
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="auto", messages=ask(OLYMPIAD)
    )
    assert raw.headers["x-thinkroute-fallback"] == "reasoning failed"
    assert raw.headers["x-thinkroute-tier"] == "fast"
    assert raw.headers["x-thinkroute-model"] == "fast"
    assert [r["body"]["model"] for r in clean_upstream.requests] == [
        "reasoning-model", "fast-model"
    ]  # fmt: skip
    # the fast tier never receives the reasoning tier's effort
    assert "reasoning_effort" not in clean_upstream.requests[1]["body"]


def test_stream_falls_back_before_its_first_byte(proxy, clean_upstream):
    clean_upstream.control("reasoning-model", fail_status=503)
    chunks = list(
        client(proxy).chat.completions.create(model="auto", messages=ask(OLYMPIAD), stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_nothing_can_serve_gives_a_clean_502(proxy, clean_upstream):
    clean_upstream.control("reasoning-model", fail_status=500)
    clean_upstream.control("fast-model", fail_status=500)
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy).chat.completions.create(model="auto", messages=ask(CHAT))
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"
    assert UPSTREAM_KEY not in caught.value.response.text


def test_upstream_timeout_is_a_504(make_proxy, transport, clean_upstream):
    slow = make_proxy(timeout_s=0.3, fallback=False, direct_openai=transport == "direct")
    clean_upstream.control("fast-model", latency_s=1.0)
    with pytest.raises(openai.APIStatusError) as caught:
        client(slow).chat.completions.create(model="auto", messages=ask(CHAT))
    assert caught.value.status_code == 504


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"model": "auto", "messages": ask("hi")}, 401, "missing_api_key"),
        (
            {"authorization": "Bearer sk-wrong-000000"},
            {"model": "auto", "messages": ask("hi")},
            401,
            "invalid_api_key",
        ),
        (
            {"authorization": "Basic abc"},
            {"model": "auto", "messages": ask("hi")},
            401,
            "missing_api_key",
        ),
        (None, b"{not json", 400, "invalid_request"),
        (None, b"\xff\xfe", 400, "invalid_request"),
        (None, b"[1, 2]", 400, "invalid_request"),
        (None, {"model": "auto", "messages": []}, 400, "invalid_request"),
        (
            None,
            {"model": "auto", "messages": [{"role": "wizard", "content": "x"}]},
            400,
            "invalid_request",
        ),
        (
            None,
            {"model": "auto", "messages": [{"role": "user", "content": None}]},
            400,
            "invalid_request",
        ),
        (None, {"model": "auto", "messages": ask("hi"), "max_tokens": -5}, 400, "invalid_request"),
        (
            None,
            {"model": "auto", "messages": ask("hi"), "max_tokens": 10**12},
            400,
            "invalid_request",
        ),
        (
            None,
            {"model": "auto", "messages": ask("hi"), "temperature": "hot"},
            400,
            "invalid_request",
        ),
        (None, {"model": 7, "messages": ask("hi")}, 400, "invalid_request"),
        (
            None,
            {"model": "auto", "messages": ask("hi"), "api_base": "http://10.0.0.1"},
            400,
            "forbidden_parameter",
        ),
        (
            None,
            {"model": "auto", "messages": ask("hi"), "mock_response": "pwned"},
            400,
            "forbidden_parameter",
        ),
        (None, {"model": "auto", "messages": ask("hi"), "surprise": 1}, 400, "invalid_request"),
        (None, {"model": "gpt-17", "messages": ask("hi")}, 404, "model_not_found"),
        (None, {"model": "auto:turbo", "messages": ask("hi")}, 404, "model_not_found"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(proxy, clean_upstream, headers, body, status, code):
    headers = {"authorization": f"Bearer {ACME_KEY}"} if headers is None else headers
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{proxy.base_url}/chat/completions", headers=headers, content=content)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert clean_upstream.requests == []


def test_oversized_body_is_a_413(proxy):
    huge = {"model": "auto", "messages": ask("x" * (5 * 1024 * 1024))}
    response = httpx.post(f"{proxy.base_url}/chat/completions",
                          headers={"authorization": f"Bearer {ACME_KEY}"}, json=huge)  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_path_and_health(proxy):
    response = httpx.get(f"{proxy.url}/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()
    assert httpx.get(f"{proxy.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{proxy.url}/readyz")
    assert ready.status_code == 200 and ready.json()["classifier"] == "loaded"


def test_provider_key_never_reaches_a_response(proxy, clean_upstream):
    raw = client(proxy).chat.completions.with_raw_response.create(model="auto", messages=ask(CHAT))
    assert UPSTREAM_KEY not in raw.http_response.text
    assert all(UPSTREAM_KEY not in value for value in raw.headers.values())


def test_stream_cut_after_the_first_byte_ends_with_an_error_event(proxy, clean_upstream):
    clean_upstream.control("fast-model", cut_stream_after=2)
    with httpx.stream(
        "POST", f"{proxy.base_url}/chat/completions",
        headers={"authorization": f"Bearer {ACME_KEY}"},
        json={"model": "auto", "messages": ask(CHAT), "stream": True},
    ) as response:  # fmt: skip
        events = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]  # fmt: skip
    assert response.status_code == 200
    assert events[0]["choices"][0]["delta"]
    assert events[-1]["error"]["type"] in ("upstream_error", "rate_limit_error")
    # no fallback once bytes have reached the client: only the fast model was asked
    assert [r["body"]["model"] for r in clean_upstream.requests] == ["fast-model"]


def test_client_disconnect_mid_stream_closes_the_upstream_stream(proxy, clean_upstream):
    clean_upstream.control("fast-model", chunk_delay_s=0.2)
    with httpx.stream(
        "POST", f"{proxy.base_url}/chat/completions",
        headers={"authorization": f"Bearer {ACME_KEY}"},
        json={"model": "auto", "messages": ask(CHAT), "stream": True}, timeout=5,
    ) as response:  # fmt: skip
        next(response.iter_lines())  # take the first line, then hang up
    deadline = time.monotonic() + 5
    while not clean_upstream.streams and time.monotonic() < deadline:
        time.sleep(0.02)
    # The proxy hung up on the model too, well before the reply's words ran out.
    (stream,) = clean_upstream.streams
    assert stream == {
        "model": "fast-model",
        "outcome": "abandoned",
        "chunks_sent": stream["chunks_sent"],
    }
    assert stream["chunks_sent"] <= 3
    clean_upstream.reset()
    answer = client(proxy).chat.completions.create(model="auto", messages=ask(CHAT))
    assert answer.choices[0].message.content
