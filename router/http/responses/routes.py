"""``POST /v1/responses``: OpenAI's Responses API on the server's one request path.

The route hands the server's chat path (authenticate, route, cache, budget,
dispatch, decision headers, accounting) a :data:`RESPONSES_WIRE` that reads
Responses requests and writes Responses objects and stream events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from router.completions import Completion, StreamingCompletion
from router.errors import NotFoundError
from router.http.openapi import json_body
from router.http.responses.events import format_sse, stream_events
from router.http.responses.output import from_chat
from router.http.responses.requests import NOT_STORED, ResponsesRequest, parse_responses_request
from router.http.responses.schema import responses_body
from router.http.wire import OPENAI_WIRE, Wire
from router.requests import ChatRequest

__all__ = ["RESPONSES_WIRE", "responses_routes"]

ServeChat = Callable[[Request, Wire], Awaitable[Response]]


def _body(result: Completion, chat: ChatRequest) -> dict[str, Any]:
    assert isinstance(chat, ResponsesRequest)  # RESPONSES_WIRE parsed it
    return from_chat(result.response, chat, reasoning_effort=result.decision.reasoning_effort)


async def _events(stream: StreamingCompletion, chat: ChatRequest) -> AsyncIterator[str]:
    assert isinstance(chat, ResponsesRequest)
    effort = stream.decision.reasoning_effort
    async for event in stream_events(stream.chunks, chat, effort=effort):
        yield format_sse(event)


RESPONSES_WIRE = Wire(
    api_key=OPENAI_WIRE.api_key,
    parse=parse_responses_request,
    body=_body,
    events=_events,
    # stream_events already sent the error event (it knows the sequence number).
    error_event=lambda error: "",
    error_body=OPENAI_WIRE.error_body,
    end_of_stream="",  # response.completed ends a Responses stream; there is no [DONE]
    id_headers=OPENAI_WIRE.id_headers,
)


def responses_routes(serve_chat: ServeChat, model_names: list[str]) -> APIRouter:
    """The Responses routes over the server's ``serve_chat(request, wire)``."""
    routes = APIRouter()

    @routes.post("/v1/responses", openapi_extra=json_body(responses_body(model_names)))
    async def create_response(request: Request) -> Response:
        """OpenAI's Responses API, routed like chat completions (``model: auto``)."""
        return await serve_chat(request, RESPONSES_WIRE)

    @routes.get("/v1/responses/{response_id}")
    async def retrieve_response(response_id: str) -> Response:
        """Always 404: no response is kept (see ``router.http.responses.requests``)."""
        error = NotFoundError(NOT_STORED, param="response_id", code="response_not_found")
        return JSONResponse(error.to_body(), status_code=404)

    return routes
