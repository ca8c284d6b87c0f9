"""Budgets, tenants and the caches on a three-node Redis Cluster started on loopback.

Every multi-key operation names keys that share the tenant's ``{hash tag}``, so
the Lua scripts stay atomic on a cluster; this proves it against a real one.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid

import anyio
import pytest
import redis

from router.config import TenantConfig
from router.errors import BudgetExceededError
from router.state.budgets import Budgets
from router.state.cache import CacheSettings, ResponseCache, ScoreCache
from router.state.embedded import server_binary
from router.state.store import Store
from router.state.tenants import TenantDirectory

SLOTS = 16384


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    """Three primaries, slots split evenly, joined with CLUSTER MEET."""
    directory = tmp_path_factory.mktemp("cluster")
    free = _free_ports(6)
    ports, bus_ports = free[:3], free[3:]  # the bus port too: port + 10000 may not exist
    processes = [
        subprocess.Popen(
            [
                server_binary(),
                "--port",
                str(port),
                "--cluster-port",
                str(bus),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for port, bus in zip(ports, bus_ports, strict=True)
    ]
    try:
        clients = [redis.Redis(port=port, socket_timeout=2) for port in ports]
        for client in clients:
            _wait(lambda c=client: c.ping())
        share = SLOTS // len(ports)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(ports) - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
        for port, bus in zip(ports[1:], bus_ports[1:], strict=True):
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus)
        _wait(lambda: all(c.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                          for c in clients))  # fmt: skip
        for client in clients:
            client.close()
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def _wait(check, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the cluster did not come up")


@pytest.fixture
async def store(cluster_url):
    store = Store.from_url(cluster_url, cluster=True, timeout_s=2)
    yield store
    await store.aclose()


@pytest.mark.anyio
async def test_budgets_hold_on_a_cluster_for_tenants_in_different_slots(store):
    budgets = Budgets(store)
    tenants = [TenantConfig(name=f"cl-{uuid.uuid4().hex[:6]}", budget={"daily_usd": 0.001})
               for _ in range(4)]  # fmt: skip
    slots = {redis.RedisCluster.keyslot(store.client, f"{{{t.name}}}") for t in tenants}
    assert len(slots) > 1  # spread over the nodes

    for tenant in tenants:
        granted = []

        async def one(tenant=tenant, granted=granted) -> None:
            with contextlib.suppress(BudgetExceededError):
                granted.append(await budgets.reserve(tenant, amount_usd=0.0003, tokens=5))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
        assert len(granted) == 3  # 3 x 300 <= 1000 < 4 x 300, on every node
        await budgets.settle(granted[0], cost_usd=0.0001, usage={"prompt_tokens": 3},
                             tier="fast", routed=True, baseline_usd=0.0002)  # fmt: skip
        for held in granted[1:]:
            await budgets.release(held)
        state = await budgets.state(tenant)
        assert state.day_spent_micro == 100
        assert (await budgets.usage(tenant))["day"]["spend_usd"] == pytest.approx(0.0001)


@pytest.mark.anyio
async def test_caches_and_admin_tenants_work_on_a_cluster(store):
    cache = ResponseCache(store, CacheSettings())
    answer = {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}
        ],
    }
    key = f"thinkroute:{{cl-{uuid.uuid4().hex[:6]}}}:cache:abc"
    assert await cache.put(key, answer, ttl_s=30)
    assert (await cache.get(key))["choices"] == answer["choices"]

    scores = ScoreCache(store, namespace=f"test{uuid.uuid4().hex[:6]}")
    texts = [f"question {i}" for i in range(20)]  # one tenant's keys: one slot
    await scores.put_many({text: i / 20 for i, text in enumerate(texts)}, tenant="t")
    assert await scores.get_many(texts, tenant="t") == [i / 20 for i in range(20)]

    directory = TenantDirectory([], store)
    name = f"cl-{uuid.uuid4().hex[:6]}"
    await directory.create({"name": name})
    issued = await directory.issue_key(name)
    assert (await directory.authenticate(issued.key)).name == name
    await directory.delete(name)


@pytest.mark.anyio
async def test_expired_reservations_are_swept_on_a_cluster(store):
    now = [time.time()]
    budgets = Budgets(store, reservation_ttl_s=60, clock=lambda: now[0])
    tenant = TenantConfig(name=f"cl-{uuid.uuid4().hex[:6]}", budget={"daily_usd": 0.001})
    await budgets.reserve(tenant, amount_usd=0.0009, tokens=5)  # never settled
    now[0] += 61
    await budgets.reserve(tenant, amount_usd=0.0005, tokens=5)  # sweeps it, then fits
    assert (await budgets.state(tenant)).day_spent_micro == 500
