"""How a tier's reasoning settings become LiteLLM arguments, and which ones a provider takes.

A tier says how hard its model should think with one of three settings:

- ``reasoning_effort``: OpenAI's levels; LiteLLM translates them for every
  provider that has an equivalent (Anthropic and Gemini budgets, DeepSeek's
  and Ollama's on/off switch).
- ``thinking``: on or off, for hybrid models (Qwen3 served by vLLM or Ollama,
  DeepSeek, Gemini Flash turned off). The same model can be both tiers, off
  for fast and on for reasoning.
- ``thinking_budget_tokens``: a thinking budget (Anthropic, Gemini).

:func:`litellm_kwargs` turns them into what LiteLLM takes for the deployment's
provider, so the wire format stays LiteLLM's business; :func:`check_tier` and
:func:`check_pair` refuse, at config load, what a provider cannot take instead
of letting LiteLLM drop it or the provider answer 400 on the first request.

Whether a model can think is LiteLLM's knowledge (``supports_reasoning`` in its
bundled model map). A model LiteLLM has never heard of (a self-hosted one) is
taken at its word, and ``model_info: {supports_reasoning: false}`` (or ``true``)
in the deployment overrides LiteLLM either way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # the config imports this module to check tiers: types only here
    from router.config import Thinking

__all__ = [
    "Problem",
    "check_pair",
    "check_tier",
    "fit_to_max_tokens",
    "litellm_kwargs",
    "provider_of",
]

# Providers that think within a token budget, and the smallest budget each takes
# (Anthropic refuses budget_tokens below 1024).
BUDGET_PROVIDERS = {"anthropic": 1024, "gemini": 1}
# Self-hosted OpenAI-compatible servers (vLLM, SGLang) switch a hybrid model's thinking
# with a chat-template argument; Qwen3's (and GLM's) template reads `enable_thinking`.
CHAT_TEMPLATE_PROVIDERS = frozenset({"hosted_vllm", "openai"})
OLLAMA_PROVIDERS = frozenset({"ollama", "ollama_chat"})
# Gemini models that cannot turn thinking off (2.5 Pro, 3 Pro and later Pros).
_ALWAYS_THINKS = re.compile(r"gemini-(?:2\.5|[3-9](?:\.\d+)?)-pro")


class Problem(NamedTuple):
    """Why a tier's settings cannot be sent: the tier field at fault, and what to do."""

    field: str
    message: str


def provider_of(litellm_params: Mapping[str, Any]) -> tuple[str, str]:
    """LiteLLM's ``(model, provider)`` for a deployment; raises what LiteLLM raises."""
    return _provider(
        str(litellm_params["model"]),
        litellm_params.get("custom_llm_provider"),
        litellm_params.get("api_base"),
    )


@functools.lru_cache(maxsize=256)
def _provider(model: str, custom_llm_provider: str | None, api_base: str | None) -> tuple[str, str]:
    # Asked on every call of a tier with a thinking switch; the answer never changes.
    import litellm

    name, provider, _, _ = litellm.get_llm_provider(
        model, custom_llm_provider=custom_llm_provider, api_base=api_base
    )
    return name, provider


def litellm_kwargs(litellm_params: Mapping[str, Any], thinking: Thinking) -> dict[str, Any]:
    """The LiteLLM arguments that make the deployment think as ``thinking`` says.

    >>> from router.config import Thinking
    >>> litellm_kwargs({"model": "ollama_chat/qwen3"}, Thinking(is_enabled=False))
    {'reasoning_effort': 'none'}
    """
    if thinking.effort is not None:
        return {"reasoning_effort": thinking.effort}
    if thinking.budget_tokens is not None:
        # LiteLLM's Anthropic-style parameter: Anthropic sends it as is, Gemini as
        # generationConfig.thinkingConfig.thinkingBudget.
        return {"thinking": {"type": "enabled", "budget_tokens": thinking.budget_tokens}}
    if thinking.is_enabled is None:
        return {}
    _, provider = provider_of(litellm_params)
    is_on = thinking.is_enabled
    if provider in OLLAMA_PROVIDERS:
        # LiteLLM turns an effort into Ollama's `think` flag: "none" off, low..high on.
        return {"reasoning_effort": "medium" if is_on else "none"}
    if provider == "deepseek":
        return {"thinking": {"type": "enabled" if is_on else "disabled"}}
    if provider == "gemini":
        # Off is a zero thinking budget (LiteLLM sends thinkingConfig.thinkingBudget: 0);
        # on without a budget lets Gemini choose one.
        return {"thinking": {"type": "enabled"}} if is_on else {"reasoning_effort": "none"}
    if provider == "anthropic":
        return {}  # off: Claude thinks only when asked (on needs a budget: see check_tier)
    # Self-hosted OpenAI-compatible server: sent in the body as the OpenAI SDK sends extra_body.
    return {"extra_body": {"chat_template_kwargs": {"enable_thinking": is_on}}}


def fit_to_max_tokens(
    kwargs: dict[str, Any], litellm_params: Mapping[str, Any], max_tokens: int | None
) -> dict[str, Any]:
    """``kwargs`` with a tier's Anthropic thinking budget fitted inside the client's max_tokens.

    Anthropic counts thinking inside ``max_tokens`` and refuses a budget that
    leaves no room for the answer. The client's ``max_tokens`` caps the whole
    output, as Anthropic defines it, so the budget shrinks to fit; where even
    Anthropic's least budget does not fit, the model answers without thinking.
    """
    thinking = kwargs.get("thinking")
    if max_tokens is None or not isinstance(thinking, dict) or "budget_tokens" not in thinking:
        return kwargs
    if provider_of(litellm_params)[1] != "anthropic":
        return kwargs
    budget = min(int(thinking["budget_tokens"]), max_tokens - 1)
    if budget < BUDGET_PROVIDERS["anthropic"]:
        return {name: value for name, value in kwargs.items() if name != "thinking"}
    return {**kwargs, "thinking": {**thinking, "budget_tokens": budget}}


def check_tier(
    litellm_params: Mapping[str, Any], model_info: Mapping[str, Any], thinking: Thinking
) -> Problem | None:
    """What stops this deployment from taking these settings, or None if it can."""
    if thinking.effort is not None and thinking.budget_tokens is not None:
        return Problem(
            "thinking_budget_tokens",
            "set reasoning_effort or thinking_budget_tokens, not both (LiteLLM turns an effort "
            "into a budget)",
        )
    if thinking.effort is not None and thinking.is_enabled is not None:
        return Problem(
            "thinking", "set reasoning_effort or thinking, not both ('none' is thinking off)"
        )
    if thinking.is_enabled is False and thinking.budget_tokens is not None:
        return Problem("thinking_budget_tokens", "a thinking budget needs thinking on")
    if thinking.is_default:
        return None
    model, provider = provider_of(litellm_params)
    name = f"{litellm_params['model']} ({provider})"
    import litellm

    supported = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
    if thinking.effort is not None:
        if "reasoning_effort" not in (supported or []):
            return Problem(
                "reasoning_effort",
                f"{name} does not accept a reasoning effort; remove it or pick a reasoning model",
            )
        return None
    field = "thinking_budget_tokens" if thinking.budget_tokens is not None else "thinking"
    if _can_think(model, provider, model_info) is False:
        return Problem(
            field,
            f"{name} does not think, according to LiteLLM's model map; remove {field}, pick a "
            "thinking model, or set model_info.supports_reasoning: true on the deployment",
        )
    if thinking.budget_tokens is not None:
        problem = _check_budget(name, provider, thinking.budget_tokens)
    else:
        problem = _check_switch(name, provider, litellm_params, thinking)
    if problem is not None:
        return problem
    # What would be sent must be a parameter LiteLLM passes on for this model.
    sent = litellm_kwargs(litellm_params, thinking).keys() - {"extra_body"}
    missing = sorted(sent - set(supported or []))
    if missing:
        return Problem(field, f"{name} cannot think on request (LiteLLM takes no {missing[0]})")
    return None


def check_pair(fast: tuple[str, Thinking], reasoning: tuple[str, Thinking]) -> Problem | None:
    """Refuse two tiers that would send the very same request: routing would change nothing."""
    if fast != reasoning:
        return None
    return Problem(
        "reasoning",
        f"the same model ({reasoning[0]}) with the same reasoning settings as tiers.fast, so "
        "routing would change nothing; give the reasoning tier thinking: true, a "
        "thinking_budget_tokens or a higher reasoning_effort, or another model",
    )


def _can_think(model: str, provider: str, model_info: Mapping[str, Any]) -> bool | None:
    """Whether the model can think: the deployment's word, else LiteLLM's model map, else
    None (unknown: a self-hosted model LiteLLM has never heard of)."""
    declared = model_info.get("supports_reasoning")
    if declared is not None:
        return bool(declared)
    # The bundled map itself, not litellm.supports_reasoning(): for some providers that asks
    # the server (Ollama's /api/show), and loading a config must not touch the network.
    keys = [f"{provider}/{model}", model]
    if provider == "ollama_chat":  # the map lists Ollama's models once, under ollama/
        keys.append(f"ollama/{model}")
    import litellm

    entries = [litellm.model_cost.get(key) for key in keys]
    known = [entry for entry in entries if entry is not None]
    if not known:
        return None
    return any(entry.get("supports_reasoning") is True for entry in known)


def _check_budget(name: str, provider: str, budget: int) -> Problem | None:
    if provider not in BUDGET_PROVIDERS:
        return Problem(
            "thinking_budget_tokens",
            f"{name} takes no thinking budget (Anthropic and Gemini do); use reasoning_effort "
            "or thinking, as its provider takes them",
        )
    least = BUDGET_PROVIDERS[provider]
    if budget < least:
        return Problem("thinking_budget_tokens", f"{provider} needs a budget of at least {least}")
    return None


def _check_switch(
    name: str, provider: str, litellm_params: Mapping[str, Any], thinking: Thinking
) -> Problem | None:
    if provider == "anthropic" and thinking.is_enabled:
        return Problem(
            "thinking", f"{name} thinks within a budget: set thinking_budget_tokens instead"
        )
    if provider == "gemini" and thinking.is_enabled is False and _ALWAYS_THINKS.search(name):
        # Gemini's Pro models refuse a thinking budget of 0 ("only works in thinking mode").
        return Problem("thinking", f"{name} always thinks; pick a Flash model to turn it off")
    if provider in OLLAMA_PROVIDERS or provider in ("deepseek", "gemini", "anthropic"):
        return None
    if provider in CHAT_TEMPLATE_PROVIDERS and (
        provider == "hosted_vllm" or litellm_params.get("api_base")
    ):
        return None
    if provider == "openai":
        reason = "OpenAI's own models take reasoning_effort, not thinking on/off"
    else:
        reason = "thinkroute knows no thinking switch for this provider; use reasoning_effort"
    hint = " (a self-hosted OpenAI-compatible server needs litellm_params.api_base)"
    return Problem("thinking", f"{name}: {reason}{hint if provider == 'openai' else ''}")
