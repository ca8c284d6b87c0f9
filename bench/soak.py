"""A bounded mixed load on the proxy for a few minutes: does it stay up, correct and flat?

    HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/soak.py --seconds 180

Starts the simulator and ``thinkroute serve`` (its embedded Redis unless ``REDIS_URL`` is
set) with two tenants: ``open`` without limits and ``tight`` with a small daily budget, so
some of its requests are refused. The reasoning model fails 5% of its calls, so some
requests are answered by the fast tier's fallback. ``--concurrency`` clients send a mix:
a third streamed, a third repeated questions at temperature 0 (cache hits after the first
time), the rest fresh prompts routed with ``model: auto``.

Prints one JSON object: requests served, statuses, errors by class, p50/p99 latency, cache
hits, fallbacks, and the proxy's resident memory after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from proxy_overhead import free_port, percentile, start, stop, versions, wait_ready

KEYS = {"open": "sk-soak-open-0123456789", "tight": "sk-soak-tight-0123456789"}
REPEATED = [f"What is {n} times {n + 7}?" for n in range(20)]
TOPICS = ("Prove that there are infinitely many primes", "Write a limerick about a heron",
          "Explain what a B-tree is", "Plan a three-day trip to Lisbon")  # fmt: skip


def write_config(directory: str, upstream: str) -> str:
    def model(name: str, upstream_model: str) -> str:
        prices = "{input_cost_per_token: 0.000001, output_cost_per_token: 0.000004}"
        params = f"{{model: openai/{upstream_model}, api_base: {upstream}/v1, api_key: sk-sim}}"
        return f"  - model_name: {name}\n    litellm_params: {params}\n    model_info: {prices}\n"

    text = (
        "model_list:\n" + model("fast", "fast-model") + model("reasoning", "reasoning-model")
        + "tiers:\n  fast: {model: fast}\n  reasoning: {model: reasoning, reasoning_effort: low}\n"
        f"tenants:\n  - name: open\n    api_keys: ['{KEYS['open']}']\n"
        f"  - name: tight\n    api_keys: ['{KEYS['tight']}']\n    budget: {{daily_usd: 0.02}}\n"
        "dispatch: {num_retries: 0, timeout_s: 30}\n"
    )  # fmt: skip
    path = Path(directory, "soak.yaml")
    path.write_text(text, encoding="utf-8")
    return str(path)


def request_for(i: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    tenant = "tight" if rng.random() < 0.2 else "open"
    kind = rng.random()
    if kind < 1 / 3:
        text = rng.choice(REPEATED)
        body = {"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": text}]}
    else:
        text = f"{rng.choice(TOPICS)} (soak {i}, {rng.random():.6f})"
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        if kind < 2 / 3:
            body["stream"] = True
    return tenant, body


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    statuses: Counter[str] = Counter()
    cache: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    fallbacks = 0
    issued = 0
    stop_at = time.monotonic() + seconds
    rng = random.Random(7)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            nonlocal issued, fallbacks
            while time.monotonic() < stop_at:
                issued += 1
                tenant, body = request_for(issued, rng)
                headers = {"authorization": f"Bearer {KEYS[tenant]}"}
                started = time.perf_counter()
                try:
                    async with session.post(url, json=body, headers=headers) as response:
                        text = await response.text()
                        statuses[str(response.status)] += 1
                        cache[response.headers.get("x-thinkroute-cache", "-")] += 1
                        fallbacks += "x-thinkroute-fallback" in response.headers
                        if response.status >= 400:
                            errors[json.loads(text)["error"]["code"] or "none"] += 1
                        elif body.get("stream") and '"error"' in text:
                            errors["stream_error_event"] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "errors": dict(errors),
        "cache": dict(cache),
        "fallbacks": fallbacks,
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("THINKROUTE_API_KEY", None)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="thinkroute-soak-") as tmp:
        up_port, proxy_port = free_port(), free_port()
        up, proxy = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
        upstream = start(["sim-upstream", "--port", str(up_port), "--error-rate",
                          "reasoning-model=0.05"], Path(tmp, "up.log"), env)  # fmt: skip
        server = None
        try:
            wait_ready(f"{up}/v1/models", upstream, Path(tmp, "up.log"))
            command = ["serve", "--config", write_config(tmp, up), "--port", str(proxy_port),
                       "--log-level", "warning", "--data-dir", str(Path(tmp, "redis"))]  # fmt: skip
            server = start(command, Path(tmp, "proxy.log"), env)
            wait_ready(f"{proxy}/readyz", server, Path(tmp, "proxy.log"))
            url = f"{proxy}/v1/chat/completions"
            asyncio.run(load(url, args.concurrency, min(10.0, args.seconds / 10)))  # warm up
            rss_start = rss_mb(server.pid)
            result = asyncio.run(load(url, args.concurrency, args.seconds))
            rss_end = rss_mb(server.pid)
            with contextlib.suppress(httpx.HTTPError):
                alive = httpx.get(f"{proxy}/healthz", timeout=5).status_code == 200
        finally:
            if server is not None:
                stop(server)
            stop(upstream)
    result.update({
        "rps": round(result["requests"] / args.seconds, 1),
        "healthy_after": alive,
        "rss_mb_after_warmup": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "wall_s": round(time.monotonic() - began, 1),
        "versions": versions(),
    })  # fmt: skip
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
