"""Metrics, request logs and the decision log: real HTTP, real Redis, the simulated upstream."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from classifier.data import read_records
from router.cli import build_parser, main
from router.config import ServerConfig
from router.observe.logs import JsonFormatter
from router.upstream.simulator import BackgroundServer
from tests.deploy.test_deploy import METRICS
from tests.router.conftest import REDIS_URL, UPSTREAM_KEY, decisions, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)
PRIMES = "Prove that there are infinitely many primes of the form 4k+3, with a full proof."
CHAT = "what's a nice name for a cat?"
METRICS_KEY = "sk-scrape-0123456789"
ADMIN_KEY = "sk-admin-0123456789"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def start(serve_on_redis, clean_upstream, run_id):
    """Start a proxy backed by Redis, with tenants ``{run}-a`` and ``{run}-b`` plus extras."""

    def make(
        *,
        tenants: tuple[dict[str, Any], ...] = (),
        keys: dict[str, str] | None = None,
        **server: Any,
    ) -> BackgroundServer:
        keys = {"metrics_key": METRICS_KEY} if keys is None else keys
        plain = [{"name": f"{run_id}-{n}", "api_keys": [f"sk-{run_id}-{n}"]} for n in "ab"]
        config = proxy_config(clean_upstream.base_url, tenants=[*plain, *tenants])
        config = config.model_copy(update={"server": ServerConfig(**server)})
        return serve_on_redis(config, **keys)

    return make


def post(server: BackgroundServer, key: str, text: str, *, headers=None, **body) -> httpx.Response:
    payload = {"model": "auto", "messages": [{"role": "user", "content": text}], **body}
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=30,
    )


def stream(server: BackgroundServer, key: str, text: str, **body) -> tuple[httpx.Response, str]:
    """Send a streaming request; the response and its whole body."""
    with open_stream(server, key, text, **body) as response:
        return response, "".join(response.iter_text())


def open_stream(server: BackgroundServer, key: str, text: str, **body) -> Any:
    payload = {"model": "auto", "messages": [{"role": "user", "content": text}], **body}
    return httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={**payload, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def scrape(server: BackgroundServer) -> dict[str, Any]:
    """``{family name: family}`` from ``GET /metrics``, asked with the scrape key."""
    response = httpx.get(f"{server.url}/metrics", headers=bearer(METRICS_KEY), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    """The sum of the samples called ``sample_name`` whose labels include ``labels``."""
    family = families[sample_name.removesuffix("_total").removesuffix("_count")]
    return sum(
        s.value
        for s in family.samples
        if s.name == sample_name and labels.items() <= s.labels.items()
    )


def test_metrics_count_what_clients_saw(start, run_id, clean_upstream):
    poor = {"name": f"{run_id}-poor", "api_keys": [f"sk-{run_id}-poor"],
            "budget": {"daily_usd": 0.0}}  # fmt: skip
    server = start(tenants=(poor,))
    tenant, key = f"{run_id}-a", f"sk-{run_id}-a"

    fast = post(server, key, CHAT, temperature=0)
    hit = post(server, key, CHAT, temperature=0)
    hard = post(server, key, OLYMPIAD)
    refused = post(server, f"sk-{run_id}-poor", CHAT)
    clean_upstream.control("reasoning-model", fail_status=500)
    fallback = post(server, key, PRIMES)
    clean_upstream.reset()
    streamed, body = stream(server, key, "tell me a short story about a cat")
    unauthorised = post(server, "sk-nobody-0123456789", CHAT)

    statuses = [r.status_code for r in (fast, hit, hard, refused, fallback, streamed)]
    assert statuses == [200, 200, 200, 429, 200, 200] and unauthorised.status_code == 401
    assert [r.headers["x-thinkroute-tier"] for r in (fast, hard)] == ["fast", "reasoning"]
    assert hit.headers["x-thinkroute-cache"] == "hit"
    assert fallback.headers["x-thinkroute-fallback"] == "reasoning failed"
    assert fallback.headers["x-thinkroute-tier"] == "fast"
    stream_cost = float(body.split(": x-thinkroute-cost-usd=")[1].split()[0])

    m = scrape(server)
    # Requests: served tier and model, and the status a client saw.
    assert value(m, "thinkroute_requests_total", tenant=tenant, tier="fast", model="fast",
                 status="200") == 4  # fmt: skip
    assert value(m, "thinkroute_requests_total", tenant=tenant, tier="reasoning",
                 model="reasoning", status="200") == 1  # fmt: skip
    assert value(m, "thinkroute_requests_total", tenant=f"{run_id}-poor", status="429") == 1
    assert value(m, "thinkroute_requests_total", tenant="", status="401") == 1
    # Decisions: the tier chosen (the fallback was chosen reasoning), the mode and why.
    assert value(m, "thinkroute_route_decisions_total", tenant=tenant, tier="reasoning",
                 mode="balanced") == 2  # fmt: skip
    assert value(m, "thinkroute_route_decisions_total", tenant=tenant, tier="fast") == 3
    assert value(m, "thinkroute_routing_seconds_count") == 5
    assert value(m, "thinkroute_cache_total", tenant=tenant, result="hit") == 1
    assert value(m, "thinkroute_cache_total", tenant=tenant, result="miss") == 1
    assert value(m, "thinkroute_cache_total", tenant=tenant, result="bypass") == 3
    assert value(m, "thinkroute_fallbacks_total", model="reasoning") == 1
    assert value(m, "thinkroute_upstream_seconds_count", model="fast") == 3  # not the hit
    assert value(m, "thinkroute_upstream_seconds_count", model="reasoning") == 1
    assert value(m, "thinkroute_budget_refusals_total", tenant=f"{run_id}-poor",
                 reason="budget_exceeded") == 1  # fmt: skip
    # Money: what the headers (and the stream's closing comment) said, to the micro-dollar.
    charged = [float(r.headers["x-thinkroute-cost-usd"]) for r in (fast, hit, hard, fallback)]
    spend = value(m, "thinkroute_spend_usd_total", tenant=tenant)
    assert spend == pytest.approx(sum(charged) + stream_cost, abs=1e-9)
    assert value(m, "thinkroute_spend_usd_total", tenant=tenant, tier="reasoning") == (
        pytest.approx(float(hard.headers["x-thinkroute-cost-usd"]), abs=1e-9)
    )
    assert value(m, "thinkroute_savings_usd_total", tenant=tenant) > 0  # fast answers saved

    # Every family of the dashboard's table, with exactly its labels.
    exported = {}
    for name, family in m.items():
        full = f"{name}_total" if family.type == "counter" else name
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        exported[full] = (family.type, labels)
    assert exported == METRICS


def test_metrics_show_no_secret_and_can_be_switched_off(start, run_id):
    server = start()
    assert post(server, f"sk-{run_id}-a", CHAT).status_code == 200
    text = httpx.get(f"{server.url}/metrics", headers=bearer(METRICS_KEY)).text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert {f"{n}_total" if t == "counter" else n for n, t in families.items()} == set(METRICS)
    assert {t for n, t in families.items()} == {"counter", "histogram"}
    assert f"sk-{run_id}" not in text and UPSTREAM_KEY not in text and CHAT not in text
    off = start(metrics=False)
    assert httpx.get(f"{off.url}/metrics", headers=bearer(METRICS_KEY)).status_code == 404


def test_metrics_need_the_scrape_key_or_the_admin_key(start, run_id):
    server = start(keys={"metrics_key": METRICS_KEY, "admin_key": ADMIN_KEY})
    for key in (METRICS_KEY, ADMIN_KEY):
        assert httpx.get(f"{server.url}/metrics", headers=bearer(key)).status_code == 200
    # A tenant's key, no key, or the right key spelled through another path: refused.
    for headers in (bearer(f"sk-{run_id}-a"), bearer(METRICS_KEY + "x"), {}):
        refused = httpx.get(f"{server.url}/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] in ("metrics_key_required", "missing_api_key")
    closed = start(keys={})  # no key configured: closed, saying what to set
    refused = httpx.get(f"{closed.url}/metrics", headers=bearer(METRICS_KEY))
    assert (
        refused.status_code == 403
        and "THINKROUTE_METRICS_KEY" in refused.json()["error"]["message"]
    )


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log record of the process, formatted as the proxy's JSON lines."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield sink
    root.removeHandler(handler)
    root.setLevel(level)


def test_request_logs_are_json_lines_without_prompts_or_keys(start, run_id, log_lines):
    server = start()
    key = f"sk-{run_id}-a"
    secret_prompt = f"my secret diary entry {uuid.uuid4().hex}"
    mine = post(server, key, secret_prompt, headers={"x-request-id": "trace-42.a_b"})
    assert mine.headers["x-request-id"] == "trace-42.a_b"
    odd = post(server, key, secret_prompt, headers={"x-request-id": "no spaces or / allowed"})
    assert len(odd.headers["x-request-id"]) == 32 and " " not in odd.headers["x-request-id"]
    refused = post(server, "sk-wrong-0123456789", secret_prompt, headers={"x-request-id": "r-1"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "r-1"
    stream(server, key, secret_prompt)

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    requests = {e["request_id"]: e for e in lines if e.get("message") == "chat completion"}
    entry = requests["trace-42.a_b"]
    assert entry["tenant"] == f"{run_id}-a" and entry["status"] == 200
    assert entry["tier"] in ("fast", "reasoning") and entry["model"] == entry["tier"]
    assert entry["cache"] == "bypass" and entry["cost_usd"] > 0
    assert entry["total_ms"] >= entry["upstream_ms"] > 0 and entry["routing_ms"] > 0
    assert requests["r-1"]["status"] == 401 and requests["r-1"]["tenant"] is None
    assert sum(e["stream"] for e in requests.values()) == 1
    text = log_lines.getvalue()
    assert secret_prompt not in text
    assert key not in text and "sk-wrong" not in text and UPSTREAM_KEY not in text


def test_prompts_are_logged_only_when_the_server_asks(start, run_id, log_lines):
    server = start(log_prompts=True)
    response = post(server, f"sk-{run_id}-a", "please log this question")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (entry,) = [e for e in lines if e.get("request_id") == response.headers["x-request-id"]]
    assert entry["prompt"] == "please log this question"


def test_serve_takes_a_log_format():
    assert build_parser().parse_args(["serve"]).log_format == "json"
    assert build_parser().parse_args(["serve", "--log-format", "text"]).log_format == "text"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-format", "xml"])


def test_decisions_are_logged_without_prompts_unless_the_tenant_opts_in(start, run_id, tmp_path):
    opted = {"name": f"{run_id}-open", "api_keys": [f"sk-{run_id}-open"], "log_prompts": True}
    server = start(tenants=(opted,))
    secret = f"private question {uuid.uuid4().hex}"
    routed = post(server, f"sk-{run_id}-a", secret)
    post(server, f"sk-{run_id}-a", secret, model="fast")  # not routed: not a decision
    shared = [post(server, f"sk-{run_id}-open", text) for text in (CHAT, OLYMPIAD)]

    (entry,) = decisions(f"{run_id}-a", 1)
    assert secret not in json.dumps(entry) and "messages" not in entry
    assert entry["request_id"] == routed.headers["x-request-id"]
    assert entry["tier"] == routed.headers["x-thinkroute-tier"]
    assert entry["score"] == pytest.approx(float(routed.headers["x-thinkroute-score"]), abs=1e-4)
    threshold = float(routed.headers["x-thinkroute-threshold"])
    assert entry["threshold"] == pytest.approx(threshold, abs=1e-4)
    assert entry["cost_usd"] == pytest.approx(float(routed.headers["x-thinkroute-cost-usd"]))
    assert {"mode", "reason", "model", "effort", "cache", "tenant", "ts", "total_ms",
            "upstream_ms", "routing_ms"} <= entry.keys()  # fmt: skip
    logged = decisions(f"{run_id}-open", 2)
    assert [e["messages"][0]["content"] for e in logged] == [CHAT, OLYMPIAD]

    # Exported, the opted-in tenant's decisions are records the classifier reads.
    output = tmp_path / "decisions.jsonl"
    args = ["export-decisions", "--tenant", f"{run_id}-open", "--redis-url", REDIS_URL,
            "--output", str(output)]  # fmt: skip
    assert main(args) == 0
    records = list(read_records(output))
    assert [r.text for r in records] == [CHAT, OLYMPIAD]
    assert [r.expected_tier for r in records] == [r.headers["x-thinkroute-tier"] for r in shared]
    raw = [json.loads(line) for line in output.read_text().splitlines()]
    assert raw[0]["label"] == "router_decision"
    assert raw[0]["request_id"] == shared[0].headers["x-request-id"]
    # A tenant that did not opt in has nothing to train on; a future --since has nothing at all.
    assert main([*args[:2], f"{run_id}-a", *args[3:]]) == 0
    assert output.read_text() == ""
    assert main([*args, "--since", "2999-01-01"]) == 0
    assert output.read_text() == ""


def test_a_client_that_leaves_mid_stream_is_counted_with_its_cost(start, run_id, clean_upstream):
    server = start()
    clean_upstream.control("fast-model", chunk_delay_s=0.2)
    story = "tell me a long story about a cat"
    with open_stream(server, f"sk-{run_id}-a", story, model="fast") as response:
        next(response.iter_lines())  # one line, then hang up
    for _ in range(50):  # counted when the server notices the client is gone
        families = scrape(server)
        if value(families, "thinkroute_requests_total", status="499"):
            break
        time.sleep(0.1)
    assert value(families, "thinkroute_requests_total", tenant=f"{run_id}-a", tier="direct",
                 model="fast", status="499") == 1  # fmt: skip
    assert value(families, "thinkroute_spend_usd_total", tenant=f"{run_id}-a") > 0
