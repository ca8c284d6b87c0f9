"""Shadow comparisons: after a routed request is answered, ask the other tier too, off its path.

For a sampled share (``shadow.rate``) of routed, uncached, answered requests the
:class:`ShadowRunner` sends the same request to the tier that did not answer, in a
background task, and grades the pair (docs/quality.md):

- both answers have a final answer (:mod:`classifier.answers`, as the cascade uses):
  they agree (each scores 1) or disagree. Agreement is the signal; a disagreement
  goes to the judge when one is configured, else the reasoning tier is taken as
  right (reasoning 1, fast 0);
- no comparable answers: with ``shadow.judge`` a pairwise judge call, asked twice
  with the answers in both orders to cancel position bias (a tie allowed); each
  side's score is its mean points (win 1, tie 0.5, loss 0). Without a judge the
  pair is counted as ungraded.

Every shadow and judge call first reserves its worst-case cost against the tenant's
``shadow.daily_usd`` (atomic in Redis); a refusal, a failure or a cancel is counted
and changes nothing for the client, whose answer has already gone. At most
``max_in_flight`` comparisons run at once and ``max_queued`` wait; more are dropped
and counted. :meth:`ShadowRunner.aclose` lets running ones finish for ``drain_s``,
then cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from classifier.answers import extract_answer, same_answer
from router.accounting import prompt_token_bound
from router.config import Config, TenantConfig, TierName
from router.observe.quality import quality_figures
from router.policy import RouteDecision
from router.requests import ChatRequest
from router.upstream.dispatch import Target, cost_usd

if TYPE_CHECKING:
    from router.state.budgets import Budgets
    from router.state.shadow_records import ShadowRecords

__all__ = ["JUDGE_RUBRIC", "ShadowJob", "ShadowRunner", "judge_points", "parse_verdict"]

logger = logging.getLogger(__name__)

JUDGE_RUBRIC = (
    "You compare two answers to the same request. Judge correctness first, then whether "
    "the answer does what the request asks; ignore length, tone and formatting. If both "
    "are equally good or equally wrong, it is a tie. Reply with one line only: "
    "`VERDICT: A`, `VERDICT: B` or `VERDICT: TIE`."
)
_VERDICT = re.compile(r"VERDICT\s*:\s*\**\s*(A|B|TIE)\b", re.IGNORECASE)
_BARE_VERDICT = re.compile(r"^\W*(A|B|TIE)\W*$", re.IGNORECASE)
# A judge's answer is one line; this bounds what its call reserves and may cost.
JUDGE_MAX_TOKENS = 1024
MICRO = 1_000_000

Call = Callable[[dict[str, Any], Target], Awaitable[dict[str, Any]]]
Features = Callable[[Sequence[Mapping[str, Any]]], Awaitable[list[float] | None]]


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """A routed request and the answer its client got, to be compared with the other tier's."""

    tenant: TenantConfig
    request: ChatRequest
    decision: RouteDecision
    served_tier: TierName
    response: dict[str, Any]


class ShadowRunner:
    """Samples answered requests, asks the other tier in the background, grades and records.

    I/O is passed in: ``call(params, target)`` asks one model (no fallback),
    ``records`` keeps spend and results in Redis, ``budgets`` charges tenants that
    asked for it, ``features`` gives the head's input for a chat (kept instead of
    text for tenants without ``log_prompts``).
    """

    def __init__(
        self,
        *,
        config: Config,
        call: Call,
        records: ShadowRecords,
        budgets: Budgets | None = None,
        features: Features | None = None,
        sample: Callable[[], float] = random.random,
        max_in_flight: int = 8,
        max_queued: int = 256,
        drain_s: float = 5.0,
    ) -> None:
        self.config = config
        self.call = call
        self.records = records
        self.budgets = budgets
        self.features = features
        self.sample = sample
        self.max_queued = max_queued
        self.drain_s = drain_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._is_closing = False

    def offer(self, job: ShadowJob) -> bool:
        """Start a comparison of ``job`` if it is sampled; never raises, never waits."""
        try:
            shadow = self.config.shadow_for(job.tenant)
            if self._is_closing or shadow.rate <= 0 or not self._is_comparable(job):
                return False
            if shadow.rate < 1.0 and self.sample() >= shadow.rate:
                return False
            if len(self._tasks) >= self.max_queued:
                self._spawn(self.records.count(job.tenant.name, "dropped"))
                return False
            self._spawn(self._compare(job))
            return True
        except Exception:  # shadowing must never touch the request it follows
            logger.exception("offering a shadow comparison failed")
            return False

    async def quality(self, tenant: TenantConfig) -> dict[str, Any]:
        """Today's live quality figures of ``tenant`` (``GET /v1/usage``'s ``quality``)."""
        counts, pairs, spend_usd = await self.records.today(tenant.name)
        shadow = self.config.shadow_for(tenant)
        return {
            **quality_figures(counts, pairs),
            "shadow_rate": shadow.rate,
            "shadow_spend_usd": spend_usd,
            "shadow_budget_usd": shadow.daily_usd,
        }

    async def wait(self) -> None:
        """Wait for every comparison started so far (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop taking comparisons; let running ones finish for ``drain_s``, cancel the rest."""
        self._is_closing = True
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(_quietly(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _is_comparable(self, job: ShadowJob) -> bool:
        decision, tiers = job.decision, self.config.tiers
        return (
            decision.tier in ("fast", "reasoning")
            and decision.score is not None  # routed by score: no reasoning the client set
            and {"fast", "reasoning"} <= set(tiers)
            and _content(job.response) is not None
        )

    async def _compare(self, job: ShadowJob) -> None:
        tenant = job.tenant.name
        async with self._slots:
            await self.records.count(tenant, "offered")
            other: TierName = "reasoning" if job.served_tier == "fast" else "fast"
            answer = await self._ask(job, self._tier_target(other), job.request)
            if answer is None:
                return
            other_response, spent = answer
            texts = {job.served_tier: _content(job.response), other: _content(other_response)}
            fast_answer = extract_answer(texts["fast"])
            reasoning_answer = extract_answer(texts["reasoning"])
            agreed = same_answer(fast_answer, reasoning_answer)
            if agreed is not None:
                await self.records.count(tenant, "comparable")
            if agreed:
                await self.records.count(tenant, "agreed")
                scores: tuple[float, float] | None = (1.0, 1.0)
                how = "agreement"
            else:
                judged = await self._judge(job, texts["fast"] or "", texts["reasoning"] or "")
                scores, judge_spent = judged
                spent += judge_spent
                how = "judge"
                if scores is None and agreed is False:
                    scores, how = (0.0, 1.0), "disagreement"  # the reasoning tier as reference
            if scores is None:
                await self.records.count(tenant, "ungraded")
                return
            await self._keep(job, scores, how, agreed, spent)

    async def _keep(
        self,
        job: ShadowJob,
        scores: tuple[float, float],
        how: str,
        agreed: bool | None,
        spent_usd: float,
    ) -> None:
        from router.state.shadow_records import GradedPair  # the state types, at run time

        decision = job.decision
        fast, reasoning = scores
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "tenant": job.tenant.name,
            "served_tier": job.served_tier,
            "fast": fast,
            "reasoning": reasoning,
            "graded_by": how,
            "agreed": agreed,
            "score": decision.score,
            "threshold": decision.threshold,
            "tier": decision.tier,
            "mode": decision.mode,
            "reason": decision.reason,
            "models": {tier: self.config.tiers[tier].model for tier in ("fast", "reasoning")},
            "shadow_cost_usd": round(spent_usd, 6),
        }
        if job.tenant.log_prompts:
            record["messages"] = list(job.request.messages)
        elif self.features is not None:
            record["features"] = await self.features(job.request.messages)
        pair = GradedPair(job.served_tier, fast, reasoning, decision.score)
        await self.records.add(job.tenant.name, pair, record)

    async def _judge(
        self, job: ShadowJob, fast: str, reasoning: str
    ) -> tuple[tuple[float, float] | None, float]:
        """Each tier's score from the judge, asked in both orders; None without one."""
        judge = self.config.shadow_for(job.tenant).judge
        deployment = self.config.deployment(judge) if judge else None
        if deployment is None:
            return None, 0.0
        target = Target(deployment)
        question = _conversation(job.request.messages)
        verdicts: list[str | None] = []
        spent = 0.0
        for first, second in ((fast, reasoning), (reasoning, fast)):
            messages = [
                {"role": "system", "content": JUDGE_RUBRIC},
                {"role": "user", "content": f"Request:\n{question}\n\nAnswer A:\n{first}\n\n"
                                            f"Answer B:\n{second}"},
            ]  # fmt: skip
            request = ChatRequest(model=judge or "", messages=messages,
                                  params={"max_tokens": JUDGE_MAX_TOKENS})  # fmt: skip
            answer = await self._ask(job, target, request)
            if answer is None:
                return None, spent
            spent += answer[1]
            verdicts.append(parse_verdict(_content(answer[0])))
        points = judge_points(verdicts[0], verdicts[1])
        return (None if points is None else (points, 1.0 - points)), spent

    async def _ask(
        self, job: ShadowJob, target: Target, request: ChatRequest
    ) -> tuple[dict[str, Any], float] | None:
        """One shadow call, its worst case reserved first; None when refused or failed."""
        tenant = job.tenant
        shadow = self.config.shadow_for(tenant)
        is_reasoning = target.model_name == self.config.tiers["reasoning"].model
        estimates = self.config.output_token_estimates
        output = (
            request.params.get("max_tokens") or estimates["reasoning" if is_reasoning else "fast"]
        )
        bound_usd = cost_usd(
            target.deployment,
            {"prompt_tokens": prompt_token_bound(request), "completion_tokens": int(output)},
        )
        bound = _micro(bound_usd)
        if not await self.records.reserve(
            tenant.name, amount_micro=bound, limit_micro=_micro(shadow.daily_usd)
        ):
            await self.records.count(tenant.name, "refused")
            return None
        reservation = None
        response: dict[str, Any] | None = None
        actual = 0
        tier = "reasoning" if is_reasoning else "fast"
        try:
            if shadow.charge_tenant and self.budgets is not None:
                reservation = await self.budgets.reserve(
                    tenant, amount_usd=bound_usd, tokens=prompt_token_bound(request) + int(output)
                )
            response = await self.call(request.params_for_upstream(), target)
            actual = _micro(cost_usd(target.deployment, response.get("usage")))
        except Exception as exc:  # refused by the tenant's budget, or the call failed
            logger.info("a shadow call to %s failed: %s", target.model_name, type(exc).__name__)
            await self.records.count(tenant.name, "failed")
        finally:
            # Not shielded: a comparison cancelled at shutdown may leave its reservation
            # on today's shadow spend (the key expires); shutdown is not held up for it.
            await self.records.settle(tenant.name, reserved_micro=bound, actual_micro=actual)
            if reservation is not None and self.budgets is not None:
                if response is None:
                    await self.budgets.release(reservation)
                else:
                    await self.budgets.settle(
                        reservation, cost_usd=actual / MICRO, usage=response.get("usage"),
                        tier=tier, routed=False, baseline_usd=actual / MICRO,
                    )  # fmt: skip
        if response is None:
            return None
        return response, actual / MICRO

    def _tier_target(self, tier: TierName) -> Target:
        settings = self.config.tiers[tier]
        deployment = self.config.deployment(settings.model)
        assert deployment is not None  # the config checks tiers name configured models
        return Target.for_tier(deployment, settings, settings.reasoning_effort)


def parse_verdict(text: str | None) -> str | None:
    """``"A"``, ``"B"`` or ``"TIE"`` from a judge's reply; None when it gave none."""
    if not text:
        return None
    found = _VERDICT.findall(text)
    if found:
        return str(found[-1]).upper()
    bare = _BARE_VERDICT.match(text.strip())
    return bare.group(1).upper() if bare else None


def judge_points(fast_first: str | None, reasoning_first: str | None) -> float | None:
    """The fast answer's score from two verdicts: shown as A, then as B.

    Win 1, tie 0.5, loss 0, averaged over the verdicts given; a judge that always
    picks one position scores the pair a tie. None when neither verdict was given.
    """
    points = []
    if fast_first is not None:
        points.append({"A": 1.0, "TIE": 0.5, "B": 0.0}[fast_first])
    if reasoning_first is not None:
        points.append({"B": 1.0, "TIE": 0.5, "A": 0.0}[reasoning_first])
    return sum(points) / len(points) if points else None


def _content(response: Mapping[str, Any]) -> str | None:
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) and content.strip() else None


def _conversation(messages: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content)
        lines.append(f"{message.get('role', 'user')}: {content or ''}")
    return "\n".join(lines)


def _micro(usd: float) -> int:
    return int(max(usd, 0.0) * MICRO + 0.5)


async def _quietly(work: Awaitable[None]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:  # a comparison that fails is lost, never the request it followed
        logger.warning("a shadow comparison failed", exc_info=True)
