"""Memory a proxy spends on a chunked body over its limit (issue 23): JSON on stdout.

    python bench/body_limit.py [--body-mib 64] [--limit-mib 4]

Starts the proxy in a subprocess (uvicorn, no classifier, no upstream needed:
the body is refused before anything else happens), sends it a chunked
``POST /v1/chat/completions`` of ``--body-mib`` MiB with no Content-Length,
and reports the server's resident memory before and at its peak (VmHWM,
Linux), the status it answered and how many bytes the client had sent by then.
``--server-path`` runs another checkout's server (e.g. the code before the fix).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0123456789"
CHUNK = 64 * 1024

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
    "server": {"max_body_bytes": int(sys.argv[2])},
})
app = create_app(Router(config=config), load_classifier=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-mib", type=int, default=64)
    parser.add_argument("--limit-mib", type=int, default=4)
    parser.add_argument("--server-path", default=str(ROOT), help="checkout the server runs from")
    args = parser.parse_args()
    port = _free_port()
    limit = args.limit_mib * 1024 * 1024
    env = {**os.environ, "PYTHONPATH": args.server_path, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER % {"key": KEY}, str(port), str(limit)],
        env=env,
        cwd=args.server_path,  # `python -c` puts the working directory first on the path
    )
    try:
        _wait_for(port, server)
        before_mb = _memory_mb(server.pid, "VmRSS")
        status, sent = _send_chunked(port, args.body_mib * 1024 * 1024)
        time.sleep(0.5)  # let the server finish with what it read
        peak_mb = _memory_mb(server.pid, "VmHWM")
        after_mb = _memory_mb(server.pid, "VmRSS")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        json.dumps(
            {
                "body_mib": args.body_mib,
                "limit_mib": args.limit_mib,
                "status": status,
                "client_sent_mib_before_answer": round(sent / 2**20, 1),
                "server_rss_before_mb": round(before_mb, 1),
                "server_rss_peak_mb": round(peak_mb, 1),
                "server_rss_growth_mb": round(peak_mb - before_mb, 1),
                "server_rss_after_mb": round(after_mb, 1),
                "server_path": args.server_path,
            },
            indent=2,
        )
    )


def _send_chunked(port: int, total: int) -> tuple[int | None, int]:
    """Send ``total`` bytes chunked until the server answers; its status and the bytes sent."""
    chunk = b"%x\r\n%s\r\n" % (CHUNK, b"x" * CHUNK)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\n"
            b"authorization: Bearer " + KEY.encode() + b"\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += CHUNK
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    answer = sock.recv(65536)
                sock.setblocking(True)
                if answer:
                    break
            if not answer:
                sock.sendall(b"0\r\n\r\n")
                answer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if not answer:
            try:
                answer = sock.recv(65536)
            except OSError:
                answer = b""
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return status, sent


def _memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
