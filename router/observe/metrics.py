"""Prometheus metrics of the proxy, and the record of one request they are counted from.

The server fills in a :class:`RequestOutcome` when a chat request ends (a stream
when its last chunk is sent, since its cost is known only then) and hands it to
:meth:`Metrics.observe`, to the request log and to the decision log.

Each app owns a :class:`Metrics` with its own ``CollectorRegistry``, so several
apps in one process (tests, an embedder) never share or clash over counters.
Label values come from configuration only (tenant names, model names, tiers,
modes, reasons, status codes), never from what a client sends, so the number of
series stays bounded. A label that is not known for a request (the tenant of a
request whose key was refused, the model of a request refused before routing)
is empty.

    thinkroute_requests_total{tenant,tier,model,status}    chat requests by outcome
    thinkroute_route_decisions_total{tenant,tier,mode,reason}
    thinkroute_spend_usd_total{tenant,tier}                what tenants were charged
    thinkroute_savings_usd_total{tenant}                   reasoning-tier cost minus charge
    thinkroute_routing_seconds                             the decision's own time
    thinkroute_upstream_seconds{model}                     the model call (first chunk, streams)
    thinkroute_cache_total{tenant,result}                  hit | miss | bypass
    thinkroute_fallbacks_total{model}                      the model that failed
    thinkroute_budget_refusals_total{tenant,reason}        budget_exceeded | rate_limited | ...

Live quality from shadow comparisons (docs/quality.md) is read from Redis when
``/metrics`` is scraped, so every replica reports the fleet's figures for today (UTC);
take ``max`` across replicas, not ``sum``:

    thinkroute_shadow_pairs{tenant,outcome}   compared | comparable | agreed | ungraded |
                                              failed | refused | dropped, today
    thinkroute_shadow_spend_usd{tenant}       what shadow and judge calls cost today
    thinkroute_quality_kept{tenant,bound}     estimate | low | high (95% interval)
    thinkroute_shadow_agreement{tenant}       share of comparable pairs that agreed
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from router.policy import RouteDecision

__all__ = ["CLIENT_CLOSED", "REFUSAL_CODES", "Metrics", "RequestOutcome", "served_tier"]

# nginx's status for a client that hung up before the answer was complete.
CLIENT_CLOSED = 499
# Error codes of the proxy refusing a tenant on its own policy (not an upstream's 429).
REFUSAL_CODES = frozenset({"budget_exceeded", "rate_limited", "store_unavailable"})
ROUTING_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPSTREAM_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def served_tier(decision: RouteDecision, is_fallback: bool) -> str:
    """The tier that answered: the other one when the chosen tier's model failed."""
    if is_fallback and decision.tier in ("fast", "reasoning"):
        return "fast" if decision.tier == "reasoning" else "reasoning"
    return decision.tier


@dataclass(slots=True)
class RequestOutcome:
    """What one chat request did, for metrics, the request log and the decision log.

    ``decision`` is None for a request refused before it was routed (a bad key,
    a bad body, a budget refusal). Times are seconds; ``started_at`` is epoch time.
    """

    request_id: str
    started_at: float
    tenant: str | None = None
    status: int = 200
    error_code: str | None = None
    decision: RouteDecision | None = None
    served_model: str | None = None
    is_fallback: bool = False
    is_stream: bool = False
    cache: str | None = None  # hit | miss | bypass
    # agreed | kept | escalated | no_answer | fast_failed | skipped:<why> (None: no cascade)
    cascade: str | None = None
    session: str | None = None  # the session's hashed name (router.state.sessions)
    session_switched: bool = False  # this turn moved the session to another model
    session_cache_cost_usd: float = 0.0  # the prompt cache that switch threw away, estimated
    cost_usd: float = 0.0
    baseline_usd: float = 0.0  # the same usage at the reasoning tier's prices
    reserved_usd: float = 0.0  # what the budget held before settling (0: nothing)
    routing_s: float = 0.0
    upstream_s: float = 0.0
    total_s: float = 0.0

    @property
    def served_tier(self) -> str | None:
        return None if self.decision is None else served_tier(self.decision, self.is_fallback)

    @property
    def savings_usd(self) -> float:
        """What always-reasoning would have cost more; never negative."""
        return max(self.baseline_usd - self.cost_usd, 0.0)


class _Registry(CollectorRegistry):
    """A registry without the ``*_created`` series the client library adds to counters and
    histograms: Prometheus would keep each as a series of its own, doubling the count, and
    ``rate()`` and ``increase()`` do not need them."""

    def collect(self) -> Iterator[Metric]:
        for family in super().collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class Metrics:
    """The proxy's Prometheus metrics in a registry of their own.

    ``metrics.observe(outcome)`` counts a finished request; ``metrics.render()``
    is the body and content type of ``GET /metrics``.
    """

    def __init__(self) -> None:
        self.registry: CollectorRegistry = _Registry()
        registry = self.registry
        self.requests = Counter(
            "thinkroute_requests", "Chat completion requests, by served tier and model and "
            "HTTP status (a stream that failed midway counts with its error's status)",
            ["tenant", "tier", "model", "status"], registry=registry,
        )  # fmt: skip
        self.decisions = Counter(
            "thinkroute_route_decisions", "Routing decisions (requests to auto models)",
            ["tenant", "tier", "mode", "reason"], registry=registry,
        )  # fmt: skip
        self.spend = Counter(
            "thinkroute_spend_usd", "USD charged to tenants, by served tier",
            ["tenant", "tier"], registry=registry,
        )  # fmt: skip
        self.savings = Counter(
            "thinkroute_savings_usd", "USD saved against sending the same usage to the "
            "reasoning tier", ["tenant"], registry=registry,
        )  # fmt: skip
        self.routing = Histogram(
            "thinkroute_routing_seconds", "Time to decide a route: scoring and policy",
            buckets=ROUTING_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.upstream = Histogram(
            "thinkroute_upstream_seconds", "Time of the model call (to the first chunk for a "
            "stream), by the model that answered",
            ["model"], buckets=UPSTREAM_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.cache = Counter(
            "thinkroute_cache", "Response cache lookups: hit, miss, or bypass (not cacheable "
            "or skipped on request)", ["tenant", "result"], registry=registry,
        )  # fmt: skip
        self.fallbacks = Counter(
            "thinkroute_fallbacks", "Requests answered by the other tier because this model "
            "failed", ["model"], registry=registry,
        )  # fmt: skip
        # Registered on first use, so a proxy without a cascade exposes no empty family.
        self.cascades: Counter | None = None
        self.refusals = Counter(
            "thinkroute_budget_refusals", "Requests refused by a tenant's budget, rate limit, "
            "or for want of Redis to check them", ["tenant", "reason"], registry=registry,
        )  # fmt: skip

        self._quality: dict[str, Gauge] | None = None  # made once a tenant is shadowed

    def _quality_gauges(self) -> dict[str, Gauge]:
        """The shadow series, registered on first use: a proxy that shadows nothing shows none."""
        if self._quality is None:
            registry = self.registry
            self._quality = {
                "pairs": Gauge(
                    "thinkroute_shadow_pairs", "Today's shadow comparisons by outcome "
                    "(fleet-wide)", ["tenant", "outcome"], registry=registry,
                ),
                "spend": Gauge(
                    "thinkroute_shadow_spend_usd", "Today's cost of shadow and judge calls",
                    ["tenant"], registry=registry,
                ),
                "kept": Gauge(
                    "thinkroute_quality_kept", "Served-answer score over always-reasoning's on "
                    "today's graded pairs, with its 95% interval", ["tenant", "bound"],
                    registry=registry,
                ),
                "agreement": Gauge(
                    "thinkroute_shadow_agreement", "Share of today's comparable pairs that "
                    "agreed", ["tenant"], registry=registry,
                ),
            }  # fmt: skip
        return self._quality

    def set_quality(self, tenant: str, figures: Mapping[str, Any]) -> None:
        """Show one tenant's live quality figures (``GET /v1/usage``'s ``quality``)."""
        gauges = self._quality_gauges()
        for outcome in ("compared", "comparable", "ungraded", "failed", "refused", "dropped"):
            gauges["pairs"].labels(tenant, outcome).set(figures.get(outcome) or 0)
        gauges["spend"].labels(tenant).set(figures.get("shadow_spend_usd") or 0.0)
        if figures.get("agreement") is not None:
            gauges["agreement"].labels(tenant).set(figures["agreement"])
        if figures.get("quality_kept") is not None:
            low, high = figures["quality_kept_95"]
            gauges["kept"].labels(tenant, "estimate").set(figures["quality_kept"])
            gauges["kept"].labels(tenant, "low").set(low)
            gauges["kept"].labels(tenant, "high").set(high)

    def observe(self, outcome: RequestOutcome) -> None:
        """Count one finished request."""
        tenant = outcome.tenant or ""
        decision = outcome.decision
        tier = outcome.served_tier or ""
        model = outcome.served_model or ""
        self.requests.labels(tenant, tier, model, str(outcome.status)).inc()
        if outcome.error_code in REFUSAL_CODES and outcome.tenant:
            self.refusals.labels(tenant, outcome.error_code).inc()
        if decision is None:
            return
        if decision.tier != "direct":
            self.decisions.labels(tenant, decision.tier, decision.mode, decision.reason).inc()
        self.routing.observe(outcome.routing_s)
        if outcome.cache:
            self.cache.labels(tenant, outcome.cache).inc()
        if outcome.cache != "hit" and model:
            self.upstream.labels(model).observe(outcome.upstream_s)
        if outcome.cascade is not None:
            self._cascade_counter().labels(tenant, outcome.cascade.split(":", 1)[0]).inc()
        if outcome.is_fallback:
            self.fallbacks.labels(decision.model or "").inc()
        self.spend.labels(tenant, tier).inc(outcome.cost_usd)
        self.savings.labels(tenant).inc(outcome.savings_usd)

    def _cascade_counter(self) -> Counter:
        if self.cascades is None:
            self.cascades = Counter(
                "thinkroute_cascade", "Routed requests where a cascade is configured, by what "
                "it did: agreed, kept, escalated, no_answer, fast_failed, or skipped",
                ["tenant", "outcome"], registry=self.registry,
            )  # fmt: skip
        return self.cascades

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
