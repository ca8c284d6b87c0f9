"""A direct path to OpenAI-compatible upstreams: LiteLLM's translation, our own transport.

LiteLLM spends several milliseconds of CPU on every call beyond building the
request (logging objects, response re-validation, cost bookkeeping, its
OpenAI SDK client). For a deployment that speaks OpenAI's own API
(``openai/...`` models: OpenAI itself, vLLM, SGLang, llama.cpp, the
simulator), this module keeps LiteLLM's part that matters, turning the
client's parameters into what that model accepts
(``litellm.get_optional_params``: ``max_tokens`` becomes
``max_completion_tokens`` for o-series, unsupported values are refused),
and sends the request itself over a pooled aiohttp session.

What LiteLLM would otherwise do is kept: retries of connection errors, 408,
409, 429 and 5xx with exponential backoff and ``Retry-After`` (as the OpenAI
SDK LiteLLM uses does), the same error mapping (see :func:`error_for_status`),
usage passed through for billing, and streams parsed from SSE. Any other
provider, or a deployment with LiteLLM options this path does not know,
goes through LiteLLM.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from router.config import ModelDeployment
from router.errors import (
    InvalidRequestError,
    RateLimitError,
    ThinkrouteError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["DirectOpenAI", "error_for_status", "is_direct_eligible"]

DEFAULT_API_BASE = "https://api.openai.com/v1"
# litellm_params this path understands; any other sends the deployment through LiteLLM.
KNOWN_PARAMS = frozenset({"model", "api_base", "api_key", "organization", "rpm", "tpm"})
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0


def is_direct_eligible(deployment: ModelDeployment) -> bool:
    """Whether LiteLLM would send this deployment to an OpenAI-compatible chat endpoint."""
    if not set(deployment.litellm_params) <= KNOWN_PARAMS:
        return False
    import litellm

    try:
        _, provider, _, _ = litellm.get_llm_provider(deployment.litellm_model)
    except Exception:  # LiteLLM raises its BadRequestError for models it does not know
        return False
    return provider == "openai"


class DirectOpenAI:
    """Chat completions over one aiohttp session per event loop."""

    def __init__(
        self,
        *,
        timeout_s: float,
        num_retries: int,
        connect_timeout_s: float = 10.0,
        stream_read_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        # Limits on silence, never on a whole call (see DispatchConfig): a non-streaming
        # answer must start within timeout_s, a stream may pause for stream_read_s per read.
        self.timeout_s = timeout_s
        self.num_retries = num_retries
        self._timeouts = {
            False: aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout_s, sock_read=timeout_s
            ),
            True: aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout_s, sock_read=stream_read_s or timeout_s
            ),
        }
        # OPENAI_API_BASE and OPENAI_API_KEY stand in for a deployment's own, as in LiteLLM.
        self._env = dict(env or {})
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    async def complete(
        self,
        deployment: ModelDeployment,
        params: dict[str, Any],
        effort: str | None,
        *,
        extra_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        url, headers, body = self._request(
            deployment, params, effort, stream=False, extra_body=extra_body
        )
        async with await self._send(url, headers, body, stream=False) as response:
            raw = await response.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise UpstreamError("the model provider returned a body that is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise UpstreamError("the model provider returned an unexpected body")
        return answer

    async def stream(
        self,
        deployment: ModelDeployment,
        params: dict[str, Any],
        effort: str | None,
        *,
        extra_body: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as dicts; the request is sent (and retried) before the first is read."""
        url, headers, body = self._request(
            deployment, params, effort, stream=True, extra_body=extra_body
        )
        response = await self._send(url, headers, body, stream=True)
        return _sse_chunks(response)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()

    # -- helpers --------------------------------------------------------------------

    def _request(
        self,
        deployment: ModelDeployment,
        params: dict[str, Any],
        effort: str | None,
        *,
        stream: bool,
        extra_body: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, str], bytes]:
        litellm_params = deployment.litellm_params
        model = deployment.litellm_model.split("/", 1)[1]
        client_params = {k: v for k, v in params.items() if k != "messages" and v is not None}
        if effort is not None and "reasoning_effort" not in client_params:
            client_params["reasoning_effort"] = effort
        body = dict(_translate(model, json.dumps(client_params, sort_keys=True)))
        body.update(extra_body or {})  # top-level fields, as the OpenAI SDK sends extra_body
        body.update(model=model, messages=params["messages"])
        if stream:
            body["stream"] = True
            # Usage is needed to charge for the stream, whether or not the client asked.
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
        base = litellm_params.get("api_base") or self._env.get("OPENAI_API_BASE")
        api_key = litellm_params.get("api_key") or self._env.get("OPENAI_API_KEY")
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if litellm_params.get("organization"):
            headers["openai-organization"] = str(litellm_params["organization"])
        url = f"{(base or DEFAULT_API_BASE).rstrip('/')}/chat/completions"
        return url, headers, json.dumps(body, separators=(",", ":")).encode()

    async def _send(
        self, url: str, headers: dict[str, str], body: bytes, *, stream: bool
    ) -> aiohttp.ClientResponse:
        """POST with retries; returns a 200 response whose body is still unread."""
        session = self._session()
        timeout = self._timeouts[stream]
        for attempt in range(self.num_retries + 1):
            last = attempt == self.num_retries
            try:
                response = await session.post(url, data=body, headers=headers, timeout=timeout)
            except TimeoutError:
                if last:
                    raise UpstreamTimeoutError("the model did not answer in time") from None
                await asyncio.sleep(_backoff(attempt, None))
                continue
            except aiohttp.ClientError as exc:
                if last:
                    raise UpstreamError(
                        f"the model provider failed: {type(exc).__name__}"
                    ) from None
                await asyncio.sleep(_backoff(attempt, None))
                continue
            if response.status == 200:
                return response
            try:
                text = await response.text(errors="replace")
            finally:
                response.release()
            if response.status in RETRYABLE_STATUS and not last:
                await asyncio.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            raise error_for_status(response.status, text)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(timeout=self._timeouts[False], raise_for_status=False)
            self._sessions[loop] = session
        return session


@functools.lru_cache(maxsize=4096)
def _translate(model: str, params_json: str) -> tuple[tuple[str, Any], ...]:
    """LiteLLM's translation of a client's parameters for ``model``; pure, so remembered
    (it costs about 1 ms, and most requests repeat a handful of parameter sets)."""
    from litellm.utils import get_optional_params

    try:
        translated = get_optional_params(
            model=model, custom_llm_provider="openai", **json.loads(params_json)
        )
    except Exception as exc:  # UnsupportedParamsError and friends: the client's fault
        raise InvalidRequestError(_first_line(exc)) from None
    translated.pop("extra_body", None)
    return tuple(translated.items())


def error_for_status(status: int, text: str) -> ThinkrouteError:
    """The proxy's error for an upstream error status, as LiteLLM's mapping gives it."""
    message = _upstream_message(text)
    if status == 400:
        if "context_length" in text or "maximum context length" in text:
            return InvalidRequestError(message, code="context_length_exceeded")
        return InvalidRequestError(message)
    if status in (401, 403):
        # The proxy's provider key is at fault, not the client's: not a 401.
        return UpstreamError("the proxy's credentials for the model provider were refused")
    if status == 429:
        return RateLimitError(f"the model provider is rate limiting: {message}")
    if status == 503:
        return UpstreamUnavailableError(f"the model provider is unavailable: {message}")
    if status in (408, 504):
        return UpstreamTimeoutError(f"the model did not answer in time: {message}")
    return UpstreamError(f"the model provider failed: {message}")


async def _sse_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    try:
        async for line in response.content:
            data = line.strip()
            if not data.startswith(b"data:"):
                continue
            data = data[5:].strip()
            if data == b"[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise UpstreamError("the model provider sent a chunk that is not JSON") from None
            if isinstance(chunk, dict) and "error" in chunk:
                raise UpstreamError(f"the model provider failed: {_upstream_message(data)}")
            yield chunk
        raise UpstreamError("the model provider ended the stream early")
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise UpstreamError(f"the model provider cut the stream: {type(exc).__name__}") from None
    except TimeoutError:
        raise UpstreamTimeoutError("the model stopped answering mid-stream") from None
    finally:
        response.close()


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    return min(0.5 * 2**attempt, MAX_BACKOFF_S) * (0.75 + random.random() / 2)


def _upstream_message(text: str | bytes) -> str:
    try:
        error = json.loads(text).get("error")
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = text.decode(errors="replace") if isinstance(text, bytes) else text
    return _first_line(message or "no message")


def _first_line(value: object) -> str:
    # Messages can name a provider's base URL; keep the first line, short, without it.
    text = str(value).strip()
    return redact_locations(text.splitlines()[0] if text else "no message")[:300]


# A URL, or a host (name or address) with a port: where the upstream lives is not
# the client's business, and gateways and LiteLLM put it in their error messages.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)]+")
_HOST_PORT = re.compile(
    r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+):\d{1,5}\b"
    r"|\[[0-9a-fA-F:]+\](?::\d{1,5})?"
)


def redact_locations(text: str) -> str:
    """``text`` with URLs and host:port pairs replaced by ``<upstream>``."""
    return _HOST_PORT.sub("<upstream>", _URL.sub("<upstream>", text))
