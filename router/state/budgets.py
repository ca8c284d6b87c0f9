"""Budgets, rate limits and usage in Redis: exact under any concurrency.

Money is integer micro-dollars. A request's life:

1. :meth:`Budgets.reserve` runs one Lua script that checks the estimated cost
   against the tenant's daily and monthly budget and its requests/tokens per
   minute, and, only if all pass, adds it to every window at once. Check and
   increment are one atomic step, so concurrent requests cannot overrun a
   budget (LiteLLM's separate check and increment can).
2. :meth:`Budgets.settle` replaces the reservation with the real cost and
   records usage; :meth:`Budgets.release` returns it when the call failed.
3. A reservation never settled (a replica crashed mid-call) expires: the next
   reservation for that tenant sweeps it out of the windows it was added to.
   Settling is idempotent, and settling a swept reservation charges it anew.

Every key carries the tenant as a ``{hash tag}``, so a Redis Cluster keeps a
tenant's keys in one slot and the scripts stay atomic there; windows are in
key names with TTLs, so nothing needs sweeping from outside.

    {t}:budget:day:20261127   micro-USD reserved + settled today (budget checks)
    {t}:budget:month:202611   the same for the month
    {t}:rl:req:<minute>       requests started in that minute
    {t}:rl:tok:<minute>       tokens (estimated, then settled) in that minute
    {t}:resv / {t}:resv:data  open reservations: expiry times / what each added where
    {t}:usage:day:<date>      settled figures (hash): spend, tokens, requests, cascade outcomes, ...
    {t}:recent                the latest routed requests (tier, score) for the share cap
    {t}:outest:<tier>:<era>   settled output per request, a histogram (output_estimates)
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.config import TenantConfig
from router.errors import BudgetExceededError, RateLimitedError
from router.state.output_estimates import Sample
from router.state.store import Store

__all__ = [
    "CASCADE_OUTCOMES",
    "Budgets",
    "BudgetState",
    "Reservation",
    "cascade_report",
    "to_micro",
]

PREFIX = "thinkroute"
MINUTE_S = 60
DAY_KEY_TTL_S = 3 * 86_400
MONTH_KEY_TTL_S = 40 * 86_400
RECORD_TTL_S = 40 * 86_400
# A refusal only because other requests' reservations fill the budget: they settle,
# usually for less than reserved, when those calls end.
IN_FLIGHT_RETRY_AFTER_S = 5
USAGE_FIELDS = (
    "requests", "routed_requests", "reasoning_requests", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "spend_micro", "baseline_micro", "cache_hits",
)  # fmt: skip
# What a cascade that ran did (router.upstream.cascade's labels), counted per request at
# settle in the same usage hash as ``cascade_<outcome>``: one more field, no extra write.
CASCADE_OUTCOMES = ("agreed", "kept", "escalated", "no_answer", "fast_failed")

# Idempotent per reservation id (a retry after a timeout must not reserve twice).
# Sweep expired reservations out of the windows they were added to, then check every
# limit, then reserve in every window. KEYS: resv zset, resv data hash, day, month,
# requests this/last minute, tokens this/last minute, recent list, usage day, usage month.
# A budget refusal says 'busy' when settled spend alone would leave room (only requests
# in flight hold it); success returns the room left in the tightest budget window and
# the day's and month's spend with this reservation.
_RESERVE = """
if redis.call('HEXISTS', KEYS[2], ARGV[11]) == 1 then return {'ok'} end
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  local record = redis.call('HGET', KEYS[2], id)
  if record and string.sub(record, 1, 5) == 'open|' then
    local _, amount, tokens, day, month, tok = string.match(
      record, '^(%a+)|(%d+)|(%d+)|([^|]+)|([^|]+)|([^|]+)$')
    for _, key in ipairs({day, month}) do
      if redis.call('EXISTS', key) == 1 then redis.call('DECRBY', key, amount) end
    end
    if redis.call('EXISTS', tok) == 1 then redis.call('DECRBY', tok, tokens) end
    redis.call('HSET', KEYS[2], id, 'swept' .. string.sub(record, 5))
  end
  redis.call('ZREM', KEYS[1], id)
end
local amount = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local day_limit, month_limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local rpm, tpm = tonumber(ARGV[6]), tonumber(ARGV[7])
local previous_weight = tonumber(ARGV[8])
local day_spent = tonumber(redis.call('GET', KEYS[3]) or '0')
local month_spent = tonumber(redis.call('GET', KEYS[4]) or '0')
local function refuse(window, spent, limit, usage_key)
  local settled = tonumber(redis.call('HGET', usage_key, 'spend_micro') or '0')
  if settled + amount <= limit then return {'busy', window, tostring(spent)} end
  return {'budget', window, tostring(spent)}
end
if day_limit >= 0 and day_spent + amount > day_limit then
  return refuse('day', day_spent, day_limit, KEYS[10])
end
if month_limit >= 0 and month_spent + amount > month_limit then
  return refuse('month', month_spent, month_limit, KEYS[11])
end
if rpm >= 0 then
  local used = tonumber(redis.call('GET', KEYS[5]) or '0')
    + previous_weight * tonumber(redis.call('GET', KEYS[6]) or '0')
  if used + 1 > rpm then return {'rate', 'requests', tostring(used)} end
end
if tpm >= 0 then
  local used = tonumber(redis.call('GET', KEYS[7]) or '0')
    + previous_weight * tonumber(redis.call('GET', KEYS[8]) or '0')
  if used + tokens > tpm then return {'rate', 'tokens', tostring(used)} end
end
redis.call('INCRBY', KEYS[3], amount)
redis.call('EXPIRE', KEYS[3], ARGV[9])
redis.call('INCRBY', KEYS[4], amount)
redis.call('EXPIRE', KEYS[4], ARGV[10])
redis.call('INCR', KEYS[5])
redis.call('EXPIRE', KEYS[5], 2 * 60)
redis.call('INCRBY', KEYS[7], tokens)
redis.call('EXPIRE', KEYS[7], 2 * 60)
redis.call('HSET', KEYS[2], ARGV[11], ARGV[12])
redis.call('EXPIRE', KEYS[2], ARGV[14])
redis.call('ZADD', KEYS[1], ARGV[13], ARGV[11])
redis.call('EXPIRE', KEYS[1], ARGV[14])
if ARGV[15] ~= '' then
  redis.call('LPUSH', KEYS[9], ARGV[15])
  redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[16]) - 1)
  redis.call('EXPIRE', KEYS[9], ARGV[14])
end
local room = -1
if day_limit >= 0 then room = day_limit - day_spent - amount end
if month_limit >= 0 and (room < 0 or month_limit - month_spent - amount < room) then
  room = month_limit - month_spent - amount
end
return {'ok', tostring(room), tostring(day_spent + amount), tostring(month_spent + amount)}
"""

# Replace a reservation by the real cost and record usage; a no-op for one already
# settled or released. KEYS: resv zset, resv data hash, usage day, usage month, and
# optionally the output histogram (router.state.output_estimates). ARGV: id, actual
# micro-USD, actual tokens, usage TTL, [histogram bucket, histogram TTL,] then usage
# field/increment pairs.
_SETTLE = """
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then return -1 end
local state, amount, tokens, day, month, tok = string.match(
  record, '^(%a+)|(%d+)|(%d+)|([^|]+)|([^|]+)|([^|]+)$')
local actual, actual_tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local delta, token_delta = actual - tonumber(amount), actual_tokens - tonumber(tokens)
if state == 'swept' then delta, token_delta = actual, actual_tokens end
for _, key in ipairs({day, month}) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, delta) end
end
if redis.call('EXISTS', tok) == 1 then redis.call('INCRBY', tok, token_delta) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
local first = 5
if #KEYS > 4 then
  redis.call('HINCRBY', KEYS[5], ARGV[5], 1)
  redis.call('EXPIRE', KEYS[5], ARGV[6])
  first = 7
end
if #ARGV >= first then
  for i = first, #ARGV, 2 do
    if tonumber(ARGV[i + 1]) ~= 0 then
      redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
      redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
    end
  end
  for _, key in ipairs({KEYS[3], KEYS[4]}) do redis.call('EXPIRE', key, ARGV[4]) end
end
return actual
"""


def to_micro(usd: float) -> int:
    """USD to integer micro-dollars, rounded half up (costs are never negative)."""
    return int(math.floor(max(usd, 0.0) * 1_000_000 + 0.5))


@dataclass(frozen=True, slots=True)
class Reservation:
    """An amount held against a tenant's windows until the call settles."""

    id: str
    tenant: str
    amount_micro: int
    tokens: int
    # What the tightest budget window has left after this reservation; None when the
    # tenant has no money budget, or a retried reservation could not tell.
    room_micro: int | None = None
    # The windows' spend, this reservation included (None: could not tell).
    spent: BudgetState | None = None


@dataclass(frozen=True, slots=True)
class BudgetState:
    """What the policy needs to know before deciding: spend so far and recent routing."""

    day_spent_micro: int
    month_spent_micro: int
    recent: list[tuple[str, float]]

    def spent_fraction(self, tenant: TenantConfig) -> float:
        """The largest share of any budget window already spent or reserved."""
        fractions = [0.0]
        for spent, limit in (
            (self.day_spent_micro, tenant.budget.daily_usd),
            (self.month_spent_micro, tenant.budget.monthly_usd),
        ):
            if limit is not None:
                fractions.append(spent / to_micro(limit) if limit > 0 else math.inf)
        return max(fractions)


class Budgets:
    """Tenants' money and rate limits, held in Redis through a :class:`Store`."""

    def __init__(
        self, store: Store, *, reservation_ttl_s: float = 900.0, clock: Any = time.time
    ) -> None:
        self.store = store
        self.reservation_ttl_s = reservation_ttl_s
        self.clock = clock
        self._reserve = store.script(_RESERVE)
        self._settle = store.script(_SETTLE)

    async def state(self, tenant: TenantConfig) -> BudgetState:
        """Spend in the current windows and the latest routed requests, in one round trip."""
        keys = _Keys(tenant.name, self.clock())
        # GETs, not MGET: a Redis Cluster pipeline refuses multi-key commands.
        pipe = self.store.client.pipeline(transaction=False)
        pipe.get(keys.day)
        pipe.get(keys.month)
        pipe.lrange(keys.recent, 0, tenant.reasoning_share_window - 1)
        day, month, recent = await self.store.call(pipe.execute())
        entries = []
        for raw in recent:
            tier, _, score = raw.decode().partition("|")
            entries.append((tier, float(score)))
        return BudgetState(int(day or 0), int(month or 0), entries)

    async def reserve(
        self,
        tenant: TenantConfig,
        *,
        amount_usd: float,
        tokens: int,
        routed: tuple[str, float] | None = None,
        reservation_id: str | None = None,
    ) -> Reservation:
        """Hold ``amount_usd`` against every window, or raise without holding anything.

        ``routed`` (tier, score) records a routed request for the reasoning share cap.
        ``reservation_id`` lets a caller that lost the answer (cancelled, timed out)
        release what may have been reserved.
        """
        now = self.clock()
        keys = _Keys(tenant.name, now)
        amount = to_micro(amount_usd)
        limit = tenant.budget.per_request_usd
        if limit is not None and amount > to_micro(limit):
            raise BudgetExceededError(
                f"this request could cost up to ${amount / 1e6:.6f}, over tenant "
                f"'{tenant.name}''s per-request limit of ${limit:.6f}; lower max_tokens or "
                "shorten the prompt (it is counted as one token a byte)",
                retry_after_s=None,
            )
        reservation = Reservation(reservation_id or uuid.uuid4().hex, tenant.name, amount, tokens)
        record = f"open|{amount}|{tokens}|{keys.day}|{keys.month}|{keys.tokens_now}"
        minute_elapsed = (now % MINUTE_S) / MINUTE_S
        args = [
            repr(now), amount, tokens,
            _limit(tenant.budget.daily_usd), _limit(tenant.budget.monthly_usd),
            tenant.rate_limits.requests_per_minute or -1,
            tenant.rate_limits.tokens_per_minute or -1,
            repr(1.0 - minute_elapsed), DAY_KEY_TTL_S, MONTH_KEY_TTL_S,
            reservation.id, record, repr(now + self.reservation_ttl_s), RECORD_TTL_S,
            f"{routed[0]}|{routed[1]:.4f}" if routed else "", tenant.reasoning_share_window,
        ]  # fmt: skip
        result = await self.store.call_idempotent(
            lambda: self._reserve(keys=keys.for_reserve(), args=args)
        )
        outcome = [part.decode() if isinstance(part, bytes) else str(part) for part in result]
        window_name = "daily" if outcome[1:2] == ["day"] else "monthly"
        if outcome[0] == "budget":
            raise BudgetExceededError(
                f"tenant '{tenant.name}' has spent its {window_name} budget",
                retry_after_s=_until_window_end(now, outcome[1]),
            )
        if outcome[0] == "busy":
            raise BudgetExceededError(
                f"tenant '{tenant.name}''s {window_name} budget is held by requests still in "
                f"flight; their reservations settle when they finish, so retry in "
                f"{IN_FLIGHT_RETRY_AFTER_S} s",
                retry_after_s=IN_FLIGHT_RETRY_AFTER_S,
                is_transient=True,
            )
        if outcome[0] == "rate":
            what = outcome[1]
            raise RateLimitedError(
                f"tenant '{tenant.name}' is over its {what}-per-minute limit",
                retry_after_s=max(1, math.ceil(MINUTE_S - now % MINUTE_S)),
            )
        if len(outcome) < 4:  # a retry of a reservation already made: nothing to tell
            return reservation
        room = int(outcome[1]) if int(outcome[1]) >= 0 else None
        spent = BudgetState(int(outcome[2]), int(outcome[3]), [])
        return dataclasses.replace(reservation, room_micro=room, spent=spent)

    async def settle(
        self,
        reservation: Reservation,
        *,
        cost_usd: float,
        usage: dict[str, Any] | None,
        tier: str,
        routed: bool,
        baseline_usd: float,
        sample: Sample | None = None,
        cascade: str | None = None,
    ) -> int:
        """Charge the real cost in place of the reservation; returns micro-dollars charged.

        ``sample``: the request's output, counted towards the tenant's learned
        reservation estimate in the same step (once, however often settle is retried).
        ``cascade``: what the request's cascade did, if one ran (one of
        ``CASCADE_OUTCOMES``), counted with the usage.
        """
        keys = _Keys(reservation.tenant, self.clock())
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        reasoning_tokens = int((details or {}).get("reasoning_tokens") or 0)
        actual = to_micro(cost_usd)
        counts = {
            "requests": 1,
            "routed_requests": int(routed),
            "reasoning_requests": int(routed and tier == "reasoning"),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": reasoning_tokens,
            "spend_micro": actual,
            "baseline_micro": max(to_micro(baseline_usd), actual),
        }
        if cascade in CASCADE_OUTCOMES:
            counts[f"cascade_{cascade}"] = 1
        args: list[Any] = [reservation.id, actual, prompt + completion, MONTH_KEY_TTL_S]
        settle_keys = keys.for_settle()
        if sample is not None:
            settle_keys.append(sample.key)
            args += [sample.bucket, sample.ttl_s]
        for name, value in counts.items():
            args += [name, value]
        await self.store.call_idempotent(lambda: self._settle(keys=settle_keys, args=args))
        return actual

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call failed: nothing is charged or counted."""
        keys = _Keys(reservation.tenant, self.clock())
        release = [reservation.id, 0, 0, 0]
        await self.store.call_idempotent(lambda: self._settle(keys=keys.for_settle(), args=release))

    async def record_cache_hit(self, tenant: TenantConfig) -> None:
        keys = _Keys(tenant.name, self.clock())
        pipe = self.store.client.pipeline(transaction=False)
        for key in (keys.usage_day, keys.usage_month):
            pipe.hincrby(key, "cache_hits", 1)
            pipe.expire(key, MONTH_KEY_TTL_S)
        await self.store.call(pipe.execute())

    async def usage(self, tenant: TenantConfig) -> dict[str, Any]:
        """The tenant's figures for today and this month (UTC), in USD."""
        now = self.clock()
        keys = _Keys(tenant.name, now)
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hgetall(keys.usage_day)
        pipe.hgetall(keys.usage_month)
        pipe.get(keys.day)
        pipe.get(keys.month)
        day, month, held_day, held_month = await self.store.call(pipe.execute())
        moment = datetime.fromtimestamp(now, UTC)
        budget = tenant.budget
        return {
            "tenant": tenant.name,
            "day": _report(day, held_day, budget.daily_usd, f"{moment:%Y-%m-%d}"),
            "month": _report(month, held_month, budget.monthly_usd, f"{moment:%Y-%m}"),
        }


class _Keys:
    """Every key of one tenant at one moment; all share the ``{tenant}`` hash tag."""

    def __init__(self, tenant: str, now: float) -> None:
        moment = datetime.fromtimestamp(now, UTC)
        base = f"{PREFIX}:{{{tenant}}}"
        minute = int(now // MINUTE_S)
        self.day = f"{base}:budget:day:{moment:%Y%m%d}"
        self.month = f"{base}:budget:month:{moment:%Y%m}"
        self.requests_now = f"{base}:rl:req:{minute}"
        self.requests_before = f"{base}:rl:req:{minute - 1}"
        self.tokens_now = f"{base}:rl:tok:{minute}"
        self.tokens_before = f"{base}:rl:tok:{minute - 1}"
        self.reservations = f"{base}:resv"
        self.reservation_data = f"{base}:resv:data"
        self.usage_day = f"{base}:usage:day:{moment:%Y%m%d}"
        self.usage_month = f"{base}:usage:month:{moment:%Y%m}"
        self.recent = f"{base}:recent"

    def for_reserve(self) -> list[str]:
        return [
            self.reservations, self.reservation_data, self.day, self.month,
            self.requests_now, self.requests_before, self.tokens_now, self.tokens_before,
            self.recent, self.usage_day, self.usage_month,
        ]  # fmt: skip

    def for_settle(self) -> list[str]:
        return [self.reservations, self.reservation_data, self.usage_day, self.usage_month]


def _limit(usd: float | None) -> int:
    return -1 if usd is None else to_micro(usd)


def _until_window_end(now: float, window: str) -> int:
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        end = start.timestamp() + 86_400
    else:
        year, month = divmod(moment.year * 12 + moment.month, 12)  # the next month, 1-based
        end = start.replace(year=year, month=month + 1, day=1).timestamp()
    return max(1, math.ceil(end - now))


def _report(
    figures: dict[bytes, bytes], held_micro: bytes | None, limit_usd: float | None, period: str
) -> dict[str, Any]:
    counts = {name: int(figures.get(name.encode(), 0)) for name in USAGE_FIELDS}
    cascades = {name: int(figures.get(f"cascade_{name}".encode(), 0)) for name in CASCADE_OUTCOMES}
    routed = counts["routed_requests"]
    held = int(held_micro or 0)
    return {
        "period": period,
        "spend_usd": counts["spend_micro"] / 1e6,
        "reserved_usd": max(held - counts["spend_micro"], 0) / 1e6,
        "budget_usd": limit_usd,
        "remaining_usd": None if limit_usd is None else max(to_micro(limit_usd) - held, 0) / 1e6,
        "requests": counts["requests"],
        "cache_hits": counts["cache_hits"],
        "prompt_tokens": counts["prompt_tokens"],
        "completion_tokens": counts["completion_tokens"],
        "reasoning_tokens": counts["reasoning_tokens"],
        "reasoning_share": counts["reasoning_requests"] / routed if routed else 0.0,
        "estimated_savings_usd": (counts["baseline_micro"] - counts["spend_micro"]) / 1e6,
        "cascade": cascade_report(cascades),
    }


def cascade_report(counts: dict[str, int]) -> dict[str, Any]:
    """Cascade runs by outcome and the share escalated to the reasoning tier (None: no run)."""
    runs = sum(counts.get(name, 0) for name in CASCADE_OUTCOMES)
    escalated = counts.get("escalated", 0)
    return {
        "runs": runs,
        **{name: counts.get(name, 0) for name in CASCADE_OUTCOMES},
        "escalation_rate": escalated / runs if runs else None,
    }
