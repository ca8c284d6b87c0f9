"""Per-tenant heads: train from graded shadow pairs, champion/challenger, hot-load on replicas.

``train`` fits a challenger (:mod:`classifier.tenant_head`) on the tenant's
graded pairs outside a fixed held-out part, scores that part with the current
head (the champion: the tenant's active head, else the shipped one) and the
challenger, and activates the challenger only when its APGR there is higher.
``activate`` makes a stored version active under the same rule (``force``
skips it), ``rollback`` restores the one before. The CLI (``thinkroute heads``)
and the admin API (``/v1/tenants/{name}/heads``) are two faces over these.

:class:`ActiveHeads` is what each replica keeps: per tenant, the active head
and its quality curve, re-read when the tenant's pointer in Redis changes. The
pointer is polled at most once per ``refresh_s`` per tenant, so a newly
activated head serves on every replica within that interval, no restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.model import DifficultyClassifier
from classifier.tenant_head import TenantHead, compare_heads, fit_tenant_head, is_held_out
from router.errors import InvalidRequestError, NotFoundError, StoreUnavailableError
from router.policy import threshold_for_quality_kept
from router.state.heads import HeadStore
from router.state.shadow_records import ShadowRecords
from router.state.store import Store

__all__ = [
    "HELD_OUT_SHARE",
    "MIN_CURVE_PAIRS",
    "ActiveHead",
    "ActiveHeads",
    "activate",
    "list_heads",
    "rollback",
    "train",
]

logger = logging.getLogger(__name__)

# The share of a tenant's pairs the champion and challenger are judged on (by record id).
HELD_OUT_SHARE = 0.3
MIN_TRAINING_PAIRS = 20
MIN_HELD_OUT_PAIRS = 10
# A quality target is calibrated from at least this many graded pairs, else the mode applies.
MIN_CURVE_PAIRS = 30


@dataclass(frozen=True, slots=True)
class _Pairs:
    ids: list[str]
    X: NDArray[np.float64]
    base: NDArray[np.float64]  # the shipped head's scores
    fast: NDArray[np.float64]
    reasoning: NDArray[np.float64]

    def part(self, rows: NDArray[np.bool_]) -> _Pairs:
        return _Pairs([i for i, r in zip(self.ids, rows, strict=True) if r], self.X[rows],
                      self.base[rows], self.fast[rows], self.reasoning[rows])  # fmt: skip


async def train(
    store: Store,
    classifier: DifficultyClassifier,
    tenant: str,
    *,
    is_activating: bool = True,
    held_out_share: float = HELD_OUT_SHARE,
) -> dict[str, Any]:
    """Fit a challenger on the tenant's graded pairs; keep it, activate it if it wins.

    Returns the report: versions, pairs used, both heads' APGR on the held-out
    pairs, and whether the challenger was activated.
    """
    pairs = await _graded_pairs(store, classifier, tenant)
    held = np.array([is_held_out(i, held_out_share) for i in pairs.ids], dtype=bool)
    training, held_out = pairs.part(~held), pairs.part(held)
    if len(training.ids) < MIN_TRAINING_PAIRS or len(held_out.ids) < MIN_HELD_OUT_PAIRS:
        raise InvalidRequestError(
            f"tenant '{tenant}' has {len(pairs.ids)} graded pairs with features or text "
            f"({len(training.ids)} to train on, {len(held_out.ids)} held out); a head needs at "
            f"least {MIN_TRAINING_PAIRS} and {MIN_HELD_OUT_PAIRS}: shadow more traffic first",
            code="not_enough_records",
        )
    heads = HeadStore(store)
    challenger = await asyncio.to_thread(
        fit_tenant_head, training.X, training.base, training.fast, training.reasoning
    )
    champion_version = await heads.active_version(tenant)
    champion = await _load(heads, classifier, tenant, champion_version)
    comparison = _compare(champion, challenger, held_out)
    document = {
        "tenant": tenant,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": classifier.fingerprint,
        "head": challenger.to_numbers(),
        "trained_on": len(training.ids),
        "comparison": {"champion": champion_version or "shipped", **comparison},
    }
    version = await heads.save(tenant, document)
    is_activated = bool(is_activating and comparison["challenger_wins"])
    if is_activated:
        await heads.activate(tenant, version)
        await _save_curve(heads, tenant, challenger, pairs)
    return {
        "tenant": tenant,
        "version": version,
        "champion": champion_version or "shipped",
        "trained_on": len(training.ids),
        **comparison,
        "activated": is_activated,
        "active": version if is_activated else champion_version or "shipped",
    }


async def activate(
    store: Store,
    classifier: DifficultyClassifier,
    tenant: str,
    version: str,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Make a stored version active if it beats the current head on held-out pairs (or force)."""
    heads = HeadStore(store)
    challenger = await _load(heads, classifier, tenant, version)
    if challenger is None:
        raise NotFoundError(f"tenant '{tenant}' has no head version '{version}'")
    pairs = await _graded_pairs(store, classifier, tenant)
    held = np.array([is_held_out(i, HELD_OUT_SHARE) for i in pairs.ids], dtype=bool)
    champion_version = await heads.active_version(tenant)
    champion = await _load(heads, classifier, tenant, champion_version)
    comparison = _compare(champion, challenger, pairs.part(held))
    is_activated = force or comparison["challenger_wins"]
    if is_activated:
        await heads.activate(tenant, version)
        await _save_curve(heads, tenant, challenger, pairs)
    return {
        "tenant": tenant, "version": version, "champion": champion_version or "shipped",
        **comparison, "forced": force, "activated": bool(is_activated),
        "active": version if is_activated else champion_version or "shipped",
    }  # fmt: skip


async def rollback(store: Store, classifier: DifficultyClassifier, tenant: str) -> dict[str, Any]:
    """Restore the head active before the last activation."""
    heads = HeadStore(store)
    was = await heads.active_version(tenant)
    done, restored = await heads.rollback(tenant)
    if not done:
        raise InvalidRequestError(
            f"tenant '{tenant}' has no earlier head to roll back to", code="nothing_to_roll_back"
        )
    pairs = await _graded_pairs(store, classifier, tenant)
    await _save_curve(heads, tenant, await _load(heads, classifier, tenant, restored), pairs)
    return {"tenant": tenant, "rolled_back": was or "shipped", "active": restored or "shipped"}


async def list_heads(store: Store, tenant: str) -> dict[str, Any]:
    """The tenant's stored versions (figures, not numbers), the active one and the history."""
    heads = HeadStore(store)
    versions = [
        {key: value for key, value in document.items() if key != "head"}
        for document in await heads.documents(tenant)
    ]
    history = await heads.history(tenant)
    return {
        "tenant": tenant,
        "active": await heads.active_version(tenant) or "shipped",
        "rollback_to": [v or "shipped" for v in history],
        "versions": versions,
    }


async def calibrate(store: Store, classifier: DifficultyClassifier, tenant: str) -> int:
    """Rescore the tenant's graded pairs with its active head for quality targets; the count."""
    heads = HeadStore(store)
    head = await _load(heads, classifier, tenant, await heads.active_version(tenant))
    pairs = await _graded_pairs(store, classifier, tenant)
    await _save_curve(heads, tenant, head, pairs)
    return len(pairs.ids)


@dataclass(frozen=True, slots=True)
class ActiveHead:
    """What one replica serves a tenant with: its head (None: the shipped one) and curve."""

    version: str | None
    head: TenantHead | None
    curve: tuple[tuple[float, float, float], ...]

    def namespace(self, shipped: str) -> str:
        """Names this head in the shared score cache (``shipped``: the shipped head's name)."""
        return shipped if self.head is None else f"{shipped}-tenant-{self.head.checksum()}"

    def threshold_for(self, target: float | None) -> float | None:
        """The threshold keeping ``target`` of quality on the tenant's pairs; None: too few."""
        if target is None or len(self.curve) < MIN_CURVE_PAIRS:
            return None
        return threshold_for_quality_kept(self.curve, target)


SHIPPED = ActiveHead(None, None, ())


class ActiveHeads:
    """Each tenant's active head in this process, re-read when its pointer in Redis changes."""

    def __init__(
        self,
        store: Store,
        classifier: Callable[[], DifficultyClassifier],
        *,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heads = HeadStore(store)
        self.classifier = classifier
        self.refresh_s = refresh_s
        self.clock = clock
        # tenant -> (checked at, raw pointer, head)
        self._known: dict[str, tuple[float, str | None, ActiveHead]] = {}

    async def get(self, tenant: str) -> ActiveHead:
        """The tenant's head; a Redis fault keeps serving the last one known."""
        now = self.clock()
        known = self._known.get(tenant)
        if known is not None and now - known[0] < self.refresh_s:
            return known[2]
        try:
            pointer = await self.heads.pointer(tenant)
            if known is not None and pointer == known[1]:
                active = known[2]
            else:
                active = await self._load(tenant, pointer)
        except StoreUnavailableError:
            active = known[2] if known is not None else SHIPPED
            pointer = known[1] if known is not None else None
        self._known[tenant] = (now, pointer, active)
        return active

    async def _load(self, tenant: str, pointer: str | None) -> ActiveHead:
        if pointer is None:
            return SHIPPED
        version = await self.heads.active_version(tenant)
        curve = tuple(await self.heads.curve(tenant))
        head = await _load(self.heads, self.classifier(), tenant, version)
        return ActiveHead(version if head else None, head, curve)


async def _load(
    heads: HeadStore, classifier: DifficultyClassifier, tenant: str, version: str | None
) -> TenantHead | None:
    """A stored version as a head; None for the shipped one, or one that no longer fits."""
    if version is None:
        return None
    document = await heads.document(tenant, version)
    if document is None:
        return None
    if document.get("base") != classifier.fingerprint:
        # Trained over another shipped head's features: its numbers mean nothing here.
        logger.warning("tenant %s head %s was trained over another shipped head", tenant, version)
        return None
    width = int(classifier.artifact.embedding["dim"]) + _n_text_features()
    try:
        return TenantHead.from_numbers(document["head"], n_features=width)
    except (KeyError, TypeError, ValueError):
        logger.warning("tenant %s head %s is damaged; serving the shipped head", tenant, version)
        return None


def _n_text_features() -> int:
    from classifier.features import FEATURE_NAMES

    return len(FEATURE_NAMES)


def _compare(
    champion: TenantHead | None, challenger: TenantHead, held_out: _Pairs
) -> dict[str, Any]:
    return compare_heads(
        _scores(champion, held_out), challenger.score(held_out.X, held_out.base),
        held_out.fast, held_out.reasoning,
    )  # fmt: skip


def _scores(head: TenantHead | None, pairs: _Pairs) -> NDArray[np.float64]:
    if head is None or not pairs.ids:
        return pairs.base
    return head.score(pairs.X, pairs.base)


async def _save_curve(
    heads: HeadStore, tenant: str, head: TenantHead | None, pairs: _Pairs
) -> None:
    scores = _scores(head, pairs)
    curve = [(float(s), float(f), float(r))
             for s, f, r in zip(scores, pairs.fast, pairs.reasoning, strict=True)]  # fmt: skip
    await heads.save_curve(tenant, curve)
    await heads.touch(tenant)


async def _graded_pairs(store: Store, classifier: DifficultyClassifier, tenant: str) -> _Pairs:
    """The tenant's graded pairs as head input, the shipped head's scores and tier scores.

    Pairs kept with text (``log_prompts``) are turned into features here; pairs
    whose features have another width (another shipped head) are skipped.
    """
    width = int(classifier.artifact.embedding["dim"]) + _n_text_features()
    ids: list[str] = []
    rows: list[Sequence[float]] = []
    fast: list[float] = []
    reasoning: list[float] = []
    texts: list[tuple[int, Any]] = []
    async for entry_id, record in ShadowRecords(store).records(tenant):
        features = record.get("features")
        if features is None and record.get("messages"):
            texts.append((len(rows), record["messages"]))
            features = [0.0] * width
        if features is None or len(features) != width:
            continue
        ids.append(f"{tenant}:{entry_id}")
        rows.append(features)
        fast.append(float(record["fast"]))
        reasoning.append(float(record["reasoning"]))
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    if texts:
        computed = await asyncio.to_thread(
            lambda: [classifier.input_features(messages) for _, messages in texts]
        )
        for (row, _), vector in zip(texts, computed, strict=True):
            X[row] = vector
    base = classifier.artifact.head.score(X) if len(rows) else np.empty(0)
    return _Pairs(
        ids, X, np.asarray(base, dtype=np.float64), np.asarray(fast), np.asarray(reasoning)
    )
