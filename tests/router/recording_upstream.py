"""A loopback upstream that records each request and answers in its provider's shape.

One server stands in for every provider LiteLLM can be pointed at with an
``api_base``: OpenAI-compatible ``/chat/completions`` (OpenAI, DeepSeek, vLLM),
Anthropic's ``/v1/messages``, Gemini's ``/models/{model}:generateContent`` and
Ollama's ``/api/chat`` (and OpenAI-style streams). The reply only has to be one
LiteLLM parses; what the tests look at is the request: path, headers and JSON
body, as sent.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from router.upstream.simulator import BackgroundServer, error_body

USAGE = {"input": 12, "output": 5}


class RecordingUpstream(BackgroundServer):
    """``with RecordingUpstream() as upstream: ...; upstream.requests[-1]["body"]``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self.failures = 0  # answer this many next chat requests with a 503
        super().__init__(_app(self))

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Chat requests so far (not LiteLLM's side calls such as Ollama's /api/show)."""
        with self.lock:
            return copy.deepcopy([r for r in self.log if not r["path"].endswith("/api/show")])

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.failures = 0

    def _record(self, entry: dict[str, Any]) -> bool:
        """Log a request; True if it is to fail."""
        with self.lock:
            self.log.append(entry)
            if self.failures and not entry["path"].endswith("/api/show"):
                self.failures -= 1
                return True
            return False


def _app(upstream: RecordingUpstream) -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def anything(path: str, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        path = "/" + path
        headers = {k.lower(): v for k, v in request.headers.items()}
        if upstream._record({"path": path, "headers": headers, "body": body}):
            return error_body(503)
        if path.endswith("/messages"):
            return JSONResponse(_anthropic(body))
        if path.endswith(":generateContent"):
            return JSONResponse(_gemini(path))
        if path.endswith("/api/show"):  # LiteLLM asks Ollama about a model it prices
            return JSONResponse({"model_info": {}, "capabilities": ["completion", "thinking"]})
        if path.endswith("/api/chat"):
            return JSONResponse(_ollama(body))
        if body.get("stream"):
            return StreamingResponse(_openai_stream(body), media_type="text/event-stream")
        return JSONResponse(_openai(body))

    return app


def _openai(body: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": f"[{body['model']}] answer"}
    return {
        "id": "chatcmpl-rec", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": USAGE["input"], "completion_tokens": USAGE["output"],
                  "total_tokens": USAGE["input"] + USAGE["output"]},
    }  # fmt: skip


def _openai_stream(body: dict[str, Any]) -> Iterator[bytes]:
    full = _openai(body)
    head = {"id": full["id"], "object": "chat.completion.chunk", "created": 0,
            "model": body["model"]}  # fmt: skip
    deltas = [
        {"role": "assistant", "content": ""},
        {"content": full["choices"][0]["message"]["content"]},
    ]
    for delta in deltas:
        yield _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    yield _sse({**head, "choices": [], "usage": full["usage"]})
    yield b"data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _anthropic(body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":  # Claude returns its thinking
        content.append({"type": "thinking", "thinking": "Let me see.", "signature": "sig"})
    content.append({"type": "text", "text": f"[{body['model']}] answer"})
    return {
        "id": "msg_rec", "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": USAGE["input"], "output_tokens": USAGE["output"]},
    }  # fmt: skip


def _gemini(path: str) -> dict[str, Any]:
    model = path.rsplit("/", 1)[-1].split(":", 1)[0]
    return {
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": f"[{model}] answer"}]},
            "finishReason": "STOP", "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": USAGE["input"], "candidatesTokenCount": USAGE["output"],
            "totalTokenCount": USAGE["input"] + USAGE["output"],
        },
        "modelVersion": model,
    }  # fmt: skip


def _ollama(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": body["model"], "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": f"[{body['model']}] answer"},
        "done": True, "done_reason": "stop",
        "prompt_eval_count": USAGE["input"], "eval_count": USAGE["output"],
    }  # fmt: skip
