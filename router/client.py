"""Talk to a thinkroute proxy through the official ``openai`` client.

For now one thing the ``openai`` client cannot say by itself: feedback on an
answer. The answer's request id is the ``x-request-id`` header, which the
``openai`` client keeps as ``_request_id`` on what it returns::

    from openai import OpenAI
    from router.client import feedback

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-...")
    answer = client.chat.completions.create(model="auto", messages=[...])
    feedback(client, answer._request_id, score=1.0)       # the served answer was right

Errors come as the ``openai`` client's own exceptions (``NotFoundError`` for
an id the tenant never sent, ``BadRequestError`` for a bad score, ...). This
module is where a typed thinkroute client can grow (decisions from the
``x-thinkroute-*`` headers, ``route()``, ``usage()``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from openai import AsyncOpenAI, OpenAI

__all__ = ["FeedbackReceipt", "afeedback", "feedback"]

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
    receipt: FeedbackReceipt = client.post(
        "/feedback", body=_body(request_id, score, tier, comment), cast_to=object
    )
    return receipt


async def afeedback(
    client: AsyncOpenAI,
    request_id: str | None,
    *,
    score: float,
    tier: Tier | None = None,
    comment: str | None = None,
) -> FeedbackReceipt:
    """:func:`feedback` through an ``AsyncOpenAI`` client."""
    receipt: FeedbackReceipt = await client.post(
        "/feedback", body=_body(request_id, score, tier, comment), cast_to=object
    )
    return receipt


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
