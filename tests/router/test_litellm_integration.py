"""thinkroute inside LiteLLM: a real ``litellm.Router`` routes ``model: auto`` by thinkroute.

The simulated upstream answers; what it was sent shows which tier was chosen and
with which reasoning settings.
"""

from __future__ import annotations

import litellm
import pytest

from router.config import build_config
from router.proxy import Router
from router.upstream.litellm_strategy import ThinkrouteStrategy
from tests.router.conftest import proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

CHAT = [{"role": "user", "content": "what's a nice name for a cat?"}]
OLYMPIAD = [
    {
        "role": "user",
        "content": "Let n be a positive integer. Find all functions f from the integers to the "
        "integers such that f(m + f(n)) = f(m) + n for all integers m and n.",
    }
]


def litellm_router(config) -> litellm.Router:
    """LiteLLM's Router over the same model_list thinkroute's config names."""
    model_list = [{"model_name": m.model_name, "litellm_params": dict(m.litellm_params)}
                  for m in config.model_list]  # fmt: skip
    return litellm.Router(model_list=model_list, num_retries=0)


@pytest.fixture
def routed(classifier, clean_upstream):
    """A litellm.Router with thinkroute installed as its routing strategy."""
    config = proxy_config(clean_upstream.base_url)
    llm = litellm_router(config)
    ThinkrouteStrategy(Router(config=config, classifier=classifier)).install(llm)
    return llm


def sent(upstream):
    return upstream.requests[-1]["body"]


@pytest.mark.anyio
async def test_auto_goes_to_the_tier_thinkroute_chooses_with_its_effort(routed, clean_upstream):
    easy = await routed.acompletion(model="auto", messages=CHAT)
    assert sent(clean_upstream)["model"] == "fast-model"
    assert "reasoning_effort" not in sent(clean_upstream)
    assert easy.choices[0].message.content.startswith("[fast-model]")

    hard = await routed.acompletion(model="auto", messages=OLYMPIAD)
    assert sent(clean_upstream)["model"] == "reasoning-model"
    assert sent(clean_upstream)["reasoning_effort"] in ("low", "medium", "high")
    assert hard.usage.completion_tokens_details.reasoning_tokens > 0


@pytest.mark.anyio
async def test_a_mode_a_client_effort_and_a_named_model_are_respected(routed, clean_upstream):
    await routed.acompletion(model="auto:cheap", messages=CHAT)
    assert sent(clean_upstream)["model"] == "fast-model"
    await routed.acompletion(model="auto", messages=CHAT, reasoning_effort="high")
    assert (sent(clean_upstream)["model"], sent(clean_upstream)["reasoning_effort"]) == (
        "reasoning-model",
        "high",
    )
    await routed.acompletion(model="reasoning", messages=CHAT)  # not routed: its own group
    assert sent(clean_upstream)["model"] == "reasoning-model"
    assert "reasoning_effort" not in sent(clean_upstream)


@pytest.mark.anyio
async def test_a_stream_through_litellm_is_routed_too(routed, clean_upstream):
    chunks = await routed.acompletion(model="auto", messages=OLYMPIAD, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text.startswith("[reasoning-model] answer to")


def test_the_blocking_litellm_call_is_routed(routed, clean_upstream):
    answer = routed.completion(model="auto", messages=OLYMPIAD)
    assert answer.choices[0].message.content.startswith("[reasoning-model]")


@pytest.mark.anyio
async def test_a_hybrid_models_thinking_switch_is_set_per_tier(classifier, clean_upstream):
    params = {"model": "openai/qwen3", "api_base": clean_upstream.base_url, "api_key": "sk-x"}
    config = build_config({
        "model_list": [{"model_name": "qwen3", "litellm_params": params}],
        "tiers": {"fast": {"model": "qwen3", "thinking": False},
                  "reasoning": {"model": "qwen3", "thinking": True}},
    })  # fmt: skip
    llm = litellm_router(config)
    ThinkrouteStrategy(Router(config=config, classifier=classifier)).install(llm)
    await llm.acompletion(model="auto", messages=CHAT)
    assert sent(clean_upstream)["chat_template_kwargs"] == {"enable_thinking": False}
    await llm.acompletion(model="auto", messages=OLYMPIAD)
    assert sent(clean_upstream)["chat_template_kwargs"] == {"enable_thinking": True}


@pytest.mark.anyio
async def test_the_proxy_hook_renames_auto_and_litellm_routes_in_the_group(
    classifier, clean_upstream
):
    config = proxy_config(clean_upstream.base_url)
    hook = ThinkrouteStrategy(Router(config=config, classifier=classifier))
    llm = litellm_router(config)  # LiteLLM's own strategy, as in a LiteLLM proxy
    data = {"model": "auto", "messages": OLYMPIAD}
    data = await hook.async_pre_call_hook(None, None, data, "completion")
    assert data["model"] == "reasoning"
    assert data["metadata"]["thinkroute"]["tier"] == "reasoning"
    await llm.acompletion(**data)
    assert sent(clean_upstream)["model"] == "reasoning-model"
    assert sent(clean_upstream)["reasoning_effort"] == data["reasoning_effort"]
