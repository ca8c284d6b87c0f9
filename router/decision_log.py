"""Every routed decision, kept per tenant in a bounded Redis Stream, and its export.

    thinkroute:{t}:decisions   stream; each entry one field, ``entry``: a JSON object

An entry holds what the router saw and did: score, threshold, tier (decided and
served), mode, reason, model, effort, cost, latency, cache result, status,
tenant, request id and time. It holds the chat (``messages``) only for a tenant
with ``log_prompts: true``. The stream is trimmed to about
``server.decision_log_max_entries`` (``XADD MAXLEN ~``), so it never grows
without bound. Logging never fails or slows a request: entries are queued and
written in batches, and a Redis fault loses them with a warning.

``thinkroute export-decisions`` writes a tenant's entries as JSON Lines that
``classifier.data`` reads (:func:`training_record`). An entry without chat text
cannot become a record and is skipped. Measured outcomes are attached later,
through feedback: an entry carrying ``fast_score`` and ``reasoning_score``
exports as an outcome record (``fast``/``reasoning`` scores), one without them
as a prompt record whose ``expected_tier`` is the tier the router chose (with
``"label": "router_decision"``). Such labels say what the current head did,
not what was right: use them to compare heads or to pick prompts to measure,
and train on them only once outcomes replace them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.errors import StoreUnavailableError
from router.metrics import RequestOutcome
from router.store import Store

__all__ = ["DecisionLog", "ExportSummary", "decision_entry", "export_decisions", "training_record"]

logger = logging.getLogger(__name__)

FIELD = "entry"
PAGE = 1000


def decisions_key(tenant: str) -> str:
    return f"thinkroute:{{{tenant}}}:decisions"


def decision_entry(
    outcome: RequestOutcome, *, messages: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any] | None:
    """The log entry of a routed request, or None when it was not routed."""
    decision = outcome.decision
    if decision is None or decision.tier == "direct" or outcome.tenant is None:
        return None
    entry: dict[str, Any] = {
        "request_id": outcome.request_id,
        "ts": datetime.fromtimestamp(outcome.started_at, UTC).isoformat(timespec="milliseconds"),
        "tenant": outcome.tenant,
        "score": decision.score,
        "threshold": decision.threshold,
        "tier": decision.tier,
        "served_tier": outcome.served_tier,
        "mode": decision.mode,
        "reason": decision.reason,
        "model": decision.model,
        "served_model": outcome.served_model,
        "effort": decision.reasoning_effort,
        "fallback": outcome.is_fallback,
        "cache": outcome.cache,
        "status": outcome.status,
        "stream": outcome.is_stream,
        "cost_usd": round(outcome.cost_usd, 6),
        "baseline_usd": round(outcome.baseline_usd, 6),
        "routing_ms": round(outcome.routing_s * 1000, 3),
        "upstream_ms": round(outcome.upstream_s * 1000, 3),
        "total_ms": round(outcome.total_s * 1000, 3),
    }
    if messages is not None:
        entry["messages"] = list(messages)
    return entry


class DecisionLog:
    """Appends routed decisions to each tenant's stream and reads them back.

    :meth:`submit` only queues an entry: a writer task sends queued entries in
    pipelined batches, so a burst of requests costs Redis a few round trips, not
    one each, and no request waits on its log. At most ``max_pending`` entries
    wait (the oldest are dropped past that, while Redis is away); :meth:`aclose`
    writes what is left. Give it a :class:`Store` of its own over the shared
    client, so a lost entry never opens the circuit breaker budgets rely on.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = 100_000,
        batch_size: int = 200,
        max_pending: int = 10_000,
    ) -> None:
        self.store = store
        self.max_entries = max_entries
        self.batch_size = batch_size
        self.dropped = 0  # entries lost: queue full, or Redis refused them
        self._pending: deque[tuple[str, str]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._is_closing = False

    def submit(
        self, outcome: RequestOutcome, *, messages: Sequence[Mapping[str, Any]] | None = None
    ) -> bool:
        """Queue one request's decision; False if it was not a routed request."""
        entry = decision_entry(outcome, messages=messages)
        if entry is None:
            return False
        data = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str)
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((decisions_key(entry["tenant"]), data))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        self._wake.set()
        return True

    async def flush(self) -> int:
        """Write every queued entry now; returns how many were written."""
        written = 0
        while self._pending:
            count = min(len(self._pending), self.batch_size)
            batch = [self._pending.popleft() for _ in range(count)]
            pipe = self.store.client.pipeline(transaction=False)
            for key, data in batch:
                pipe.xadd(key, {FIELD: data}, maxlen=self.max_entries, approximate=True)
            try:
                await self.store.call(pipe.execute())
            except StoreUnavailableError as exc:
                self.dropped += len(batch)
                logger.warning("%d routing decisions not logged: %s", len(batch), exc)
            except Exception:  # logging must never fail the requests it describes
                self.dropped += len(batch)
                logger.exception("%d routing decisions not logged", len(batch))
            else:
                written += len(batch)
        return written

    async def aclose(self) -> None:
        """Write what is queued and stop the writer."""
        self._is_closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        await self.flush()

    async def _write_forever(self) -> None:
        while not self._is_closing:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def entries(
        self, tenant: str, *, since: datetime | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(stream id, entry)`` of a tenant's decisions, oldest first, from ``since``."""
        start = "-" if since is None else f"{int(_aware(since).timestamp() * 1000)}-0"
        key = decisions_key(tenant)
        while True:
            page = await self.store.call(self.store.client.xrange(key, start, "+", count=PAGE))
            for raw_id, fields in page:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                raw = fields.get(FIELD.encode(), fields.get(FIELD))
                if raw is not None:
                    yield entry_id, json.loads(raw)
            if len(page) < PAGE:
                return
            last = page[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def training_record(entry_id: str, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``classifier.data`` record of one entry, or None when it has no chat text."""
    messages = entry.get("messages")
    if not messages:
        return None
    tenant = str(entry.get("tenant") or "")
    decision = {k: v for k, v in entry.items() if k != "messages"}
    record: dict[str, Any] = {
        "id": f"{tenant}:{entry_id}",
        "source": f"thinkroute:{tenant}",
        "subset": str(entry.get("mode") or ""),
        "messages": messages,
        "request_id": entry.get("request_id"),
    }
    if entry.get("fast_score") is not None and entry.get("reasoning_score") is not None:
        record["fast"] = {"score": entry["fast_score"]}
        record["reasoning"] = {"score": entry["reasoning_score"]}
    else:
        record["expected_tier"] = entry["tier"]
        record["label"] = "router_decision"
    record["decision"] = decision
    return record


@dataclass(frozen=True, slots=True)
class ExportSummary:
    written: int
    without_text: int  # entries of a tenant not opted in to log_prompts: no record possible


async def export_decisions(
    store: Store, tenant: str, output: str | Path, *, since: datetime | None = None
) -> ExportSummary:
    """Write a tenant's decisions as JSON Lines training records to ``output``."""
    log = DecisionLog(store)
    written = skipped = 0
    with Path(output).open("w", encoding="utf-8") as out:
        async for entry_id, entry in log.entries(tenant, since=since):
            record = training_record(entry_id, entry)
            if record is None:
                skipped += 1
                continue
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return ExportSummary(written, skipped)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
