"""How fast the proxy answers a request from its response cache.

    HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/cache_hit.py

Starts the simulator and ``thinkroute serve`` as in ``proxy_overhead.py`` (with its Redis:
``REDIS_URL`` if set, else the embedded server), asks a few questions once with
``temperature: 0`` so their answers are cached, then asks them again and again at
concurrency 1 over one keep-alive connection. Every measured response must say
``x-thinkroute-cache: hit``. ``auto`` routes (the score comes from the in-process LRU);
``pinned`` names a model. ``healthz`` is the HTTP floor on the same server.

Prints one JSON object on one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from proxy_overhead import KEY, REQUEST_TIMEOUT_S, percentile, servers, versions

QUESTIONS = (
    "What is the capital of Australia?",
    "Prove that the square root of two is irrational.",
    "Write a haiku about autumn leaves.",
    "Explain how a hash map handles collisions.",
)


def ask(model: str, i: int) -> bytes:
    question = QUESTIONS[i % len(QUESTIONS)]
    body = {"model": model, "temperature": 0, "messages": [{"role": "user", "content": question}]}
    return json.dumps(body).encode()


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400, help="measured hits per target")
    args = parser.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("THINKROUTE_API_KEY", None)
    began = time.monotonic()
    times: dict[str, list[float]] = {"auto": [], "pinned": [], "healthz": []}
    with servers(env) as (_, proxy):
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
            url = f"{proxy}/v1/chat/completions"
            for model in ("auto", "fast"):  # fill the cache
                for i in range(len(QUESTIONS)):
                    client.post(url, content=ask(model, i)).raise_for_status()
            for i in range(args.n + 20):
                for name, model in (("auto", "auto"), ("pinned", "fast"), ("healthz", None)):
                    started = time.perf_counter()
                    if model is None:
                        response = client.get(f"{proxy}/healthz")
                    else:
                        response = client.post(url, content=ask(model, i))
                        if response.headers.get("x-thinkroute-cache") != "hit":
                            raise RuntimeError(f"{name}: expected a hit, got {response.headers}")
                    elapsed = (time.perf_counter() - started) * 1000
                    if i >= 20:
                        times[name].append(elapsed)
    result = {
        "hit_p50_ms": round(percentile(times["auto"], 50), 2),
        "hit_p99_ms": round(percentile(times["auto"], 99), 2),
        "hit_pinned_p50_ms": round(percentile(times["pinned"], 50), 2),
        "hit_pinned_p99_ms": round(percentile(times["pinned"], 99), 2),
        "healthz_p50_ms": round(percentile(times["healthz"], 50), 2),
        "n": len(times["auto"]),
        "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "wall_s": round(time.monotonic() - began, 1),
        "versions": versions(),
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
