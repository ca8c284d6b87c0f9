"""Tenants, budgets, usage and the admin API through real HTTP, real Redis, real LiteLLM."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
import redis
import yaml

from router.http.server import create_app
from router.proxy import Router
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import ACME_KEY, REDIS_URL, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

ADMIN_KEY = "sk-admin-0123456789"
OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)
CHAT = "what's a nice name for a cat?"


@pytest.fixture
def metered(serve_on_redis, clean_upstream):
    """Start proxies backed by Redis with extra tenants; ``redis_url`` may point nowhere."""

    def start(tenants: list[dict], *, redis_url: str = REDIS_URL, **dispatch) -> BackgroundServer:
        config = proxy_config(clean_upstream.base_url, tenants=tenants, **dispatch)
        return serve_on_redis(config, redis_url=redis_url, admin_key=ADMIN_KEY)

    return start


def chat(text: str, **extra) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def post(server: BackgroundServer, key: str, body: dict, path: str = "/v1/chat/completions"):
    return httpx.post(f"{server.url}{path}", json=body, headers=bearer(key), timeout=30)


def usage(server: BackgroundServer, key: str) -> dict:
    response = httpx.get(f"{server.url}/v1/usage", headers=bearer(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.anyio
async def test_150_concurrent_requests_never_overspend_and_the_books_match_the_headers(
    metered, run_id
):
    tight, other = f"{run_id}-tight", f"{run_id}-other"
    server = metered([
        {"name": tight, "api_keys": [f"sk-{tight}"], "budget": {"daily_usd": 0.0006}},
        {"name": other, "api_keys": [f"sk-{other}"], "budget": {"daily_usd": 1.0}},
    ])  # fmt: skip
    responses: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            body = chat(f"question number {i}: say hello", max_tokens=16)
            if i % 3 == 0:
                body["model"] = "fast"
            headers = bearer(f"sk-{tight}")
            responses.append(await client.post("/v1/chat/completions", json=body, headers=headers))

        async with anyio.create_task_group() as group:
            for i in range(150):
                group.start_soon(one, i)
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(served) + len(refused) == 150 and served and refused
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
    # Refused while in-flight reservations alone fill the budget: retry soon; once
    # settled spend fills it: not before the window ends.
    assert all(int(r.headers["retry-after"]) > 0 for r in refused)
    for r in refused:
        is_in_flight = "in flight" in r.json()["error"]["message"]
        assert (r.headers["x-should-retry"] == "true") == is_in_flight
    charged_micro = sum(round(float(r.headers["x-thinkroute-cost-usd"]) * 1e6) for r in served)
    day = usage(server, f"sk-{tight}")["day"]
    assert round(day["spend_usd"] * 1e6) == charged_micro  # to the micro-dollar
    assert day["requests"] == len(served) and day["reserved_usd"] == 0
    assert charged_micro <= 600
    # The other tenant saw none of it and is still served.
    assert usage(server, f"sk-{other}")["day"]["requests"] == 0
    assert post(server, f"sk-{other}", chat(CHAT)).status_code == 200


@pytest.mark.anyio
@contextlib.contextmanager
def proxy_process(config, tmp_path) -> Iterator[str]:
    """``thinkroute serve`` in a process of its own, on the test Redis; yields its URL."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "router.cli", "serve", "--config", str(path), "--port",
               str(port), "--redis-url", REDIS_URL, "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, "the proxy process exited"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.anyio
async def test_two_proxy_processes_sharing_redis_enforce_one_budget(
    metered, run_id, clean_upstream, tmp_path
):
    name = f"{run_id}-shared"
    tenants = [{"name": name, "api_keys": [f"sk-{name}"], "budget": {"daily_usd": 0.0003}}]
    first = metered(tenants)
    config = proxy_config(clean_upstream.base_url, tenants=tenants)
    with proxy_process(config, tmp_path) as second:
        statuses, costs = await _spend_through([first.url, second], f"sk-{name}")
    assert set(statuses) == {200, 429}
    spent = usage(first, f"sk-{name}")["day"]["spend_usd"]
    assert round(spent * 1e6) == sum(round(c * 1e6) for c in costs) <= 300


async def _spend_through(urls: list[str], key: str) -> tuple[list[int], list[float]]:
    """60 concurrent requests spread over the proxies; their statuses and charged costs."""
    statuses: list[int] = []
    costs: list[float] = []

    async def one(url: str, i: int) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                f"{url}/v1/chat/completions",
                json=chat(f"ping {i}", model="fast", max_tokens=16),
                headers=bearer(key),
            )
        statuses.append(response.status_code)
        if response.status_code == 200:
            costs.append(float(response.headers["x-thinkroute-cost-usd"]))

    async with anyio.create_task_group() as group:
        for i in range(60):
            group.start_soon(one, urls[i % len(urls)], i)
    return statuses, costs


def test_a_stream_cut_by_the_upstream_is_charged_for_what_it_produced(
    metered, run_id, clean_upstream
):
    name = f"{run_id}-cut"
    server = metered([{"name": name, "api_keys": [f"sk-{name}"]}], fallback=False)
    clean_upstream.control("fast-model", cut_stream_after=2)
    body = chat("tell me a long story about a cat", model="fast", stream=True)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                      headers=bearer(f"sk-{name}"), timeout=30) as response:  # fmt: skip
        text = "".join(response.iter_text())
    assert response.status_code == 200 and '"error"' in text  # the stream reports the cut
    day = usage(server, f"sk-{name}")["day"]
    assert day["requests"] == 1 and day["spend_usd"] > 0  # the two chunks it got
    full = post(server, f"sk-{name}", chat("tell me a long story about a cat", model="fast"))
    assert day["spend_usd"] < float(full.headers["x-thinkroute-cost-usd"])


def test_a_client_that_leaves_mid_stream_is_charged_for_what_was_produced(
    metered, run_id, clean_upstream
):
    name = f"{run_id}-gone"
    server = metered([{"name": name, "api_keys": [f"sk-{name}"]}])
    clean_upstream.control("fast-model", chunk_delay_s=0.2)
    body = chat("tell me a long story about a cat", model="fast", stream=True)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                      headers=bearer(f"sk-{name}"), timeout=30) as response:  # fmt: skip
        next(response.iter_lines())  # one line, then hang up
    for _ in range(50):  # settlement runs when the server notices the disconnect
        day = usage(server, f"sk-{name}")["day"]
        if day["requests"]:
            break
        anyio.run(anyio.sleep, 0.1)
    assert day["requests"] == 1 and day["spend_usd"] > 0 and day["reserved_usd"] == 0


def test_reasoning_share_cap_holds_over_mixed_traffic(metered, run_id):
    name = f"{run_id}-share"
    window = 20
    server = metered([{"name": name, "api_keys": [f"sk-{name}"], "max_reasoning_share": 0.25,
                       "reasoning_share_window": window}])  # fmt: skip
    tiers = []
    for i in range(60):
        text = OLYMPIAD if i % 4 else CHAT  # three hard questions in four
        response = post(server, f"sk-{name}", chat(f"{text} ({i})"))
        assert response.status_code == 200
        tiers.append(response.headers["x-thinkroute-tier"])
    for start in range(len(tiers) - window + 1):
        assert tiers[start : start + window].count("reasoning") <= 0.25 * window
    assert tiers.count("reasoning") >= 10  # the cap limits reasoning, it does not stop it
    reasons = {post(server, f"sk-{name}", chat(OLYMPIAD)).headers["x-thinkroute-reason"]}
    assert reasons <= {"reasoning_share_cap", "score_at_or_above_threshold"}


def test_budget_nearly_spent_degrades_to_the_fast_tier(metered, run_id):
    name = f"{run_id}-degrade"
    policy = {"daily_usd": 0.05, "on_exhaustion": "degrade", "degrade_at": 0.2}
    server = metered([{"name": name, "api_keys": [f"sk-{name}"], "budget": policy}])
    first = post(server, f"sk-{name}", chat(OLYMPIAD, max_tokens=100))
    assert first.headers["x-thinkroute-tier"] == "reasoning"
    # Spend past a fifth of the budget, then the same hard question goes fast.
    while usage(server, f"sk-{name}")["day"]["spend_usd"] < 0.01:
        spend = chat(OLYMPIAD, model="reasoning", max_tokens=300)
        assert post(server, f"sk-{name}", spend).status_code == 200
    degraded = post(server, f"sk-{name}", chat(OLYMPIAD, max_tokens=100))
    assert degraded.headers["x-thinkroute-tier"] == "fast"
    assert degraded.headers["x-thinkroute-reason"] == "budget_nearly_spent"


def test_rate_limit_answers_429_rate_limited_with_retry_after(metered, run_id):
    name = f"{run_id}-rpm"
    server = metered([{"name": name, "api_keys": [f"sk-{name}"],
                       "rate_limits": {"requests_per_minute": 2}}])  # fmt: skip
    statuses = [post(server, f"sk-{name}", chat(CHAT, model="fast")) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    assert int(statuses[-1].headers["retry-after"]) >= 1


def test_without_redis_open_tenants_are_served_and_closed_ones_refused(metered, run_id):
    server = metered(
        [
            {"name": f"{run_id}-open", "api_keys": [f"sk-{run_id}-open"],
             "budget": {"daily_usd": 1.0}},
            {"name": f"{run_id}-closed", "api_keys": [f"sk-{run_id}-closed"],
             "budget": {"daily_usd": 1.0}, "on_store_failure": "closed"},
        ],
        redis_url="redis://127.0.0.1:1/0",
    )  # fmt: skip
    for _ in range(3):
        assert post(server, f"sk-{run_id}-open", chat(OLYMPIAD)).status_code == 200
    refused = post(server, f"sk-{run_id}-closed", chat(CHAT))
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "store_unavailable"
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["redis"].startswith("unavailable")


def test_admin_creates_a_tenant_issues_and_revokes_a_key(metered, run_id):
    server = metered([])
    admin = bearer(ADMIN_KEY)
    name = f"{run_id}-api"
    policy = {"name": name, "default_mode": "cheap", "budget": {"daily_usd": 2.5}}
    created = httpx.post(f"{server.url}/v1/tenants", json=policy, headers=admin)
    assert created.status_code == 201 and created.json()["default_mode"] == "cheap"
    again = httpx.post(f"{server.url}/v1/tenants", json=policy, headers=admin)
    assert again.status_code == 409
    issued = httpx.post(f"{server.url}/v1/tenants/{name}/keys", headers=admin).json()
    key = issued["key"]
    assert post(server, key, chat(CHAT)).status_code == 200
    listed = httpx.get(f"{server.url}/v1/tenants/{name}/keys", headers=admin).json()
    assert [k["id"] for k in listed["data"]] == [issued["id"]]
    assert key not in str(listed) and "digest" not in str(listed)
    stored = redis.Redis.from_url(REDIS_URL)
    assert key.encode() not in b"".join(stored.hgetall("thinkroute:apikeys"))
    stored.close()
    mine = usage(server, key)
    assert mine["tenant"] == name and mine["day"]["requests"] == 1
    assert mine["day"]["budget_usd"] == 2.5
    patched = httpx.patch(f"{server.url}/v1/tenants/{name}",
                          json={"default_mode": "quality"}, headers=admin)  # fmt: skip
    assert patched.json()["default_mode"] == "quality"
    revoked = httpx.delete(f"{server.url}/v1/tenants/{name}/keys/{issued['id']}",
                           headers=admin)  # fmt: skip
    assert revoked.status_code == 200
    assert post(server, key, chat(CHAT)).status_code == 401
    assert httpx.delete(f"{server.url}/v1/tenants/{name}", headers=admin).status_code == 200
    assert httpx.get(f"{server.url}/v1/tenants/{name}", headers=admin).status_code == 404


def test_admin_routes_need_the_admin_key_and_config_tenants_stay_read_only(metered, run_id):
    server = metered([])
    for method, path in [("GET", "/v1/tenants"), ("POST", "/v1/tenants"),
                         ("GET", "/v1/tenants/acme/usage"), ("POST", "/v1/tenants/acme/keys"),
                         ("DELETE", "/v1/tenants/acme"), ("GET", "/v1//tenants")]:  # fmt: skip
        response = httpx.request(method, f"{server.url}{path}", headers=bearer(ACME_KEY))
        assert response.status_code in (401, 404), (method, path)
        assert "error" in response.json()
    admin = bearer(ADMIN_KEY)
    listed = httpx.get(f"{server.url}/v1/tenants", headers=admin).json()["data"]
    assert {"acme", "beta"} <= {t["name"] for t in listed}
    assert "api_keys" not in str(listed) and ACME_KEY not in str(listed)
    response = httpx.patch(f"{server.url}/v1/tenants/acme",
                           json={"default_mode": "cheap"}, headers=admin)  # fmt: skip
    assert response.status_code == 409
    bad = httpx.post(f"{server.url}/v1/tenants", json={"name": "x y"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"


def test_admin_api_is_off_without_an_admin_key(classifier, clean_upstream):
    router = Router(config=proxy_config(clean_upstream.base_url), classifier=classifier)
    with BackgroundServer(create_app(router)) as server:
        response = httpx.get(f"{server.url}/v1/tenants", headers=bearer(ADMIN_KEY))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_disabled"
