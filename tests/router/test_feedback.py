"""POST /v1/feedback, its SDK call, and the export `thinkroute train` learns from.

Real HTTP, real Redis, the simulated upstream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from classifier.data import read_records
from router.cli import main
from router.client import afeedback, feedback
from router.config import ServerConfig, TenantConfig
from router.errors import NotFoundError
from router.http.server import create_app
from router.observe.metrics import RequestOutcome
from router.policy import RouteDecision
from router.proxy import Router
from router.state.decision_log import DecisionLog, decision_ids_key
from router.state.feedback import FEEDBACK_SCHEMA, FIELDS, Feedback, record_feedback
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import REDIS_URL, proxy_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
)

CHAT = "what's a nice name for a cat?"
OLYMPIAD = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n for all integers m and n."
)


@pytest.fixture
def proxy(serve_on_redis, clean_upstream, run_id) -> BackgroundServer:
    """Tenants ``{run}-a`` and ``{run}-b`` keep their chat text; ``{run}-quiet`` does not."""
    tenants = [
        {"name": f"{run_id}-{name}", "api_keys": [f"sk-{run_id}-{name}"],
         "log_prompts": name != "quiet"}
        for name in ("a", "b", "quiet")
    ]  # fmt: skip
    config = proxy_config(clean_upstream.base_url, tenants=tenants)
    config = config.model_copy(update={"server": ServerConfig()})
    return serve_on_redis(config)


def ask(server: BackgroundServer, key: str, text: str, **body: Any) -> httpx.Response:
    payload = {"model": "auto", "messages": [{"role": "user", "content": text}], **body}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=payload,
                          headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return response


def send(server: BackgroundServer, key: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/v1/feedback", content=content,
                      headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip


def export(run_id: str, tenant: str, output, *flags: str) -> list[dict[str, Any]]:
    args = ["export-decisions", "--tenant", f"{run_id}-{tenant}", "--redis-url", REDIS_URL,
            "--output", str(output), *flags]  # fmt: skip
    assert main(args) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_feedback_round_trip_last_score_wins_and_exports_as_an_outcome(proxy, run_id, tmp_path):
    key = f"sk-{run_id}-a"
    answer = ask(proxy, key, OLYMPIAD)
    request_id, served = answer.headers["x-request-id"], answer.headers["x-thinkroute-tier"]
    other = "fast" if served == "reasoning" else "reasoning"

    kept = send(proxy, key, {"request_id": request_id, "score": 0.25, "comment": "half right"})
    assert kept.status_code == 200, kept.text
    assert kept.json() | {"ts": None} == {
        "object": "feedback", "request_id": request_id, "tier": served, "score": 0.25,
        "comment": "half right", "served_tier": served, "ts": None,
    }  # fmt: skip
    assert send(proxy, key, {"request_id": request_id, "score": 1}).status_code == 200
    # The other tier's answer, asked for and graded by the client: which model was better.
    graded = send(proxy, key, {"request_id": request_id, "score": 0, "tier": other})
    assert graded.json()["tier"] == other
    ask(proxy, key, CHAT)  # no feedback: left out of a --feedback-only export

    (record,) = export(run_id, "a", tmp_path / "scored.jsonl", "--feedback-only")
    assert record["request_id"] == request_id and record["label"] == "feedback"
    assert record[served] == {"score": 1.0} and record[other] == {"score": 0.0}  # last one won
    assert "comment" not in record["decision"]["feedback"][served]  # replaced as a whole
    (read,) = read_records(tmp_path / "scored.jsonl")
    assert (read.pair, read.text) == ("fast/reasoning", OLYMPIAD)
    assert read.gap == (1.0 if served == "reasoning" else -1.0)
    # Without the flag the unscored decision comes too, labelled with the router's choice.
    everything = export(run_id, "a", tmp_path / "all.jsonl")
    assert [r["label"] for r in everything] == ["feedback", "router_decision"]


def test_a_tenant_reaches_only_its_own_logged_requests(proxy, run_id):
    mine = ask(proxy, f"sk-{run_id}-a", CHAT).headers["x-request-id"]
    for key, request_id in ((f"sk-{run_id}-b", mine), (f"sk-{run_id}-a", "never-sent-42")):
        response = send(proxy, key, {"request_id": request_id, "score": 1.0})
        assert response.status_code == 404
        error = response.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "request_not_found", "request_id", "invalid_request_error"
        )  # fmt: skip
    # The other tenant's attempt left nothing behind for the owner's export.
    assert send(proxy, f"sk-{run_id}-a", {"request_id": mine, "score": 0.5}).status_code == 200
    # A request to a named model is not routed, so not a decision to score.
    pinned = ask(proxy, f"sk-{run_id}-a", CHAT, model="fast").headers["x-request-id"]
    assert send(proxy, f"sk-{run_id}-a", {"request_id": pinned, "score": 1}).status_code == 404
    # A tenant that keeps no chat text is told why its feedback could not be used.
    quiet = ask(proxy, f"sk-{run_id}-quiet", CHAT).headers["x-request-id"]
    refused = send(proxy, f"sk-{run_id}-quiet", {"request_id": quiet, "score": 1.0})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "prompt_not_logged"
    assert "log_prompts: true" in refused.json()["error"]["message"]
    assert send(proxy, "sk-nobody-0123456789", {"request_id": mine, "score": 1}).status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        ([1, 2], None),
        ({"score": 1.0}, "request_id"),
        ({"request_id": "a b", "score": 1.0}, "request_id"),
        ({"request_id": "x", "score": 1.5}, "score"),
        ({"request_id": "x", "score": "1"}, "score"),
        ({"request_id": "x", "score": True}, "score"),
        ({"request_id": "x", "score": float("nan")}, "score"),
        ({"request_id": "x"}, "score"),
        ({"request_id": "x", "score": 1, "tier": "medium"}, "tier"),
        ({"request_id": "x", "score": 1, "comment": "x" * 2001}, "comment"),
        ({"request_id": "x", "score": 1, "scroe": 1}, "scroe"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(proxy, run_id, body, param):
    if isinstance(body, dict) and body.get("score") != body.get("score"):
        body = json.dumps(body).encode()  # NaN: not JSON, as a careless client sends it
    response = send(proxy, f"sk-{run_id}-a", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_the_sdk_call_scores_an_answer_from_the_openai_client(proxy, run_id, tmp_path):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=f"sk-{run_id}-b", max_retries=0)
    answer = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": OLYMPIAD}]
    )
    receipt = feedback(client, answer._request_id, score=0.0, comment="wrong")
    assert receipt["request_id"] == answer._request_id and receipt["score"] == 0.0
    with pytest.raises(openai.NotFoundError):
        feedback(client, "never-sent-42", score=1.0)
    with pytest.raises(openai.BadRequestError):
        feedback(client, answer._request_id, score=2.0)

    async def from_async() -> Any:
        async with openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=f"sk-{run_id}-b") as c:
            return await afeedback(c, answer._request_id, score=1.0, tier="reasoning")

    assert asyncio.run(from_async())["tier"] == "reasoning"
    (record,) = export(run_id, "b", tmp_path / "b.jsonl", "--feedback-only")
    assert record["reasoning"] == {"score": 1.0}


@pytest.mark.anyio
async def test_the_id_index_is_capped_with_the_log(store, run_id):
    log = DecisionLog(store, max_entries=3)
    tenant = TenantConfig(name=f"{run_id}-cap", api_keys=["sk-cap-0123456789"], log_prompts=True)
    decision = RouteDecision(tier="fast", score=0.1, threshold=0.5, mode="balanced", reason="r")
    for i in range(5):
        outcome = RequestOutcome(f"r{i}", started_at=0.0, tenant=tenant.name, decision=decision)
        log.submit(outcome, messages=[{"role": "user", "content": f"question {i}"}])
    await log.aclose()
    assert await store.client.zcard(decision_ids_key(tenant.name)) == 3
    with pytest.raises(NotFoundError):  # the oldest went with the trimmed entries
        await record_feedback(log, tenant, Feedback("r0", 1.0))
    kept = await record_feedback(log, tenant, Feedback("r4", 1.0))
    assert (kept["tier"], kept["served_tier"]) == ("fast", "fast")


@pytest.mark.anyio
async def test_feedback_without_a_decision_log_says_so():
    tenant = TenantConfig(name="t", api_keys=["sk-t-0123456789"])
    with pytest.raises(NotFoundError, match="decision_log"):
        await record_feedback(None, tenant, Feedback("r1", 1.0))


def test_exported_feedback_trains_a_head_beside_other_data(proxy, run_id, tmp_path):
    key = f"sk-{run_id}-a"
    questions = [OLYMPIAD, CHAT, f"{OLYMPIAD} Also for n = 5.", "name a colour"]
    for i, text in enumerate(questions):
        request_id = ask(proxy, key, text).headers["x-request-id"]
        assert send(proxy, key, {"request_id": request_id, "score": i % 2}).status_code == 200
        if i == 0:  # one of them with both answers scored
            body = {"request_id": request_id, "score": 1, "tier": "reasoning"}
            assert send(proxy, key, body).status_code == 200
    exported = tmp_path / "acme.jsonl"
    assert len(export(run_id, "a", exported, "--feedback-only")) == len(questions)
    shipped = tmp_path / "shipped.jsonl"  # stands in for ../shared/data, which tests never read
    shipped.write_text("".join(json.dumps(r) + "\n" for r in _small_training_set()))

    out = tmp_path / "head"
    args = ["train", "--data", str(shipped), "--data", str(exported), "--out", str(out), "--quiet"]
    assert main(args) == 0
    counts = json.loads((out / "head.json").read_text())["training"]["records"]
    assert counts[f"thinkroute:{run_id}-a:fast/reasoning"] == len(questions)


def _small_training_set() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i in range(30):
        hard = i % 2 == 0
        records.append({
            "id": f"outcome/{i}", "source": "synthetic",
            "prompt": f"Prove that {i}^n - 1 is divisible by {i + 1}." if hard else f"Hi {i}!",
            "fast": {"score": 0.0 if hard and i % 4 == 0 else 1.0}, "reasoning": {"score": 1.0},
        })  # fmt: skip
    for i in range(10):
        tier = "reasoning" if i % 2 else "fast"
        text = f"Find all primes p with p^2 + {i} prime." if i % 2 else f"Greet guest {i}."
        records.append({"id": f"prompt/{i}", "source": "s", "prompt": text, "expected_tier": tier})
    return records


def test_the_published_schema_names_exactly_the_fields_feedback_takes():
    app = create_app(Router(config=proxy_config("http://127.0.0.1:9")), load_classifier=False)
    body = app.openapi()["paths"]["/v1/feedback"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema == FEEDBACK_SCHEMA and tuple(schema["properties"]) == FIELDS
