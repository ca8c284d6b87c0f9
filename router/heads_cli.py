"""``thinkroute heads``: list, train, activate and roll back a tenant's own head.

The same work as the admin API's ``/v1/tenants/{name}/heads`` routes
(:mod:`router.heads`), run against the proxy's Redis from a shell. Each
command prints its report as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from router.environment import read_environment
from router.errors import ThinkrouteError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with the head"
    )
    for name, summary in (
        ("list", "the tenant's head versions, the active one and what rollback restores"),
        ("train", "fit a challenger on the tenant's graded shadow pairs; activate it only if it "
                  "beats the current head on the tenant's held-out pairs"),
        ("activate", "make a stored version active, if it beats the current head (or --force)"),
        ("rollback", "restore the head active before the last activation"),
        ("calibrate", "rescore the tenant's pairs with its active head, for target_quality_kept"),
    ):  # fmt: skip
        action = actions.add_parser(name, help=summary, description=summary)
        action.add_argument("--tenant", required=True, metavar="NAME", help="whose head")
        action.add_argument(
            "--redis-url", help="where the proxy keeps its state (default: REDIS_URL)"
        )
        action.add_argument(
            "--model", metavar="DIR", help="the shipped classifier artifact (default: shipped)"
        )
        if name == "train":
            action.add_argument(
                "--no-activate", action="store_true", help="keep the challenger, never activate it"
            )
        if name == "activate":
            action.add_argument("version", help="a version `heads list` shows, e.g. v3")
            action.add_argument(
                "--force", action="store_true", help="activate even if it does not win"
            )


def run(args: argparse.Namespace) -> int:
    from classifier.model import DifficultyClassifier
    from router import heads  # numpy and scipy: loaded only for this command
    from router.state.store import Store

    url = read_environment().redis_url(explicit=args.redis_url)
    if not url:
        raise SystemExit("thinkroute heads: set --redis-url or REDIS_URL")
    needs_classifier = args.action != "list"
    classifier = DifficultyClassifier.load(args.model) if needs_classifier else None

    def work(store: Store) -> Awaitable[dict[str, Any]]:
        tenant = args.tenant
        if args.action == "list":
            return heads.list_heads(store, tenant)
        assert classifier is not None
        if args.action == "train":
            return heads.train(store, classifier, tenant, is_activating=not args.no_activate)
        if args.action == "activate":
            return heads.activate(store, classifier, tenant, args.version, force=args.force)
        if args.action == "rollback":
            return heads.rollback(store, classifier, tenant)
        return _calibrated(heads.calibrate(store, classifier, tenant), tenant)

    try:
        report = _with_store(url, work)
    except ThinkrouteError as exc:
        raise SystemExit(f"thinkroute heads {args.action}: {exc.message}") from None
    print(json.dumps(report))
    return 0


async def _calibrated(count: Awaitable[int], tenant: str) -> dict[str, Any]:
    return {"tenant": tenant, "pairs": await count}


def _with_store(url: str, work: Callable[[Any], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    from router.state.store import Store

    async def go() -> dict[str, Any]:
        store = Store.from_url(url, timeout_s=10.0)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(go())
