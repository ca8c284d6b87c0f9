"""Every routed decision, kept per tenant in a bounded Redis Stream, and its export.

    thinkroute:{t}:decisions      stream; each entry one field, ``entry``: a JSON object
    thinkroute:{t}:decision_ids   sorted set: request id -> the millisecond of its entry
    thinkroute:{t}:feedback       stream of outcome scores for entries (POST /v1/feedback)

An entry holds what the router saw and did: score, threshold, tier (decided and
served), mode, reason, model, effort, cost, latency, cache result, status,
tenant, request id and time. It holds the chat (``messages``) only for a tenant
with ``log_prompts: true``. The stream is trimmed to about
``server.decision_log_max_entries`` (``XADD MAXLEN ~``), so it never grows
without bound. Logging never fails or slows a request: entries are queued and
written in batches, and a Redis fault loses them with a warning.

The id index lets feedback find a request's entry without scanning the
stream; it is trimmed to the same number of entries. Feedback is a stream of
its own, capped the same way, so neither grows without bound; for one entry
and tier the latest score wins (see :mod:`router.state.feedback`).

``thinkroute export-decisions`` writes a tenant's entries as JSON Lines that
``classifier.data`` reads (:func:`training_record`). An entry without chat text
cannot become a record and is skipped. Feedback is attached on export: an
entry scored for both tiers exports as an outcome record (``fast`` and
``reasoning`` scores), one scored for one tier as an outcome record with that
side alone (``classifier.data`` says how it is read), and one without feedback
as a prompt record whose ``expected_tier`` is the tier the router chose (with
``"label": "router_decision"``). Such labels say what the current head did,
not what was right: use them to compare heads or to pick prompts to measure,
and train only on records with feedback (``--feedback-only``).
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
from router.observe.metrics import RequestOutcome
from router.state.store import Store

__all__ = ["DecisionLog", "ExportSummary", "decision_entry", "export_decisions", "training_record"]

logger = logging.getLogger(__name__)

FIELD = "entry"
PAGE = 1000
TIERS = ("fast", "reasoning")
# Stream ids are "<milliseconds>-<sequence>"; this is the largest sequence.
LAST_SEQUENCE = 2**64 - 1


def decisions_key(tenant: str) -> str:
    return f"thinkroute:{{{tenant}}}:decisions"


def decision_ids_key(tenant: str) -> str:
    return f"thinkroute:{{{tenant}}}:decision_ids"


def feedback_key(tenant: str) -> str:
    return f"thinkroute:{{{tenant}}}:feedback"


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
        "cascade": outcome.cascade,
        "session": outcome.session,
        "session_switch": outcome.session_switched,
        "session_cache_cost_usd": round(outcome.session_cache_cost_usd, 6),
        "status": outcome.status,
        "stream": outcome.is_stream,
        "cost_usd": round(outcome.cost_usd, 6),
        "baseline_usd": round(outcome.baseline_usd, 6),
        "reserved_usd": round(outcome.reserved_usd, 6),  # vs cost_usd: how tight estimates are
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
        # (tenant, request id, entry as JSON), oldest first.
        self._pending: deque[tuple[str, str, str]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        # One flush at a time, so a flush that returns has written all queued before it.
        self._flushing = asyncio.Lock()
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
        self._pending.append((entry["tenant"], entry["request_id"], data))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        self._wake.set()
        return True

    async def flush(self) -> int:
        """Write every queued entry now; returns how many were written."""
        async with self._flushing:
            written = 0
            while self._pending:
                count = min(len(self._pending), self.batch_size)
                written += await self._write([self._pending.popleft() for _ in range(count)])
            return written

    async def _write(self, batch: list[tuple[str, str, str]]) -> int:
        pipe = self.store.client.pipeline(transaction=False)
        for tenant, _, data in batch:
            pipe.xadd(
                decisions_key(tenant), {FIELD: data}, maxlen=self.max_entries, approximate=True
            )
        try:
            ids = await self.store.call(pipe.execute())
        except StoreUnavailableError as exc:
            self.dropped += len(batch)
            logger.warning("%d routing decisions not logged: %s", len(batch), exc)
            return 0
        except Exception:  # logging must never fail the requests it describes
            self.dropped += len(batch)
            logger.exception("%d routing decisions not logged", len(batch))
            return 0
        # A second trip, since the index needs the ids Redis gave the entries. Losing
        # it only makes feedback on these requests answer 404.
        index = self.store.client.pipeline(transaction=False)
        for (tenant, request_id, _), entry_id in zip(batch, ids, strict=True):
            index.zadd(decision_ids_key(tenant), {request_id: _millisecond(entry_id)})
        for tenant in {tenant for tenant, _, _ in batch}:
            index.zremrangebyrank(decision_ids_key(tenant), 0, -self.max_entries - 1)
        try:
            await self.store.call(index.execute())
        except Exception:
            logger.warning("%d routing decisions logged but not indexed", len(batch))
        return len(batch)

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

    async def find(self, tenant: str, request_id: str) -> tuple[str, dict[str, Any]] | None:
        """The newest ``(stream id, entry)`` of ``tenant`` with ``request_id``, or None."""
        millisecond = await self.store.call(
            self.store.client.zscore(decision_ids_key(tenant), request_id)
        )
        if millisecond is None:
            return None
        ms = int(millisecond)
        # Entries written in one millisecond share it; a client may reuse its own ids.
        page = await self.store.call(
            self.store.client.xrange(decisions_key(tenant), f"{ms}-0", f"{ms}-{LAST_SEQUENCE}")
        )
        for raw_id, fields in reversed(page):
            raw = fields.get(FIELD.encode(), fields.get(FIELD))
            entry = json.loads(raw) if raw is not None else {}
            if entry.get("request_id") == request_id:
                return _text(raw_id), entry
        return None  # trimmed from the stream after the index was written

    async def add_feedback(self, tenant: str, entry_id: str, feedback: Mapping[str, Any]) -> str:
        """Append one score for the entry ``entry_id``; returns the feedback's stream id."""
        data = json.dumps({"decision": entry_id, **feedback}, ensure_ascii=False)
        # Capped like the decision stream: feedback on trimmed entries goes with them.
        added = await self.store.call(
            self.store.client.xadd(
                feedback_key(tenant), {FIELD: data}, maxlen=self.max_entries, approximate=True
            )
        )
        return _text(added)

    async def feedback(self, tenant: str) -> dict[str, dict[str, dict[str, Any]]]:
        """``{entry id: {tier: feedback}}`` of a tenant, the latest for each tier winning."""
        latest: dict[str, dict[str, dict[str, Any]]] = {}
        start = "-"
        key = feedback_key(tenant)
        while True:
            page = await self.store.call(self.store.client.xrange(key, start, "+", count=PAGE))
            for _, fields in page:
                raw = fields.get(FIELD.encode(), fields.get(FIELD))
                if raw is None:
                    continue
                item = json.loads(raw)
                scores = latest.setdefault(str(item.pop("decision")), {})
                scores[str(item["tier"])] = item
            if len(page) < PAGE:
                return latest
            start = "(" + _text(page[-1][0])


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
    feedback = entry.get("feedback") or {}
    scored = [tier for tier in TIERS if tier in feedback]
    if scored:
        # One tier scored is an outcome with that side alone; classifier.data reads it.
        for tier in scored:
            record[tier] = {"score": feedback[tier]["score"]}
        record["label"] = "feedback"
    else:
        record["expected_tier"] = entry["tier"]
        record["label"] = "router_decision"
    record["decision"] = decision
    return record


@dataclass(frozen=True, slots=True)
class ExportSummary:
    written: int
    without_text: int  # entries of a tenant not opted in to log_prompts: no record possible
    with_feedback: int = 0
    without_feedback: int = 0  # left out under feedback_only


async def export_decisions(
    store: Store,
    tenant: str,
    output: str | Path,
    *,
    since: datetime | None = None,
    feedback_only: bool = False,
) -> ExportSummary:
    """Write a tenant's decisions, with their feedback, as JSON Lines training records.

    ``feedback_only`` leaves out decisions nobody scored: their labels are the
    router's own choices, which a head should not be trained to repeat.
    """
    log = DecisionLog(store)
    feedback = await log.feedback(tenant)
    written = skipped = scored = unscored = 0
    with Path(output).open("w", encoding="utf-8") as out:
        async for entry_id, entry in log.entries(tenant, since=since):
            if entry_id in feedback:
                entry = {**entry, "feedback": feedback[entry_id]}
            elif feedback_only:
                unscored += 1
                continue
            record = training_record(entry_id, entry)
            if record is None:
                skipped += 1
                continue
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
            scored += entry_id in feedback
    return ExportSummary(written, skipped, scored, unscored)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _millisecond(entry_id: bytes | str) -> int:
    return int(_text(entry_id).partition("-")[0])
