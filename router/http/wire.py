"""The two API dialects the proxy speaks: OpenAI's Chat Completions and Anthropic's Messages.

A :class:`Wire` says how a dialect finds the API key, turns a body into a
:class:`~router.requests.ChatRequest`, and writes answers, stream events and
errors. The server runs one request path for both (``router.http.server``); the
router underneath only ever sees OpenAI-shaped requests.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.completions import Completion, StreamingCompletion
from router.errors import AuthenticationError, ThinkrouteError
from router.http import anthropic
from router.requests import ChatRequest, parse_chat_request
from router.state.tenants import bearer_key

__all__ = ["ANTHROPIC_WIRE", "OPENAI_WIRE", "Wire"]


@dataclass(frozen=True)
class Wire:
    """How one dialect reads requests and writes answers."""

    api_key: Callable[[Mapping[str, str]], str]
    parse: Callable[[Any], ChatRequest]
    body: Callable[[Completion, ChatRequest], dict[str, Any]]
    events: Callable[[StreamingCompletion, ChatRequest], AsyncIterator[str]]
    error_event: Callable[[ThinkrouteError], str]
    error_body: Callable[[ThinkrouteError], dict[str, Any]]
    end_of_stream: str
    id_headers: Callable[[str], dict[str, str]]


async def _openai_events(stream: StreamingCompletion, chat: ChatRequest) -> AsyncIterator[str]:
    async for chunk in stream.chunks:
        yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


OPENAI_WIRE = Wire(
    api_key=lambda headers: bearer_key(headers.get("authorization")),
    parse=parse_chat_request,
    body=lambda result, chat: result.response,
    events=_openai_events,
    # OpenAI reports a failure after the first byte as an error object in the stream.
    error_event=lambda error: f"data: {json.dumps(error.to_body())}\n\n",
    error_body=lambda error: error.to_body(),
    end_of_stream="data: [DONE]\n\n",
    id_headers=lambda request_id: {"x-request-id": request_id},
)


def _anthropic_key(headers: Mapping[str, str]) -> str:
    key = anthropic.api_key_from_headers(headers)
    if key is None:
        raise AuthenticationError(
            "Missing API key: send 'x-api-key: <key>'.", code="missing_api_key"
        )
    return key


async def _anthropic_events(stream: StreamingCompletion, chat: ChatRequest) -> AsyncIterator[str]:
    async for name, data in anthropic.stream_events(stream.chunks, model=chat.model):
        yield anthropic.format_sse(name, data)


def _anthropic_parse(body: Any) -> ChatRequest:
    chat = parse_chat_request(anthropic.to_openai(body))
    # metadata.user_id (sent on as OpenAI's `user`): Claude Code's names its session.
    user = chat.params.get("user")
    return dataclasses.replace(chat, session_id=user) if isinstance(user, str) else chat


ANTHROPIC_WIRE = Wire(
    api_key=_anthropic_key,
    parse=_anthropic_parse,
    body=lambda result, chat: anthropic.from_openai(result.response, model=chat.model),
    events=_anthropic_events,
    error_event=lambda error: anthropic.format_sse("error", anthropic.error_body(error)),
    error_body=anthropic.error_body,
    end_of_stream="",  # message_stop, already sent, ends an Anthropic stream
    # Anthropic's SDKs read request-id; x-request-id is the proxy's own for every dialect.
    id_headers=lambda request_id: {"x-request-id": request_id, "request-id": request_id},
)
