"""A typed client for a thinkroute proxy, over the official ``openai`` client.

Every answer comes back with the routing decision the proxy took for it (read
from the ``x-thinkroute-*`` headers), its cost and request id::

    from router.client import Client

    client = Client(base_url="http://127.0.0.1:8000/v1", api_key="sk-...")
    routed = client.chat([{"role": "user", "content": "Prove that sqrt(2) is irrational."}])
    routed.answer.choices[0].message.content
    routed.decision.tier, routed.decision.score, routed.cost_usd     # 'reasoning', 0.83, 0.0042
    client.route([...]).tier            # the decision alone, no model called
    client.explain([...])["nearest_kinds"]  # why it scored so: cues, nearest training kinds
    client.usage()["day"]["spend_usd"]
    client.feedback(routed.request_id, score=1.0)

    with client.stream([...]) as routed:      # the decision is known before the first chunk
        for chunk in routed.answer: ...

``Client(admin_key=...)`` adds ``client.admin`` (tenants, keys, usage per
tenant). :class:`AsyncClient` is the same with ``await``. Errors are the
``openai`` client's own exceptions (``AuthenticationError``, ``NotFoundError``,
``RateLimitError`` for a budget refusal, ...); ``client.openai`` is the
underlying ``openai`` client for anything else.

The functions :func:`feedback` and :func:`afeedback` score an answer got through
a plain ``openai`` client, whose ``_request_id`` is the proxy's ``x-request-id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypedDict, TypeVar, cast

from openai import AsyncOpenAI, AsyncStream, OpenAI, Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from router.policy import RouteDecision

# openai's client hands back the parsed JSON body as it is when asked for `object`; every
# thinkroute route answers with a JSON object.
JSON_BODY = cast("type[dict[str, Any]]", object)

__all__ = [
    "AsyncAdmin",
    "AsyncClient",
    "Admin",
    "Client",
    "FeedbackReceipt",
    "Routed",
    "afeedback",
    "decision_from_headers",
    "feedback",
]

Answer = TypeVar("Answer")
Messages = Iterable[Mapping[str, Any]]

Tier = Literal["fast", "reasoning"]


class FeedbackReceipt(TypedDict, total=False):
    """What the proxy kept: ``POST /v1/feedback``'s answer."""

    object: Literal["feedback"]
    request_id: str
    tier: Tier  # whose answer the score is for
    score: float
    served_tier: str  # the tier that answered the request
    ts: str
    comment: str


def feedback(
    client: OpenAI,
    request_id: str | None,
    *,
    score: float,
    tier: Tier | None = None,
    comment: str | None = None,
) -> FeedbackReceipt:
    """Score (0 wrong .. 1 right) the answer ``tier`` gave to request ``request_id``.

    ``tier`` defaults to the tier that served the request; score the other
    tier too (after asking it yourself) to say which model was better. A
    second score for the same request and tier replaces the first.
    """
    receipt = client.post(
        "/feedback", body=_body(request_id, score, tier, comment), cast_to=JSON_BODY
    )
    return cast(FeedbackReceipt, receipt)


async def afeedback(
    client: AsyncOpenAI,
    request_id: str | None,
    *,
    score: float,
    tier: Tier | None = None,
    comment: str | None = None,
) -> FeedbackReceipt:
    """:func:`feedback` through an ``AsyncOpenAI`` client."""
    receipt = await client.post(
        "/feedback", body=_body(request_id, score, tier, comment), cast_to=JSON_BODY
    )
    return cast(FeedbackReceipt, receipt)


def _body(
    request_id: str | None, score: float, tier: Tier | None, comment: str | None
) -> dict[str, Any]:
    if not request_id:
        # The openai client's _request_id is None when the answer carried no header.
        raise ValueError("request_id is empty: pass the x-request-id of a thinkroute answer")
    body: dict[str, Any] = {"request_id": request_id, "score": score}
    if tier is not None:
        body["tier"] = tier
    if comment is not None:
        body["comment"] = comment
    return body


# --- the decision, from headers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Routed(Generic[Answer]):
    """An answer and how the proxy got it."""

    answer: Answer
    decision: RouteDecision
    request_id: str | None
    cost_usd: float | None  # None for a stream: its cost is known only at its end
    cache: str | None  # "hit", "miss", "bypass"..., None when the cache is off
    fallback: str | None  # why another tier served it, None when the chosen one did


def decision_from_headers(headers: Mapping[str, str]) -> RouteDecision:
    """The :class:`RouteDecision` a proxy response's ``x-thinkroute-*`` headers describe."""
    effort = headers.get("x-thinkroute-effort")
    return RouteDecision(
        # Ignored: the tier is whatever the proxy's header names, taken as sent.
        tier=headers.get("x-thinkroute-tier", ""),  # type: ignore[arg-type]
        score=_number(headers.get("x-thinkroute-score")),
        threshold=_number(headers.get("x-thinkroute-threshold")),
        mode=headers.get("x-thinkroute-mode", ""),
        reason=headers.get("x-thinkroute-reason", ""),
        model=headers.get("x-thinkroute-model"),
        reasoning_effort=None if effort in (None, "", "default") else effort,
    )


def _routed(headers: Mapping[str, str], answer: Answer) -> Routed[Answer]:
    return Routed(
        answer=answer,
        decision=decision_from_headers(headers),
        request_id=headers.get("x-request-id"),
        cost_usd=_number(headers.get("x-thinkroute-cost-usd")),
        cache=headers.get("x-thinkroute-cache"),
        fallback=headers.get("x-thinkroute-fallback"),
    )


def _decision(body: Mapping[str, Any]) -> RouteDecision:
    fields = RouteDecision.__dataclass_fields__
    return RouteDecision(**{name: value for name, value in body.items() if name in fields})


def _number(text: str | None) -> float | None:
    return float(text) if text else None


def _chat_body(messages: Messages, model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **params}


# --- sync ----------------------------------------------------------------------------------


class Client:
    """A thinkroute proxy's API, typed; ``**openai_options`` go to ``openai.OpenAI``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        admin_key: str | None = None,
        **openai_options: Any,
    ) -> None:
        self.openai = OpenAI(base_url=base_url, api_key=api_key, **openai_options)
        self.admin = Admin(self.openai.with_options(api_key=admin_key)) if admin_key else None

    def chat(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> Routed[ChatCompletion]:
        """A chat completion (``model="auto:quality"`` etc. picks a mode) and its decision."""
        raw = self.openai.chat.completions.with_raw_response.create(
            **_chat_body(messages, model, params)
        )
        return _routed(raw.headers, raw.parse())

    @contextmanager
    def stream(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> Iterator[Routed[Stream[ChatCompletionChunk]]]:
        """A streamed chat completion; the connection closes when the block ends."""
        raw = self.openai.chat.completions.with_raw_response.create(
            **_chat_body(messages, model, params), stream=True
        )
        chunks = raw.parse()
        try:
            yield _routed(raw.headers, chunks)
        finally:
            chunks.close()

    def route(self, messages: Messages, *, model: str = "auto", **params: Any) -> RouteDecision:
        """Where the proxy would send this request, without calling a model."""
        body = self.openai.post(
            "/route", body=_chat_body(messages, model, params), cast_to=JSON_BODY
        )
        return _decision(body)

    def explain(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> dict[str, Any] | None:
        """Why the request scores as it does (``/v1/route`` with ``"explain": true``): the
        cues that fired and the nearest kinds of training prompts; None if it is not scored."""
        body = self.openai.post(
            "/route", body={**_chat_body(messages, model, params), "explain": True},
            cast_to=JSON_BODY,
        )  # fmt: skip
        return body.get("score_evidence")

    def usage(self) -> dict[str, Any]:
        """This key's tenant's spend, requests and budget state (``GET /v1/usage``)."""
        return self.openai.get("/usage", cast_to=JSON_BODY)

    def feedback(self, request_id: str | None, *, score: float, tier: Tier | None = None,
                 comment: str | None = None) -> FeedbackReceipt:  # fmt: skip
        """Score an answer this tenant got: see :func:`feedback`."""
        return feedback(self.openai, request_id, score=score, tier=tier, comment=comment)

    def close(self) -> None:
        self.openai.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Admin:
    """The admin API (``THINKROUTE_ADMIN_KEY``): tenants, their keys and their usage."""

    def __init__(self, openai: OpenAI) -> None:
        self.openai = openai

    def tenants(self) -> list[dict[str, Any]]:
        return self.openai.get("/tenants", cast_to=JSON_BODY)["data"]

    def tenant(self, name: str) -> dict[str, Any]:
        return self.openai.get(f"/tenants/{name}", cast_to=JSON_BODY)

    def create_tenant(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A tenant from a config-shaped spec: ``{"name": ..., "budget": {...}, ...}``."""
        return self.openai.post("/tenants", body=dict(spec), cast_to=JSON_BODY)

    def update_tenant(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self.openai.patch(f"/tenants/{name}", body=dict(changes), cast_to=JSON_BODY)

    def delete_tenant(self, name: str) -> dict[str, Any]:
        return self.openai.delete(f"/tenants/{name}", cast_to=JSON_BODY)

    def issue_key(self, name: str) -> dict[str, Any]:
        """A new key for the tenant; ``["key"]`` is shown only in this answer."""
        return self.openai.post(f"/tenants/{name}/keys", cast_to=JSON_BODY)

    def keys(self, name: str) -> list[dict[str, Any]]:
        return self.openai.get(f"/tenants/{name}/keys", cast_to=JSON_BODY)["data"]

    def revoke_key(self, name: str, key_id: str) -> dict[str, Any]:
        return self.openai.delete(f"/tenants/{name}/keys/{key_id}", cast_to=JSON_BODY)

    def usage(self, name: str) -> dict[str, Any]:
        return self.openai.get(f"/tenants/{name}/usage", cast_to=JSON_BODY)


# --- async ---------------------------------------------------------------------------------


class AsyncClient:
    """:class:`Client` with ``await``; ``**openai_options`` go to ``openai.AsyncOpenAI``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        admin_key: str | None = None,
        **openai_options: Any,
    ) -> None:
        self.openai = AsyncOpenAI(base_url=base_url, api_key=api_key, **openai_options)
        self.admin = AsyncAdmin(self.openai.with_options(api_key=admin_key)) if admin_key else None

    async def chat(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> Routed[ChatCompletion]:
        raw = await self.openai.chat.completions.with_raw_response.create(
            **_chat_body(messages, model, params)
        )
        return _routed(raw.headers, raw.parse())

    async def stream(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> Routed[AsyncStream[ChatCompletionChunk]]:
        """A streamed chat completion; iterate ``.answer``, or ``await .answer.close()``."""
        raw = await self.openai.chat.completions.with_raw_response.create(
            **_chat_body(messages, model, params), stream=True
        )
        return _routed(raw.headers, raw.parse())

    async def route(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> RouteDecision:
        body = await self.openai.post(
            "/route", body=_chat_body(messages, model, params), cast_to=JSON_BODY
        )
        return _decision(body)

    async def explain(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> dict[str, Any] | None:
        body = await self.openai.post(
            "/route", body={**_chat_body(messages, model, params), "explain": True},
            cast_to=JSON_BODY,
        )  # fmt: skip
        return body.get("score_evidence")

    async def usage(self) -> dict[str, Any]:
        return await self.openai.get("/usage", cast_to=JSON_BODY)

    async def feedback(self, request_id: str | None, *, score: float, tier: Tier | None = None,
                       comment: str | None = None) -> FeedbackReceipt:  # fmt: skip
        return await afeedback(self.openai, request_id, score=score, tier=tier, comment=comment)

    async def close(self) -> None:
        await self.openai.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncAdmin:
    """:class:`Admin` with ``await``."""

    def __init__(self, openai: AsyncOpenAI) -> None:
        self.openai = openai

    async def tenants(self) -> list[dict[str, Any]]:
        return (await self.openai.get("/tenants", cast_to=JSON_BODY))["data"]

    async def tenant(self, name: str) -> dict[str, Any]:
        return await self.openai.get(f"/tenants/{name}", cast_to=JSON_BODY)

    async def create_tenant(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return await self.openai.post("/tenants", body=dict(spec), cast_to=JSON_BODY)

    async def update_tenant(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return await self.openai.patch(f"/tenants/{name}", body=dict(changes), cast_to=JSON_BODY)

    async def delete_tenant(self, name: str) -> dict[str, Any]:
        return await self.openai.delete(f"/tenants/{name}", cast_to=JSON_BODY)

    async def issue_key(self, name: str) -> dict[str, Any]:
        return await self.openai.post(f"/tenants/{name}/keys", cast_to=JSON_BODY)

    async def keys(self, name: str) -> list[dict[str, Any]]:
        return (await self.openai.get(f"/tenants/{name}/keys", cast_to=JSON_BODY))["data"]

    async def revoke_key(self, name: str, key_id: str) -> dict[str, Any]:
        return await self.openai.delete(f"/tenants/{name}/keys/{key_id}", cast_to=JSON_BODY)

    async def usage(self, name: str) -> dict[str, Any]:
        return await self.openai.get(f"/tenants/{name}/usage", cast_to=JSON_BODY)
