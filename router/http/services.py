"""What every route of one app shares, built once by ``create_app`` and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from router.config import ServerConfig, TenantConfig
from router.errors import StoreUnavailableError
from router.observe.metrics import Metrics
from router.proxy import Router
from router.state.budgets import Budgets
from router.state.decision_log import DecisionLog
from router.state.store import Store
from router.state.tenants import TenantDirectory

__all__ = ["AppServices", "Services", "services"]


@dataclass(frozen=True)
class Services:
    """The router, the tenant directory, the decision log and metrics, and the operator keys."""

    router: Router
    directory: TenantDirectory
    decisions: DecisionLog | None
    metrics: Metrics | None
    admin_digest: str | None
    metrics_digest: str | None

    @property
    def settings(self) -> ServerConfig:
        return self.router.config.server

    def budgets(self) -> Budgets:
        """The budget store, or a 503 when usage cannot be kept (no Redis configured)."""
        if self.router.budgets is None:
            raise StoreUnavailableError("usage is kept in Redis, and none is configured")
        return self.router.budgets

    def store(self) -> Store:
        """The Redis store, or a 503 where none is configured (tenant heads live there)."""
        if self.router.store is None:
            raise StoreUnavailableError("tenant heads are kept in Redis, and none is configured")
        return self.router.store

    async def usage(self, tenant: TenantConfig) -> dict[str, Any]:
        """A tenant's figures, with the output estimate each tier's reservations use now."""
        figures = await self.budgets().usage(tenant)
        cold_start = {str(tier): n for tier, n in self.router.config.output_token_estimates.items()}
        estimates = self.router.estimates
        if estimates is None:
            tiers = {tier: {"output_tokens": n, "source": "cold_start", "samples": 0}
                     for tier, n in cold_start.items()}  # fmt: skip
            figures["output_estimates"] = {"tiers": tiers}
        else:
            figures["output_estimates"] = await estimates.in_force(tenant.name, cold_start)
        if self.router.shadows is not None:  # live quality from shadow comparisons
            figures["quality"] = await self.router.shadows.quality(tenant)
        if self.router.sessions is not None:  # model switches and the prompt cache they cost
            figures["sessions"] = (await self.router.sessions.today(tenant.name)).as_dict()
        return figures


def services(request: Request) -> Services:
    """The app's :class:`Services` (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found


# A route's parameter ``found: AppServices`` receives the app's Services.
AppServices = Annotated[Services, Depends(services)]
