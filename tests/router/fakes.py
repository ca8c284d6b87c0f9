"""In-memory stand-ins for what a test cannot otherwise steer: a budget store that fails
(or gets its caller cancelled) at a chosen await, and keeps books a test can audit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from router.config import TenantConfig
from router.errors import BudgetExceededError, StoreTimeoutError, StoreUnavailableError
from router.state.budgets import BudgetState, Reservation, to_micro


@dataclass
class Fault:
    """At ``point`` (``"reserve:after"``: once the reservation took effect), ``kind`` happens:
    ``cancel`` cancels ``scope`` (delivered at that await unless shielded), ``down`` and
    ``slow`` raise the store's refusal or timeout."""

    point: str
    kind: str
    scope: anyio.CancelScope | None = None
    hits: int = 0


@dataclass
class InMemoryBudgets:
    """:class:`router.state.budgets.Budgets` in a dict: one daily budget, no rate limits."""

    fault: Fault | None = None
    open: dict[str, Reservation] = field(default_factory=dict)
    reserved: set[str] = field(default_factory=set)  # every id that ever held money
    settled_micro: dict[str, int] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    closings: Counter[str] = field(default_factory=Counter)  # settle/release calls per id
    failed_closings: set[str] = field(default_factory=set)  # the store refused them

    async def _at(self, point: str) -> None:
        fault = self.fault
        if fault is not None and fault.point == point:
            fault.hits += 1
            if fault.kind == "cancel":
                assert fault.scope is not None
                fault.scope.cancel()
            elif fault.kind == "down":
                raise StoreUnavailableError("in-memory store: down")
            elif fault.kind == "slow":
                raise StoreTimeoutError("in-memory store: timed out")
        await anyio.lowlevel.checkpoint()

    @property
    def spent_micro(self) -> int:
        held = sum(r.amount_micro for r in self.open.values())
        return held + sum(self.settled_micro.values())

    async def state(self, tenant: TenantConfig) -> BudgetState:
        await self._at("state:before")
        state = BudgetState(self.spent_micro, self.spent_micro, [])
        await self._at("state:after")
        return state

    async def reserve(
        self,
        tenant: TenantConfig,
        *,
        amount_usd: float,
        tokens: int,
        routed: tuple[str, float] | None = None,
        reservation_id: str | None = None,
    ) -> Reservation:
        await self._at("reserve:before")
        amount, limit = to_micro(amount_usd), tenant.budget.daily_usd
        if limit is not None and self.spent_micro + amount > to_micro(limit):
            raise BudgetExceededError("in-memory budget spent", retry_after_s=60)
        room = None if limit is None else to_micro(limit) - self.spent_micro - amount
        spent = BudgetState(self.spent_micro + amount, self.spent_micro + amount, [])
        held = Reservation(reservation_id or f"r{len(self.closings)}", tenant.name, amount,
                           tokens, room_micro=room, spent=spent)  # fmt: skip
        self.open[held.id] = held
        self.reserved.add(held.id)
        await self._at("reserve:after")
        return held

    async def settle(self, reservation: Reservation, *, cost_usd: float, **_: Any) -> int:
        return await self._close(reservation, "settle", to_micro(cost_usd))

    async def release(self, reservation: Reservation) -> None:
        await self._close(reservation, "release", None)

    async def _close(self, reservation: Reservation, how: str, charge_micro: int | None) -> int:
        if reservation.id in self.reserved:
            self.closings[reservation.id] += 1
        try:
            await self._at(f"{how}:before")
        except StoreUnavailableError:
            self.failed_closings.add(reservation.id)
            raise
        if self.open.pop(reservation.id, None) is not None:  # idempotent, like the Lua
            if charge_micro is None:
                self.released.add(reservation.id)
            else:
                self.settled_micro[reservation.id] = charge_micro
        await self._at(f"{how}:after")
        return charge_micro or 0

    async def record_cache_hit(self, tenant: TenantConfig) -> None:
        await self._at("cache_hit:before")
