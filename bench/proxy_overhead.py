"""How much latency thinkroute adds per request, and how many requests a second it serves.

    HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/proxy_overhead.py

Starts ``thinkroute sim-upstream`` (zero latency) and ``thinkroute serve`` (a temporary
YAML config: both tiers on the simulator, classifier cache off, one tenant) as separate
processes on free loopback ports, so the load generator shares no GIL with the proxy.
Every request carries a prompt never sent before, so no embedding cache can help.

Concurrency 1, with one keep-alive ``httpx.Client`` for every target, requests
interleaved round-robin so all targets see the same machine load:

* ``direct``: straight to the simulator, the baseline;
* ``auto``:   through the proxy with ``model: auto`` (classifier + LiteLLM + FastAPI);
* ``pinned``: through the proxy naming a configured model (LiteLLM + FastAPI, no classifier);
* ``route``:  ``POST /v1/route`` on the proxy (FastAPI + classifier, no upstream call);
* ``healthz``: ``GET /healthz`` on the proxy (the FastAPI + uvicorn floor).

``added_*`` is proxy minus direct, per percentile; ``routing_p50_ms`` is the whole
``/v1/route`` round trip (HTTP, auth, parsing, embedding, policy).

``--shadow`` adds ``auto_shadow``: the same requests from a second tenant whose every
routed answer is shadowed (``shadow: {rate: 1.0}``: the other tier asked in the
background, the pair graded and recorded), interleaved with the rest;
``shadow.added_p50_ms`` is its round trip minus ``auto``'s (issue 17's target: within
0.5 ms), ``shadow.compared`` the pairs its ``/v1/usage`` counted by the end. The
background work of one shadowed request overlaps the next requests of every target,
so it also shows in the others, as it would for a real fleet's other requests.

``--cascade`` configures a cascade (``cascade: {verifier: self, band: 0}``: it is
considered for every routed request and runs for none) and adds ``auto_cascade``: the
same requests from a second tenant that has it on (the ``bench`` tenant has
``cascade: false``); ``cascade.added_p50_ms`` is its round trip minus ``auto``'s: what
the cascade costs a request it does not run on (issue 16's target: nothing
measurable), and ``cascade.header`` what such a request's ``x-thinkroute-cascade`` said.

``--sessions`` adds two targets sending the same follow-up turns (user, assistant,
user): ``auto_session`` names one session with ``x-session-id`` (its model is read from
Redis before the decision and written after the answer), ``auto_unsessioned`` goes to a
tenant with ``sessions: false``; ``sessions.added_p50_ms`` is the difference: what
keeping a session costs a turn (issue 21).

``--api responses`` adds ``auto_responses`` and ``pinned_responses``: the same requests
sent to ``POST /v1/responses`` (OpenAI's Responses API, translated to chat completions),
interleaved with the rest; ``responses_vs_chat_*`` is the Responses round trip minus the
chat-completions one, per percentile: what the translation adds.

Then, at ``--concurrency`` (default 32) with an aiohttp client, each of direct, auto and
pinned is loaded for ``--seconds`` (or ``--n-c32`` requests, whichever ends first) to get
requests per second.

Prints one JSON object on one line. Medians of several runs are the honest figure on a
shared machine; ``loadavg_1m_*`` says how busy the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

KEY = "sk-bench-0123456789"
SHADOW_KEY = "sk-bench-shadowed-0123456789"  # a tenant with shadow rate 1.0 (--shadow)
CASCADE_KEY = "sk-bench-cascading-0123456789"  # a tenant with the cascade on (--cascade)
UNSESSIONED_KEY = "sk-bench-unsessioned-0123456789"  # a tenant with sessions: false
STARTUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
ROOT = Path(__file__).resolve().parent.parent

# Varied prompts; a counter and a random tag make each one unique.
TOPICS = (
    "Summarise the plot of a short story about a lighthouse keeper",
    "Prove that the square root of two is irrational",
    "Write a haiku about autumn leaves",
    "Explain how a hash map handles collisions",
    "What is the capital of Australia",
    "Derive the closed form of the sum of the first n squares",
    "Translate 'good morning' into French and Spanish",
    "Design a rate limiter for a distributed API gateway",
)


def prompt(i: int) -> str:
    return f"{TOPICS[i % len(TOPICS)]} (request {i}, tag {uuid.uuid4().hex[:12]})."


def body(model: str, i: int) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt(i)}]}


def follow_up(model: str, i: int) -> dict[str, Any]:
    """A conversation's third message: what a session's later turns look like."""
    return {"model": model, "messages": [
        {"role": "user", "content": prompt(0)}, {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": prompt(i)}]}  # fmt: skip


def responses_body(model: str, i: int) -> dict[str, Any]:
    return {"model": model, "input": prompt(i)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    directory: str, upstream_base: str, *, shadow: bool = False, cascade: bool = False
) -> str:
    def model(name: str, upstream_model: str, cost_in: float, cost_out: float) -> str:
        return (
            f"  - model_name: {name}\n"
            f"    litellm_params: {{model: openai/{upstream_model}, api_base: {upstream_base},"
            f" api_key: sk-sim-upstream}}\n"
            f"    model_info: {{input_cost_per_token: {cost_in}, output_cost_per_token:"
            f" {cost_out}}}\n"
        )

    text = (
        "model_list:\n"
        + model("fast", "fast-model", 1e-6, 2e-6)
        + model("reasoning", "reasoning-model", 5e-6, 2e-5)
        + "tiers:\n"
        "  fast: {model: fast}\n"
        "  reasoning: {model: reasoning, reasoning_effort: medium}\n"
        "tenants:\n"
        f"  - name: bench\n    api_keys: ['{KEY}']\n"
        + ("    cascade: false\n" if cascade else "")
        + f"  - name: unsessioned\n    api_keys: ['{UNSESSIONED_KEY}']\n    sessions: false\n"
        + (f"  - name: cascading\n    api_keys: ['{CASCADE_KEY}']\n" if cascade else "")
        + (
            # A fresh name each run: a shared Redis keeps a tenant's figures for the day.
            f"  - name: shadowed-{uuid.uuid4().hex[:8]}\n    api_keys: ['{SHADOW_KEY}']\n"
            "    shadow: {rate: 1.0, daily_usd: 1000}\n"
            if shadow
            else ""
        )
        + "classifier: {cache_size: 0}\n"
        "dispatch: {num_retries: 0, timeout_s: 30}\n"
        + ("cascade: {verifier: self, band: 0.0}\n" if cascade else "")
    )
    path = os.path.join(directory, "thinkroute-bench.yaml")
    Path(path).write_text(text, encoding="utf-8")
    return path


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``thinkroute`` command as a process of its own."""
    return start_command([sys.executable, "-m", "router.cli", *args], log, env)


def start_command(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches only the benchmark
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, headers: dict[str, str] | None = None
) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {STARTUP_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def servers(
    env: dict[str, str], *, workers: int = 1, shadow: bool = False, cascade: bool = False
) -> Iterator[tuple[str, str]]:
    """The simulator and the proxy, ready; both stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="thinkroute-bench-") as tmp:
        up_port, proxy_port = free_port(), free_port()
        up_url, proxy_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
        up_log, proxy_log = Path(tmp, "upstream.log"), Path(tmp, "proxy.log")
        config = write_config(tmp, f"{up_url}/v1", shadow=shadow, cascade=cascade)
        upstream = start(["sim-upstream", "--port", str(up_port)], up_log, env)
        proxy = None
        try:
            wait_ready(f"{up_url}/v1/models", upstream, up_log)
            proxy = start(
                [
                    "serve",
                    "--config",
                    config,
                    "--port",
                    str(proxy_port),
                    "--log-level",
                    "warning",
                    "--workers",
                    str(workers),
                ],  # fmt: skip
                proxy_log,
                env,
            )
            wait_ready(f"{proxy_url}/readyz", proxy, proxy_log)
            yield up_url, proxy_url
        finally:
            if proxy is not None:
                stop(proxy)
            stop(upstream)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def sequential(
    targets: dict[str, tuple[str, Callable[[int], dict[str, Any]] | None]],
    n: int,
    warmup: int,
    deadline: float,
    keys: dict[str, str] | None = None,
    extra_headers: dict[str, dict[str, str]] | None = None,
) -> dict[str, list[float]]:
    """Round trips in ms per target at concurrency 1, targets interleaved request by request.

    A target without a body maker is a GET.
    """
    import httpx

    times: dict[str, list[float]] = {name: [] for name in targets}
    headers = {"authorization": f"Bearer {KEY}"}
    json_type = {"content-type": "application/json"}
    with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        for i in range(warmup + n):
            if i >= warmup and time.monotonic() > deadline:
                break
            for name, (url, make_body) in targets.items():
                payload = None if make_body is None else json.dumps(make_body(i)).encode()
                sent = json_type
                if keys and name in keys:
                    sent = {**json_type, "authorization": f"Bearer {keys[name]}"}
                if extra_headers and name in extra_headers:
                    sent = {**sent, **extra_headers[name]}
                started = time.perf_counter()
                if payload is None:
                    response = client.get(url)
                else:
                    response = client.post(url, content=payload, headers=sent)
                response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                if i >= warmup:
                    times[name].append(elapsed)
    return times


async def _load(
    url: str,
    model: str,
    concurrency: int,
    seconds: float,
    limit: int,
    start_at: int,
    make_body: Callable[[str, int], dict[str, Any]] = body,
) -> dict[str, Any]:
    import aiohttp

    done = errors = 0
    issued = start_at
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:

        async def worker() -> None:
            nonlocal done, errors, issued
            while time.monotonic() < stop_at and done + errors < limit:
                issued += 1
                payload = json.dumps(make_body(model, issued))
                started = time.perf_counter()
                try:
                    async with s.post(url, data=payload) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    done += 1
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": done / elapsed,
        "errors": errors,
        "requests": done,
        "p50_ms": percentile(latencies, 50) if latencies else None,
    }


def concurrent(
    url: str,
    model: str,
    concurrency: int,
    seconds: float,
    limit: int,
    make_body: Callable[[str, int], dict[str, Any]] = body,
) -> dict:
    # A short warm-up opens the pool's connections before the clock starts.
    asyncio.run(_load(url, model, concurrency, 1.0, 4 * concurrency, 10_000_000, make_body))
    return asyncio.run(_load(url, model, concurrency, seconds, limit, 20_000_000, make_body))


def shadow_figures(proxy: str) -> dict[str, Any]:
    """The shadowed tenant's quality figures once its comparisons have settled."""
    import httpx

    headers = {"authorization": f"Bearer {SHADOW_KEY}"}
    figures: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        usage = httpx.get(f"{proxy}/v1/usage", headers=headers, timeout=REQUEST_TIMEOUT_S)
        figures = usage.json().get("quality") or {}
        before = figures.get("compared")
        time.sleep(0.5)
        usage = httpx.get(f"{proxy}/v1/usage", headers=headers, timeout=REQUEST_TIMEOUT_S)
        figures = usage.json().get("quality") or {}
        if figures.get("compared") == before:
            break
    names = ("compared", "ungraded", "failed", "refused", "dropped", "shadow_spend_usd")
    return {name: figures.get(name) for name in names}


def cascade_said(proxy: str) -> str | None:
    """What x-thinkroute-cascade says for one of the cascading tenant's requests."""
    import httpx

    headers = {"authorization": f"Bearer {CASCADE_KEY}"}
    response = httpx.post(
        f"{proxy}/v1/chat/completions", json=body("auto", 0), headers=headers, timeout=30
    )
    return response.headers.get("x-thinkroute-cascade")


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for name in ("litellm", "fastapi", "starlette", "uvicorn", "httpx", "aiohttp", "onnxruntime"):
        with contextlib.suppress(Exception):
            found[name] = version(name)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=120, help="measured requests per target at c=1")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per target")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per target at c=N")
    parser.add_argument("--n-c32", type=int, default=5000, help="request cap per target at c=N")
    parser.add_argument(
        "--budget", type=float, default=20.0, help="seconds at most for the c=1 phase"
    )
    parser.add_argument("--workers", type=int, default=1, help="thinkroute serve --workers")
    parser.add_argument(
        "--api",
        choices=("chat", "responses"),
        default="chat",
        help="responses: also measure POST /v1/responses beside chat completions",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="also measure a tenant whose every routed request is shadowed (shadow rate 1.0)",
    )
    parser.add_argument(
        "--sessions",
        action="store_true",
        help="also measure follow-up turns of a named session against a tenant without sessions",
    )
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="also measure a tenant with a cascade configured that runs for none of its requests",
    )
    args = parser.parse_args(argv)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("THINKROUTE_API_KEY", None)  # the config file names the tenant
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    with servers(env, workers=args.workers, shadow=args.shadow, cascade=args.cascade) as (
        up,
        proxy,
    ):
        startup_s = time.monotonic() - began
        targets = {
            "direct": (f"{up}/v1/chat/completions", lambda i: body("fast-model", i)),
            "auto": (f"{proxy}/v1/chat/completions", lambda i: body("auto", i)),
            "pinned": (f"{proxy}/v1/chat/completions", lambda i: body("fast", i)),
            "route": (f"{proxy}/v1/route", lambda i: body("auto", i)),
            "healthz": (f"{proxy}/healthz", None),
        }
        if args.api == "responses":
            targets["auto_responses"] = (
                f"{proxy}/v1/responses", lambda i: responses_body("auto", i)
            )  # fmt: skip
            targets["pinned_responses"] = (
                f"{proxy}/v1/responses", lambda i: responses_body("fast", i)
            )  # fmt: skip
        keys = {}
        if args.shadow:
            targets["auto_shadow"] = (f"{proxy}/v1/chat/completions", lambda i: body("auto", i))
            keys["auto_shadow"] = SHADOW_KEY
        if args.cascade:
            targets["auto_cascade"] = (f"{proxy}/v1/chat/completions", lambda i: body("auto", i))
            keys["auto_cascade"] = CASCADE_KEY
        extra = {}
        if args.sessions:
            targets["auto_session"] = (
                f"{proxy}/v1/chat/completions",
                lambda i: follow_up("auto", i),
            )
            extra["auto_session"] = {"x-session-id": f"bench-{uuid.uuid4().hex[:8]}"}
            targets["auto_unsessioned"] = (
                f"{proxy}/v1/chat/completions", lambda i: follow_up("auto", i)
            )  # fmt: skip
            keys["auto_unsessioned"] = UNSESSIONED_KEY
        c1 = sequential(targets, args.n, args.warmup, time.monotonic() + args.budget, keys, extra)
        cascade_header = cascade_said(proxy) if args.cascade else None
        shadowed = shadow_figures(proxy) if args.shadow else None
        load_mid = os.getloadavg()[0]
        c = args.concurrency
        runs = [
            ("direct", f"{up}/v1/chat/completions", "fast-model", body),
            ("auto", f"{proxy}/v1/chat/completions", "auto", body),
            ("pinned", f"{proxy}/v1/chat/completions", "fast", body),
        ]
        if args.api == "responses":
            runs.append(("auto_responses", f"{proxy}/v1/responses", "auto", responses_body))
        loads = {
            name: concurrent(url, model, c, args.seconds, args.n_c32, make_body)
            for name, url, model, make_body in runs
        }
    p = {name: (percentile(t, 50), percentile(t, 99)) for name, t in c1.items()}
    result = {
        "added_p50_ms": round(p["auto"][0] - p["direct"][0], 2),
        "added_p99_ms": round(p["auto"][1] - p["direct"][1], 2),
        f"rps_c{c}": round(loads["auto"]["rps"], 1),
        "routing_p50_ms": round(p["route"][0], 2),
        "n": len(c1["auto"]),
        # Breakdown: without the classifier (a named model), and the bare baselines.
        "added_pinned_p50_ms": round(p["pinned"][0] - p["direct"][0], 2),
        "added_pinned_p99_ms": round(p["pinned"][1] - p["direct"][1], 2),
        # FastAPI + uvicorn floor: a GET that does nothing.
        "healthz_p50_ms": round(p["healthz"][0], 2),
        "direct_p50_ms": round(p["direct"][0], 2),
        "direct_p99_ms": round(p["direct"][1], 2),
        "proxy_p50_ms": round(p["auto"][0], 2),
        f"rps_c{c}_pinned": round(loads["pinned"]["rps"], 1),
        f"rps_c{c}_direct": round(loads["direct"]["rps"], 1),
        f"p50_ms_c{c}": loads["auto"]["p50_ms"] and round(loads["auto"]["p50_ms"], 1),
        f"errors_c{c}": sum(v["errors"] for v in loads.values()),
        f"requests_c{c}": loads["auto"]["requests"],
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_mid": round(load_mid, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "startup_s": round(startup_s, 1),
        "wall_s": round(time.monotonic() - began, 1),
        "versions": versions(),
    }
    if shadowed is not None:
        result["shadow"] = {
            "added_p50_ms": round(p["auto_shadow"][0] - p["auto"][0], 2),
            "added_p99_ms": round(p["auto_shadow"][1] - p["auto"][1], 2),
            "p50_ms": round(p["auto_shadow"][0], 2),
            "n": len(c1["auto_shadow"]),
            **shadowed,
        }
    if cascade_header is not None:
        result["cascade"] = {
            "added_p50_ms": round(p["auto_cascade"][0] - p["auto"][0], 2),
            "added_p99_ms": round(p["auto_cascade"][1] - p["auto"][1], 2),
            "p50_ms": round(p["auto_cascade"][0], 2),
            "n": len(c1["auto_cascade"]),
            "header": cascade_header,
        }
    if args.sessions:
        result["sessions"] = {
            "added_p50_ms": round(p["auto_session"][0] - p["auto_unsessioned"][0], 2),
            "added_p99_ms": round(p["auto_session"][1] - p["auto_unsessioned"][1], 2),
            "p50_ms": round(p["auto_session"][0], 2),
            "n": len(c1["auto_session"]),
        }
    if args.api == "responses":
        result["responses"] = {
            "added_p50_ms": round(p["auto_responses"][0] - p["direct"][0], 2),
            "added_p99_ms": round(p["auto_responses"][1] - p["direct"][1], 2),
            "added_pinned_p50_ms": round(p["pinned_responses"][0] - p["direct"][0], 2),
            # What the translation adds over chat completions, same requests, same load.
            "vs_chat_p50_ms": round(p["auto_responses"][0] - p["auto"][0], 2),
            "vs_chat_p99_ms": round(p["auto_responses"][1] - p["auto"][1], 2),
            "vs_chat_pinned_p50_ms": round(p["pinned_responses"][0] - p["pinned"][0], 2),
            f"rps_c{c}": round(loads["auto_responses"]["rps"], 1),
        }
        result[f"errors_c{c}"] = sum(v["errors"] for v in loads.values())
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
