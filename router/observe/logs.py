"""Log lines as one JSON object each (or as text), and the fields of a request's line.

Library code logs with ``logging.getLogger(__name__)`` and structured fields in
``extra={"fields": {...}}``; only the entry point (``thinkroute serve``) calls
:func:`configure_logging`, which puts one handler with one of these formatters
on the root logger, so uvicorn's and LiteLLM's lines come out the same way.

    {"ts": "2026-11-27T10:00:00.123Z", "level": "info", "logger": "router.http.server",
     "message": "request", "request_id": "9f2c...", "tenant": "acme", "tier": "fast", ...}

A request's line carries no chat text and no key; ``server.log_prompts`` adds
the last user message.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from classifier.text import message_text
from router.observe.metrics import RequestOutcome

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "last_user_text",
    "request_fields",
]

LogFormat = Literal["json", "text"]
# LiteLLM gives these loggers handlers of its own (plain text), and logs every call at INFO.
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...``, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping) and fields:
            pairs = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
            head, newline, trace = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {pairs}{newline}{trace}"
        return line


def configure_logging(
    log_format: LogFormat = "json", level: str = "info", *, stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records through one handler on the root logger; returns it.

    Call it after importing LiteLLM: its loggers' own handlers are removed, so
    their records come out in the same format, and their per-call INFO lines are
    kept only at DEBUG.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in LITELLM_LOGGERS:
        litellm_logger = logging.getLogger(name)
        for old in list(litellm_logger.handlers):
            litellm_logger.removeHandler(old)
        litellm_logger.propagate = True
        quiet = root.level > logging.DEBUG
        litellm_logger.setLevel(max(root.level, logging.WARNING) if quiet else logging.DEBUG)
    return handler


def request_fields(outcome: RequestOutcome, *, prompt: str | None = None) -> dict[str, Any]:
    """The fields of one request's log line; ``prompt`` only when a setting asks for it."""
    decision = outcome.decision
    fields: dict[str, Any] = {
        "request_id": outcome.request_id,
        "tenant": outcome.tenant,
        "tier": outcome.served_tier,
        "model": outcome.served_model,
        "cache": outcome.cache,
        "status": outcome.status,
        "cost_usd": round(outcome.cost_usd, 6),
        "routing_ms": round(outcome.routing_s * 1000, 3),
        "upstream_ms": round(outcome.upstream_s * 1000, 3),
        "total_ms": round(outcome.total_s * 1000, 3),
        "stream": outcome.is_stream,
    }
    if decision is not None:
        fields |= {
            "mode": decision.mode,
            "reason": decision.reason,
            "score": None if decision.score is None else round(decision.score, 4),
            "effort": decision.reasoning_effort,
            "fallback": outcome.is_fallback,
        }
    if outcome.error_code is not None:
        fields["error"] = outcome.error_code
    if prompt is not None:
        fields["prompt"] = prompt
    return fields


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (text parts joined), for a log line."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def _text(value: Any) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if (" " in text or not text) else text
