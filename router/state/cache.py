"""The exact response cache and the decision-score cache, both in Redis.

A response is cached under a tenant-scoped key over every field that changes
the answer, so a hit returns what the same model would have been asked to
produce. Streams and complete responses are two views of one answer: a
stream is recorded as a complete response (:func:`response_from_chunks`) and
replayed as chunks (:func:`chunks_from_response`), so either kind of request
can be answered from either kind of entry.

    settings = CacheSettings()
    cache = ResponseCache(store, settings)
    if is_cacheable(request, settings) and not bypass_requested(request, headers):
        key = cache_key(tenant="acme", request=request, model="fast", reasoning_effort=None)
        hit = await cache.get(key)

The cache only ever speeds a request up: when Redis is down, ``get`` misses
and ``put`` declines, with a warning that names no prompt text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import zlib
from collections.abc import Mapping
from typing import Any

from router.config import CacheSettings, SemanticCacheSettings
from router.errors import StoreUnavailableError
from router.requests import ChatRequest
from router.state.store import Store

__all__ = [
    "CacheSettings",
    "ResponseCache",
    "ScoreCache",
    "SemanticCacheSettings",
    "bypass_requested",
    "answer_digest",
    "cache_key",
    "canonical_json",
    "chunks_from_response",
    "is_cacheable",
    "no_store_requested",
    "response_from_chunks",
]

logger = logging.getLogger(__name__)

# Bump when the key payload or the stored format changes: old entries then miss.
KEY_VERSION = 1
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
# Sent to the provider but cannot change the answer, so they stay out of the key:
# stream/stream_options only choose the framing (and a stream converts to a response
# and back); user and metadata label the request for abuse tracking and logs; cache
# holds the client's cache controls, read by the proxy and never forwarded.
NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata", "cache"})
# Replayed chunks carry about this many characters, cut after whitespace so they read
# like a stream; a run with no whitespace is cut at MAX_PIECE_CHARS.
PIECE_CHARS = 24
MAX_PIECE_CHARS = 64
_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def cache_key(
    *, tenant: str, request: ChatRequest, model: str, reasoning_effort: str | None
) -> str:
    """The key for this request as sent to ``model`` at ``reasoning_effort``.

    Covers the messages, the model string the client asked for (``auto``,
    ``auto:quality`` or a concrete model), the model and effort the router
    chose, and every parameter the provider sees except :data:`NOT_IN_KEY`.
    Parameters set to null count as absent, and integral floats as integers
    (``0.0`` is ``0``), since both mean the same to a provider. The tenant is a
    Redis Cluster hash tag, so one tenant's entries share a slot.
    """
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r} cannot be part of a cache key")
    digest = answer_digest(request, model=model, reasoning_effort=reasoning_effort)
    return f"thinkroute:{{{tenant}}}:cache:{digest}"


def answer_digest(
    request: ChatRequest,
    *,
    model: str,
    reasoning_effort: str | None,
    messages: list[dict[str, Any]] | None = None,
) -> str:
    """SHA-256 over everything that changes the answer; ``messages`` replaces the request's
    (the semantic cache leaves the last question's text out)."""
    params = {
        name: value
        for name, value in request.params_for_upstream().items()
        if name not in NOT_IN_KEY and value is not None
    }
    if messages is not None:
        params["messages"] = messages
    payload = {
        "v": KEY_VERSION,
        "requested_model": request.model,
        "model": model,
        "reasoning_effort": reasoning_effort,
        "params": params,
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def is_cacheable(request: ChatRequest, settings: CacheSettings) -> bool:
    """Whether the answer to this request may be stored and served again.

    Requests for several choices, log-probabilities or audio are never cached:
    converting between stream and response keeps only one choice's text,
    reasoning, refusal and tool calls.
    """
    params = request.params
    if not settings.enabled or (params.get("n") or 1) > 1:
        return False
    if params.get("logprobs") or params.get("top_logprobs") or params.get("audio"):
        return False
    if "audio" in (params.get("modalities") or ()):
        return False
    if settings.mode == "always":
        return True
    return params.get("temperature") == 0 or params.get("seed") is not None


def bypass_requested(request: ChatRequest, headers: Mapping[str, str]) -> bool:
    """Whether the client asked not to be answered from the cache.

    ``cache-control: no-cache`` or ``no-store``, ``x-thinkroute-cache: bypass``,
    or LiteLLM's body field ``cache: {"no-cache": true}``.
    """
    directives = _cache_control(headers)
    return (
        bool(directives & {"no-cache", "no-store"})
        or _header(headers, "x-thinkroute-cache").strip().lower() == "bypass"
        or _body_flag(request, "no-cache")
    )


def no_store_requested(request: ChatRequest, headers: Mapping[str, str]) -> bool:
    """Whether the client asked that its answer not be written to the cache.

    ``cache-control: no-store``, ``x-thinkroute-cache: bypass``, or LiteLLM's
    ``cache: {"no-store": true}``. A plain ``no-cache`` still stores the fresh
    answer, which is how a client refreshes an entry.
    """
    return (
        "no-store" in _cache_control(headers)
        or _header(headers, "x-thinkroute-cache").strip().lower() == "bypass"
        or _body_flag(request, "no-store")
    )


class ResponseCache:
    """Complete chat.completion responses, zlib-compressed JSON under :func:`cache_key`.

    zlib roughly halves a typical response (437 → 290 bytes, 6.6 → 3.1 kB) for
    about 0.1 ms, so every entry is compressed and there is one format.
    """

    def __init__(self, store: Store, settings: CacheSettings) -> None:
        self.store = store
        self.settings = settings

    async def get(self, key: str) -> dict[str, Any] | None:
        """The cached response, or None on a miss, with the cache off, or with Redis down."""
        if not self.settings.enabled:
            return None
        try:
            raw = await self.store.call(self.store.client.get(key))
        except StoreUnavailableError as exc:
            logger.warning("response cache read skipped: %s", exc)
            return None
        if raw is None:
            return None
        try:
            response = json.loads(zlib.decompress(raw))
        except (zlib.error, ValueError):
            logger.warning("response cache entry %s is unreadable; treated as a miss", key)
            return None
        return response if isinstance(response, dict) else None

    async def put(self, key: str, response: dict[str, Any], *, ttl_s: int) -> bool:
        """Store a finished response for ``ttl_s`` seconds; returns whether it was stored.

        Declines a response whose choices lack a ``finish_reason`` (a stream cut
        off midway) and one whose JSON exceeds ``max_entry_bytes``: the limit is
        on the uncompressed size, so it also bounds what a hit decompresses.
        """
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if not self.settings.enabled or not _is_finished(response):
            return False
        body = json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode()
        if len(body) > self.settings.max_entry_bytes:
            return False
        try:
            await self.store.call(self.store.client.set(key, zlib.compress(body), ex=ttl_s))
        except StoreUnavailableError as exc:
            logger.warning("response cache write skipped: %s", exc)
            return False
        return True


class ScoreCache:
    """The classifier's scores by text and tenant, shared by every replica of the proxy.

    Keys are ``thinkroute:{<tenant>}:scores:<namespace>:<blake2b(text)>``; the
    namespace is the classifier artifact's checksum, so a new model never reads
    an old model's scores. Scoped by tenant although a score depends on the text
    alone: a shared entry made a hit (9 ms against 27 ms on a 40 kB prompt) tell
    one tenant that another had sent the same text. Under the tenant's hash tag
    the entries go when the tenant is deleted.
    """

    def __init__(self, store: Store, *, namespace: str, ttl_s: int = 86400) -> None:
        if not TENANT_PATTERN.fullmatch(namespace):
            raise ValueError(f"namespace {namespace!r} cannot be part of a key")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.store = store
        self.namespace = namespace
        self.ttl_s = ttl_s

    def key(self, text: str, *, tenant: str) -> str:
        if not TENANT_PATTERN.fullmatch(tenant):
            raise ValueError(f"tenant {tenant!r} cannot be part of a key")
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
        return f"thinkroute:{{{tenant}}}:scores:{self.namespace}:{digest}"

    async def get_many(self, texts: list[str], *, tenant: str) -> list[float | None]:
        """A score per text, None where none is cached (or for all when Redis is down)."""
        if not texts:
            return []
        keys = [self.key(text, tenant=tenant) for text in texts]
        client = self.store.client
        # A cluster spreads the keys over slots; its client splits MGET per slot.
        mget = getattr(client, "mget_nonatomic", None) or client.mget
        try:
            values = await self.store.call(mget(keys))
        except StoreUnavailableError as exc:
            logger.warning("score cache read skipped: %s", exc)
            return [None] * len(texts)
        return [_parse_score(value) for value in values]

    async def put_many(self, items: dict[str, float], *, tenant: str) -> None:
        """Store scores by text in one round trip; non-finite scores are skipped."""
        finite = {text: float(score) for text, score in items.items() if math.isfinite(score)}
        if not finite:
            return
        pipe = self.store.client.pipeline(transaction=False)
        for text, score in finite.items():
            pipe.set(self.key(text, tenant=tenant), repr(score), ex=self.ttl_s)
        try:
            await self.store.call(pipe.execute())
        except StoreUnavailableError as exc:
            logger.warning("score cache write skipped: %s", exc)


def response_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Assemble the chat.completion that a recorded stream of chunks amounts to.

    Text fields are concatenated; tool calls are merged by index, with the id
    and name taken from their first delta and the arguments concatenated.
    ``content`` is None when a choice only called tools or refused, as in a
    non-streamed response.
    """
    head: dict[str, Any] = {}
    usage: dict[str, Any] | None = None
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for name in ("id", "created", "model", "system_fingerprint"):
            if head.get(name) is None and chunk.get(name) is not None:
                head[name] = chunk[name]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            _merge_choice(choices.setdefault(choice.get("index", 0), _empty_choice()), choice)
    response: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [_finish_choice(index, choices[index]) for index in sorted(choices)],
    }
    if head.get("system_fingerprint") is not None:
        response["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        response["usage"] = usage
    return response


def chunks_from_response(response: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The chat.completion.chunk sequence a streaming client would have received.

    Usage keeps the original numbers, so a client sees what the answer
    contained; the proxy reports that the hit cost nothing (``x-thinkroute-
    cost-usd: 0``). The usage chunk (empty ``choices``) comes only with
    ``include_usage``, and then every other chunk carries ``usage: null``, as
    OpenAI sends it.
    """
    head = {
        "id": response.get("id"),
        "object": "chat.completion.chunk",
        "created": response.get("created"),
        "model": response.get("model"),
    }
    if response.get("system_fingerprint") is not None:
        head["system_fingerprint"] = response["system_fingerprint"]
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], **extra}

    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        chunks.append(chunk(index, {"role": message.get("role") or "assistant", "content": ""}))
        for field in ("reasoning_content", "content", "refusal"):
            text = message.get(field)
            if isinstance(text, str):
                chunks.extend(chunk(index, {field: piece}) for piece in _pieces(text))
        for position, call in enumerate(message.get("tool_calls") or ()):
            chunks.extend(chunk(index, {"tool_calls": [d]}) for d in _tool_deltas(position, call))
        chunks.append(chunk(index, {}, choice.get("finish_reason")))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": response.get("usage")})
    return chunks


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ``0.0`` as ``0``: one byte string per meaning."""
    return json.dumps(
        _normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _header(headers: Mapping[str, str], name: str) -> str:
    # Starlette's Headers ignore case but a plain dict does not; accept either.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _cache_control(headers: Mapping[str, str]) -> set[str]:
    value = _header(headers, "cache-control")
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _body_flag(request: ChatRequest, name: str) -> bool:
    controls = request.params.get("cache")
    if not isinstance(controls, dict):
        return False
    flag = controls.get(name)
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def _is_finished(response: dict[str, Any]) -> bool:
    choices = response.get("choices") or []
    return bool(choices) and all(c.get("finish_reason") for c in choices)


def _parse_score(value: Any) -> float | None:
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _empty_choice() -> dict[str, Any]:
    return {
        "role": None,
        "content": [],
        "reasoning_content": [],
        "refusal": [],
        "has_reasoning": False,
        "tool_calls": {},
        "finish_reason": None,
    }


def _merge_choice(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    acc["role"] = acc["role"] or delta.get("role")
    for field in ("content", "reasoning_content", "refusal"):
        if isinstance(delta.get(field), str):
            acc[field].append(delta[field])
    acc["has_reasoning"] = acc["has_reasoning"] or delta.get("reasoning_content") is not None
    for call in delta.get("tool_calls") or ():
        merged = acc["tool_calls"].setdefault(
            call.get("index", 0), {"id": None, "type": None, "name": None, "arguments": []}
        )
        function = call.get("function") or {}
        merged["id"] = merged["id"] or call.get("id")
        merged["type"] = merged["type"] or call.get("type")
        merged["name"] = merged["name"] or function.get("name")
        if isinstance(function.get("arguments"), str):
            merged["arguments"].append(function["arguments"])
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]


def _finish_choice(index: int, acc: dict[str, Any]) -> dict[str, Any]:
    tool_calls = [
        {
            "id": call["id"],
            "type": call["type"] or "function",
            "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
        }
        for _, call in sorted(acc["tool_calls"].items())
    ]
    content = "".join(acc["content"])
    refusal = "".join(acc["refusal"]) or None
    message: dict[str, Any] = {
        "role": acc["role"] or "assistant",
        "content": None if not content and (tool_calls or refusal) else content,
        "refusal": refusal,
    }
    if acc["has_reasoning"]:
        message["reasoning_content"] = "".join(acc["reasoning_content"])
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish = acc["finish_reason"]
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def _tool_deltas(position: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    function = call.get("function") or {}
    first = {
        "index": position,
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name"), "arguments": ""},
    }
    rest = [
        {"index": position, "function": {"arguments": piece}}
        for piece in _pieces(function.get("arguments") or "")
    ]
    return [first, *rest]


def _pieces(text: str) -> list[str]:
    """Cut text into stream-sized pieces that concatenate back to exactly ``text``."""
    pieces: list[str] = []
    current = ""
    for word in _WORD_START.split(text):
        while len(word) > MAX_PIECE_CHARS:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:MAX_PIECE_CHARS])
            word = word[MAX_PIECE_CHARS:]
        current += word
        if len(current) >= PIECE_CHARS:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces
