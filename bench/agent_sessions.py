"""What routing a coding agent's turns saves: ``client_reasoning: respect`` vs ``route``.

    HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/agent_sessions.py

A coding agent (Claude Code, Codex) sends thinking on every call. With ``respect`` every
turn goes to the reasoning tier at the client's effort; with ``route`` the shipped head
scores each turn (a tool-relay turn is scored on its last human request) under the
client's effort as a ceiling, and a stalled run (three failing tool results) goes up.

The sessions are written by this script, deterministically (``--seed``): ``--sessions``
of them, half easy tasks (rename, docstring, typo, config tweak), half hard ones
(reconcile totals, find a race, a loop that never ends, an off-by-one in pagination),
each a human request and 3 to 10 tool-relay turns (a file read, a test run); every
fifth session has a planted stall, three failing test runs in a row. Each turn is decided
in-process by ``Router.plan_route`` (the proxy's own path; no model is called).

Spend is simulated with list prices from LiteLLM's bundled map (``--fast`` Claude Haiku
4.5, ``--reasoning`` Claude Sonnet 4.5 with thinking), prompt caching counted: a turn
on the same model as the turn before reads the previous prompt at the cache-read price
and writes only its new part; a turn on another model writes its whole prompt (cache
write price). Tokens are characters / 4, plus an agent system prompt of
``--system-tokens``; each answer is ``--answer-tokens`` plus, on the reasoning tier,
thinking tokens by effort (``THINKING_TOKENS``).

Prints one JSON object: spend under each policy and the cut, model switches per session
(and those without a stated reason: a switch whose decision reason is not a rule such as
``agent_stalled``), and how many planted stalls were escalated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any

from classifier.model import DifficultyClassifier
from router.config import build_config
from router.proxy import Router

EASY = [
    "Rename the variable `tmp` to `total` in src/report.py.",
    "Add a docstring to `parse_args` in cli.py.",
    "Fix the typo 'recieve' in the README.",
    "Bump the copyright year in LICENSE to 2026.",
    "Change the default port in config.yaml from 8000 to 8080.",
    "Add `*.log` to .gitignore.",
    "Sort the imports in utils/strings.py.",
    "Make the log message in upload() say 'uploaded' instead of 'done'.",
]
HARD = [
    "Our monthly invoice totals in the report are off by a few cents against the ledger. "
    "Find where the rounding goes wrong and fix it so they reconcile exactly.",
    "The worker pool sometimes processes the same job twice under load. Find the race in "
    "worker.py and fix it without a global lock.",
    "Why does the retry loop in client.py never end when the server returns 503 and the "
    "retry budget is zero? Fix it and add a test.",
    "Pagination skips one record at every page boundary when page_size does not divide the "
    "total. Find the off-by-one and prove the fix covers every page size.",
    "The scheduler must place 12 jobs on 3 machines so that no two jobs of the same team run "
    "together and every deadline holds; our greedy pass fails on the attached case. Fix it.",
    "Two services disagree about a user's balance after concurrent transfers. Trace the "
    "sequence of writes that loses an update and fix the transaction isolation.",
]
FILES = ["src/report.py", "worker.py", "client.py", "api/pages.py", "tests/test_core.py"]
FAILING = "Error: FAILED tests/test_core.py::test_totals - AssertionError: 1200.03 != 1200.00"
PASSING = "collected 48 items\n48 passed in 3.20s"
THINKING_TOKENS = {"minimal": 512, "low": 1024, "medium": 4096, "high": 8192, None: 4096}
CLIENT_EFFORT = "high"  # Claude Code's thinking on every call


@dataclass
class Session:
    hard: bool
    stall_at: int | None  # the turn whose last three tool results failed
    turns: list[list[dict[str, Any]]] = field(default_factory=list)  # messages per turn


def make_sessions(count: int, seed: int) -> list[Session]:
    rng = random.Random(seed)
    sessions = []
    for k in range(count):
        hard = k % 2 == 1
        request = rng.choice(HARD if hard else EASY)
        length = rng.randint(3, 10)
        stall_at = rng.randint(3, length) if k % 5 == 4 else None
        messages: list[dict[str, Any]] = [{"role": "user", "content": request}]
        session = Session(hard, stall_at)
        session.turns.append(list(messages))
        for turn in range(1, length + 1):
            call_id = f"call_{k}_{turn}"
            path = rng.choice(FILES)
            fails = stall_at is not None and stall_at - 2 <= turn <= stall_at
            command = "pytest -q" if fails or turn % 3 == 0 else f"cat {path}"
            output = FAILING if fails else (PASSING if command == "pytest -q" else _file(rng))
            arguments = json.dumps({"command": command, "turn": turn})
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "bash", "arguments": arguments}}]})  # fmt: skip
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
            session.turns.append(list(messages))
        sessions.append(session)
    return sessions


def _file(rng: random.Random) -> str:
    lines = [f"def step_{i}(x):\n    return x + {rng.randint(1, 9)}\n" for i in range(40)]
    return "\n".join(lines)


def prices(model: str) -> dict[str, float]:
    import litellm

    info = litellm.model_cost[model]
    return {
        "input": info["input_cost_per_token"],
        "output": info["output_cost_per_token"],
        "cache_read": info.get("cache_read_input_token_cost") or info["input_cost_per_token"],
        "cache_write": info.get("cache_creation_input_token_cost") or info["input_cost_per_token"],
    }


def tokens(messages: list[dict[str, Any]], system_tokens: int) -> int:
    return system_tokens + sum(len(json.dumps(m)) for m in messages) // 4


async def replay(
    router: Router, tenant: Any, session: Session, args: argparse.Namespace,
    cost: dict[str, dict[str, float]],
) -> dict[str, Any]:  # fmt: skip
    spend, switches, unexplained, previous, reasoning_turns = 0.0, 0, 0, None, 0
    escalated_stall = False
    cached = 0  # prompt tokens the provider holds for the model of the previous turn
    for index, messages in enumerate(session.turns):
        request = {"model": args.model, "messages": messages, "reasoning_effort": CLIENT_EFFORT}
        decision = await router.plan_route(request, tenant)
        tier = "reasoning" if decision.tier == "reasoning" else "fast"
        reasoning_turns += tier == "reasoning"
        price = cost[tier]
        prompt = tokens(messages, args.system_tokens)
        if previous is not None and tier != previous:
            switches += 1
            cached = 0  # another model: its cache does not hold this prefix
            if decision.reason in ("score_at_or_above_threshold", "score_below_threshold"):
                unexplained += 1
        reused = min(cached, prompt)
        spend += reused * price["cache_read"] + (prompt - reused) * price["cache_write"]
        output = args.answer_tokens
        if tier == "reasoning":
            output += THINKING_TOKENS.get(decision.reasoning_effort, THINKING_TOKENS[None])
        spend += output * price["output"]
        cached, previous = prompt, tier
        if session.stall_at is not None and index == session.stall_at:
            escalated_stall = decision.reason == "agent_stalled"
    return {"spend": spend, "switches": switches, "unexplained": unexplained,
            "stall_escalated": escalated_stall,
            "reasoning_share": reasoning_turns / len(session.turns)}  # fmt: skip


def config(reasoning_effort: str) -> Any:
    def model(name: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": f"openai/{name}-model"}}

    return build_config(
        {
            "model_list": [model("fast"), model("reasoning")],
            "tiers": {
                "fast": {"model": "fast"},
                "reasoning": {"model": "reasoning", "reasoning_effort": reasoning_effort},
            },
            "tenants": [
                {"name": "respect", "api_keys": ["sk-bench-respect"]},
                {"name": "route", "api_keys": ["sk-bench-route"], "client_reasoning": "route"},
            ],
        }
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sessions = make_sessions(args.sessions, args.seed)
    cost = {"fast": prices(args.fast), "reasoning": prices(args.reasoning)}
    settings = config("medium")
    router = Router(config=settings, classifier=DifficultyClassifier.load())
    results: dict[str, list[dict[str, Any]]] = {}
    for tenant in settings.tenants:
        results[tenant.name] = [await replay(router, tenant, s, args, cost) for s in sessions]
    respect = sum(r["spend"] for r in results["respect"])
    route = sum(r["spend"] for r in results["route"])
    planted = [k for k, s in enumerate(sessions) if s.stall_at is not None]
    routed = results["route"]
    pairs = list(zip(sessions, routed, strict=True))
    return {
        "sessions": len(sessions),
        "turns": sum(len(s.turns) for s in sessions),
        "hard_sessions": sum(s.hard for s in sessions),
        "spend_respect_usd": round(respect, 4),
        "spend_route_usd": round(route, 4),
        "spend_cut": round(1 - route / respect, 3),
        "switches_per_session_max": max(r["switches"] for r in routed),
        "switches_per_session_mean": round(sum(r["switches"] for r in routed) / len(routed), 2),
        "switches_without_stated_reason": sum(r["unexplained"] for r in routed),
        "switches_without_stated_reason_per_session_max": max(r["unexplained"] for r in routed),
        "planted_stalls": len(planted),
        "planted_stalls_escalated": sum(routed[k]["stall_escalated"] for k in planted),
        # How well the head told the tasks apart: the share of turns routed to reasoning.
        "reasoning_share_hard": _mean([r["reasoning_share"] for s, r in pairs if s.hard]),
        "reasoning_share_easy": _mean([r["reasoning_share"] for s, r in pairs if not s.hard]),
        "model": args.model,
        "prices": {"fast": args.fast, "reasoning": args.reasoning},
    }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", default="azure_ai/claude-haiku-4-5")
    parser.add_argument("--reasoning", default="azure_ai/claude-sonnet-4-5")
    parser.add_argument("--model", default="auto", help="auto, or auto:<mode>")
    parser.add_argument("--system-tokens", type=int, default=3000)
    parser.add_argument("--answer-tokens", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
