"""The embedded Redis that `thinkroute serve` starts when no Redis is configured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis

from router.state.embedded import EmbeddedRedis


def client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=2)


def test_starts_keeps_data_across_restarts_and_stops_cleanly(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        assert server.url.startswith("unix://")
        with client(server) as c:
            c.set("thinkroute:test", "kept")
        pid = server._process.pid
    assert not server.is_running
    with pytest.raises(ProcessLookupError):  # the process is gone, not orphaned
        os.kill(pid, 0)
    with EmbeddedRedis(tmp_path) as again, client(again) as c:
        assert c.get("thinkroute:test") == b"kept"  # append-only file survived the restart


def test_a_stale_socket_from_a_killed_server_does_not_block_a_new_one(tmp_path):
    server = EmbeddedRedis(tmp_path, persist=False).start()
    server._process.kill()
    server._process.wait()
    assert server.socket_path.exists()
    with EmbeddedRedis(tmp_path, persist=False) as fresh, client(fresh) as c:
        assert c.ping()


def test_serve_starts_and_stops_its_embedded_redis(tmp_path):
    """`thinkroute serve` with no REDIS_URL runs its own server and takes it down on exit."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(THINKROUTE_API_KEY="sk-embedded-test-key", LITELLM_LOCAL_MODEL_COST_MAP="True",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    port = _free_port()
    command = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--data-dir",
               str(tmp_path / "data")]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    socket_path = tmp_path / "data" / "redis.sock"
    try:
        _wait_until_ready(process, port, timeout_s=90)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["redis"] == "ok"  # where Redis lives is not said (issue 23)
        assert _answers(socket_path)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert "embedded Redis" in output
    assert not _answers(socket_path)


def _wait_until_ready(process: subprocess.Popen[str], port: int, *, timeout_s: float) -> None:
    """Poll /readyz until it answers 200; fail with the server's output if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(socket) -> bool:
    try:
        with redis.Redis(unix_socket_path=str(socket), socket_timeout=1) as c:
            return bool(c.ping())
    except (redis.RedisError, OSError):
        return False


def test_serve_with_two_workers_answers_and_shares_its_redis(tmp_path):
    """`--workers 2`: both processes build the app from what the parent resolved."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(THINKROUTE_API_KEY="sk-workers-test-key", LITELLM_LOCAL_MODEL_COST_MAP="True",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    port = _free_port()
    command = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--workers", "2",
               "--data-dir", str(tmp_path / "data"), "--log-format", "text"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    try:
        _wait_until_ready(process, port, timeout_s=180)
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}]}
        headers = {"authorization": "Bearer sk-workers-test-key"}
        for _ in range(4):
            routed = httpx.post(f"http://127.0.0.1:{port}/v1/route", json=body, headers=headers,
                                timeout=30)  # fmt: skip
            assert routed.status_code == 200 and routed.json()["tier"] == "fast"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["redis"].startswith("ok")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert "(2 workers)" in output and "died" not in output
    assert not _answers(tmp_path / "data" / "redis.sock")
