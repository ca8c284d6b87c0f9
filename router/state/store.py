"""The one place that speaks to Redis.

Budgets and the cache hold their state here; nothing else imports ``redis``.
Every call goes through :meth:`Store.call`, which turns a Redis that is down,
slow or refusing into :class:`StoreUnavailableError`, so callers decide one
thing: what to do without shared state (serve anyway, or refuse).

    store = Store.from_url("redis://127.0.0.1:6379/0")
    reserve = store.script(RESERVE_LUA)
    await store.call(reserve(keys=[...], args=[...]))

A Redis Cluster works the same way (``cluster=True``): every multi-key
operation names keys sharing one ``{hash tag}``, so they live in one slot.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.errors import StoreTimeoutError, StoreUnavailableError

__all__ = ["Script", "Store", "StoreUnavailableError", "redact_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# After a failure, skip Redis for this long instead of making every request wait
# on a dead connection; the next call after it tries again.
RETRY_AFTER_FAILURE_S = 1.0
# A burst beyond the pool's connections waits this long for one to come free: the
# requests queue behind each other; Redis being slow or down is told by socket timeouts.
POOL_WAIT_S = 10.0
POOL_EXHAUSTED = "No connection available."


class Store:
    """An async Redis (or Redis Cluster) client with a circuit breaker."""

    def __init__(self, client: Any, *, description: str = "redis") -> None:
        self.client = client
        self.description = description
        self._down_until = 0.0
        self._last_error = ""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        timeout_s: float = 0.5,
        max_connections: int = 64,
    ) -> Store:
        """A client for ``url``; ``timeout_s`` bounds every call, connecting included.

        Requests beyond ``max_connections`` wait (up to ``POOL_WAIT_S``) for a free
        connection: a burst must queue, not be counted as Redis being down (a
        tenant that fails open would then be served without its budget).
        """
        options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        client: redis.Redis | redis.RedisCluster
        if cluster:
            client = redis.RedisCluster.from_url(url, max_connections=max_connections, **options)
        else:
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=POOL_WAIT_S, **options
            )
            client = redis.Redis(connection_pool=pool, health_check_interval=10)
        return cls(client, description=redact_url(url))

    @property
    def is_available(self) -> bool:
        """False for a moment after a failure (the breaker is open)."""
        return time.monotonic() >= self._down_until

    @property
    def last_error(self) -> str:
        return self._last_error

    async def call(self, operation: Awaitable[_T]) -> _T:
        """Await a Redis operation; any Redis or socket failure becomes StoreUnavailableError."""
        if not self.is_available:
            _discard(operation)
            raise StoreUnavailableError(f"{self.description} is unavailable: {self._last_error}")
        try:
            result = await operation
        except (RedisError, OSError) as exc:
            # Refused or reset connections mean Redis is down: open the breaker. A slow
            # answer (a timeout: often our own loaded process) or our pool's queue do not.
            slow = isinstance(exc, TimeoutError | RedisTimeoutError) or str(exc) == POOL_EXHAUSTED
            if not slow:
                self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            self._last_error = type(exc).__name__
            logger.warning("redis at %s failed: %s", self.description, type(exc).__name__)
            failure = StoreTimeoutError if slow else StoreUnavailableError
            raise failure(f"{self.description} is unavailable: {type(exc).__name__}") from exc
        return result

    async def call_idempotent(
        self, make_operation: Callable[[], Awaitable[_T]], *, attempts: int = 3
    ) -> _T:
        """:meth:`call`, tried again after a timeout: for operations safe to repeat
        (one that timed out may have run)."""
        for attempt in range(attempts):
            try:
                return await self.call(make_operation())
            except StoreUnavailableError as exc:
                timed_out = isinstance(exc.__cause__, TimeoutError | RedisTimeoutError)
                if not timed_out or attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def script(self, source: str) -> Script:
        """A Lua script called by hash (loaded on first use, and again after a restart)."""
        return Script(self, source)

    async def ping(self) -> bool:
        """Whether Redis answers now; also closes the breaker when it does."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            self._last_error = type(exc).__name__
            return False
        self._down_until = 0.0
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
        pool = getattr(self.client, "connection_pool", None)
        if pool is not None:  # a pool passed in is not closed with its client
            await pool.disconnect()


class Script:
    """A Lua script run with EVALSHA.

    Loaded with SCRIPT LOAD (on every primary of a cluster) before its first
    call and again when Redis answers NOSCRIPT (it restarted), rather than left
    to the client library: redis-py's cluster client fails when many first calls
    race to load a script.
    """

    def __init__(self, store: Store, source: str) -> None:
        self.store = store
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
        self._loaded = False

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        client = self.store.client
        if not self._loaded:
            await client.script_load(self.source)
            self._loaded = True
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and /readyz."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{location}"


def _discard(operation: Awaitable[Any]) -> None:
    close = getattr(operation, "close", None)  # an un-awaited coroutine warns unless closed
    if close is not None:
        close()
