"""Reading a request body: streamed, refused as soon as it passes the size limit, then decoded.

A body is never buffered past ``server.max_body_bytes``: a declared
``Content-Length`` over the limit is refused before a byte is read, and a
chunked body is refused (413) as soon as the bytes read pass the limit, so an
endless upload costs at most the limit in memory. A client that hangs up
mid-body ends its request quietly (:class:`ClientClosedError`, status 499).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from router.errors import RequestTooLargeError, ThinkrouteError
from router.http.jsonio import decode_json
from router.http.services import services

__all__ = ["ClientClosedError", "read_json"]

# Decoding a larger body takes milliseconds of CPU: done in a thread, so that other
# requests (and /healthz) are not kept waiting on the event loop.
DECODE_IN_THREAD_BYTES = 256 * 1024


class ClientClosedError(ThinkrouteError):
    """The client hung up before its request was read; nobody is left to answer."""

    status_code = 499  # nginx's "client closed request"
    type = "client_closed"
    code = "client_closed"


async def read_json(request: Request) -> Any:
    """The request's body decoded by :func:`router.http.jsonio.decode_json`, within the limit."""
    limit = services(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosedError("the client closed the connection while sending") from None
    raw = b"".join(chunks)
    if len(raw) > DECODE_IN_THREAD_BYTES:
        return await asyncio.to_thread(decode_json, raw)
    return decode_json(raw)


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"request body over the {limit}-byte limit")
