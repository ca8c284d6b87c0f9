"""Send a routed request to its model through LiteLLM, with fallback and real cost.

LiteLLM is imported on first use (in router/upstream/ only), so a process that
never calls a model never pays for importing it. A call goes to the chosen tier; if that
fails with an upstream fault (5xx, timeout, connection, rate limit, garbage)
and fallback is on, the other tier answers instead. A stream falls back only
before its first chunk: after that the client has bytes of one model's answer.
Cost is computed from the usage the provider returns, reasoning tokens
included (they are part of ``completion_tokens``), at the deployment's
``model_info`` prices when set, else LiteLLM's price map.

Speed: LiteLLM spends most of its per-call time on things a proxy that keeps
its own books does not use: after each response it prices the call again for
its own logging, builds a logging payload, deep-copies it to redact messages
and runs it through a background worker, with no callback to receive it. So a
call with no LiteLLM callback registered runs as LiteLLM's "internal sub-call"
(no success or failure logging; the caller bills), and a deployment with
``model_info`` prices passes them along, so LiteLLM's own pricing hook reads
them instead of searching its price map. Register a LiteLLM callback and
every call is logged as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from router.config import Config, ModelDeployment, Thinking, Tier
from router.environment import Environment, read_environment
from router.errors import (
    InvalidRequestError,
    RateLimitError,
    ThinkrouteError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from router.upstream.openai_direct import DirectOpenAI, is_direct_eligible, redact_locations
from router.upstream.reasoning import fit_to_max_tokens, litellm_kwargs

__all__ = [
    "Dispatcher",
    "Served",
    "Target",
    "TokenPrices",
    "configure_litellm",
    "cost_usd",
    "context_window",
    "count_prompt_tokens",
    "token_prices",
]

logger = logging.getLogger(__name__)

Completion = Callable[..., Awaitable[Any]]
_Result = TypeVar("_Result")


@functools.cache
def _find_unlogged() -> Callable[[], AbstractContextManager[Any]] | None:
    """LiteLLM's marker for a call whose caller logs and bills it: skips success logging."""
    try:
        from litellm._internal_context import internal_sub_call
    except ImportError:  # pragma: no cover - an older LiteLLM logs every call
        return None
    return internal_sub_call


@functools.cache
def _find_own_hooks() -> frozenset[str]:
    """The names of hooks LiteLLM registers for itself, not for a caller."""
    try:
        from litellm.constants import INTERNAL_CALLBACK_NAMES
    except ImportError:  # pragma: no cover - an older LiteLLM
        return frozenset({"cache"})
    return frozenset(INTERNAL_CALLBACK_NAMES)


# A request that sets one of these has chosen its own reasoning: the tier's is not added.
CLIENT_REASONING_PARAMS = frozenset({"reasoning_effort", "thinking"})

# "litellm.BadRequestError: " and the like, in front of LiteLLM's messages.
_LITELLM_PREFIX = re.compile(r"^litellm\.\w+: ")

# LiteLLM's callback lists: while all are empty, nobody receives its logging.
_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "service_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def configure_litellm() -> None:
    """Switch off what a proxy does not need on every call: telemetry, logging of messages,
    debug banners. Process-wide, so the entry point calls it once."""
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.drop_params = False  # a parameter a provider cannot take is an error, not a silent drop
    litellm.set_verbose = False


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment and how hard to ask it to think (see router/upstream/reasoning.py)."""

    deployment: ModelDeployment
    reasoning_effort: str | None = None
    thinking: bool | None = None
    thinking_budget_tokens: int | None = None

    @classmethod
    def for_tier(cls, deployment: ModelDeployment, tier: Tier, effort: str | None) -> Target:
        """The tier's model with its thinking settings, at ``effort`` (the policy's, which
        may differ from the tier's by a step)."""
        return cls(deployment, effort, tier.thinking, tier.thinking_budget_tokens)

    @property
    def model_name(self) -> str:
        return self.deployment.model_name

    @property
    def reasoning(self) -> Thinking:
        return Thinking(self.reasoning_effort, self.thinking, self.thinking_budget_tokens)

    @property
    def reasoning_key(self) -> str | None:
        """The reasoning settings as one string, for cache keys: one hybrid model with
        thinking off and on gives two different answers."""
        if self.thinking is None and self.thinking_budget_tokens is None:
            return self.reasoning_effort  # keys stay what they were before thinking settings
        return f"{self.reasoning_effort}/thinking={self.thinking}/{self.thinking_budget_tokens}"


@dataclass(frozen=True, slots=True)
class Served:
    """Which target answered, and whether that was a fallback."""

    target: Target
    is_fallback: bool


class Dispatcher:
    """Calls LiteLLM for a target, falling back to a second target on upstream faults.

    ``completion`` is LiteLLM's ``acompletion`` unless a test passes another; ``env``
    holds the provider variables the direct transport reads as LiteLLM does.

    Timeouts limit silence, not length (see ``DispatchConfig``): a stream's first
    chunk must come within ``timeout_s`` and each later one within ``idle_s``, on
    either transport, and only ``stream_timeout_s`` caps a stream that keeps producing.
    """

    def __init__(
        self,
        *,
        config: Config,
        completion: Completion | None = None,
        env: Environment | None = None,
    ) -> None:
        self.config = config
        dispatch = config.dispatch
        self.direct = None
        if dispatch.direct_openai and completion is None:
            self.direct = DirectOpenAI(
                timeout_s=dispatch.timeout_s,
                num_retries=dispatch.num_retries,
                connect_timeout_s=dispatch.connect_timeout_s,
                stream_read_s=dispatch.read_s,
                env=(env or read_environment()).variables,
            )
        self._direct_models = {m.model_name for m in config.model_list if is_direct_eligible(m)}
        if completion is None:
            import litellm

            completion = litellm.acompletion
        self.completion = completion

    async def aclose(self) -> None:
        if self.direct is not None:
            await self.direct.aclose()

    async def _call(self, arguments: dict[str, Any]) -> Any:
        with _logging_scope():
            return await self.completion(**arguments)

    def _goes_direct(self, target: Target) -> bool:
        """OpenAI-compatible deployments skip LiteLLM's transport, unless a LiteLLM
        callback is registered: then every call goes through LiteLLM to be logged."""
        return (
            self.direct is not None
            and target.model_name in self._direct_models
            and not _has_litellm_callbacks()
        )

    async def complete(
        self, params: dict[str, Any], target: Target, fallback: Target | None
    ) -> tuple[dict[str, Any], Served]:
        """A non-streaming completion as an OpenAI-shaped dict."""

        async def attempt(current: Target) -> dict[str, Any]:
            if self._goes_direct(current):
                assert self.direct is not None
                return await self.direct.complete(
                    current.deployment, params, current.reasoning_effort,
                    extra_body=_reasoning(params, current).get("extra_body"),
                )  # fmt: skip
            return _as_dict(await self._call(self._arguments(params, current, stream=False)))

        return await self._with_fallback(attempt, target, fallback)

    async def stream(
        self, params: dict[str, Any], target: Target, fallback: Target | None
    ) -> tuple[AsyncIterator[dict[str, Any]], Served]:
        """A stream of chunk dicts; returns once the first chunk has arrived."""
        dispatch = self.config.dispatch

        async def attempt(current: Target) -> AsyncIterator[dict[str, Any]]:
            upstream = None
            try:
                if self._goes_direct(current):
                    assert self.direct is not None
                    upstream = await self.direct.stream(
                        current.deployment, params, current.reasoning_effort,
                        extra_body=_reasoning(params, current).get("extra_body"),
                    )  # fmt: skip
                else:
                    upstream = await self._call(self._arguments(params, current, stream=True))
                async with asyncio.timeout(dispatch.timeout_s):
                    first = await anext(aiter(upstream))
            except BaseException:
                await _close(upstream)
                raise
            return _chunks(
                first, upstream, idle_s=dispatch.idle_s, total_s=dispatch.stream_timeout_s
            )

        return await self._with_fallback(attempt, target, fallback)

    async def _with_fallback(
        self,
        attempt: Callable[[Target], Awaitable[_Result]],
        target: Target,
        fallback: Target | None,
    ) -> tuple[_Result, Served]:
        """Try ``target``, then ``fallback`` if the first failed with an upstream fault."""
        targets = self._targets(target, fallback)
        for i, current in enumerate(targets):
            try:
                return await attempt(current), Served(current, is_fallback=i > 0)
            except Exception as exc:
                error = translate(exc)
                if i + 1 < len(targets) and _may_fall_back(error):
                    logger.warning(
                        "tier model %s failed (%s); falling back to %s",
                        current.model_name,
                        error.code,
                        targets[i + 1].model_name,
                    )
                    continue
                raise error from exc
        raise AssertionError("unreachable: at least one target")

    def _targets(self, target: Target, fallback: Target | None) -> list[Target]:
        if fallback is None or not self.config.dispatch.fallback or fallback == target:
            return [target]
        return [target, fallback]

    def _arguments(self, params: dict[str, Any], target: Target, *, stream: bool) -> dict[str, Any]:
        arguments = {**params, **target.deployment.litellm_params}
        dispatch = self.config.dispatch
        # Per read, as httpx takes it; the dispatcher holds a stream's silences to their limits.
        read_s = dispatch.read_s if stream else dispatch.timeout_s
        arguments["timeout"] = httpx.Timeout(read_s, connect=dispatch.connect_timeout_s)
        arguments["num_retries"] = self.config.dispatch.num_retries
        for name, value in _reasoning(params, target).items():
            if name == "extra_body":  # keep what the deployment's own extra_body says
                value = _merged(arguments.get("extra_body"), value)
            arguments[name] = value
        info = target.deployment.model_info
        if info.input_cost_per_token is not None or info.output_cost_per_token is not None:
            # LiteLLM prices every response for its own bookkeeping; with the prices in hand
            # it skips its price-map search (slow, and fruitless for a self-hosted model).
            arguments.setdefault("input_cost_per_token", info.input_cost_per_token or 0.0)
            arguments.setdefault("output_cost_per_token", info.output_cost_per_token or 0.0)
        if stream:
            arguments["stream"] = True
            # Usage is needed to charge for the stream, whether or not the client asked.
            arguments["stream_options"] = {"include_usage": True}
        return arguments


def _reasoning(params: dict[str, Any], target: Target) -> dict[str, Any]:
    """The LiteLLM arguments for the target's reasoning.

    A client that set its own reasoning keeps it, and only a self-hosted hybrid
    model's chat-template switch still goes: such a model reads nothing else (a
    forwarded ``reasoning_effort: none`` would not stop Qwen3 thinking), and the
    client's own effort picked the tier (none: fast, thinking off).
    """
    litellm_params = target.deployment.litellm_params
    if CLIENT_REASONING_PARAMS & params.keys():
        switch = litellm_kwargs(litellm_params, Thinking(is_enabled=target.thinking))
        return {name: value for name, value in switch.items() if name == "extra_body"}
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    return fit_to_max_tokens(
        litellm_kwargs(litellm_params, target.reasoning),
        litellm_params,
        limit if isinstance(limit, int) else None,
    )


def _merged(base: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, one level deep (``chat_template_kwargs`` is itself a dict)."""
    merged = dict(base) if isinstance(base, dict) else {}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = {**merged[key], **value}
        merged[key] = value
    return merged


def _has_litellm_callbacks() -> bool:
    """Whether anything receives LiteLLM's logging.

    Building any LiteLLM ``Cache`` registers LiteLLM's own "cache" hook, and its
    Gemini/Vertex context-caching module builds one at import: after the first
    Gemini call the hook is there with no cache behind it. It counts only while
    ``litellm.cache`` is set.
    """
    import litellm

    own = frozenset() if getattr(litellm, "cache", None) is not None else _find_own_hooks()
    return any(
        not (isinstance(callback, str) and callback in own)
        for name in _CALLBACK_LISTS
        for callback in getattr(litellm, name, None) or ()
    )


def _logging_scope() -> AbstractContextManager[Any]:
    """Skip LiteLLM's success logging for a call when no LiteLLM callback would receive it.

    Checked per call, so a callback registered later (by an embedder) is honoured.
    """
    import litellm

    unlogged = _find_unlogged()
    if unlogged is None or getattr(litellm, "cache", None) is not None:
        return contextlib.nullcontext()
    if _has_litellm_callbacks():
        return contextlib.nullcontext()
    return unlogged()


def cost_usd(deployment: ModelDeployment, usage: dict[str, Any] | None) -> float:
    """The cost of one call from its usage; 0.0 when there is no usage or no price."""
    if not usage:
        return 0.0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    info = deployment.model_info
    if info.input_cost_per_token is not None or info.output_cost_per_token is not None:
        return prompt * (info.input_cost_per_token or 0.0) + completion * (
            info.output_cost_per_token or 0.0
        )
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=deployment.litellm_model,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )
    except Exception:  # a model LiteLLM has no price for
        logger.warning("no price known for %s; set model_info prices", deployment.litellm_model)
        return 0.0
    return float(prompt_cost + completion_cost)


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per token: prompt, prompt read from the provider's cache, and completion."""

    input: float
    cache_read: float
    output: float


def token_prices(deployment: ModelDeployment) -> TokenPrices:
    """A model's prices: ``model_info`` first (``cache_read_input_token_cost`` too), else
    LiteLLM's map. A model with no known cache price reads its cache at the full input
    price (nothing is saved by staying on it); one with no price at all costs nothing."""
    info = deployment.model_info
    known = _known_prices(deployment.litellm_model)
    configured = info.input_cost_per_token is not None or info.output_cost_per_token is not None
    input_price = (info.input_cost_per_token or 0.0) if configured else known.input
    output_price = (info.output_cost_per_token or 0.0) if configured else known.output
    cache_read = (info.model_extra or {}).get("cache_read_input_token_cost")
    if not isinstance(cache_read, int | float) or isinstance(cache_read, bool):
        cache_read = known.cache_read if not configured else input_price
    return TokenPrices(input_price, min(float(cache_read), input_price), output_price)


@functools.lru_cache(maxsize=256)
def _known_prices(litellm_model: str) -> TokenPrices:
    import litellm

    try:
        entry = litellm.get_model_info(litellm_model)
    except Exception:  # a model the map does not list
        return TokenPrices(0.0, 0.0, 0.0)
    input_price = float(entry.get("input_cost_per_token") or 0.0)
    cache_read = entry.get("cache_read_input_token_cost")
    return TokenPrices(
        input_price,
        input_price if cache_read is None else float(cache_read),
        float(entry.get("output_cost_per_token") or 0.0),
    )


def context_window(deployment: ModelDeployment) -> int | None:
    """The most input tokens the model takes: ``model_info.max_input_tokens`` if set, else
    LiteLLM's model map; None where neither knows (then no prompt is judged too long)."""
    configured = (deployment.model_info.model_extra or {}).get("max_input_tokens")
    if isinstance(configured, int) and configured > 0:
        return configured
    return _known_window(deployment.litellm_model)


@functools.lru_cache(maxsize=256)
def _known_window(litellm_model: str) -> int | None:
    import litellm

    try:
        known = litellm.get_model_info(litellm_model).get("max_input_tokens")
    except Exception:  # a model the map does not list
        return None
    return int(known) if isinstance(known, int) and known > 0 else None


def count_prompt_tokens(
    deployment: ModelDeployment, messages: list[dict[str, Any]], tools: Any = None
) -> int:
    """Input tokens of a chat for ``deployment``'s model, by LiteLLM's counter (offline)."""
    import litellm

    try:
        return int(
            litellm.token_counter(model=deployment.litellm_model, messages=messages, tools=tools)
        )
    except Exception:  # a shape LiteLLM's counter cannot read is the client's to fix
        logger.debug("token count failed", exc_info=True)
        message = "cannot count this request's tokens: check messages and tools"
        raise InvalidRequestError(message) from None


def translate(exc: BaseException) -> ThinkrouteError:
    """Map a LiteLLM or transport exception to the proxy's error with the right status."""
    if isinstance(exc, ThinkrouteError):
        return exc
    import litellm

    message = _safe_message(exc)
    if isinstance(exc, litellm.Timeout | TimeoutError):
        return UpstreamTimeoutError(f"the model did not answer in time: {message}")
    if isinstance(exc, litellm.ContextWindowExceededError):
        return InvalidRequestError(message, code="context_length_exceeded")
    if isinstance(exc, litellm.RateLimitError):
        return RateLimitError(f"the model provider is rate limiting: {message}")
    if isinstance(exc, litellm.BadRequestError | litellm.UnsupportedParamsError):
        return InvalidRequestError(message)
    if isinstance(exc, litellm.ServiceUnavailableError):
        return UpstreamUnavailableError(f"the model provider is unavailable: {message}")
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        # The proxy's provider key is at fault, not the client's: not a 401.
        return UpstreamError("the proxy's credentials for the model provider were refused")
    return UpstreamError(f"the model provider failed: {message}")


def _may_fall_back(error: ThinkrouteError) -> bool:
    return isinstance(error, UpstreamError | RateLimitError)


def _safe_message(exc: BaseException) -> str:
    # LiteLLM messages can name the provider's base URL; keep the first line, short.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Without LiteLLM's class-name prefix and its advice on its own settings
    # ("To drop these, set `litellm.drop_params=True`"), which a client cannot act on.
    text = _LITELLM_PREFIX.sub("", text).split(" To drop these", 1)[0]
    return redact_locations(text)[:300]


def _as_dict(response: Any) -> dict[str, Any]:
    if isinstance(response, dict):
        return response
    dumped: dict[str, Any] = response.model_dump(exclude_none=True)  # a LiteLLM ModelResponse
    return dumped


async def _chunks(
    first: Any, upstream: Any, *, idle_s: float, total_s: float | None
) -> AsyncIterator[dict[str, Any]]:
    """The stream from its first chunk on; each next chunk must come within ``idle_s``, and
    the whole within ``total_s`` (``None``: as long as it keeps producing)."""
    loop = asyncio.get_running_loop()
    end = math.inf if total_s is None else loop.time() + total_s
    chunks = aiter(upstream)
    try:
        yield _as_dict(first)
        while True:
            try:
                # Never yield inside the timeout: it would time the client, not the model.
                async with asyncio.timeout_at(min(loop.time() + idle_s, end)):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            yield _as_dict(chunk)
    except TimeoutError:
        cause = "ran past stream_timeout_s" if loop.time() >= end else "stopped answering"
        raise UpstreamTimeoutError(f"the model {cause} mid-stream") from None
    except Exception as exc:
        raise translate(exc) from exc
    finally:
        await _close(upstream)


async def _close(upstream: Any) -> None:
    close = getattr(upstream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not mask the real error
            logger.debug("closing an upstream stream failed", exc_info=True)
