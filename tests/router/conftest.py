"""A live proxy in front of a live simulated upstream, for tests that speak real HTTP."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from classifier.model import DifficultyClassifier
from router.config import build_config
from router.http.server import create_app
from router.proxy import Router
from router.state.store import Store
from router.upstream.dispatch import configure_litellm
from router.upstream.simulator import BackgroundServer, SimulatedUpstream

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ACME_KEY = "sk-acme-0123456789"
BETA_KEY = "sk-beta-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-do-not-leak"
FAST_PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
REASONING_PRICES = {"input_cost_per_token": 5e-6, "output_cost_per_token": 2e-5}
# A prompt the shipped head sends to reasoning, and one it sends fast.
OLYMPIAD = [
    {
        "role": "user",
        "content": "Let n be a positive integer. Find all functions f from the integers to the "
        "integers such that f(m + f(n)) = f(m) + n for all integers m and n.",
    }
]
CHAT = [{"role": "user", "content": "what's a nice name for a cat?"}]


def proxy_config(
    upstream_url: str, *, tenants: list[dict[str, Any]] | None = None, **dispatch: Any
) -> Any:
    def model(name: str, upstream_model: str, prices: dict[str, float]) -> dict[str, Any]:
        params = {"model": f"openai/{upstream_model}", "api_base": upstream_url,
                  "api_key": UPSTREAM_KEY}  # fmt: skip
        return {"model_name": name, "litellm_params": params, "model_info": prices}

    return build_config(
        {
            "model_list": [
                model("fast", "fast-model", FAST_PRICES),
                model("reasoning", "reasoning-model", REASONING_PRICES),
            ],
            "tiers": {
                "fast": {"model": "fast"},
                "reasoning": {"model": "reasoning", "reasoning_effort": "medium"},
            },
            "tenants": [
                {"name": "acme", "api_keys": [ACME_KEY]},
                {
                    "name": "beta",
                    "api_keys": [BETA_KEY],
                    "allowed_models": ["fast"],
                    "default_mode": "quality",
                },
                *(tenants or []),
            ],
            "dispatch": {"num_retries": 0, "timeout_s": 10, **dispatch},
        }
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def run_id() -> Iterator[str]:
    """A prefix for this test's tenants; their Redis keys (and admin-made tenants) go after."""
    run = f"r{uuid.uuid4().hex[:8]}"
    yield run
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"thinkroute:{{{run}*"))
    names = [n for n in client.hkeys("thinkroute:tenants") if n.decode().startswith(run)]
    if keys:
        client.delete(*keys)
    if names:
        client.hdel("thinkroute:tenants", *names)
    client.close()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    """A client of the test Redis; tests that touch it use keys no other test uses."""
    store = Store.from_url(REDIS_URL, timeout_s=5.0)  # a loaded test machine is slow, not down
    yield store
    await store.aclose()


@pytest.fixture(scope="session")
def classifier() -> DifficultyClassifier:
    return DifficultyClassifier.load()


@pytest.fixture(scope="session")
def upstream() -> Iterator[SimulatedUpstream]:
    with SimulatedUpstream() as server:
        yield server


@pytest.fixture
def clean_upstream(upstream: SimulatedUpstream) -> Iterator[SimulatedUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def serve_on_redis(classifier):
    """Start proxies over the test Redis: ``serve_on_redis(config, **create_app options)``.

    ``redis_url`` may point nowhere, ``tracing`` goes to the Router and ``scorer``
    stands in for the shared classifier; every proxy started stops when the test ends.
    """
    started: list[BackgroundServer] = []

    def start(config: Any, *, redis_url: str = REDIS_URL, tracing: Any = None,
              scorer: Any = None, **app_options: Any) -> BackgroundServer:  # fmt: skip
        store = Store.from_url(redis_url, timeout_s=2.0)  # a loaded machine is slow, not down
        router = Router(config=config, classifier=scorer or classifier, store=store,
                        tracing=tracing)  # fmt: skip
        server = BackgroundServer(create_app(router, **app_options)).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture(scope="session")
def make_proxy(classifier, upstream):
    """Start a proxy with dispatch settings overridden; stopped at the end of the session."""
    configure_litellm()
    started: list[BackgroundServer] = []

    def make(**dispatch: Any) -> BackgroundServer:
        router = Router(config=proxy_config(upstream.base_url, **dispatch), classifier=classifier)
        server = BackgroundServer(create_app(router)).__enter__()
        started.append(server)
        return server

    yield make
    for server in started:
        server.__exit__()


@pytest.fixture(scope="session")
def proxy(make_proxy) -> BackgroundServer:
    return make_proxy()


@pytest.fixture
def router(classifier, clean_upstream):
    """An in-process Router over the simulated upstream: the SDK face, no server between."""
    with Router(config=proxy_config(clean_upstream.base_url), classifier=classifier) as router:
        yield router


def decisions(tenant: str, count: int) -> list[dict[str, Any]]:
    """The tenant's decision log, once it holds ``count`` entries (written in the background)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(100):
            raw = client.xrange(f"thinkroute:{{{tenant}}}:decisions")
            if len(raw) >= count:
                return [json.loads(fields[b"entry"]) for _, fields in raw]
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"{tenant} logged {len(raw)} decisions, expected {count}")
