"""Redis stopped under a running proxy, then started again: served throughout, books resume;
Redis stalled: slow, not down, so budgeted tenants are not served unmetered."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from router.http.server import create_app
from router.proxy import Router
from router.state.embedded import EmbeddedRedis
from router.state.store import RETRY_AFTER_FAILURE_S, Store
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)
KEY = "sk-outage-0123456789"


def ask(server: BackgroundServer, text: str) -> httpx.Response:
    body = {"model": "fast", "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {KEY}"})  # fmt: skip


def spend(server: BackgroundServer) -> tuple[int, float]:
    day = httpx.get(f"{server.url}/v1/usage", headers={"authorization": f"Bearer {KEY}"}).json()
    return day["day"]["requests"], day["day"]["spend_usd"]


def test_redis_going_away_and_coming_back(tmp_path, classifier, clean_upstream):
    redis_server = EmbeddedRedis(tmp_path, persist=True).start()
    tenants = [{"name": "outage", "api_keys": [KEY], "budget": {"daily_usd": 5.0}}]
    config = proxy_config(clean_upstream.base_url, tenants=tenants)
    router = Router(config=config, classifier=classifier,
                    store=Store.from_url(redis_server.url, timeout_s=0.3))  # fmt: skip
    try:
        with BackgroundServer(create_app(router)) as proxy:
            first = ask(proxy, "before the outage")
            assert ask(proxy, "before the outage").headers["x-thinkroute-cache"] == "hit"
            assert spend(proxy) == (1, float(first.headers["x-thinkroute-cost-usd"]))

            redis_server.stop()
            during = [ask(proxy, f"during the outage {i}") for i in range(3)]
            assert [r.status_code for r in during] == [200, 200, 200]
            assert ask(proxy, "before the outage").headers["x-thinkroute-cache"] == "bypass"
            assert (
                httpx.get(
                    f"{proxy.url}/v1/usage", headers={"authorization": f"Bearer {KEY}"}
                ).status_code
                == 503
            )

            redis_server.start()  # same data directory: the books survive
            time.sleep(RETRY_AFTER_FAILURE_S + 0.1)
            after = ask(proxy, "after the outage")
            assert after.status_code == 200
            requests, spent = spend(proxy)
            # Served during the outage without books (the tenant fails open); nothing
            # counted twice; accounting resumes with the next request.
            assert requests == 2
            expected = float(first.headers["x-thinkroute-cost-usd"]) + float(
                after.headers["x-thinkroute-cost-usd"]
            )
            assert spent == pytest.approx(expected, abs=1e-9)
            assert ask(proxy, "after the outage").headers["x-thinkroute-cache"] == "hit"
    finally:
        redis_server.stop()


def test_a_stalled_redis_is_slow_not_down_so_budgeted_tenants_are_never_served_unmetered(
    tmp_path, classifier, clean_upstream
):
    """Issue 23: with Redis paused (it accepts connections and never answers), a tenant
    with a budget was answered and never counted. A timeout is not an outage: the
    budgeted tenant gets a 503 it may retry; a tenant with nothing to meter is served."""
    redis_server = EmbeddedRedis(tmp_path, persist=False).start()
    free_key = "sk-outage-free-0123456789"
    tenants = [{"name": "outage", "api_keys": [KEY], "budget": {"daily_usd": 0.002}},
               {"name": "free", "api_keys": [free_key]}]  # fmt: skip
    config = proxy_config(clean_upstream.base_url, tenants=tenants)
    router = Router(config=config, classifier=classifier,
                    store=Store.from_url(redis_server.url, timeout_s=0.3))  # fmt: skip
    pid = redis_server._process.pid  # noqa: SLF001 - the test pauses the very process
    try:
        with BackgroundServer(create_app(router)) as proxy:
            os.kill(pid, signal.SIGSTOP)
            try:
                stalled = [ask(proxy, f"while redis is stalled {i}") for i in range(3)]
                prompt = [{"role": "user", "content": "free while stalled"}]
                body = {"model": "fast", "max_tokens": 16, "messages": prompt}
                free = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=30,
                                  headers={"authorization": f"Bearer {free_key}"})  # fmt: skip
            finally:
                os.kill(pid, signal.SIGCONT)
            assert [r.status_code for r in stalled] == [503, 503, 503]
            assert {r.json()["error"]["code"] for r in stalled} == {"store_timeout"}
            assert stalled[0].headers["x-should-retry"] == "true"
            assert free.status_code == 200
            served = ask(proxy, "after the stall")
            assert served.status_code == 200
            # Only what was served is on the books: nothing went through unmetered.
            assert spend(proxy) == (1, float(served.headers["x-thinkroute-cost-usd"]))
    finally:
        redis_server.stop()
