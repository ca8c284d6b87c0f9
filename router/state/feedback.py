"""``POST /v1/feedback``: a tenant scores the answer to one of its past requests.

    {"request_id": "<the x-request-id of the answer>", "score": 0.0 .. 1.0,
     "tier": "fast" | "reasoning",      optional: whose answer is scored (default: the one served)
     "comment": "..."}                  optional, at most 2,000 characters

``score`` is the quality of that tier's answer, 1 = right, as in the shared
outcome data. To say which model was better, score both tiers: grade the
served answer, ask the other tier yourself (``model`` set to it) and score that
with ``tier``. A request scored for both tiers exports as an outcome record,
exactly what ``thinkroute train`` learns from; scored for one tier it exports
with that side alone, and ``classifier.data`` says how that is read.

A tenant reaches only its own requests: an id it never sent (or another
tenant's) is 404, whatever else exists. Scoring the same request and tier
again replaces the earlier score (the last one wins, on export). Feedback is
kept beside the decision log (:mod:`router.state.decision_log`) and only for
requests logged with their chat text (``log_prompts: true`` on the tenant),
because training reads text: anything else is refused with 409 saying so, not
kept where it could never be used. (A vector of the text is no way around
that: the static embedding is a mean of token vectors, close to the words.)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.config import TenantConfig
from router.errors import ConflictError, InvalidRequestError, NotFoundError
from router.state.decision_log import TIERS, DecisionLog

__all__ = ["FEEDBACK_SCHEMA", "Feedback", "parse_feedback", "record_feedback"]

MAX_COMMENT_CHARS = 2000
FIELDS = ("request_id", "score", "tier", "comment")
# The ids the proxy hands out or keeps from a client (router.http.server): nothing else
# was ever one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The body, for the OpenAPI document; parse_feedback stays the authority.
FEEDBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "score"],
    "additionalProperties": False,
    "properties": {
        "request_id": {"type": "string", "pattern": f"^{REQUEST_ID.pattern}$"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tier": {"enum": list(TIERS)},
        "comment": {"type": "string", "maxLength": MAX_COMMENT_CHARS},
    },
}


@dataclass(frozen=True, slots=True)
class Feedback:
    """One score for the answer one tier gave to a past request."""

    request_id: str
    score: float
    tier: str | None = None  # None: the tier that served the request
    comment: str | None = None


def parse_feedback(body: Any) -> Feedback:
    """The feedback in a request body; :class:`InvalidRequestError` naming the bad field."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidRequestError(
            f"unknown field '{unknown[0]}'; feedback takes {', '.join(FIELDS)}", param=unknown[0]
        )
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise InvalidRequestError(
            "'request_id' must be the x-request-id of an answer", param="request_id"
        )
    score = body.get("score")
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or not 0.0 <= score <= 1.0
    ):
        raise InvalidRequestError(
            "'score' must be a number from 0 (wrong) to 1 (right)", param="score"
        )
    tier = body.get("tier")
    if tier is not None and tier not in TIERS:
        raise InvalidRequestError(f"'tier' must be one of {list(TIERS)}", param="tier")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise InvalidRequestError(
            f"'comment' must be a string of at most {MAX_COMMENT_CHARS} characters",
            param="comment",
        )
    return Feedback(request_id, float(score), tier, comment)


async def record_feedback(
    log: DecisionLog | None,
    tenant: TenantConfig,
    feedback: Feedback,
    *,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Keep ``feedback`` beside the tenant's logged decision; the response body."""
    if log is None:
        raise NotFoundError(
            "feedback is kept beside the decision log, and this server keeps none "
            "(it needs Redis and server.decision_log: true)",
            code="decision_log_off",
        )
    await log.flush()  # the request may have been answered a moment ago, its entry queued
    found = await log.find(tenant.name, feedback.request_id)
    if found is None:
        raise NotFoundError(
            f"no routed request with id '{feedback.request_id}' for this key's tenant "
            "(requests to a named model are not routed, and old ones are trimmed)",
            param="request_id",
            code="request_not_found",
        )
    entry_id, entry = found
    if not entry.get("messages"):
        raise ConflictError(
            f"request '{feedback.request_id}' was logged without its chat text, so feedback on "
            f"it could train nothing; set log_prompts: true on tenant '{tenant.name}' to give "
            "feedback on the requests after that",
            param="request_id",
            code="prompt_not_logged",
        )
    served_tier = entry.get("served_tier")
    tier = feedback.tier or served_tier
    if tier not in TIERS:
        raise InvalidRequestError(
            f"request '{feedback.request_id}' was served by tier '{served_tier}'; "
            f"say which tier's answer is scored with 'tier' ({' or '.join(TIERS)})",
            param="tier",
        )
    kept: dict[str, Any] = {
        "request_id": feedback.request_id,
        "tier": tier,
        "score": feedback.score,
        "ts": datetime.fromtimestamp(clock(), UTC).isoformat(timespec="milliseconds"),
    }
    if feedback.comment:
        kept["comment"] = feedback.comment
    await log.add_feedback(tenant.name, entry_id, kept)
    return {"object": "feedback", **kept, "served_tier": served_tier}
