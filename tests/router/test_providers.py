"""Reasoning across providers: what each tier's settings put on the wire, and what is refused.

Each family's tiers are routed by a real Router and sent by real LiteLLM (or the
direct OpenAI transport) to a loopback server that records the request, so the
assertions are about the HTTP body a provider would receive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litellm.constants import DEFAULT_REASONING_EFFORT_LOW_THINKING_BUDGET

from router.config import TenantConfig, build_config, config_from_environment, load_config
from router.errors import ConfigError, InvalidRequestError
from router.policy import EFFORT_STEPS
from router.proxy import Router
from router.upstream.dispatch import Dispatcher, Target, configure_litellm
from tests.router.recording_upstream import RecordingUpstream

# LiteLLM's lazily imported provider modules warn as they load (its own code, not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
KEY = "sk-provider-test-key"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# One tenant per tier that may use only it, so each request's tier is fixed whatever the
# classifier thinks of the question.
TENANTS = [
    {"name": "fast-only", "api_keys": ["sk-fast-only-1"], "allowed_tiers": ["fast"]},
    {"name": "reasoning-only", "api_keys": ["sk-reasoning-1"], "allowed_tiers": ["reasoning"]},
]


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingUpstream]:
    configure_litellm()
    with RecordingUpstream() as server:
        yield server


@pytest.fixture
def upstream(recorder: RecordingUpstream) -> Iterator[RecordingUpstream]:
    recorder.reset()
    yield recorder
    recorder.reset()


def tiered_config(
    models: dict[str, tuple[str, dict[str, Any]]], tiers: dict[str, Any], **dispatch: Any
):
    """A config of ``{model_name: (litellm model, other litellm_params)}`` and tiers."""
    model_list = [
        {"model_name": name, "litellm_params": {"model": model, **params}}
        for name, (model, params) in models.items()
    ]
    return build_config({
        "model_list": model_list, "tiers": tiers, "tenants": TENANTS,
        "dispatch": {"num_retries": 0, "timeout_s": 10, **dispatch},
    })  # fmt: skip


def anthropic_config(upstream: RecordingUpstream, **reasoning_tier: Any):
    """Claude Haiku as the fast tier and Sonnet as the reasoning tier, over the recorder."""
    base = {"api_base": upstream.url, "api_key": KEY}
    return tiered_config(
        {"fast": ("anthropic/claude-haiku-4-5", base),
         "reasoning": ("anthropic/claude-sonnet-4-5", base)},
        {"fast": {"model": "fast"}, "reasoning": {"model": "reasoning", **reasoning_tier}},
    )  # fmt: skip


async def ask(config, classifier, tenant: TenantConfig | None = None, **params: Any):
    """One completion of QUESTION with ``params`` through a Router that is closed after."""
    router = Router(config=config, classifier=classifier)
    try:
        return await router.acompletion(
            {"model": "auto", "messages": QUESTION, **params}, tenant=tenant
        )
    finally:
        await router.aclose()


async def ask_each_tier(config, classifier) -> dict[str, Any]:
    """One request per tier through the Router; the completions, keyed by tier."""
    router = Router(config=config, classifier=classifier)
    try:
        done = {}
        for tenant in config.tenants:
            completion = await router.acompletion(
                {"model": "auto", "messages": QUESTION}, tenant=tenant
            )
            done[completion.decision.tier] = completion
        return done
    finally:
        await router.aclose()


def sent(upstream: RecordingUpstream) -> dict[str, dict[str, Any]]:
    """The two chat requests, fast's then reasoning's (ask_each_tier's order)."""
    fast, reasoning = upstream.requests
    return {"fast": fast, "reasoning": reasoning}


# -- what goes on the wire, per provider family ------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("direct_openai", [True, False], ids=["direct", "litellm"])
async def test_openai_reasoning_tier_sends_the_decided_effort(upstream, classifier, direct_openai):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"fast": ("openai/gpt-4o-mini", base), "reasoning": ("openai/o4-mini", base)},
        {"fast": {"model": "fast"},
         "reasoning": {"model": "reasoning", "reasoning_effort": "medium"}},
        direct_openai=direct_openai,
    )  # fmt: skip
    done = await ask_each_tier(config, classifier)
    requests = sent(upstream)
    assert requests["fast"]["path"] == requests["reasoning"]["path"] == "/v1/chat/completions"
    assert requests["fast"]["body"]["model"] == "gpt-4o-mini"
    assert "reasoning_effort" not in requests["fast"]["body"]
    reasoning = requests["reasoning"]["body"]
    # The policy moves the tier's effort a step with the score; what it decided is what is sent.
    assert reasoning["model"] == "o4-mini"
    assert reasoning["reasoning_effort"] == done["reasoning"].decision.reasoning_effort
    assert reasoning["reasoning_effort"] in EFFORT_STEPS
    assert requests["reasoning"]["headers"]["authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
async def test_anthropic_reasoning_tier_thinks_within_its_budget(upstream, classifier):
    config = anthropic_config(upstream, thinking_budget_tokens=8000)
    done = await ask_each_tier(config, classifier)
    requests = sent(upstream)
    assert requests["fast"]["path"] == requests["reasoning"]["path"] == "/v1/messages"
    assert requests["reasoning"]["headers"]["x-api-key"] == KEY
    fast, reasoning = requests["fast"]["body"], requests["reasoning"]["body"]
    assert fast["model"] == "claude-haiku-4-5" and "thinking" not in fast
    assert reasoning["model"] == "claude-sonnet-4-5"
    assert reasoning["thinking"] == {"type": "enabled", "budget_tokens": 8000}
    assert reasoning["max_tokens"] > 8000  # Anthropic refuses a budget that fills max_tokens
    message = done["reasoning"].response["choices"][0]["message"]
    assert message["content"] == "[claude-sonnet-4-5] answer"
    assert message["reasoning_content"] == "Let me see."  # Claude's thinking comes back


@pytest.mark.anyio
@pytest.mark.parametrize(("max_tokens", "thinking"), [
    (2000, {"type": "enabled", "budget_tokens": 1999}),  # the budget shrinks to fit the cap
    (600, None),  # Anthropic's least budget (1024) cannot fit: no thinking
    (20000, {"type": "enabled", "budget_tokens": 8000}),
])  # fmt: skip
async def test_an_anthropic_budget_fits_inside_the_clients_max_tokens(
    upstream, classifier, max_tokens, thinking
):
    config = anthropic_config(upstream, thinking_budget_tokens=8000)
    reasoning_only = config.tenants[1]
    done = await ask(config, classifier, reasoning_only, max_tokens=max_tokens)
    assert done.decision.tier == "reasoning"
    (request,) = upstream.requests
    # Anthropic refuses max_tokens <= budget_tokens; the client's cap stays the cap.
    assert request["body"]["max_tokens"] == max_tokens
    assert request["body"].get("thinking") == thinking


@pytest.mark.anyio
async def test_a_parameter_the_provider_cannot_take_is_refused_in_the_proxys_words(
    upstream, classifier
):
    config = anthropic_config(upstream)
    with pytest.raises(InvalidRequestError) as refused:
        await ask(config, classifier, config.tenants[1], logit_bias={"1": 1})
    message = str(refused.value)
    assert "does not support parameters: ['logit_bias']" in message
    # LiteLLM's advice is about its own settings, which a client of the proxy cannot change.
    assert "litellm" not in message.lower() and "drop_params" not in message
    assert upstream.requests == []


@pytest.mark.anyio
async def test_one_gemini_model_thinks_off_for_fast_and_on_a_budget_for_reasoning(
    upstream, classifier
):
    # LiteLLM appends /models/{model}:generateContent to a Gemini api_base.
    base = {"api_base": f"{upstream.url}/v1beta", "api_key": KEY}
    config = tiered_config(
        {"flash": ("gemini/gemini-2.5-flash", base)},
        {"fast": {"model": "flash", "thinking": False},
         "reasoning": {"model": "flash", "thinking_budget_tokens": 4096}},
    )  # fmt: skip
    done = await ask_each_tier(config, classifier)
    requests = sent(upstream)
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert requests["fast"]["path"] == requests["reasoning"]["path"] == path
    assert requests["fast"]["headers"]["x-goog-api-key"] == KEY
    fast = requests["fast"]["body"]["generationConfig"]["thinkingConfig"]
    reasoning = requests["reasoning"]["body"]["generationConfig"]["thinkingConfig"]
    assert fast["thinkingBudget"] == 0  # Gemini Flash thinks by default: off is a zero budget
    assert reasoning["thinkingBudget"] == 4096 and reasoning["includeThoughts"] is True
    assert done["fast"].response["choices"][0]["message"]["content"] == "[gemini-2.5-flash] answer"


@pytest.mark.anyio
async def test_a_gemini_call_leaves_openai_deployments_on_the_direct_transport(
    upstream, classifier
):
    # LiteLLM's Gemini code registers a "cache" logging hook of its own as it loads; it must
    # not read as a user's LiteLLM callback, which would send every call through LiteLLM.
    config = tiered_config(
        {"flash": ("gemini/gemini-2.5-flash", {"api_base": f"{upstream.url}/v1beta",
                                               "api_key": KEY}),
         "mini": ("openai/gpt-4o-mini", {"api_base": f"{upstream.url}/v1", "api_key": KEY})},
        {"fast": {"model": "mini"},
         "reasoning": {"model": "flash", "thinking_budget_tokens": 1024}},
    )  # fmt: skip
    await ask_each_tier(config, classifier)  # fast (OpenAI) first, then Gemini
    await ask_each_tier(config, classifier)
    agents = [r["headers"]["user-agent"] for r in upstream.requests if r["body"].get("messages")]
    assert len(agents) == 2 and all("aiohttp" in agent for agent in agents)


@pytest.mark.anyio
async def test_deepseek_tiers_are_chat_and_reasoner(upstream, classifier):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"chat": ("deepseek/deepseek-chat", base),
         "reasoner": ("deepseek/deepseek-reasoner", base)},
        {"fast": {"model": "chat"}, "reasoning": {"model": "reasoner"}},
    )  # fmt: skip
    await ask_each_tier(config, classifier)
    requests = sent(upstream)
    assert requests["fast"]["path"] == requests["reasoning"]["path"] == "/v1/chat/completions"
    assert requests["fast"]["body"]["model"] == "deepseek-chat"
    assert requests["reasoning"]["body"]["model"] == "deepseek-reasoner"
    assert "thinking" not in requests["fast"]["body"]


@pytest.mark.anyio
async def test_deepseek_chat_declared_a_thinker_is_switched_on(upstream, classifier):
    # LiteLLM's map says deepseek-chat does not think; the deployment can say otherwise
    # (DeepSeek's hybrid models take thinking: {type: enabled}).
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    params = {"model": "deepseek/deepseek-chat", **base}
    config = build_config({
        "model_list": [{"model_name": "chat", "litellm_params": params,
                        "model_info": {"supports_reasoning": True}}],
        "tiers": {"fast": {"model": "chat", "thinking": False},
                  "reasoning": {"model": "chat", "thinking": True}},
        "tenants": TENANTS, "dispatch": {"num_retries": 0},
    })  # fmt: skip
    await ask_each_tier(config, classifier)
    requests = sent(upstream)
    assert requests["fast"]["body"]["thinking"] == {"type": "disabled"}
    assert requests["reasoning"]["body"]["thinking"] == {"type": "enabled"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prefix", "direct_openai"),
    [("hosted_vllm", False), ("openai", True), ("openai", False)],
    ids=["hosted_vllm", "openai-compatible-direct", "openai-compatible-litellm"],
)
async def test_one_qwen3_on_vllm_is_both_tiers_thinking_off_and_on(
    upstream, classifier, prefix, direct_openai
):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"qwen3": (f"{prefix}/Qwen/Qwen3-8B", base)},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
        direct_openai=direct_openai,
    )  # fmt: skip
    done = await ask_each_tier(config, classifier)
    requests = sent(upstream)
    for tier, is_on in (("fast", False), ("reasoning", True)):
        body = requests[tier]["body"]
        assert requests[tier]["path"] == "/v1/chat/completions"
        assert body["model"] == "Qwen/Qwen3-8B"
        assert body["chat_template_kwargs"] == {"enable_thinking": is_on}
        assert "reasoning_effort" not in body
        assert done[tier].served.target.model_name == "qwen3"


@pytest.mark.anyio
async def test_the_switch_joins_the_deployments_own_extra_body(upstream, classifier):
    # vLLM deployments often carry sampling settings of their own in extra_body.
    extra = {"top_k": 20, "chat_template_kwargs": {"tools_in_user_message": False}}
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY, "extra_body": extra}
    config = tiered_config(
        {"qwen3": ("hosted_vllm/Qwen/Qwen3-8B", base)},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
    )  # fmt: skip
    await ask_each_tier(config, classifier)
    body = sent(upstream)["fast"]["body"]
    assert body["top_k"] == 20
    assert body["chat_template_kwargs"] == {
        "tools_in_user_message": False,
        "enable_thinking": False,
    }


@pytest.mark.anyio
async def test_a_stream_carries_the_tiers_thinking_switch(upstream, classifier):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"qwen3": ("openai/Qwen/Qwen3-8B", base)},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
    )  # fmt: skip
    router = Router(config=config, classifier=classifier)
    try:
        streamed = await router.astream(
            {"model": "auto", "messages": QUESTION, "stream": True}, tenant=config.tenants[0]
        )
        text = "".join(
            [c["choices"][0]["delta"].get("content") or "" async for c in streamed.chunks
             if c.get("choices")]
        )  # fmt: skip
    finally:
        await router.aclose()
    assert text.startswith("[Qwen/Qwen3-8B] answer")
    (request,) = upstream.requests
    assert request["body"]["stream"] is True
    assert request["body"]["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.anyio
async def test_ollama_from_the_environment_thinks_only_on_the_reasoning_tier(upstream, classifier):
    # What `thinkroute serve` builds with OLLAMA_API_BASE set: one Qwen3, off and on.
    config, chosen = config_from_environment({"OLLAMA_API_BASE": upstream.url})
    assert "qwen3" in chosen
    tenants = [TenantConfig.model_validate(tenant) for tenant in TENANTS]
    config = config.model_copy(update={"tenants": tenants})
    await ask_each_tier(config, classifier)
    requests = sent(upstream)
    assert requests["fast"]["path"] == requests["reasoning"]["path"] == "/api/chat"
    assert requests["fast"]["body"]["model"] == "qwen3"
    assert requests["fast"]["body"]["think"] is False
    assert requests["reasoning"]["body"]["think"] is True


@pytest.mark.anyio
async def test_a_fallback_to_the_fast_tier_sends_the_fast_tiers_settings(upstream):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"qwen3": ("hosted_vllm/Qwen/Qwen3-8B", base)},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
    )  # fmt: skip
    deployment = config.deployment("qwen3")
    fast, reasoning = config.tiers["fast"], config.tiers["reasoning"]
    upstream.failures = 1  # the reasoning call gets a 503
    dispatcher = Dispatcher(config=config)
    try:
        _, served = await dispatcher.complete(
            {"messages": QUESTION},
            Target.for_tier(deployment, reasoning, None),
            Target.for_tier(deployment, fast, None),
        )
    finally:
        await dispatcher.aclose()
    assert served.is_fallback
    first, second = upstream.requests
    assert first["body"]["chat_template_kwargs"] == {"enable_thinking": True}
    assert second["body"]["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.anyio
async def test_a_client_that_sets_its_own_reasoning_is_not_overridden(upstream):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"fast": ("openai/gpt-4o-mini", base),
         "sonnet": ("anthropic/claude-sonnet-4-5", {"api_base": upstream.url, "api_key": KEY})},
        {"fast": {"model": "fast"},
         "reasoning": {"model": "sonnet", "thinking_budget_tokens": 8000}},
    )  # fmt: skip
    done = await ask(config, None, reasoning_effort="low")  # a requested effort needs no classifier
    assert done.decision.tier == "reasoning"
    (request,) = upstream.requests
    # LiteLLM's own translation of the client's "low", not the tier's 8000.
    budget = DEFAULT_REASONING_EFFORT_LOW_THINKING_BUDGET
    assert request["body"]["thinking"] == {"type": "enabled", "budget_tokens": budget}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("effort", "tier", "is_on"), [("none", "fast", False), ("high", "reasoning", True)]
)
async def test_a_clients_own_effort_on_a_hybrid_vllm_model_also_flips_its_thinking_switch(
    upstream, effort, tier, is_on
):
    base = {"api_base": f"{upstream.url}/v1", "api_key": KEY}
    config = tiered_config(
        {"qwen3": ("hosted_vllm/Qwen/Qwen3-8B", base)},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
    )  # fmt: skip
    done = await ask(
        config, None, reasoning_effort=effort
    )  # a requested effort needs no classifier
    assert done.decision.tier == tier
    (request,) = upstream.requests
    # Qwen3 on vLLM reads only the chat-template switch: "none" must turn thinking off.
    assert request["body"]["chat_template_kwargs"] == {"enable_thinking": is_on}
    assert request["body"]["reasoning_effort"] == effort  # the client's own, as sent


def test_thinking_off_and_on_are_cached_apart():
    config = tiered_config(
        {"qwen3": ("hosted_vllm/Qwen/Qwen3-8B", {"api_base": "http://127.0.0.1:9/v1"})},
        {"fast": {"model": "qwen3", "thinking": False},
         "reasoning": {"model": "qwen3", "thinking": True}},
    )  # fmt: skip
    deployment = config.deployment("qwen3")
    off = Target.for_tier(deployment, config.tiers["fast"], None)
    on = Target.for_tier(deployment, config.tiers["reasoning"], None)
    assert off.reasoning_key != on.reasoning_key
    # Tiers without thinking settings keep the keys they always had.
    assert Target(deployment, "medium").reasoning_key == "medium"


# -- what is refused at load -------------------------------------------------------------

CONFIG = """
model_list:
  - model_name: fast
    litellm_params: {{model: {fast}}}
  - model_name: reasoning
    litellm_params: {{model: {reasoning}}}
    model_info: {info}
tiers:
  fast: {{model: fast{fast_tier}}}
  reasoning: {{model: {reasoning_name}{reasoning_tier}}}
"""


def write_config(tmp_path, *, fast="openai/gpt-4o-mini", reasoning, fast_tier="",
                 reasoning_tier="", info="{}", reasoning_name="reasoning"):  # fmt: skip
    path = tmp_path / "thinkroute.yaml"
    path.write_text(CONFIG.format(**locals()))
    return path


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"reasoning": "openai/gpt-4o-mini", "reasoning_tier": ", reasoning_effort: high"},
         "tiers.reasoning.reasoning_effort", "does not accept a reasoning effort"),
        ({"reasoning": "openai/o4-mini", "reasoning_tier": ", thinking_budget_tokens: 4096"},
         "tiers.reasoning.thinking_budget_tokens", "takes no thinking budget"),
        ({"reasoning": "deepseek/deepseek-reasoner",
          "reasoning_tier": ", thinking_budget_tokens: 4096"},
         "tiers.reasoning.thinking_budget_tokens", "takes no thinking budget"),
        ({"reasoning": "anthropic/claude-3-haiku-20240307",
          "reasoning_tier": ", thinking_budget_tokens: 4096"},
         "tiers.reasoning.thinking_budget_tokens", "cannot think on request"),
        ({"reasoning": "openai/gpt-4o-mini", "fast": "ollama/llama3.1",
          "fast_tier": ", thinking: false", "reasoning_tier": ""},
         "tiers.fast.thinking", "does not think"),
        ({"reasoning": "anthropic/claude-sonnet-4-5",
          "reasoning_tier": ", thinking_budget_tokens: 512"},
         "tiers.reasoning.thinking_budget_tokens", "at least 1024"),
        ({"reasoning": "anthropic/claude-sonnet-4-5", "reasoning_tier": ", thinking: true"},
         "tiers.reasoning.thinking", "set thinking_budget_tokens"),
        ({"reasoning": "openai/o4-mini", "reasoning_tier": ", thinking: true"},
         "tiers.reasoning.thinking", "take reasoning_effort, not thinking on/off"),
        ({"reasoning": "ollama_chat/llama3.1", "reasoning_tier": ", thinking: true"},
         "tiers.reasoning.thinking", "does not think"),
        ({"reasoning": "deepseek/deepseek-chat", "reasoning_tier": ", thinking: true"},
         "tiers.reasoning.thinking", "model_info.supports_reasoning"),
        ({"reasoning": "hosted_vllm/my-model", "reasoning_tier": ", thinking: true",
          "info": "{supports_reasoning: false}"},
         "tiers.reasoning.thinking", "does not think"),
        ({"reasoning": "openai/gpt-4o-mini", "fast": "gemini/gemini-2.0-flash",
          "fast_tier": ", thinking: false", "reasoning_tier": ""},
         "tiers.fast.thinking", "cannot think on request"),
        ({"reasoning": "openai/o4-mini", "fast": "gemini/gemini-2.5-pro",
          "fast_tier": ", thinking: false", "reasoning_tier": ""},
         "tiers.fast.thinking", "always thinks"),
        ({"reasoning": "anthropic/claude-sonnet-4-5",
          "reasoning_tier": ", reasoning_effort: high, thinking_budget_tokens: 4096"},
         "tiers.reasoning.thinking_budget_tokens", "not both"),
        ({"reasoning": "ollama_chat/qwen3", "reasoning_tier": ", reasoning_effort: high, "
          "thinking: true"}, "tiers.reasoning.thinking", "not both"),
        ({"reasoning": "gemini/gemini-2.5-flash",
          "reasoning_tier": ", thinking: false, thinking_budget_tokens: 4096"},
         "tiers.reasoning.thinking_budget_tokens", "needs thinking on"),
        ({"reasoning": "anthropic/claude-sonnet-4-5",
          "reasoning_tier": ", thinking_budget_tokens: 0"},
         "tiers.reasoning.thinking_budget_tokens", "greater than 0"),
        ({"fast": "ollama_chat/qwen3", "reasoning_name": "fast", "reasoning": "openai/o4-mini",
          "fast_tier": ", thinking: true", "reasoning_tier": ", thinking: true"},
         "tiers.reasoning", "routing would change nothing"),
        ({"reasoning": "openai/o4-mini", "reasoning_name": "fast"},
         "tiers.reasoning", "routing would change nothing"),
    ],
)  # fmt: skip
def test_an_unsupported_combination_is_refused_naming_file_and_field(
    tmp_path, settings, field, says
):
    path = write_config(tmp_path, **settings)
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    message = str(refused.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert says in message


@pytest.mark.parametrize(
    "settings",
    [
        {"reasoning": "openai/o4-mini", "reasoning_tier": ", reasoning_effort: high"},
        {"reasoning": "anthropic/claude-sonnet-4-5", "reasoning_tier": ", reasoning_effort: low"},
        {"reasoning": "anthropic/claude-sonnet-4-5", "fast_tier": ", thinking: false",
         "fast": "anthropic/claude-haiku-4-5", "reasoning_tier": ", thinking_budget_tokens: 2048"},
        {"reasoning": "gemini/gemini-2.5-pro", "reasoning_tier": ", thinking: true"},
        {"reasoning": "deepseek/deepseek-reasoner", "reasoning_tier": ", reasoning_effort: high"},
        {"fast": "ollama_chat/qwen3", "reasoning_name": "fast", "reasoning": "openai/o4-mini",
         "fast_tier": ", thinking: false", "reasoning_tier": ", thinking: true"},
        # A model LiteLLM has never heard of is taken at its word.
        {"reasoning": "hosted_vllm/Qwen/Qwen3-32B", "reasoning_tier": ", thinking: true"},
    ],
)  # fmt: skip
def test_the_documented_combinations_load(tmp_path, settings):
    load_config(write_config(tmp_path, **settings), env={})
