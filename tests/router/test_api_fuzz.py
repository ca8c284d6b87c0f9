"""The whole HTTP API fuzzed from the OpenAPI schema it publishes (schemathesis).

A real proxy on a loopback port, with the simulated upstream behind it and
its own Redis database, is sent bodies and parameters generated from its
schema, both valid ones and ones that break it. Whatever arrives, with a
tenant's key or with the admin key, the answer is never a 5xx and every error
comes in the dialect's error shape (OpenAI's; Anthropic's on /v1/messages...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from router.http.server import create_app
from router.proxy import Router
from router.state.store import Store
from router.upstream.dispatch import configure_litellm
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import ACME_KEY, REDIS_URL, proxy_config

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
        "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
    ),
]

ADMIN_KEY = "sk-admin-fuzz-0123456789"
# A database of its own: the fuzzer creates and deletes tenants at will, and flushes it.
FUZZ_REDIS_URL = urlsplit(REDIS_URL)._replace(path="/13").geturl()
TENANT = "fuzzed"  # made through the admin API before the run, so admin routes find one
# Cases per operation and key; FUZZ_EXAMPLES=500 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("FUZZ_RANDOM"),  # the same cases every run: no bad luck
)


@pytest.fixture(scope="module")
def fuzz_server(classifier, upstream) -> Iterator[BackgroundServer]:
    configure_litellm()
    upstream.reset()
    client = redis.Redis.from_url(FUZZ_REDIS_URL)
    client.flushdb()
    store = Store.from_url(FUZZ_REDIS_URL, timeout_s=5.0)
    router = Router(config=proxy_config(upstream.base_url), classifier=classifier, store=store)
    with BackgroundServer(create_app(router, admin_key=ADMIN_KEY)) as server:
        yield server
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def known(fuzz_server) -> dict[str, str]:
    """A tenant made through the API and a key issued to it, for the admin routes to find."""
    admin = bearer(ADMIN_KEY)
    created = httpx.post(f"{fuzz_server.url}/v1/tenants", json={"name": TENANT}, headers=admin)
    assert created.status_code == 201, created.text
    issued = httpx.post(f"{fuzz_server.url}/v1/tenants/{TENANT}/keys", headers=admin)
    assert issued.status_code == 201, issued.text
    return {"name": TENANT, "key_id": issued.json()["id"]}


def test_no_input_with_a_tenant_key_gets_a_5xx(fuzz_server, known):
    statuses = fuzz(fuzz_server, ACME_KEY, known, is_admin=False)
    # Not only refusals: generated requests got through to routing and the upstream.
    for label in ("POST /v1/chat/completions", "POST /v1/messages", "POST /v1/route"):
        assert any(status == 200 for status in statuses[label]), (label, statuses[label])
    assert set(statuses["POST /v1/tenants"]) == {401}  # the admin routes stay shut


def test_no_input_with_the_admin_key_gets_a_5xx(fuzz_server, known):
    statuses = fuzz(fuzz_server, ADMIN_KEY, known, is_admin=True)
    assert 201 in statuses["POST /v1/tenants"] and 200 in statuses["PATCH /v1/tenants/{name}"]
    assert set(statuses["POST /v1/chat/completions"]) == {401}  # the admin key is no tenant


@pytest.mark.parametrize("budget", ['{"daily_usd": 1e308}', '{"monthly_usd": 1e309}'])
def test_a_budget_too_large_to_count_is_refused_when_the_tenant_is_made(fuzz_server, budget):
    # Found by this fuzzing: such a tenant was stored, then its chats, its usage and the
    # dashboard summary answered 500 (micro-dollars overflowed; JSON's 1e309 is inf).
    body = f'{{"name": "huge-budget", "budget": {budget}}}'
    response = httpx.post(f"{fuzz_server.url}/v1/tenants", content=body, headers=bearer(ADMIN_KEY))
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("budget.")
    listed = httpx.get(f"{fuzz_server.url}/v1/tenants", headers=bearer(ADMIN_KEY))
    assert "huge-budget" not in {tenant["name"] for tenant in listed.json()["data"]}


def fuzz(
    server: BackgroundServer, key: str, known: dict[str, str], *, is_admin: bool
) -> dict[str, list[int]]:
    """Fuzz every operation of the published schema; returns the statuses seen per operation.

    Each operation gets its own hypothesis run, so one failure does not hide the
    others: all are reported together. Routes the key cannot open get a few cases only.
    """
    # The document is served behind the admin key (it names models and policy fields).
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=bearer(ADMIN_KEY))
    statuses: dict[str, list[int]] = {}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        is_reachable = operation.path.startswith("/v1/tenants") == is_admin
        seen = statuses.setdefault(operation.label, [])
        try:
            fuzz_operation(operation, server, key, known, seen,
                           max_examples=MAX_EXAMPLES if is_reachable else 5)  # fmt: skip
        except Exception as exc:  # an assertion, or a body that is not the JSON it should be
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n".join(failures)
    return statuses


def fuzz_operation(
    operation, server, key: str, known: dict[str, str], seen: list[int], *, max_examples: int
) -> None:
    """Valid inputs and, where there is a body to break, invalid ones; statuses go to ``seen``."""
    modes = [GenerationMode.POSITIVE]
    if operation.body:
        modes.append(GenerationMode.NEGATIVE)
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

    @settings(FUZZ_SETTINGS, max_examples=max_examples)
    @given(case=cases, target=st.sampled_from(["known", "config", "generated"]))
    def run(case, target):
        aim(case, target, known)
        response = case.call(base_url=server.url, headers=bearer(key), timeout=30)
        seen.append(response.status_code)
        check(case, response)
        if case.method == "DELETE" and response.status_code == 200:
            restore(server, known)

    run()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def aim(case, target: str, known: dict[str, str]) -> None:
    """Point a case at things that exist (a tenant, a key, a model) unless left generated."""
    params = case.path_parameters or {}
    if "name" in params and target != "generated":
        params["name"] = known["name"] if target == "known" else "acme"
    if "key_id" in params and target == "known":
        params["key_id"] = known["key_id"]
    if isinstance(case.body, dict) and "model" in case.body and target != "generated":
        case.body["model"] = "auto" if target == "known" else "fast"


def restore(server: BackgroundServer, known: dict[str, str]) -> None:
    """Put back the tenant (and key) a fuzzed DELETE removed, so later cases find them."""
    admin = bearer(ADMIN_KEY)
    httpx.post(f"{server.url}/v1/tenants", json={"name": known["name"]}, headers=admin)
    keys = httpx.get(f"{server.url}/v1/tenants/{known['name']}/keys", headers=admin).json()
    if known["key_id"] not in {k["id"] for k in keys["data"]}:
        issued = httpx.post(f"{server.url}/v1/tenants/{known['name']}/keys", headers=admin)
        known["key_id"] = issued.json()["id"]


def check(case, response) -> None:
    """Never a 5xx; an error in the dialect's shape; a 2xx stream carries no error event."""
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"], where
        assert isinstance(error["type"], str) and error["type"], where
        if case.path.startswith("/v1/messages"):
            assert body["type"] == "error", where  # Anthropic's shape
        else:
            assert set(error) == {"message", "type", "param", "code"}, where  # OpenAI's
    elif response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        events = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert events, where
        for line in events:
            if line != "data: [DONE]":
                assert "error" not in json.loads(line.removeprefix("data: ")), f"{where}: {line}"
