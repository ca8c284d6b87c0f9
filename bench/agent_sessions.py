"""Replayed coding-agent sessions, priced with prompt caching (issue 21): JSON on stdout.

    python bench/agent_sessions.py [--sessions 56] [--seed 21] [--budget-tokens 8000]
                                   [--redis-url redis://127.0.0.1:6379/0]

How the sessions are made (deterministically, from ``--seed``): half start from an easy
request ("rename a variable", "add a docstring", ...), half from a hard one ("find why the
totals differ", "fix the race in the worker", ...). Each session is 4 to 12 turns, as a coding
agent sends them to ``/v1/messages``: a Claude-Code-like system prompt and tool list, the
human request, then tool-relay turns: the assistant's ``tool_use`` (read a file, run the
tests, edit, grep) answered by a ``tool_result`` (a file of 40-160 lines, a test summary).
One session in five has a planted stall: three failing tool results in a row (``Error: ...``,
``is_error``); the turn after the third is where the router must escalate. The client sends
``thinking`` (``--budget-tokens``) on every turn, as Claude Code does.

Each turn's body, with Claude Code's ``metadata.user_id`` naming its session, is parsed
by the proxy's own Anthropic wire and answered by the real ``Router.acompletion``
(shipped classifier, the simulated upstream, Redis at ``REDIS_URL`` or 127.0.0.1:6379/0)
for three tenants: ``client_reasoning: respect`` (the default: every turn on the reasoning
tier, as asked), ``route`` with sessions (the default: a session stays on its model unless
the switch pays for the cache, ``router.policy.session_threshold``) and ``route`` with
``sessions: false``. The router prices turns with the same models' prices as below.

Pricing, from LiteLLM's bundled model map (LITELLM_LOCAL_MODEL_COST_MAP=True): fast tier
``claude-haiku-4-5`` without thinking, reasoning tier ``claude-sonnet-4-5`` with thinking.
Prompt tokens are the session text's characters / 4. Output per turn: 120 tokens (a tool
call or a short answer) on either tier, plus thinking tokens on the reasoning tier by effort
(low 800, medium 3000, high 8000; ``THINKING_TOKENS``), billed at the output price.
Prompt cache: when a turn goes to the same model as the session's previous turn, the
previous turn's prompt (the shared prefix) is read at ``cache_read_input_token_cost`` and
only the new tokens pay the input price; a model switch pays the full input price for the
whole prompt (the other model's cache is not counted on, even if still warm). Cache writes
are priced at the plain input price (their 25% premium is left out on both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import litellm  # noqa: E402
import redis  # noqa: E402

from classifier.model import DifficultyClassifier  # noqa: E402
from router.config import build_config  # noqa: E402
from router.http.wire import ANTHROPIC_WIRE  # noqa: E402
from router.policy import AGENT_STALLED, CONTEXT_WINDOW, SESSION_SWITCH_PAYS  # noqa: E402
from router.proxy import Router  # noqa: E402
from router.state.store import Store  # noqa: E402
from router.upstream.simulator import SimulatedUpstream  # noqa: E402

FAST_MODEL = "claude-haiku-4-5"
REASONING_MODEL = "claude-sonnet-4-5"
CHARS_PER_TOKEN = 4
ANSWER_TOKENS = 120  # a tool call or a short reply, either tier
# Reasons that state what a model switch gains (a score alone says nothing of the cache).
STATED_GAINS = frozenset({SESSION_SWITCH_PAYS, AGENT_STALLED, CONTEXT_WINDOW})
THINKING_TOKENS = {None: 3000, "minimal": 300, "low": 800, "medium": 3000, "high": 8000}

EASY = [
    "rename the variable `tmp` to `row_count` in {file}",
    "add a docstring to `{func}` in {file}",
    "fix the typo in the error message of `{func}`",
    "sort the imports in {file}",
    "add type hints to `{func}` in {file}",
    "make `{func}` return an empty list instead of None",
    "delete the unused helper `{func}` from {file}",
    "bump the version in pyproject.toml to 2.4.1",
]
HARD = [
    "find why the totals in the monthly report differ from the ledger by a few cents",
    "fix the race in the worker: two jobs sometimes write the same output file",
    "the cache returns stale entries after a config reload; find out why and fix it",
    "`{func}` deadlocks under load when the pool is exhausted; find the cause",
    "refactor {file} so the retry logic is shared by the HTTP and the queue clients "
    "without changing behaviour, and explain the invariants you rely on",
    "the migration loses rows when two tenants share a key; find the bug and prove the fix",
    "tests pass locally but fail in CI with a timezone-dependent off-by-one; track it down",
    "design a backoff for `{func}` that bounds total wait and never starves a tenant",
]
FILES = ["billing/report.py", "worker/pool.py", "core/cache.py", "api/handlers.py",
         "db/migrate.py", "utils/dates.py"]  # fmt: skip
FUNCS = ["load_rows", "settle", "acquire", "reload_config", "merge_totals", "next_run"]
TOOLS = [
    {"name": name, "description": f"{name.replace('_', ' ')} in the workspace. " * 8,
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"},
                                                       "command": {"type": "string"}}}}
    for name in ("read_file", "edit_file", "run_tests", "grep", "bash", "list_dir")
]  # fmt: skip
SYSTEM = (
    "You are an interactive coding agent working in the user's repository. Use the tools "
    "to read files, run commands and make edits; keep changes minimal; run the tests after "
    "an edit; never invent file contents. " * 40
)


@dataclass
class Session:
    """One replayed session: the request bodies of its turns, and where a stall is planted."""

    name: str
    hard: bool
    turns: list[dict[str, Any]] = field(default_factory=list)
    stall_turn: int | None = None  # index of the turn that follows three failures


def _code(rng: random.Random, lines: int) -> str:
    words = ["total", "row", "amount", "ledger", "job", "lock", "key", "value", "tenant"]
    out = []
    for i in range(lines):
        a, b = rng.choice(words), rng.choice(words)
        out.append(f"    {a}_{i} = {b}.get('{a}', 0) + {rng.randint(0, 99)}  # {b}")
    return "def f():\n" + "\n".join(out)


def make_sessions(count: int, seed: int, budget_tokens: int) -> list[Session]:
    rng = random.Random(seed)
    sessions = []
    for n in range(count):
        hard = n % 2 == 1
        task = rng.choice(HARD if hard else EASY).format(
            file=rng.choice(FILES), func=rng.choice(FUNCS)
        )
        session = Session(name=f"s{n:02d}", hard=hard)
        length = rng.randint(4, 12)
        stall_at = rng.randint(0, length - 4) if n % 5 == 2 else None
        messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
        failures = 0
        for turn in range(length):
            session.turns.append({
                "model": "auto", "max_tokens": budget_tokens + 4000, "system": SYSTEM,
                "metadata": {"user_id": f"user_bench_account_0_session_{seed}_{n:02d}"},
                "tools": TOOLS, "thinking": {"type": "enabled", "budget_tokens": budget_tokens},
                "messages": [dict(m) for m in messages],
            })  # fmt: skip
            if failures == 3:
                session.stall_turn = turn
                failures = 0
            tool = rng.choice(["read_file", "grep", "run_tests", "edit_file", "bash"])
            call_id = f"toolu_{n:02d}_{turn:02d}"
            failing = stall_at is not None and stall_at <= turn < stall_at + 3
            command = {"path": rng.choice(FILES), "command": f"{tool} step {turn}"}
            messages.append({"role": "assistant", "content": [
                {"type": "text", "text": f"Next I will {tool.replace('_', ' ')}."},
                {"type": "tool_use", "id": call_id, "name": tool, "input": command},
            ]})  # fmt: skip
            if failing:
                failures += 1
                line = rng.randint(5, 300)
                result = (f"Error: {tool} exited with code 1\nTraceback (most recent call "
                          f"last):\n  File \"{command['path']}\", line {line}")  # fmt: skip
                block = {"type": "tool_result", "tool_use_id": call_id, "content": result,
                         "is_error": True}  # fmt: skip
            else:
                failures = 0
                if tool == "run_tests":
                    result = f"{rng.randint(20, 200)} passed in {rng.uniform(1, 9):.2f}s"
                else:
                    result = _code(rng, rng.randint(40, 160))
                block = {"type": "tool_result", "tool_use_id": call_id, "content": result}
            messages.append({"role": "user", "content": [block]})
        sessions.append(session)
    return sessions


def _router(upstream_url: str, redis_url: str, run: str) -> Router:
    def model(name: str, upstream: str, priced_as: str) -> dict[str, Any]:
        prices = _prices(priced_as)
        info = {
            "input_cost_per_token": prices["input"],
            "output_cost_per_token": prices["output"],
            "cache_read_input_token_cost": prices["cache_read"],
        }
        params = {"model": f"openai/{upstream}", "api_base": upstream_url, "api_key": "k"}
        return {"model_name": name, "litellm_params": params, "model_info": info}

    config = build_config({
        "model_list": [model("fast", "fast-model", FAST_MODEL),
                       model("deep", "reasoning-model", REASONING_MODEL)],
        "tiers": {"fast": {"model": "fast"}, "reasoning": {"model": "deep"}},
        "tenants": [
            {"name": f"{run}-respect", "api_keys": [f"sk-{run}-respect"]},
            {"name": f"{run}-route", "api_keys": [f"sk-{run}-route"],
             "client_reasoning": "route"},
            {"name": f"{run}-nosessions", "api_keys": [f"sk-{run}-nosessions"],
             "client_reasoning": "route", "sessions": False},
        ],
        "cache": {"enabled": False},
        # What a turn really costs here: a tool call or a short reply, plus thinking.
        "output_token_estimates": {"fast": ANSWER_TOKENS,
                                   "reasoning": ANSWER_TOKENS + THINKING_TOKENS["medium"]},
        "dispatch": {"num_retries": 0, "timeout_s": 30},
    })  # fmt: skip
    store = Store.from_url(redis_url, timeout_s=5.0)
    return Router(config=config, classifier=DifficultyClassifier.load(), store=store)


def _prices(model: str) -> dict[str, float]:
    entry = litellm.model_cost[model]
    return {
        "input": entry["input_cost_per_token"],
        "output": entry["output_cost_per_token"],
        "cache_read": entry["cache_read_input_token_cost"],
    }


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps([body["system"], body["tools"], body["messages"]])
    return len(text) // CHARS_PER_TOKEN


async def replay(router: Router, sessions: list[Session], tenant_name: str) -> dict[str, Any]:
    tenant = next(t for t in router.config.tenants if t.name.endswith(f"-{tenant_name}"))
    prices = {"fast": _prices(FAST_MODEL), "reasoning": _prices(REASONING_MODEL)}
    spend = 0.0
    switches: list[int] = []
    over_one_unstated = 0  # sessions switching more than once, some switch without a gain
    reasons: dict[str, int] = {}
    tiers = {"fast": 0, "reasoning": 0}
    stalls = escalated = 0
    cache_lost_usd = 0.0
    stall_reasons: dict[str, int] = {}
    switch_reasons: dict[str, int] = {}
    by_kind = {kind: {"fast": 0, "reasoning": 0} for kind in ("easy", "hard")}
    for session in sessions:
        previous_tier: str | None = None
        previous_prompt = 0
        count = unstated = 0
        for index, body in enumerate(session.turns):
            completion = await router.acompletion(ANTHROPIC_WIRE.parse(body), tenant=tenant)
            decision = completion.decision
            tier = "fast" if completion.served.target.model_name == "fast" else "reasoning"
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
            tiers[tier] += 1
            price = prices[tier]
            prompt = _prompt_tokens(body)
            cached = min(previous_prompt, prompt) if tier == previous_tier else 0
            if previous_tier is not None and tier != previous_tier:
                count += 1
                switch_reasons[decision.reason] = switch_reasons.get(decision.reason, 0) + 1
                unstated += decision.reason not in STATED_GAINS
                cache_lost_usd += min(previous_prompt, prompt) * (
                    price["input"] - price["cache_read"]
                )
            output = ANSWER_TOKENS
            if tier == "reasoning":
                output += THINKING_TOKENS[decision.reasoning_effort]
            spend += (
                cached * price["cache_read"]
                + (prompt - cached) * price["input"]
                + output * price["output"]
            )
            if index == session.stall_turn:
                # Escalated: on the reasoning tier, said as agent_stalled, or as the client's
                # ceiling when the step up was capped at the client's effort (policy.cap_reasoning).
                stalls += 1
                escalated += tier == "reasoning" or decision.reason == AGENT_STALLED
                stall_reasons[decision.reason] = stall_reasons.get(decision.reason, 0) + 1
            by_kind["hard" if session.hard else "easy"][tier] += 1
            previous_tier, previous_prompt = tier, prompt
        switches.append(count)
        over_one_unstated += count > 1 and unstated > 0
    return {
        "spend_usd": round(spend, 4),
        "turns_by_tier": tiers,
        "turns_by_task": by_kind,
        "reasons": dict(sorted(reasons.items())),
        "model_switches_per_session": {
            "max": max(switches),
            "mean": round(statistics.fmean(switches), 2),
            "sessions_over_one": sum(s > 1 for s in switches),
            "sessions_over_one_without_stated_gain": over_one_unstated,
        },
        "switch_reasons": dict(sorted(switch_reasons.items())),
        "cache_lost_to_switches_usd": round(cache_lost_usd, 4),
        "planted_stalls": stalls,
        "stalls_escalated": escalated,
        "stall_turn_reasons": stall_reasons,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sessions = make_sessions(args.sessions, args.seed, args.budget_tokens)
    run_id = f"bench-agents-{os.getpid()}"
    with SimulatedUpstream() as upstream:
        router = _router(upstream.base_url, args.redis_url, run_id)
        try:
            respect = await replay(router, sessions, "respect")
            route = await replay(router, sessions, "route")
            unsessioned = await replay(router, sessions, "nosessions")
        finally:
            await router.aclose()
            _forget(args.redis_url, run_id)
    cut = 1 - route["spend_usd"] / respect["spend_usd"]
    return {
        "sessions": len(sessions),
        "hard_sessions": sum(s.hard for s in sessions),
        "turns": sum(len(s.turns) for s in sessions),
        "models": {"fast": FAST_MODEL, "reasoning": REASONING_MODEL},
        "thinking_budget_tokens": args.budget_tokens,
        "respect": respect,
        "route": route,
        "route_without_sessions": unsessioned,
        "spend_cut": round(cut, 3),
        "spend_cut_without_sessions": round(1 - unsessioned["spend_usd"] / respect["spend_usd"], 3),
        "targets": {
            "spend_cut_at_least_30pct": cut >= 0.30,
            "no_second_switch_without_stated_gain": route["model_switches_per_session"][
                "sessions_over_one_without_stated_gain"
            ]
            == 0,
            "every_stall_escalated": route["stalls_escalated"] == route["planted_stalls"],
        },
    }


def _forget(redis_url: str, run_id: str) -> None:
    """Delete the run's keys (its tenants' sessions, budgets and logs)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"thinkroute:{{{run_id}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=56)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--budget-tokens", type=int, default=8000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
