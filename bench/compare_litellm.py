"""thinkroute against LiteLLM's own proxy, side by side on the same machine and upstream.

    HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/compare_litellm.py

LiteLLM's proxy (``litellm[proxy]==1.100.5``, the reference version of the issue) runs
from its own virtual environment, created on first use under
``~/.cache/thinkroute/bench/litellm-1.100.5`` (``--litellm-venv``): it is never a
dependency of thinkroute. Both proxies get one worker process, the same simulated
upstream (zero latency, started once) and the same load:

* concurrency 1, one keep-alive client, requests interleaved round-robin across
  ``direct`` (the simulator itself), ``litellm`` (LiteLLM's proxy, a named model),
  ``thinkroute_pinned`` (a named model: no classifier) and ``thinkroute_auto``
  (``model: auto``: a fresh routing decision per request, every prompt unique);
* then concurrency ``--concurrency`` (default 32) for ``--seconds`` each.

``added_*`` is the proxy's round trip minus the direct one at the same percentile.
Prints one JSON object on one line, with thinkroute/LiteLLM ratios (below 1 is
better for latency, above 1 better for throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxy_overhead import (
    body,
    concurrent,
    free_port,
    percentile,
    sequential,
    servers,
    start_command,
    stop,
    versions,
    wait_ready,
)

LITELLM_VERSION = "1.100.5"


def litellm_venv(path: Path) -> Path:
    """LiteLLM's proxy in a virtualenv of its own; returns its ``litellm`` executable."""
    executable = path / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"creating {path} with litellm[proxy]=={LITELLM_VERSION} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"],
        check=True,
    )
    return executable


def litellm_config(directory: str, upstream: str) -> str:
    text = (
        "model_list:\n"
        "  - model_name: fast\n"
        f"    litellm_params: {{model: openai/fast-model, api_base: {upstream}/v1,"
        " api_key: sk-sim-upstream}\n"
        "litellm_settings: {telemetry: false, drop_params: false}\n"
    )
    path = Path(directory, "litellm.yaml")
    path.write_text(text, encoding="utf-8")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=150, help="measured requests per target at c=1")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per target at c=N")
    parser.add_argument("--n-c32", type=int, default=20_000, help="request cap per target")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds at most for c=1")
    default_venv = Path.home() / ".cache" / "thinkroute" / "bench" / f"litellm-{LITELLM_VERSION}"
    parser.add_argument("--litellm-venv", type=Path, default=default_venv)
    args = parser.parse_args(argv)

    litellm_bin = litellm_venv(args.litellm_venv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("THINKROUTE_API_KEY", None)
    began = time.monotonic()
    with servers(env) as (up, proxy), tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        log = Path(tmp, "litellm.log")
        litellm_env = {**env, "LITELLM_LOG": "ERROR", "DISABLE_ADMIN_UI": "True"}
        command = [str(litellm_bin), "--config", litellm_config(tmp, up), "--port", str(port),
                   "--num_workers", "1"]  # fmt: skip
        litellm = start_command(command, log, litellm_env)
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/liveliness", litellm, log)
            reference = f"http://127.0.0.1:{port}/v1/chat/completions"
            targets = {
                "direct": (f"{up}/v1/chat/completions", lambda i: body("fast-model", i)),
                "litellm": (reference, lambda i: body("fast", i)),
                "thinkroute_pinned": (f"{proxy}/v1/chat/completions", lambda i: body("fast", i)),
                "thinkroute_auto": (f"{proxy}/v1/chat/completions", lambda i: body("auto", i)),
            }
            c1 = sequential(targets, args.n, args.warmup, time.monotonic() + args.budget)
            c = args.concurrency
            loads = {
                name: concurrent(url, model, c, args.seconds, args.n_c32)
                for name, url, model in (
                    ("direct", f"{up}/v1/chat/completions", "fast-model"),
                    ("litellm", reference, "fast"),
                    ("thinkroute_pinned", f"{proxy}/v1/chat/completions", "fast"),
                    ("thinkroute_auto", f"{proxy}/v1/chat/completions", "auto"),
                )
            }
        finally:
            stop(litellm)
    p50 = {name: percentile(times, 50) for name, times in c1.items()}
    p99 = {name: percentile(times, 99) for name, times in c1.items()}
    added = {name: p50[name] - p50["direct"] for name in c1 if name != "direct"}
    rps = {name: load["rps"] for name, load in loads.items()}
    result = {
        "litellm_added_p50_ms": round(added["litellm"], 2),
        "thinkroute_pinned_added_p50_ms": round(added["thinkroute_pinned"], 2),
        "thinkroute_auto_added_p50_ms": round(added["thinkroute_auto"], 2),
        "litellm_added_p99_ms": round(p99["litellm"] - p99["direct"], 2),
        "thinkroute_pinned_added_p99_ms": round(p99["thinkroute_pinned"] - p99["direct"], 2),
        "thinkroute_auto_added_p99_ms": round(p99["thinkroute_auto"] - p99["direct"], 2),
        f"litellm_rps_c{c}": round(rps["litellm"], 1),
        f"thinkroute_pinned_rps_c{c}": round(rps["thinkroute_pinned"], 1),
        f"thinkroute_auto_rps_c{c}": round(rps["thinkroute_auto"], 1),
        f"direct_rps_c{c}": round(rps["direct"], 1),
        "ratio_added_p50_pinned": round(added["thinkroute_pinned"] / added["litellm"], 2),
        "ratio_added_p50_auto": round(added["thinkroute_auto"] / added["litellm"], 2),
        "ratio_rps_pinned": round(rps["thinkroute_pinned"] / rps["litellm"], 2),
        "ratio_rps_auto": round(rps["thinkroute_auto"] / rps["litellm"], 2),
        f"errors_c{c}": {name: load["errors"] for name, load in loads.items()},
        "n": len(c1["direct"]),
        "litellm_version": LITELLM_VERSION,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "wall_s": round(time.monotonic() - began, 1),
        "versions": versions(),
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
