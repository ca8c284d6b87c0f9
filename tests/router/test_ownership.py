"""One owner per request's money and stream: faults at every await never leak or double-charge.

A real Router calls the real simulated upstream over both transports (the direct aiohttp
one and LiteLLM's); the budget store is the in-memory one of ``fakes``, which fails or
cancels its caller at a chosen await. Each case cancels, breaks or raises at one await of
the non-streaming or the streaming path, then audits the books:

- no reservation is left open, unless the store itself refused to close it (then it
  expires after the reservation TTL, the one leak nothing can prevent);
- each reservation is closed (settled or released) by one call, never two;
- a stream that started is settled, not released, and what the client was told it
  cost is what the books charged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from router.config import build_config
from router.errors import ThinkrouteError
from router.proxy import Router
from tests.router.conftest import proxy_config
from tests.router.fakes import Fault, InMemoryBudgets

# Raised by LiteLLM's first imports, as in test_redis_outage.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
STORE_POINTS = ("state:before", "state:after", "reserve:before", "reserve:after",
                "settle:before", "settle:after")  # fmt: skip
STORE_KINDS = ("cancel", "down", "slow")


@dataclass(frozen=True)
class Case:
    is_stream: bool
    transport: str  # direct | litellm
    point: str  # a store await, "upstream" (the call), "mid-stream", or "none"
    kind: str  # cancel | down | slow | raise | break | none
    then: str | None = None  # a second fault, on the release the first one causes

    @property
    def id(self) -> str:
        path = "stream" if self.is_stream else "complete"
        then = f"+release-{self.then}" if self.then else ""
        return f"{path}-{self.transport}-{self.point}-{self.kind}{then}"


def _cases() -> list[Case]:
    cases = []
    for transport in ("direct", "litellm"):
        for is_stream in (False, True):
            cases.append(Case(is_stream, transport, "none", "none"))
            cases += [Case(is_stream, transport, point, kind)
                      for point in STORE_POINTS for kind in STORE_KINDS]  # fmt: skip
            # The upstream fails, and then the release it causes fails or is cancelled.
            cases += [Case(is_stream, transport, "upstream", "raise", then=f"{when}:{kind}")
                      for when in ("before", "after") for kind in STORE_KINDS]  # fmt: skip
            cases += [Case(is_stream, transport, "upstream", kind) for kind in ("cancel", "raise")]
            if is_stream:
                cases += [Case(True, transport, "mid-stream", kind)
                          for kind in ("cancel", "raise", "break")]  # fmt: skip
    return cases


CASES = _cases()


@pytest.fixture
async def routers(classifier, upstream) -> AsyncIterator[dict[str, Router]]:
    """One Router per transport over the session's simulated upstream, for this test's
    event loop (connections belong to the loop that opened them)."""
    made = {}
    for transport in ("direct", "litellm"):
        config = proxy_config(upstream.base_url, direct_openai=transport == "direct")
        made[transport] = Router(config=config, classifier=classifier)
    yield made
    for router in made.values():
        await router.aclose()


def tenant() -> Any:
    policy = {"name": "owner", "api_keys": ["sk-owner-0123456789"],
              "budget": {"daily_usd": 100.0}, "on_store_failure": "open"}  # fmt: skip
    return build_config({"tenants": [policy]}).tenants[0]


@dataclass
class Outcome:
    cost_usd: float | None = None  # what the client was told, for an answer it got
    stream_started: bool = False
    error: BaseException | None = None


async def run(router: Router, upstream: Any, case: Case) -> tuple[InMemoryBudgets, Outcome]:
    budgets = InMemoryBudgets()
    router.budgets = budgets
    outcome = Outcome()
    question = {"role": "user", "content": f"say something about {case.id}"}
    request = {"model": "auto", "stream": case.is_stream, "max_tokens": 32, "messages": [question]}
    for model in ("fast-model", "reasoning-model"):
        if case.point == "upstream" and case.kind == "raise":
            upstream.control(model, fail_status=500)
        if case.point == "upstream" and case.kind == "cancel":
            upstream.control(model, latency_s=5.0)
        if case.point == "mid-stream" and case.kind == "raise":
            upstream.control(model, cut_stream_after=1)
        if case.point == "mid-stream" and case.kind == "cancel":
            upstream.control(model, chunk_delay_s=5.0)
    with anyio.CancelScope() as scope:
        if case.then:
            when, kind = case.then.split(":")
            budgets.fault = Fault(f"release:{when}", kind, scope)
        elif case.point in STORE_POINTS:
            budgets.fault = Fault(case.point, case.kind, scope)
        async with anyio.create_task_group() as watch:
            if case.point == "upstream" and case.kind == "cancel":
                watch.start_soon(cancel_on_arrival, upstream, len(upstream.requests), scope)
            try:
                await ask(router, request, case, outcome, scope)
            except ThinkrouteError as exc:
                outcome.error = exc
            finally:
                watch.cancel_scope.cancel()
    return budgets, outcome


async def ask(router: Router, request: dict, case: Case, outcome: Outcome, scope: Any) -> None:
    if not case.is_stream:
        completion = await router.acompletion(request, tenant=tenant())
        outcome.cost_usd = completion.cost_usd
        return
    stream = await router.astream(request, tenant=tenant())
    outcome.stream_started = True
    async with stream:
        async for _ in stream.chunks:
            if case.point == "mid-stream" and case.kind == "break":
                break
            if case.point == "mid-stream" and case.kind == "cancel":
                scope.cancel()  # delivered at the stream's next await: reading the upstream
    outcome.cost_usd = stream.cost_usd


async def cancel_on_arrival(upstream: Any, seen: int, scope: anyio.CancelScope) -> None:
    """Cancel the request once the upstream has it: the cancel lands in the upstream call."""
    while len(upstream.requests) <= seen:
        await anyio.sleep(0.005)
    scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_a_fault_at_any_await_leaves_the_books_closed(routers, clean_upstream, case):
    budgets, outcome = await run(routers[case.transport], clean_upstream, case)
    fault = budgets.fault
    assert fault is None or fault.hits or case.then, f"{case.id}: never reached ({outcome})"
    for reservation_id in budgets.reserved:
        if reservation_id in budgets.open:
            # Only a store that refused the settle or release may leave money held.
            assert reservation_id in budgets.failed_closings, f"{case.id}: leaked"
        assert budgets.closings[reservation_id] <= 1, f"{case.id}: closed twice"
    # A store down when reserving: the tenant fails open, served unmetered by design
    # (what the store may have reserved is given back).
    unmetered = case.point == "reserve:after" and case.kind == "down"
    if unmetered or budgets.failed_closings:
        return
    if outcome.stream_started:
        assert not budgets.released, f"{case.id}: a stream that started was not charged"
    if outcome.cost_usd is not None and budgets.reserved:
        charged = sum(budgets.settled_micro.values())
        assert charged == round(outcome.cost_usd * 1e6), f"{case.id}: told and charged differ"


def test_the_fault_table_covers_every_await_of_both_paths_and_transports():
    """The count reported for issue 22: every store await with every fault kind, the
    upstream call, the release a failure causes, and the stream's middle."""
    assert len(CASES) == 2 * (27 + 30)
    assert {c.point for c in CASES} == {*STORE_POINTS, "upstream", "mid-stream", "none"}
