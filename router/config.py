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
tiers must name configured models, a tier's reasoning effort must be one its
provider takes (asked of LiteLLM, never dropped silently), API keys must be
unique across tenants.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.cache import CacheSettings
from router.errors import ConfigError

__all__ = [
    "Config",
    "ModelDeployment",
    "TenantConfig",
    "Tier",
    "config_from_environment",
    "hash_api_key",
    "load_config",
]

Mode = Literal["cheap", "balanced", "quality"]
Effort = Literal["none", "minimal", "low", "medium", "high"]
TierName = Literal["fast", "reasoning"]
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(BaseModel):
    """Prices per token in USD; they override LiteLLM's price map (self-hosted models)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)


class ModelDeployment(_Strict):
    """One entry of ``model_list``: a public name and how LiteLLM reaches it."""

    model_name: str = Field(min_length=1)
    litellm_params: dict[str, Any] = Field(repr=False)  # holds provider keys: never printed
    model_info: ModelInfo = ModelInfo()

    @field_validator("litellm_params")
    @classmethod
    def _has_model(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("model"), str) or not params["model"]:
            raise ValueError("needs 'model', the LiteLLM model string (e.g. openai/gpt-4o-mini)")
        return params

    @property
    def litellm_model(self) -> str:
        return str(self.litellm_params["model"])


class Tier(_Strict):
    """A tier is a configured model plus how hard it should think."""

    model: str
    # The effort for a typical request of this tier; the policy moves it one
    # step down or up for scores near the threshold or near certainty.
    reasoning_effort: Effort | None = None


class BudgetConfig(_Strict):
    """Spending limits in USD; ``None`` means no limit for that window."""

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)
    per_request_usd: float | None = Field(default=None, ge=0)
    # As a window's budget runs out: "degrade" routes fast only once ``degrade_at`` of it is
    # spent, "block" keeps routing normally. Both refuse what the remaining budget cannot cover.
    on_exhaustion: Literal["degrade", "block"] = "degrade"
    degrade_at: float = Field(default=0.8, gt=0, le=1)


class RateLimits(_Strict):
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)


class TenantConfig(_Strict):
    """A customer of the proxy: its keys and its routing policy."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    # Plain-text keys are for development; production configs list SHA-256 digests
    # (``thinkroute hash-key KEY`` prints one), so the file holds no usable secret.
    api_keys: list[str] = Field(default_factory=list, repr=False)
    api_key_hashes: list[str] = Field(default_factory=list, repr=False)
    default_mode: Mode = "balanced"
    allowed_models: list[str] | None = None  # concrete models it may call; None = all
    allowed_tiers: list[TierName] = Field(default_factory=lambda: ["fast", "reasoning"])
    # At most this share of routed ("auto") requests goes to the reasoning tier, over the
    # tenant's last ``reasoning_share_window`` routed requests; the threshold rises to hold it.
    max_reasoning_share: float | None = Field(default=None, ge=0, le=1)
    reasoning_share_window: int = Field(default=200, ge=10, le=10_000)
    max_latency_ms: float | None = Field(default=None, gt=0)
    budget: BudgetConfig = BudgetConfig()
    rate_limits: RateLimits = RateLimits()
    # Without Redis, budgets cannot be checked: serve anyway ("open") or refuse ("closed").
    on_store_failure: Literal["open", "closed"] = "open"
    cache_ttl_s: int | None = Field(default=None, gt=0)
    # Keep the chat text in this tenant's decision log, so its export can train a head.
    log_prompts: bool = False

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
    # Artifact directory; None = the shipped head, over the static embedding (numpy, no
    # model runtime). A head trained with `thinkroute train --embedding transformer`
    # runs the whole sentence transformer, and only it reads `backend` and `cache_size`.
    path: str | None = None
    backend: Literal["auto", "onnx", "torch"] = "auto"
    cache_size: int = Field(default=4096, ge=0)


class ServerConfig(_Strict):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # GET /metrics in Prometheus' text format, unauthenticated: it carries tenant names only.
    metrics: bool = True
    # Put the last user message into each request's log line (off: logs carry no chat text).
    log_prompts: bool = False
    # Each tenant's routed decisions go to a Redis Stream capped near this many entries.
    decision_log: bool = True
    decision_log_max_entries: int = Field(default=100_000, gt=0)


class RedisConfig(_Strict):
    """Where shared state lives; no URL (and no ``REDIS_URL``) starts an embedded server."""

    url: str | None = None
    cluster: bool = False
    timeout_s: float = Field(default=0.5, gt=0)
    max_connections: int = Field(default=64, gt=0)  # per replica; a burst beyond waits
    embedded_dir: str | None = None  # data directory of the embedded server


class DispatchConfig(_Strict):
    timeout_s: float = Field(default=600.0, gt=0)
    num_retries: int = Field(default=1, ge=0)
    fallback: bool = True
    # Send OpenAI-compatible deployments over the proxy's own transport, with LiteLLM's
    # parameter translation (router/openai_direct.py); false sends every call via LiteLLM.
    direct_openai: bool = True


class Config(_Strict):
    """The whole configuration, validated."""

    model_list: list[ModelDeployment] = Field(default_factory=list)
    tiers: dict[TierName, Tier] = Field(default_factory=dict)
    tenants: list[TenantConfig] = Field(default_factory=list)
    classifier: ClassifierConfig = ClassifierConfig()
    server: ServerConfig = ServerConfig()
    dispatch: DispatchConfig = DispatchConfig()
    cache: CacheSettings = CacheSettings()
    redis: RedisConfig = RedisConfig()
    # Estimated output tokens per tier when a request sets no max_tokens (reasoning included).
    output_token_estimates: dict[TierName, int] = Field(
        default_factory=lambda: {"fast": 1024, "reasoning": 8192}
    )

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
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return build_config(_substitute(raw, env, path, ()), source=str(path))


def build_config(raw: Mapping[str, Any], *, source: str = "config") -> Config:
    """Validate a config given as a mapping; provider support is checked too."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {field}: {message}") from None
    _check_efforts(config, source)
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
            "fast": {"model": "qwen3"},
            "reasoning": {"model": "qwen3", "reasoning_effort": "medium"},
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


def _check_efforts(config: Config, source: str) -> None:
    """Refuse a tier whose provider cannot take its reasoning effort, instead of dropping it."""
    import litellm

    for tier_name, tier in config.tiers.items():
        if tier.reasoning_effort is None:
            continue
        deployment = config.deployment(tier.model)
        assert deployment is not None  # checked by the model validator
        try:
            model, provider, _, _ = litellm.get_llm_provider(deployment.litellm_model)
        except Exception as exc:  # LiteLLM raises its own BadRequestError subclasses here
            raise ConfigError(
                f"{source}: model_list.{tier.model}.litellm_params.model: LiteLLM does not know "
                f"{deployment.litellm_model!r} ({exc})"
            ) from None
        supported = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
        if "reasoning_effort" not in (supported or []):
            raise ConfigError(
                f"{source}: tiers.{tier_name}.reasoning_effort: {deployment.litellm_model} "
                f"({provider}) does not accept a reasoning effort; remove it or pick a reasoning "
                "model"
            )
