"""Per-tenant heads: trained from graded shadow pairs, champion/challenger, hot-loaded, rolled back.

The graded pairs are written as the shadow runner writes them (features, no text);
training, activation, rollback and routing go through the real proxy and Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from classifier.tenant_head import TenantHead, compare_heads, fit_tenant_head, is_held_out
from router.cli import main as cli_main
from router.config import build_config
from router.errors import ConfigError
from router.policy import threshold_for_quality_kept
from router.state.heads import HeadStore
from router.state.shadow_records import GradedPair, ShadowRecords
from tests.router.conftest import REDIS_URL, proxy_config

ADMIN_KEY = "sk-admin-heads-0123456789"
ANIMALS = ["cat", "dog", "parrot", "hamster", "goldfish", "rabbit", "turtle", "pony", "ferret",
           "canary", "lizard", "goat", "horse", "duck", "owl", "snake", "frog", "piglet",
           "kitten", "puppy", "llama", "alpaca", "donkey", "chicken", "goose"]  # fmt: skip
THINGS = ["tea", "rain", "autumn", "the sea", "a city", "mountains", "snow", "spring",
          "a garden", "coffee", "the moon", "a river", "morning", "bread", "a library"]  # fmt: skip


def easy(i: int) -> list[dict[str, str]]:
    if i % 2:
        return [{"role": "user", "content": f"what's a nice name for a {ANIMALS[i % 25]}? #{i}"}]
    return [{"role": "user", "content": f"Write a short haiku about {THINGS[i % 15]}, please {i}."}]


def hard(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Let n be a positive integer. Find all functions f from "
             f"the integers to the integers such that f(m + f(n)) = f(m) + {i + 2}n for all "
             f"integers m and n, and prove that there are no others."}]  # fmt: skip


async def write_pairs(store, classifier, tenant: str, *, chats_need_reasoning: bool, n: int = 45):
    """Graded pairs as the shadow runner keeps them for a tenant without log_prompts.

    ``chats_need_reasoning``: on this tenant's chats the fast tier fails (traffic the
    shipped head misjudges); otherwise only the hard prompts gain from reasoning.
    """
    records = ShadowRecords(store)
    for i in range(n):
        for messages, is_hard in ((easy(i), False), (hard(i), True)):
            gains = (not is_hard) if chats_need_reasoning else is_hard
            fast, reasoning = (0.0, 1.0) if gains else (1.0, 1.0)
            score = float(classifier.score_messages(messages))
            features = [round(float(x), 6) for x in classifier.input_features(messages)]
            record = {"tenant": tenant, "served_tier": "fast", "fast": fast,
                      "reasoning": reasoning, "graded_by": "agreement", "score": score,
                      "features": features}  # fmt: skip
            await records.add(tenant, GradedPair("fast", fast, reasoning, score), record)


def heads_proxy(serve_on_redis, upstream, run_id, **tenant):
    config = heads_config(upstream, run_id, **tenant)
    return serve_on_redis(config, admin_key=ADMIN_KEY, metrics_key=ADMIN_KEY)


def heads_config(upstream, run_id, **tenant: Any):
    raw = proxy_config(upstream.base_url).model_dump()
    raw["tenants"] += [
        {"name": f"{run_id}a", "api_keys": [f"sk-{run_id}-a"], **tenant},
        {"name": f"{run_id}b", "api_keys": [f"sk-{run_id}-b"]},
    ]
    raw["heads"] = {"refresh_s": 0}  # every request looks: the test needs no waiting
    return build_config(raw)


def admin(server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body, timeout=120,
                         headers={"authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip


def route(server, key: str, messages) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/route", json={"model": "auto", "messages": messages},
                          headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


PROBE = [{"role": "user", "content": "what's a nice name for a cat? #999"}]


# -- the head itself, pure -------------------------------------------------------------


def test_with_nothing_to_learn_a_tenant_head_stays_the_shipped_head():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    base = rng.uniform(0.1, 0.9, 60)
    # The shipped score is right on average here: the label follows it.
    reasoning = (rng.random(60) < base).astype(float)
    head = fit_tenant_head(X, base, np.zeros(60), reasoning, penalties=(1e6,))
    assert np.allclose(head.score(X, base), base, atol=0.1)


def test_a_stored_head_round_trips_and_a_damaged_one_is_refused():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    head = fit_tenant_head(X, np.full(40, 0.5), np.zeros(40), (X[:, 0] > 0).astype(float))
    again = TenantHead.from_numbers(head.to_numbers(), n_features=4)
    assert np.allclose(again.score(X, np.full(40, 0.5)), head.score(X, np.full(40, 0.5)))
    with pytest.raises(ValueError, match="shape"):
        TenantHead.from_numbers(head.to_numbers(), n_features=5)
    with pytest.raises(ValueError, match="format"):
        TenantHead.from_numbers({**head.to_numbers(), "format": "pickle"}, n_features=4)
    with pytest.raises(ValueError, match="non-finite"):
        TenantHead.from_numbers({**head.to_numbers(), "intercept": float("nan")}, n_features=4)


def test_the_held_out_split_is_the_same_every_time():
    ids = [f"t:{i}-0" for i in range(2000)]
    first = [is_held_out(i, 0.3) for i in ids]
    assert first == [is_held_out(i, 0.3) for i in ids]
    assert 0.25 < np.mean(first) < 0.35


def test_a_challenger_that_only_ties_does_not_win():
    fast, reasoning = np.array([0.0, 1.0, 1.0, 0.0]), np.ones(4)
    perfect = np.array([0.9, 0.1, 0.2, 0.8])
    assert compare_heads(perfect, perfect * 0.5, fast, reasoning)["challenger_wins"] is False
    assert compare_heads(1 - perfect, perfect, fast, reasoning)["challenger_wins"] is True


@pytest.mark.parametrize(
    ("pairs", "target", "threshold"),
    [
        # score, fast, reasoning: the hard prompt (0.9) needs reasoning, the others do not.
        ([(0.9, 0.0, 1.0), (0.5, 1.0, 1.0), (0.2, 1.0, 1.0)], 0.97, 0.9),
        ([(0.9, 0.0, 1.0), (0.5, 1.0, 1.0), (0.2, 1.0, 1.0)], 0.6, 1.0),  # all fast keeps 2/3
        ([(0.9, 1.0, 1.0), (0.5, 0.0, 1.0), (0.2, 1.0, 1.0)], 0.97, 0.5),
        ([(0.9, 0.0, 1.0), (0.9, 0.0, 1.0), (0.2, 0.0, 1.0)], 0.97, 0.2),  # everything
        ([(0.9, 1.0, 0.0)], 0.97, None),  # reasoning never scored: no ratio to keep
    ],
)
def test_a_quality_target_picks_the_cheapest_threshold_that_keeps_it(pairs, target, threshold):
    assert threshold_for_quality_kept(pairs, target) == threshold


def test_a_quality_target_outside_zero_to_one_is_refused():
    raw = {"tenants": [{"name": "a", "target_quality_kept": 1.5}]}
    with pytest.raises(ConfigError, match="target_quality_kept"):
        build_config(raw)


# -- through the proxy and Redis ----------------------------------------------------------


@pytest.mark.anyio
async def test_an_activated_head_changes_its_tenants_scores_on_every_replica_and_rolls_back(
    serve_on_redis, clean_upstream, run_id, store, classifier
):
    server = heads_proxy(serve_on_redis, clean_upstream, run_id)
    replica = heads_proxy(serve_on_redis, clean_upstream, run_id)  # another pod, same Redis
    key_a, key_b = f"sk-{run_id}-a", f"sk-{run_id}-b"
    before_a, before_b = route(server, key_a, PROBE), route(server, key_b, PROBE)
    assert route(replica, key_a, PROBE)["score"] == before_a["score"]
    assert before_a["tier"] == "fast"  # the shipped head: a chat goes fast

    await write_pairs(store, classifier, f"{run_id}a", chats_need_reasoning=True)
    trained = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/train")
    assert trained.status_code == 201, trained.text
    report = trained.json()
    assert report["champion"] == "shipped" and report["version"] == "v1"
    assert report["challenger_apgr"] > report["champion_apgr"]
    assert report["activated"] is True and report["active"] == "v1"

    after_a = route(server, key_a, PROBE)
    assert after_a["score"] > before_a["score"] + 0.2  # this tenant's chats now look hard
    assert route(replica, key_a, PROBE)["score"] == after_a["score"]  # the replica saw it
    assert route(server, key_b, PROBE)["score"] == before_b["score"]  # not another tenant's

    listed = admin(server, "GET", f"/v1/tenants/{run_id}a/heads").json()
    assert listed["active"] == "v1" and listed["rollback_to"] == ["shipped"]
    (version,) = listed["versions"]
    assert version["comparison"]["challenger_apgr"] == report["challenger_apgr"]
    assert "head" not in version  # figures, not the numbers

    rolled = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/rollback")
    assert rolled.status_code == 200 and rolled.json()["active"] == "shipped"
    assert route(server, key_a, PROBE)["score"] == before_a["score"]
    assert route(replica, key_a, PROBE)["score"] == before_a["score"]
    again = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/rollback")
    assert again.status_code == 400 and again.json()["error"]["code"] == "nothing_to_roll_back"


@pytest.mark.anyio
async def test_a_worse_challenger_is_not_activated(
    serve_on_redis, clean_upstream, run_id, store, classifier
):
    server = heads_proxy(serve_on_redis, clean_upstream, run_id)
    tenant = f"{run_id}a"
    before = route(server, f"sk-{run_id}-a", PROBE)["score"]
    # Trained on traffic where chats needed reasoning, kept without activating ...
    await write_pairs(store, classifier, tenant, chats_need_reasoning=True)
    kept = admin(server, "POST", f"/v1/tenants/{tenant}/heads/train", {"activate": False})
    assert kept.json()["activated"] is False and kept.json()["version"] == "v1"
    # ... then the tenant's traffic turns out as the shipped head expects.
    await store.call(store.client.delete(f"thinkroute:{{{tenant}}}:shadow:records"))
    await write_pairs(store, classifier, tenant, chats_need_reasoning=False)
    refused = admin(server, "POST", f"/v1/tenants/{tenant}/heads/v1/activate")
    assert refused.status_code == 200, refused.text
    figures = refused.json()
    assert figures["challenger_apgr"] < figures["champion_apgr"]
    assert figures["activated"] is False and figures["active"] == "shipped"
    # A fresh challenger on this traffic cannot beat a shipped head that ranks it perfectly.
    trained = admin(server, "POST", f"/v1/tenants/{tenant}/heads/train").json()
    assert trained["activated"] is False
    assert trained["challenger_apgr"] <= trained["champion_apgr"]
    assert route(server, f"sk-{run_id}-a", PROBE)["score"] == before
    assert await HeadStore(store).active_version(tenant) is None


def test_heads_admin_routes_need_the_admin_key_and_a_known_tenant(
    serve_on_redis, clean_upstream, run_id
):
    server = heads_proxy(serve_on_redis, clean_upstream, run_id)
    as_tenant = httpx.get(f"{server.url}/v1/tenants/{run_id}a/heads", timeout=10,
                          headers={"authorization": f"Bearer sk-{run_id}-a"})  # fmt: skip
    assert as_tenant.status_code in (401, 403)
    assert admin(server, "GET", f"/v1/tenants/{run_id}zz/heads").status_code == 404
    few = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/train")
    assert few.status_code == 400 and few.json()["error"]["code"] == "not_enough_records"
    bad = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/train", {"activate": "yes"})
    assert bad.status_code == 400
    missing = admin(server, "POST", f"/v1/tenants/{run_id}a/heads/v9/activate")
    assert missing.status_code == 404


@pytest.mark.anyio
async def test_a_quality_target_sets_the_threshold_from_the_tenants_pairs(
    serve_on_redis, clean_upstream, run_id, store, classifier
):
    server = heads_proxy(serve_on_redis, clean_upstream, run_id, target_quality_kept=0.97)
    tenant = f"{run_id}a"
    shipped = route(server, f"sk-{run_id}-b", PROBE)["threshold"]
    assert route(server, f"sk-{run_id}-a", PROBE)["threshold"] == shipped  # no pairs: the mode
    await write_pairs(store, classifier, tenant, chats_need_reasoning=False)
    calibrate = ["heads", "calibrate", "--tenant", tenant, "--redis-url", REDIS_URL]
    assert await asyncio.to_thread(cli_main, calibrate) == 0
    decision = route(server, f"sk-{run_id}-a", PROBE)
    curve = await HeadStore(store).curve(tenant)
    assert decision["threshold"] == threshold_for_quality_kept(curve, 0.97)
    # Only the hard prompts gain: the cheapest threshold sends no chat to reasoning, and
    # just enough hard prompts (0.97 of 90 keeps 88: 43 of the 45 hard ones; prompts with
    # the same score go together, so a tie may carry more).
    threshold = decision["threshold"]
    assert max(s for s, f, r in curve if r == f) < threshold
    gaining = [s for s, f, r in curve if r > f]
    assert sum(1 for s in gaining if s >= threshold) >= 43
    higher = [s for s in gaining if s > threshold]
    assert not higher or sum(1 for s in gaining if s >= min(higher)) < 43  # the cheapest
    assert decision["tier"] == "fast"
    assert route(server, f"sk-{run_id}-a", hard(1))["tier"] == "reasoning"


@pytest.mark.anyio
async def test_the_cli_trains_lists_and_rolls_back(run_id, store, classifier, capsys):
    tenant = f"{run_id}a"
    await write_pairs(store, classifier, tenant, chats_need_reasoning=True)
    base = ["--tenant", tenant, "--redis-url", REDIS_URL]
    assert await asyncio.to_thread(cli_main, ["heads", "train", *base]) == 0
    assert '"activated": true' in capsys.readouterr().out
    assert await asyncio.to_thread(cli_main, ["heads", "list", *base]) == 0
    assert '"active": "v1"' in capsys.readouterr().out
    assert await asyncio.to_thread(cli_main, ["heads", "rollback", *base]) == 0
    assert await HeadStore(store).active_version(tenant) is None
