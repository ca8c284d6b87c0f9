"""Configuration: one YAML file, ``${ENV}`` substitution, validated by pydantic.

The shape is familiar to LiteLLM users::

    model_list:
      - model_name: fast
        litellm_params: {model: openai/gpt-4o-mini, api_key: "${OPENAI_API_KEY}"}
        model_info: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
      - model_name: reasoning
        litellm_params: {model: openai/o4-mini, api_key: "${OPENAI_API_KEY}"}
    tiers:
      fast: {model: fast}
      reasoning: {model: reasoning, reasoning_effort: medium}
    tenants:
      - name: acme
        api_keys: [sk-acme-...]

Everything is checked at load, and an error names the file and the field:
tiers must name configured models, a tier's reasoning settings must be ones its
provider takes (router/upstream/reasoning.py asks LiteLLM; nothing is dropped silently),
API keys must be unique across tenants.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.errors import ConfigError

__all__ = [
    "CacheSettings",
    "Config",
    "ModelDeployment",
    "SemanticCacheSettings",
    "SessionsConfig",
    "ShadowConfig",
    "TenantConfig",
    "Thinking",
    "Tier",
    "config_from_environment",
    "hash_api_key",
    "load_config",
]

Mode = Literal["cheap", "balanced", "quality"]
Effort = Literal["none", "minimal", "low", "medium", "high"]
TierName = Literal["fast", "reasoning"]
TIER_NAMES: tuple[TierName, ...] = ("fast", "reasoning")
OUTPUT_TOKEN_ESTIMATES: dict[TierName, int] = {"fast": 1024, "reasoning": 8192}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Money is kept as integer micro-dollars in Redis's 64-bit counters: a budget above this
# (or an infinite one, which JSON's 1e309 becomes) would overflow them, or the conversion.
MAX_BUDGET_USD = 1e12
MAX_PRICE_USD = 1.0  # per token: a thousand times today's dearest, and every cost stays countable


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(BaseModel):
    """Prices per token in USD; they override LiteLLM's price map (self-hosted models)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    input_cost_per_token: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per prompt token; unset: LiteLLM's price map",
    )
    output_cost_per_token: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per completion token, reasoning tokens included; unset: LiteLLM's "
        "price map",
    )


class ModelDeployment(_Strict):
    """One entry of ``model_list``: a public name and how LiteLLM reaches it."""

    model_name: str = Field(
        min_length=1,
        description="The name clients and tiers use for this model (unique in model_list)",
    )
    litellm_params: dict[str, Any] = Field(
        repr=False,  # holds provider keys: never printed
        description="Passed to LiteLLM with every call: `model`, the LiteLLM model string "
        "(required, e.g. openai/gpt-4o-mini), and any other LiteLLM parameter (`api_key`, "
        "`api_base`, ...)",
    )
    model_info: ModelInfo = Field(
        default=ModelInfo(),
        description="Prices for cost accounting; other keys are accepted and ignored",
    )

    @field_validator("litellm_params")
    @classmethod
    def _has_model(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("model"), str) or not params["model"]:
            raise ValueError("needs 'model', the LiteLLM model string (e.g. openai/gpt-4o-mini)")
        return params

    @property
    def litellm_model(self) -> str:
        return str(self.litellm_params["model"])


@dataclass(frozen=True, slots=True)
class Thinking:
    """A tier's reasoning settings; all unset means the provider's default.

    router/upstream/reasoning.py turns them into what a provider takes.
    """

    effort: str | None = None
    is_enabled: bool | None = None
    budget_tokens: int | None = None

    @property
    def is_default(self) -> bool:
        return self.effort is None and self.is_enabled is None and self.budget_tokens is None


class Tier(_Strict):
    """A tier is a configured model plus how hard it should think."""

    model: str = Field(description="A `model_name` from model_list")
    reasoning_effort: Effort | None = Field(
        default=None,
        description="The effort for a typical request of this tier; the policy moves it one "
        "step down or up for scores near the threshold or near certainty. Refused at load if "
        "the provider cannot take it. Unset: the provider's default",
    )
    thinking: bool | None = Field(
        default=None,
        description="Thinking on or off, for hybrid models: Qwen3 on vLLM (`hosted_vllm/` or "
        "`openai/` with an api_base) or Ollama, DeepSeek, Gemini (off: a zero budget). Both "
        "tiers may be one model, off and on. Unset: the provider's default",
    )
    thinking_budget_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Tokens the model may think for (Anthropic: at least 1024; Gemini). "
        "Unset: the provider's default",
    )

    @property
    def thinking_settings(self) -> Thinking:
        return Thinking(self.reasoning_effort, self.thinking, self.thinking_budget_tokens)


class BudgetConfig(_Strict):
    """Spending limits in USD; ``None`` means no limit for that window."""

    daily_usd: float | None = Field(
        default=None,
        ge=0,
        le=MAX_BUDGET_USD,
        description="Spend allowed per UTC day; unset: no limit",
    )
    monthly_usd: float | None = Field(
        default=None,
        ge=0,
        le=MAX_BUDGET_USD,
        description="Spend allowed per UTC calendar month; unset: no limit",
    )
    per_request_usd: float | None = Field(
        default=None,
        ge=0,
        le=MAX_BUDGET_USD,
        description="A request whose estimated cost (prompt plus max_tokens or the tier's "
        "output estimate) is above this is refused with 429",
    )
    on_exhaustion: Literal["degrade", "block"] = Field(
        default="degrade",
        description="As a window's budget runs out: `degrade` routes fast only once "
        "`degrade_at` of it is spent, `block` keeps routing normally. Both refuse what the "
        "remaining budget cannot cover",
    )
    degrade_at: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fraction of the daily or monthly budget after which `degrade` routes "
        "fast only",
    )


class RateLimits(_Strict):
    """Per-tenant limits over the current clock minute; unset means no limit."""

    requests_per_minute: int | None = Field(
        default=None, gt=0, description="Chat requests per minute; unset: no limit"
    )
    tokens_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="Estimated tokens (prompt plus expected output) per minute; unset: no limit",
    )


class ShadowConfig(_Strict):
    """Shadow comparisons: a sampled share of routed requests is also answered by the other
    tier, off the request path, and the pair graded (docs/quality.md)."""

    rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of routed, uncached, answered requests also sent to the other tier "
        "(0: off; 0.02 is a typical setting)",
    )
    daily_usd: float = Field(
        default=5.0,
        ge=0,
        le=MAX_BUDGET_USD,
        description="Shadow and judge calls allowed per UTC day, kept as the tenant's "
        "shadow_spend_usd; past it, shadowing stops until the next day",
    )
    judge: str | None = Field(
        default=None,
        description="model_name that grades pairs without comparable final answers, and breaks "
        "disagreements (asked twice, in both orders); unset: such pairs are ungraded",
    )
    charge_tenant: bool = Field(
        default=False,
        description="Also charge shadow calls to the tenant's budget and usage (off: they are "
        "the operator's cost, on their own line)",
    )


class HeadsConfig(_Strict):
    """Per-tenant heads trained from shadow comparisons (docs/quality.md#tenant-heads)."""

    refresh_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="How often each replica checks Redis for a tenant's newly activated head "
        "(one small read per tenant and interval); 0: on every request",
    )


class TenantConfig(_Strict):
    """A customer of the proxy: its keys and its routing policy."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique name; appears in metrics, logs and Redis keys",
    )
    # Plain-text keys are for development; production configs list SHA-256 digests
    # (``thinkroute hash-key KEY`` prints one), so the file holds no usable secret.
    api_keys: list[str] = Field(
        default_factory=list,
        repr=False,
        description="Its keys in plain text, at least 8 characters each (for development; "
        "production configs list api_key_hashes)",
    )
    api_key_hashes: list[str] = Field(
        default_factory=list,
        repr=False,
        description="SHA-256 digests of its keys, `sha256:<64 hex>` as `thinkroute hash-key` "
        "prints them",
    )
    default_mode: Mode = Field(
        default="balanced", description="The mode of requests to model `auto`"
    )
    allowed_models: list[str] | None = Field(
        default=None,
        description="model_names it may call by name; unset: all. Routed requests are "
        "governed by allowed_tiers",
    )
    allowed_tiers: list[TierName] = Field(
        default_factory=lambda: list(TIER_NAMES),
        description="Tiers routing may choose for it; a decision for another tier goes to the "
        "first one listed",
    )
    max_reasoning_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="At most this share of routed (`auto`) requests goes to the reasoning "
        "tier, over its last reasoning_share_window routed requests; the threshold rises to "
        "hold it. Unset: no cap",
    )
    reasoning_share_window: int = Field(
        default=200, ge=10, le=10_000, description="Routed requests max_reasoning_share counts"
    )
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="A reasoning tier whose typical latency is above this is skipped; a "
        "request's x-thinkroute-max-latency-ms can only lower it",
    )
    budget: BudgetConfig = Field(default=BudgetConfig(), description=BudgetConfig.__doc__)
    rate_limits: RateLimits = Field(default=RateLimits(), description=RateLimits.__doc__)
    on_store_failure: Literal["open", "closed"] = Field(
        default="open",
        description="Without Redis, budgets cannot be checked: serve anyway, unmetered "
        "(`open`), or refuse with 503 (`closed`)",
    )
    cache_ttl_s: int | None = Field(
        default=None, gt=0, description="Response cache lifetime for it; unset: cache.ttl_s"
    )
    log_prompts: bool = Field(
        default=False,
        description="Keep the chat text in this tenant's decision log, so its export can "
        "train a head",
    )
    cascade: bool = Field(
        default=True,
        description="Use the top-level cascade (verify, then escalate) when one is configured",
    )
    client_reasoning: Literal["respect", "route"] = Field(
        default="respect",
        description="A request to an `auto` model that sets its own reasoning_effort or "
        "thinking: served as asked (`respect`), or routed with that setting as a ceiling "
        "(`route`: the score picks the tier; thinking off where the turn does not need it)",
    )
    shadow: ShadowConfig | None = Field(
        default=None,
        description="Its own shadow comparison settings (the whole section); unset: the "
        "top-level `shadow`",
    )
    sessions: bool = Field(
        default=True,
        description="Keep its conversations on one model unless a switch pays for the prompt "
        "cache it throws away (when the top-level `sessions.enabled`)",
    )
    target_quality_kept: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Route `auto` to keep this share of always-reasoning quality at the least "
        "cost: the threshold comes from its own graded shadow pairs (default_mode applies "
        "until there are enough); unset: default_mode",
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[str]) -> list[str]:
        if any(len(key) < 8 for key in keys):
            raise ValueError("API keys must be at least 8 characters")
        return keys

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes_are_sha256(cls, digests: list[str]) -> list[str]:
        cleaned = [d.removeprefix("sha256:").lower() for d in digests]
        if any(not re.fullmatch(r"[0-9a-f]{64}", d) for d in cleaned):
            raise ValueError("api_key_hashes must be SHA-256 hex digests ('sha256:<64 hex>')")
        return cleaned

    @field_validator("allowed_tiers")
    @classmethod
    def _some_tier(cls, tiers: list[str]) -> list[str]:
        if not tiers:
            raise ValueError("allow at least one tier")
        return tiers

    @property
    def key_digests(self) -> list[str]:
        return [hash_api_key(key) for key in self.api_keys] + self.api_key_hashes

    @property
    def has_budget(self) -> bool:
        b = self.budget
        return b.daily_usd is not None or b.monthly_usd is not None


def hash_api_key(key: str) -> str:
    """How API keys are stored and compared: SHA-256 hex of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ClassifierConfig(_Strict):
    """Which difficulty classifier scores requests."""

    # A head trained with `thinkroute train --embedding transformer` runs the whole
    # sentence transformer, and only it reads `backend` and `cache_size`.
    path: str | None = Field(
        default=None,
        description="Artifact directory written by `thinkroute train`; unset: the shipped head "
        "(static embedding, numpy only)",
    )
    backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="How a transformer-embedding head runs its model (ignored by the static "
        "embedding)",
    )
    cache_size: int = Field(
        default=4096,
        ge=0,
        description="Embeddings kept in an in-process LRU cache by a transformer-embedding "
        "head (0: none)",
    )


class ServerConfig(_Strict):
    """The HTTP server: request limits, metrics, logs."""

    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Larger request bodies are refused with 413"
    )
    metrics: bool = Field(
        default=True,
        description="Serve GET /metrics in Prometheus' text format, to the metrics key "
        "(THINKROUTE_METRICS_KEY) or the admin key",
    )
    log_prompts: bool = Field(
        default=False,
        description="Put the last user message into each request's log line (off: logs carry "
        "no chat text)",
    )
    decision_log: bool = Field(
        default=True,
        description="Write each tenant's routed decisions to a Redis Stream "
        "(`thinkroute export-decisions` reads it)",
    )
    decision_log_max_entries: int = Field(
        default=100_000, gt=0, description="Each tenant's stream is capped near this many entries"
    )
    tracing: bool = Field(
        default=False,
        description="Send OpenTelemetry traces over OTLP/HTTP (the `otel` extra; endpoint, "
        "service name and sampling from the standard `OTEL_*` variables)",
    )


class RedisConfig(_Strict):
    """Where shared state lives; no URL (and no ``REDIS_URL``) starts an embedded server."""

    url: str | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL (`thinkroute serve --redis-url` "
        "overrides it); unset: REDIS_URL, else an embedded server",
    )
    cluster: bool = Field(default=False, description="The URL points at a Redis Cluster")
    timeout_s: float = Field(
        default=0.5, gt=0, description="Bound on every Redis call, connecting included"
    )
    max_connections: int = Field(
        default=64, gt=0, description="Connection pool size per process; a burst beyond waits"
    )
    embedded_dir: str | None = Field(
        default=None,
        description="Data directory of the embedded server (`--data-dir` overrides it); "
        "unset: ~/.local/share/thinkroute/redis",
    )


class DispatchConfig(_Strict):
    """How model calls are made."""

    # A reasoning model may think for minutes before its first token and then stream for
    # minutes more: a limit on the whole call would cut exactly the answers worth waiting for.
    # So the limits are on silence: before the answer starts, and between stream chunks.
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Bound on opening a connection to the model provider"
    )
    timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Time to first byte: how long a model may stay silent before it answers "
        "(a stream's first chunk; a non-streaming answer), per try",
    )
    idle_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Longest silence between two chunks of a stream; a stream still producing "
        "is never cut. Unset: timeout_s",
    )
    stream_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="A cap on a whole stream, however steadily it produces; unset: none",
    )
    num_retries: int = Field(
        default=1, ge=0, description="Retries of a failed model call before falling back"
    )
    fallback: bool = Field(
        default=True,
        description="When the chosen tier's model fails, answer with the other tier's "
        "(x-thinkroute-fallback says so)",
    )
    direct_openai: bool = Field(
        default=True,
        description="Send OpenAI-compatible deployments over the proxy's own transport, with "
        "LiteLLM's parameter translation; false sends every call via LiteLLM",
    )

    @property
    def idle_s(self) -> float:
        """The longest silence allowed between stream chunks."""
        return self.idle_timeout_s if self.idle_timeout_s is not None else self.timeout_s

    @property
    def read_s(self) -> float:
        """What a transport may wait on one read of a stream: the longer of the two silences
        (the dispatcher holds each to its own limit)."""
        return max(self.timeout_s, self.idle_s)


class ReservationConfig(_Strict):
    """What a request without max_tokens reserves once a tenant's real output is known."""

    learn_output: bool = Field(
        default=True,
        description="Reserve a quantile of each tenant's real output per tier (learned from "
        "settled requests, in Redis) instead of output_token_estimates, once min_samples "
        "have settled",
    )
    quantile: float = Field(
        default=0.95, gt=0, le=1, description="The quantile of real output that is reserved"
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        description="Settled requests of a tenant on a tier before its learned estimate is "
        "used; before that, output_token_estimates",
    )
    window_h: float = Field(
        default=24.0,
        gt=0,
        description="Output older than one to two windows is forgotten (the estimate reads "
        "this window and the one before)",
    )


class CascadeConfig(_Strict):
    """Verify, then escalate: where the score is uncertain, ask the fast tier and a cheap
    verifier together and pay for reasoning only when their final answers differ."""

    verifier: str = Field(
        description="The model_name of a cheap second model, or `self` to sample the fast "
        "tier again at a temperature"
    )
    band: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="The cascade runs where the score lies this close to the mode's threshold "
        "(`auto:verify` runs it for any routed request)",
    )
    verifier_timeout_s: float = Field(
        default=30.0, gt=0, description="A verifier slower than this is ignored (no_answer)"
    )
    streams: bool = Field(
        default=False,
        description="Cascade streaming requests too; their first token then waits for the "
        "whole chosen answer, which is replayed as a stream",
    )
    verifier_head: bool = Field(
        default=False,
        description="Where both replies have a final answer, escalate by the learned verifier "
        "head (classifier/default/verifier.json: P(reasoning better) from both replies and the "
        "score, against the mode's threshold) instead of by whether the answers differ",
    )


class SemanticCacheSettings(BaseModel):
    """The ``cache: {semantic: ...}`` section of the config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=False, description="Answer near-identical questions from the exact cache"
    )
    min_similarity: float = Field(
        default=0.95,
        ge=0.8,
        le=1.0,
        description="Cosine similarity of the two questions' embeddings, after which the "
        "guards decide",
    )
    ttl_s: int = Field(
        default=3600, gt=0, description="Lifetime of an index entry (never past its answer's)"
    )
    max_entries_per_tenant: int = Field(
        default=10_000, gt=0, description="Beyond this the entries closest to expiry are dropped"
    )
    # Each word is at least one of the model's 256 word pieces, so 128 keeps the whole
    # question inside the window the embedding reads (past it, an edit is unseen).
    max_query_tokens: int = Field(
        default=128,
        gt=0,
        le=250,
        description="Questions with more words and punctuation marks are left to the exact cache",
    )
    max_candidates: int = Field(
        default=32,
        gt=0,
        description="Entries compared per lookup, the ones sharing the most LSH buckets with "
        "the question",
    )


class CacheSettings(BaseModel):
    """The ``cache:`` section of the config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(default=True, description="Cache answers in Redis")
    mode: Literal["deterministic", "always"] = Field(
        default="deterministic",
        description="`deterministic`: only requests a client could expect to repeat "
        "(temperature 0 or a seed); `always`: every request, as a cost saver for clients that "
        "accept repeats",
    )
    ttl_s: int = Field(
        default=3600,
        gt=0,
        description="Lifetime of a cached answer (a tenant's cache_ttl_s overrides it)",
    )
    max_entry_bytes: int = Field(
        default=1_000_000, gt=0, description="Answers larger than this (as JSON) are not cached"
    )
    semantic: SemanticCacheSettings = Field(
        default=SemanticCacheSettings(),
        description="Near-identical questions answered from the exact cache (see "
        "router/state/semantic_cache.py); off by default",
    )


class SessionsConfig(_Strict):
    """Sessions: a conversation's turns stay on one model unless switching pays for the
    provider's prompt cache it throws away. A session is named by the client's
    `x-session-id` header or Anthropic `metadata.user_id`, else by its first exchange."""

    enabled: bool = Field(default=True, description="Recognise sessions (needs Redis)")
    ttl_s: int = Field(
        default=3600,
        gt=0,
        le=30 * 86_400,
        description="A session idle this long starts afresh (its model no longer counts)",
    )


class Config(_Strict):
    """The whole configuration, validated."""

    model_list: list[ModelDeployment] = Field(
        default_factory=list, description="The models the proxy can call"
    )
    tiers: dict[TierName, Tier] = Field(
        default_factory=dict,
        description="The `fast` and the `reasoning` tier (both, or neither: then only "
        "routing decisions are served)",
    )
    tenants: list[TenantConfig] = Field(
        default_factory=list,
        description="Who may call the proxy; more can be added at run time through the admin API",
    )
    classifier: ClassifierConfig = Field(
        default=ClassifierConfig(), description=ClassifierConfig.__doc__
    )
    server: ServerConfig = Field(default=ServerConfig(), description=ServerConfig.__doc__)
    dispatch: DispatchConfig = Field(default=DispatchConfig(), description=DispatchConfig.__doc__)
    cache: CacheSettings = Field(default=CacheSettings(), description="The response cache")
    redis: RedisConfig = Field(default=RedisConfig(), description=RedisConfig.__doc__)
    output_token_estimates: dict[TierName, int] = Field(
        default_factory=OUTPUT_TOKEN_ESTIMATES.copy,
        description="Estimated output tokens per tier (reasoning included) when a request "
        "sets no max_tokens; budgets reserve this much until a tenant's own output is learned",
    )
    reservations: ReservationConfig = Field(
        default=ReservationConfig(), description=ReservationConfig.__doc__
    )
    cascade: CascadeConfig | None = Field(default=None, description=CascadeConfig.__doc__)
    shadow: ShadowConfig = Field(
        default=ShadowConfig(), description="Shadow comparisons for tenants that set none"
    )
    sessions: SessionsConfig = Field(default=SessionsConfig(), description=SessionsConfig.__doc__)
    heads: HeadsConfig = Field(default=HeadsConfig(), description=HeadsConfig.__doc__)

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        names = [m.model_name for m in self.model_list]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"model_list: model_name {sorted(duplicates)} defined twice")
        if self.tiers and set(self.tiers) != {"fast", "reasoning"}:
            raise ValueError("tiers: define both 'fast' and 'reasoning'")
        for tier_name, tier in self.tiers.items():
            if tier.model not in names:
                raise ValueError(
                    f"tiers.{tier_name}.model: {tier.model!r} is not a model_name in model_list "
                    f"(have {names})"
                )
        keys = [digest for tenant in self.tenants for digest in tenant.key_digests]
        if len(keys) != len(set(keys)):
            raise ValueError("tenants: an API key is listed more than once")
        tenants = [t.name for t in self.tenants]
        if len(tenants) != len(set(tenants)):
            raise ValueError("tenants: a tenant name is listed more than once")
        if self.cascade is not None:
            if not self.tiers:
                raise ValueError("cascade: needs the fast and reasoning tiers")
            verifier = self.cascade.verifier
            if verifier != "self" and verifier not in names:
                raise ValueError(
                    f"cascade.verifier: {verifier!r} is neither 'self' nor a model_name in "
                    f"model_list (have {names})"
                )
        for where, shadow in [("shadow", self.shadow)] + [
            (f"tenants.{t.name}.shadow", t.shadow) for t in self.tenants if t.shadow
        ]:
            if shadow.judge is not None and shadow.judge not in names:
                raise ValueError(
                    f"{where}.judge: {shadow.judge!r} is not a model_name in model_list "
                    f"(have {names})"
                )
        return self

    def shadow_for(self, tenant: TenantConfig | None) -> ShadowConfig:
        """The shadow settings that apply to ``tenant``: its own, else the top-level ones."""
        return tenant.shadow if tenant is not None and tenant.shadow else self.shadow

    @model_validator(mode="after")
    def _check_providers(self) -> Config:
        """Refuse reasoning settings a tier's provider cannot take, instead of dropping them.

        Part of the model, so a ``Config(...)`` built in code is checked like a file.
        """
        if self.tiers:  # LiteLLM knows the providers; it is loaded only when there are tiers
            _check_efforts(self)
        return self

    def deployment(self, model_name: str) -> ModelDeployment | None:
        return next((m for m in self.model_list if m.model_name == model_name), None)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate a YAML config; :class:`ConfigError` names file and field."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    except RecursionError:  # PyYAML parses nesting recursively
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return build_config(_substitute(raw, env, path, ()), source=str(path))


def build_config(raw: Mapping[str, Any], *, source: str = "config") -> Config:
    """Validate a config given as a mapping; provider support is checked too."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # the whole-config checks name their field in the message
            raise ConfigError(f"{source}: {message}") from None
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{source}: {field}: {message}") from None
    return config


def config_from_environment(env: Mapping[str, str]) -> tuple[Config, str]:
    """A config for ``thinkroute serve`` without a file, and a line saying what was chosen.

    Providers are taken in this order: OpenAI (``OPENAI_API_KEY``),
    Anthropic (``ANTHROPIC_API_KEY``), a local Ollama serving a hybrid Qwen3
    model (``OLLAMA_API_BASE``). Tenant keys come from ``THINKROUTE_API_KEY``
    (comma-separated). With no provider the proxy still starts: routing
    decisions work, completions answer 503 saying what to set.
    """
    models: list[dict[str, Any]] = []
    tiers: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        chosen = "OpenAI: gpt-4o-mini (fast), o4-mini (reasoning)"
        models = [_model("fast", "openai/gpt-4o-mini"), _model("reasoning", "openai/o4-mini")]
        tiers = {
            "fast": {"model": "fast"},
            "reasoning": {"model": "reasoning", "reasoning_effort": "medium"},
        }
    elif env.get("ANTHROPIC_API_KEY"):
        chosen = "Anthropic: claude-haiku-4-5 (fast), claude-sonnet-4-5 with thinking (reasoning)"
        models = [
            _model("fast", "anthropic/claude-haiku-4-5"),
            _model("reasoning", "anthropic/claude-sonnet-4-5"),
        ]
        tiers = {
            "fast": {"model": "fast"},
            "reasoning": {"model": "reasoning", "reasoning_effort": "medium"},
        }
    elif env.get("OLLAMA_API_BASE"):
        chosen = f"Ollama at {env['OLLAMA_API_BASE']}: qwen3 with thinking off (fast) and on"
        base = env["OLLAMA_API_BASE"]
        models = [_model("qwen3", "ollama_chat/qwen3", api_base=base)]
        tiers = {
            "fast": {"model": "qwen3", "thinking": False},
            "reasoning": {"model": "qwen3", "thinking": True},
        }
    else:
        chosen = (
            "no provider: set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_API_BASE, or pass "
            "--config; /v1/route works, completions answer 503"
        )
    keys = [key.strip() for key in env.get("THINKROUTE_API_KEY", "").split(",") if key.strip()]
    tenants = [{"name": "default", "api_keys": keys}] if keys else []
    raw = {"model_list": models, "tiers": tiers, "tenants": tenants}
    return build_config(raw, source="environment"), chosen


def _model(name: str, litellm_model: str, **params: Any) -> dict[str, Any]:
    # Keys stay in the environment: LiteLLM reads OPENAI_API_KEY and friends itself.
    return {"model_name": name, "litellm_params": {"model": litellm_model, **params}}


def _substitute(value: Any, env: Mapping[str, str], path: Path, where: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, env, path, (*where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, path, (*where, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                field = ".".join(where)
                raise ConfigError(f"{path}: {field}: environment variable {name} is not set")
            return env[name]

        return _ENV_REFERENCE.sub(replace, value)
    return value


def _check_efforts(config: Config) -> None:
    """Raise ValueError naming the tier field whose setting its provider cannot take."""
    from router.upstream.reasoning import check_pair, check_tier

    for tier_name, tier in config.tiers.items():
        deployment = config.deployment(tier.model)
        assert deployment is not None  # checked by _check_references
        try:
            problem = check_tier(
                deployment.litellm_params,
                deployment.model_info.model_dump(),
                tier.thinking_settings,
            )
        except Exception as exc:  # LiteLLM raises its own BadRequestError subclasses here
            raise ValueError(
                f"model_list.{tier.model}.litellm_params.model: LiteLLM does not know "
                f"{deployment.litellm_model!r} ({exc})"
            ) from None
        if problem is not None:
            raise ValueError(f"tiers.{tier_name}.{problem.field}: {problem.message}")
    if set(config.tiers) == {"fast", "reasoning"}:
        fast, reasoning = config.tiers["fast"], config.tiers["reasoning"]
        problem = check_pair(
            (fast.model, fast.thinking_settings), (reasoning.model, reasoning.thinking_settings)
        )
        if problem is not None:
            raise ValueError(f"tiers.{problem.field}: {problem.message}")
