"""Anthropic's Messages API on top of the proxy: requests, responses, streams and errors.

Anthropic-SDK clients and coding agents send ``POST /v1/messages``. These pure
functions turn that body into an OpenAI chat-completions body for
:func:`router.requests.parse_chat_request`, and the proxy's OpenAI answer (a
``chat.completion`` or its chunks) back into Anthropic's wire format:

    chat = parse_chat_request(to_openai(body))
    if chat.stream:
        stream = await router.astream(chat, tenant=tenant, headers=headers)
        async for name, data in stream_events(stream.chunks, model=chat.model):
            yield format_sse(name, data)
    else:
        completion = await router.acompletion(chat, tenant=tenant, headers=headers)
        message = from_openai(completion.response, model=chat.model)

What has no OpenAI equivalent is refused with a 400 that names the field as
Anthropic does (``messages.2.content.0.source.type``): server tools, the Files
API, unknown fields. Nothing the client sent is forwarded untranslated.
"""

from router.http.anthropic.requests import to_openai
from router.http.anthropic.responses import (
    api_key_from_headers,
    error_body,
    format_sse,
    from_openai,
    stream_events,
)

__all__ = [
    "api_key_from_headers",
    "error_body",
    "format_sse",
    "from_openai",
    "stream_events",
    "to_openai",
]
