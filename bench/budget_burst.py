"""Issue 20's scenario: how much of a tight budget a burst may spend before refusals.

    REDIS_URL=redis://127.0.0.1:6379/2 LITELLM_LOCAL_MODEL_COST_MAP=True \\
        .venv/bin/python bench/budget_burst.py [--answer-words 0] [--fixed]

A tenant with a daily budget of $0.002 sends 20 requests one by one, then 150 at once
while the simulated upstream takes 400 ms to answer each. Prices are gpt-4o-mini's
($0.15 / $0.60 per million tokens). Answers are the simulator's echo (about ten
tokens), or ``--answer-words`` words. ``--fixed`` turns learned estimates off (the
config's ``output_token_estimates`` only: the behaviour before issue 20).

Prints one JSON object: requests served and refused in the burst; the share of the
budget the burst spent (all its requests arrive at once, so this is what it spent
before and while refusals were given) and of what the warm-up left; the day's spend;
overspend past the budget; the real cost per request; the estimate in force.
Needs a Redis (``REDIS_URL``); the tenant's keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

BUDGET_USD = 0.002
PRICES = {"input_cost_per_token": 0.15e-6, "output_cost_per_token": 0.6e-6}


def config(upstream_url: str, tenant: str, *, learn: bool) -> Any:
    from router.config import build_config

    def model(name: str) -> dict[str, Any]:
        params = {"model": f"openai/{name}-model", "api_base": upstream_url, "api_key": "sk-x"}
        return {"model_name": name, "litellm_params": params, "model_info": PRICES}

    return build_config(
        {
            "model_list": [model("fast"), model("reasoning")],
            "tiers": {"fast": {"model": "fast"}, "reasoning": {"model": "reasoning"}},
            "tenants": [
                {
                    "name": tenant,
                    "api_keys": [f"sk-{tenant}"],
                    "budget": {"daily_usd": BUDGET_USD, "on_exhaustion": "block"},
                }
            ],
            "cache": {"enabled": False},
            "reservations": {"learn_output": learn},
            "dispatch": {"num_retries": 0, "timeout_s": 30},
        }
    )


async def burst(url: str, key: str, *, warm_up: int, burst_size: int) -> dict[str, Any]:
    """Warm up one by one, then send the burst at once; returns the responses' figures."""
    import httpx

    headers = {"authorization": f"Bearer {key}"}

    def body(i: int) -> dict[str, Any]:
        question = f"what's a nice name for a cat? ({i})"
        return {"model": "fast", "messages": [{"role": "user", "content": question}]}

    limits = httpx.Limits(max_connections=burst_size + 10)  # all of the burst at once
    client = httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits)
    async with client:
        for i in range(warm_up):
            (await client.post("/v1/chat/completions", json=body(i))).raise_for_status()
        before = (await client.get("/v1/usage")).json()
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body(1000 + i)) for i in range(burst_size))
        )
        after = (await client.get("/v1/usage")).json()
    return {"before": before, "after": after, "responses": responses}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    before, after = result["before"]["day"], result["after"]["day"]
    responses = result["responses"]
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    costs = [float(r.headers["x-thinkroute-cost-usd"]) for r in served]
    burst_spend = after["spend_usd"] - before["spend_usd"]
    estimates = result["after"].get("output_estimates", {}).get("tiers", {})
    return {
        "served": len(served),
        "refused": len(refused),
        "refused_in_flight": sum(r.headers.get("x-should-retry") == "true" for r in refused),
        "other_status": len(responses) - len(served) - len(refused),
        "burst_spend_share": round(burst_spend / BUDGET_USD, 4),
        # What the burst spent of what the warm-up left: the most it could spend is 1.
        "burst_spend_share_of_room": round(burst_spend / (BUDGET_USD - before["spend_usd"]), 4),
        "warm_up_spend_share": round(before["spend_usd"] / BUDGET_USD, 4),
        "day_spend_share": round(after["spend_usd"] / BUDGET_USD, 4),
        "overspend_usd": round(max(after["spend_usd"] - BUDGET_USD, 0.0), 6),
        "cost_per_request_usd": round(sum(costs) / len(costs), 6) if costs else None,
        "fast_estimate": estimates.get("fast"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--burst", type=int, default=150)
    parser.add_argument("--latency-ms", type=float, default=400.0)
    parser.add_argument("--answer-words", type=int, default=0, help="0: the simulator's echo")
    parser.add_argument("--fixed", action="store_true", help="no learned estimates")
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("set REDIS_URL to a Redis this bench may write to")

    import redis

    from router.http.server import create_app
    from router.proxy import Router
    from router.state.store import Store
    from router.upstream.dispatch import configure_litellm
    from router.upstream.simulator import BackgroundServer, SimulatedUpstream

    configure_litellm()
    tenant = f"bench-burst-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    with SimulatedUpstream() as upstream:
        answer = " ".join(["word"] * args.answer_words) if args.answer_words else None
        upstream.control("fast-model", latency_s=args.latency_ms / 1000, answer=answer)
        store = Store.from_url(redis_url, timeout_s=5.0)
        router = Router(
            config=config(upstream.base_url, tenant, learn=not args.fixed),
            store=store,
            classifier_loader=lambda: None,  # type: ignore[arg-type,return-value]  # pinned model: no scores
        )
        try:
            with BackgroundServer(create_app(router, load_classifier=False)) as server:
                result = asyncio.run(
                    burst(server.url, f"sk-{tenant}", warm_up=args.warm_up, burst_size=args.burst)
                )
        finally:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(f"thinkroute:{{{tenant}}}:*"))
            if keys:
                client.delete(*keys)
            client.close()
    out = {
        "scenario": {
            "budget_usd": BUDGET_USD, "warm_up": args.warm_up, "burst": args.burst,
            "latency_ms": args.latency_ms, "answer_words": args.answer_words or "echo",
            "learned": not args.fixed,
        },
        **figures(result),
        "wall_s": round(time.monotonic() - began, 1),
    }  # fmt: skip
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
