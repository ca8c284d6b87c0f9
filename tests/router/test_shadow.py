"""Shadow comparisons: config, grading, records, live quality figures through the proxy."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import build_config
from router.errors import ConfigError

BASE: dict[str, Any] = {
    "model_list": [
        {"model_name": "fast", "litellm_params": {"model": "openai/fast-model"}},
        {"model_name": "reasoning", "litellm_params": {"model": "openai/reasoning-model"}},
        {"model_name": "judge", "litellm_params": {"model": "openai/judge-model"}},
    ],
}


def test_shadow_defaults_to_off_and_a_tenant_section_replaces_the_global_one():
    config = build_config({
        **BASE,
        "shadow": {"rate": 0.02, "daily_usd": 5, "judge": "judge"},
        "tenants": [{"name": "a", "shadow": {"rate": 1.0}}, {"name": "b"}],
    })  # fmt: skip
    a, b = config.tenants
    assert build_config(BASE).shadow.rate == 0.0
    assert config.shadow_for(a).rate == 1.0 and config.shadow_for(a).judge is None
    assert config.shadow_for(b).rate == 0.02 and config.shadow_for(b).judge == "judge"
    assert config.shadow_for(None).daily_usd == 5.0


@pytest.mark.parametrize(
    ("shadow", "complaint"),
    [
        ({"rate": 1.5}, "shadow.rate"),
        ({"rate": -0.1}, "shadow.rate"),
        ({"daily_usd": -1}, "shadow.daily_usd"),
        ({"judge": "nobody"}, "'nobody' is not a model_name"),
        ({"sample": 0.1}, "shadow.sample"),
    ],
)
def test_bad_shadow_settings_are_refused_with_the_field_named(shadow, complaint):
    with pytest.raises(ConfigError, match=complaint):
        build_config({**BASE, "shadow": shadow})


def test_a_tenant_judge_must_be_a_configured_model():
    with pytest.raises(ConfigError, match="tenants.a.shadow.judge"):
        build_config({**BASE, "tenants": [{"name": "a", "shadow": {"judge": "gpt-x"}}]})
