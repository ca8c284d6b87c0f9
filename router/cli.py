"""The ``thinkroute`` command: one entry point, a subcommand per job.

Each subcommand's arguments and work live beside the code they drive; this
module only wires them together and turns expected failures into one-line
messages instead of tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from classifier import evaluate, explain_index, train
from classifier.errors import ClassifierError
from router import heads_cli
from router.environment import Environment, read_environment
from router.errors import ConfigError
from router.policy import MODES, explain

if TYPE_CHECKING:
    from router.config import Config
    from router.state.store import Store

__all__ = ["main"]

T = TypeVar("T")


def _add_route_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="the user's message to route")
    parser.add_argument(
        "--mode", choices=MODES, default="balanced", help="routing mode (default: %(default)s)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config, for its tiers (default: from environment)"
    )
    parser.add_argument(
        "--model", metavar="DIR", help="classifier artifact (default: the config's, or shipped)"
    )
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the decision as JSON with why it scored so (score_evidence): the nearest "
        "kinds of training prompts (source/subset, mean gain; never their text) and the "
        "structural cues that fired",
    )


def _run_route(args: argparse.Namespace) -> int:
    """The decision the proxy would make for one question: tier, model and effort."""
    import asyncio

    from router.proxy import Router

    config = _load_config(args.config, read_environment())
    if args.model:
        classifier = config.classifier.model_copy(update={"path": args.model})
        config = config.model_copy(update={"classifier": classifier})
    router = Router(config=config)
    question = [{"role": "user", "content": args.question}]
    request = {"model": f"auto:{args.mode}", "messages": question}
    decision = asyncio.run(router.plan_route(request))
    if args.json or args.explain:
        answer = {**decision.as_dict(), "explanation": explain(decision)}
        if args.explain and decision.score is not None:  # a scored decision has evidence
            answer["score_evidence"] = asyncio.run(router.explain_score(request))
        print(json.dumps(answer))
        return 0
    print(f"tier: {decision.tier}\nmodel: {decision.model or '(no provider configured)'}")
    print(f"effort: {decision.reasoning_effort or '(provider default)'}")
    if decision.score is not None and decision.threshold is not None:
        print(f"score: {decision.score:.4f}")
        print(f"threshold: {decision.threshold:.4f} ({decision.mode})")
    print(f"why: {explain(decision)}")
    return 0


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: from environment)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    parser.add_argument(
        "--log-level", default="info", help="debug, info, warning or error (default: %(default)s)"
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="one JSON object per line (default), or text for a terminal",
    )
    parser.add_argument(
        "--redis-url",
        help="shared state (default: the config's redis.url, else REDIS_URL, else an embedded "
        "server in --data-dir)",
    )
    parser.add_argument(
        "--data-dir", help="where the embedded Redis keeps its data (default: ~/.local/share)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=1,
        help="worker processes, each with its own classifier (about 0.5 GB each); they share "
        "Redis, so budgets and the cache hold across them",
    )  # fmt: skip


def _run_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from router.http.server import WORKER_CONFIG, WORKER_LOG, WORKER_REDIS_URL, create_app
    from router.observe.logs import configure_logging
    from router.proxy import Router
    from router.state.embedded import EmbeddedRedis
    from router.state.store import redact_url

    configure_logging(args.log_format, args.log_level)
    # A SIGTERM before uvicorn installs its own handler must still unwind the
    # ExitStack below, so the embedded Redis is stopped rather than orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    env = read_environment()
    config = _load_config(args.config, env, say=print)
    if not config.tenants:
        print(
            "thinkroute: no tenants or keys configured: every request will get 401; "
            "set THINKROUTE_API_KEY or add tenants to the config"
        )
    with contextlib.ExitStack() as stack:
        redis_url = env.redis_url(explicit=args.redis_url, configured=config.redis.url)
        if not redis_url:
            data_dir = args.data_dir or config.redis.embedded_dir or env.embedded_redis_dir
            embedded = stack.enter_context(EmbeddedRedis(data_dir))
            redis_url = embedded.url
            print(f"thinkroute: no REDIS_URL; embedded Redis in {embedded.data_dir}")
        admin = "on" if env.admin_key else "off (set THINKROUTE_ADMIN_KEY)"
        print(f"thinkroute: Redis at {redact_url(redis_url)}; admin API {admin}")
        print(f"thinkroute: listening on http://{args.host}:{args.port}/v1 "
              f"({args.workers} worker{'s' if args.workers > 1 else ''})")  # fmt: skip
        # log_config=None: uvicorn's loggers go through the root handler, in --log-format.
        options = {"host": args.host, "port": args.port, "log_level": args.log_level,
                   "log_config": None}  # fmt: skip
        if args.workers == 1:
            router = Router.from_config(config, env=env, redis_url=redis_url)
            app = create_app(router, admin_key=env.admin_key, metrics_key=env.metrics_key)
            uvicorn.run(app, **options)
            return 0
        # Each worker process builds its own app from what this one resolved.
        os.environ.update({
            WORKER_CONFIG: args.config or "", WORKER_REDIS_URL: redis_url,
            WORKER_LOG: f"{args.log_format}:{args.log_level}",
        })  # fmt: skip
        uvicorn.run(
            "router.http.server:app_from_environment", factory=True, workers=args.workers,
            # A worker imports LiteLLM and loads the classifier before it can answer
            # uvicorn's health check: tens of seconds on a busy 2-core machine.
            timeout_worker_healthcheck=120, **options,
        )  # fmt: skip
    return 0


def _add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on (%(default)s)")
    parser.add_argument(
        "--latency-ms",
        action="append",
        default=[],
        metavar="MODEL=MS",
        help="add latency to a model's answers (repeatable)",
    )
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="MODEL=RATE",
        help="fraction of a model's requests that fail with a 500 (repeatable)",
    )


def _run_sim(args: argparse.Namespace) -> int:
    from router.upstream.simulator import serve

    serve(
        host=args.host,
        port=args.port,
        latency_ms=_pairs(args.latency_ms, "--latency-ms"),
        error_rate=_pairs(args.error_rate, "--error-rate"),
    )
    return 0


def _add_hash_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "key", nargs="?", help="the API key (default: read one line from stdin, kept off the "
        "shell history)",
    )  # fmt: skip


def _run_hash_key(args: argparse.Namespace) -> int:
    from router.config import hash_api_key

    key = args.key if args.key is not None else sys.stdin.readline().strip()
    if len(key) < 8:
        raise SystemExit("an API key must be at least 8 characters")
    print(f"sha256:{hash_api_key(key)}")
    return 0


def _add_export_decisions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, metavar="NAME", help="whose decisions")
    parser.add_argument("--redis-url", help="where the proxy keeps its state (default: REDIS_URL)")
    parser.add_argument(
        "--since", metavar="ISO", help="only decisions from this time on (UTC unless it says)"
    )
    parser.add_argument(
        "--output", required=True, metavar="FILE.jsonl", help="where to write the records"
    )
    parser.add_argument(
        "--feedback-only",
        action="store_true",
        help="only decisions scored through POST /v1/feedback: what `thinkroute train` should "
        "learn from (the others are labelled with the router's own choice)",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="the tenant's graded shadow pairs instead, as two-sided outcome records "
        "(docs/quality.md)",
    )
    parser.add_argument(
        "--with-features",
        action="store_true",
        help="with --shadow: also pairs kept without chat text, carrying the head's input "
        "features (`thinkroute train` reads text and cannot use them yet)",
    )


def _run_export_decisions(args: argparse.Namespace) -> int:
    from datetime import datetime

    from router.state.decision_log import ExportSummary, export_decisions

    url = read_environment().redis_url(explicit=args.redis_url)
    if not url:
        raise SystemExit("thinkroute export-decisions: set --redis-url or REDIS_URL")
    try:
        since = datetime.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise SystemExit(f"--since takes an ISO date or time, got {args.since!r}") from None
    if args.shadow:
        return _run_export_shadow(args, url)

    def export(store: Store) -> Awaitable[ExportSummary]:
        return export_decisions(
            store, args.tenant, args.output, since=since, feedback_only=args.feedback_only
        )

    summary = _with_store(url, export)
    print(
        f"thinkroute: wrote {summary.written} records to {args.output} "
        f"({summary.with_feedback} with feedback)"
    )
    if summary.without_text:
        print(
            f"thinkroute: skipped {summary.without_text} decisions without chat text "
            f"(set log_prompts: true on tenant '{args.tenant}' to keep it)"
        )
    return 0


def _run_export_shadow(args: argparse.Namespace, url: str) -> int:

    from router.state.shadow_records import ShadowExportSummary, export_shadow_records

    def export(store: Store) -> Awaitable[ShadowExportSummary]:
        return export_shadow_records(
            store, args.tenant, args.output, with_features=args.with_features
        )

    summary = _with_store(url, export)
    print(f"thinkroute: wrote {summary.written} shadow records to {args.output}")
    if summary.without_text and not args.with_features:
        print(
            f"thinkroute: skipped {summary.without_text} pairs kept without chat text "
            "(--with-features writes them with the head's input features)"
        )
    return 0


def _with_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` against the Redis at ``url``; without Redis, a one-line error."""
    import asyncio

    from router.errors import StoreUnavailableError
    from router.state.store import Store

    async def run() -> T:
        store = Store.from_url(url, timeout_s=10.0)
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(run())
    except StoreUnavailableError as exc:
        raise SystemExit(f"thinkroute export-decisions: {exc}") from None


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    evaluate.add_eval_arguments(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="with --cascade: price the fast, verifier and reasoning calls as this config's "
        "tiers and cascade.verifier would cost (model_info prices, else LiteLLM's map)",
    )


def _run_eval(args: argparse.Namespace) -> int:
    if args.config:
        if not args.cascade:
            raise SystemExit("thinkroute eval: --config prices the calls of --cascade only")
        args.role_prices = _role_prices(_load_config(args.config, read_environment()))
    return evaluate.run_eval(args)


def _role_prices(config: Config) -> dict[str, Any]:
    """USD per million tokens of each call a cascade makes, as the config's models cost."""
    from classifier.cascade_data import ModelPrice
    from router.upstream.dispatch import cost_usd

    names: dict[str, str] = {str(role): tier.model for role, tier in config.tiers.items()}
    if config.cascade is not None:
        verifier = config.cascade.verifier
        names["verifier"] = names.get("fast", verifier) if verifier == "self" else verifier
    prices = {}
    for role, name in names.items():
        deployment = config.deployment(name)
        if deployment is None:  # the config's own checks refuse this; say so if they did not
            raise SystemExit(f"thinkroute eval: {role} model {name!r} is not in model_list")
        per_input = cost_usd(deployment, {"prompt_tokens": 1_000_000})
        per_output = cost_usd(deployment, {"completion_tokens": 1_000_000})
        if per_input == per_output == 0.0:
            raise SystemExit(
                f"thinkroute eval: no price for {name} ({deployment.litellm_model}): set "
                "its model_info input_cost_per_token and output_cost_per_token"
            )
        prices[role] = ModelPrice(per_input, per_output, source=f"config:{name}")
    return prices


def _load_config(
    path: str | None, env: Environment, *, say: Callable[[str], object] = lambda _: None
) -> Config:
    """The config file at ``path``, or (none given) the one the environment's keys choose."""
    from router.config import config_from_environment, load_config

    if path:
        say(f"thinkroute: config {path}")
        return load_config(path, env.variables)
    config, chosen = config_from_environment(env.variables)
    say(f"thinkroute: no --config; {chosen}")
    return config


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _pairs(values: list[str], flag: str) -> dict[str, float]:
    result = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            result[name] = float(number)
        except ValueError:
            raise SystemExit(f"{flag} takes MODEL=NUMBER, got {value!r}") from None
    return result


COMMANDS = {
    "train": (
        "train a difficulty head on outcome and prompt records",
        train.add_arguments,
        train.run,
    ),
    "eval": (
        "APGR, CPT and tier shares of a head on records",
        _add_eval_arguments,
        _run_eval,
    ),
    "score": (
        "print each record's score and tier as JSON lines",
        evaluate.add_score_arguments,
        evaluate.run_score,
    ),
    "calibrate": (
        "find the threshold for a target reasoning share or gap recovered",
        evaluate.add_calibrate_arguments,
        evaluate.run_calibrate,
    ),
    "explain-index": (
        "summarise training data per kind (centroids, mean gain; no text) for route --explain",
        explain_index.add_arguments,
        explain_index.run,
    ),
    "route": ("show where one question would go, and why", _add_route_arguments, _run_route),
    "serve": ("run the OpenAI-compatible proxy", _add_serve_arguments, _run_serve),
    "hash-key": (
        "print the digest of an API key, for a config's api_key_hashes",
        _add_hash_key_arguments,
        _run_hash_key,
    ),
    "export-decisions": (
        "write a tenant's logged routing decisions as JSON Lines records for training",
        _add_export_decisions_arguments,
        _run_export_decisions,
    ),
    "heads": (
        "list, train, activate or roll back a tenant's own head (docs/quality.md)",
        heads_cli.add_arguments,
        heads_cli.run,
    ),
    "sim-upstream": (
        "run a simulated OpenAI upstream for tests, demos and benchmarks",
        _add_sim_arguments,
        _run_sim,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thinkroute",
        description="Route each LLM request to a fast or a reasoning model: the proxy, and the "
        "tools that train, judge and calibrate its classifier.",
        epilog="`thinkroute COMMAND --help` shows a command's options. Docs: README.md and docs/.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, add_arguments, run) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ClassifierError, ConfigError, FileNotFoundError) as exc:
        print(f"thinkroute {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
