"""How long big ``/v1/route`` calls keep ``/healthz`` waiting (issue 23): JSON on stdout.

    python bench/route_stall.py [--calls 4] [--body-mb 3.9]

Starts the proxy in a subprocess with the shipped classifier loaded, sends
``--calls`` concurrent ``POST /v1/route`` of about ``--body-mb`` MB each (one
long user message), and polls ``GET /healthz`` meanwhile: the worst and the
median health-check latency say how long the event loop was kept from
answering. ``--server-path`` runs another checkout's server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0123456789"

SERVER = """
import sys, uvicorn
from router.config import build_config
from router.http.server import create_app
from router.proxy import Router
params = {"model": "openai/m", "api_base": "http://127.0.0.1:9/v1", "api_key": "k"}
config = build_config({
    "model_list": [{"model_name": n, "litellm_params": params} for n in ("fast", "deep")],
    "tiers": {"fast": {"model": "fast"}, "reasoning": {"model": "deep"}},
    "tenants": [{"name": "bench", "api_keys": [%(key)r]}],
})
uvicorn.run(create_app(Router(config=config)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--body-mb", type=float, default=3.9)
    parser.add_argument("--server-path", default=str(ROOT), help="checkout the server runs from")
    args = parser.parse_args()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": args.server_path, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER % {"key": KEY}, str(port)], env=env, cwd=args.server_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        words = "why does the proof of the lemma need the compactness argument here "
        text = (words * int(args.body_mb * 1e6 / len(words)))[: int(args.body_mb * 1e6)]
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
        quiet = _health_latencies(url, 1.0)
        statuses: list[int] = []
        calls = [
            threading.Thread(target=_route, args=(url, body.encode(), statuses))
            for _ in range(args.calls)
        ]
        started = time.perf_counter()
        for call in calls:
            call.start()
        busy = _health_latencies(url, 0.0, while_alive=calls)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        json.dumps(
            {
                "calls": args.calls,
                "body_mb": round(len(body) / 1e6, 2),
                "statuses": sorted(statuses),
                "calls_done_s": round(elapsed, 2),
                "healthz_idle_p50_ms": round(statistics.median(quiet) * 1000, 1),
                "healthz_busy_p50_ms": round(statistics.median(busy) * 1000, 1),
                "healthz_busy_max_ms": round(max(busy) * 1000, 1),
                "healthz_checks_during_calls": len(busy),
                "server_path": args.server_path,
            },
            indent=2,
        )
    )


def _route(url: str, body: bytes, statuses: list[int]) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    response = httpx.post(f"{url}/v1/route", content=body, headers=headers, timeout=300)
    statuses.append(response.status_code)


def _health_latencies(
    url: str, duration_s: float, *, while_alive: list[threading.Thread] | None = None
) -> list[float]:
    latencies = []
    deadline = time.monotonic() + duration_s
    with httpx.Client(timeout=60) as client:
        while (
            any(t.is_alive() for t in while_alive) if while_alive else time.monotonic() < deadline
        ):
            started = time.perf_counter()
            client.get(f"{url}/healthz")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
    return latencies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


if __name__ == "__main__":
    main()
