"""Config files: substitution, validation, and errors that name the file and field."""

import json
import subprocess
import sys

import pytest

from router.config import Config, build_config, config_from_environment, load_config
from router.environment import read_environment
from router.errors import ConfigError

GOOD = """
model_list:
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini, api_key: "${TEST_OPENAI_KEY}"}
    model_info: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
  - model_name: reasoning
    litellm_params: {model: openai/o4-mini, api_key: "${TEST_OPENAI_KEY}"}
tiers:
  fast: {model: fast}
  reasoning: {model: reasoning, reasoning_effort: medium}
cache: {enabled: false}
tenants:
  - name: acme
    api_keys: [sk-acme-12345678]
"""


def write(tmp_path, text):
    path = tmp_path / "thinkroute.yaml"
    path.write_text(text)
    return path


def test_the_documented_shape_loads_with_env_substitution(tmp_path):
    config = load_config(write(tmp_path, GOOD), env={"TEST_OPENAI_KEY": "sk-real"})
    assert config.deployment("fast").litellm_params["api_key"] == "sk-real"
    assert config.tiers["reasoning"].reasoning_effort == "medium"
    assert config.tenants[0].default_mode == "balanced"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t, "tiers.reasoning.reasoning_effort"),  # env var present, effort checked below
        (lambda t: t.replace("model: reasoning, ", "model: nowhere, "), "tiers.reasoning.model"),
        (
            lambda t: t.replace("reasoning_effort: medium", "reasoning_effort: max"),
            "tiers.reasoning.reasoning_effort",
        ),
        (lambda t: t.replace("[sk-acme-12345678]", "[short]"), "tenants.0.api_keys"),
        (lambda t: t + "surprise: 1\n", "surprise"),
        (lambda t: t.replace("  fast: {model: fast}\n", ""), "define both"),
    ],
)
def test_errors_name_file_and_field(tmp_path, edit, message):
    text = edit(GOOD)
    if message == "tiers.reasoning.reasoning_effort" and "max" not in text:
        # gpt-4o-mini takes no reasoning effort: refused at load, never dropped
        text = text.replace("model: openai/o4-mini", "model: openai/gpt-4o-mini")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"TEST_OPENAI_KEY": "k"})
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_environment_variable_is_named(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(
        ConfigError, match=r"model_list\.0\.litellm_params\.api_key: .*TEST_OPENAI_KEY"
    ):
        load_config(path, env={})


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "tiers: [unclosed"))


def test_environment_picks_a_provider_or_says_what_to_set():
    config, chosen = config_from_environment(
        {"OPENAI_API_KEY": "sk-x", "THINKROUTE_API_KEY": "sk-dev-key-1"}
    )
    assert config.deployment("reasoning").litellm_model == "openai/o4-mini"
    assert config.tenants[0].api_keys == ["sk-dev-key-1"]
    config, chosen = config_from_environment({})
    assert config.tiers == {} and "OPENAI_API_KEY" in chosen


def test_printing_a_config_never_shows_a_key():
    config = build_config({
        "model_list": [{"model_name": "m", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_key": "sk-provider-secret"}}],
        "tenants": [{"name": "acme", "api_keys": ["sk-tenant-secret"]}],
    })  # fmt: skip
    for shown in (repr(config), str(config), repr(config.tenants[0]), repr(config.model_list)):
        assert "secret" not in shown


def test_config_built_in_code_is_checked_against_its_provider_too():
    models = [{"model_name": n, "litellm_params": {"model": "openai/gpt-4o-mini"}}
              for n in ("fast", "reasoning")]  # fmt: skip
    tiers = {"fast": {"model": "fast"}, "reasoning": {"model": "reasoning",
                                                      "reasoning_effort": "high"}}  # fmt: skip
    with pytest.raises(ValueError, match="tiers.reasoning.reasoning_effort"):
        Config(model_list=models, tiers=tiers)
    with pytest.raises(ConfigError, match="^config: tiers.reasoning.reasoning_effort: "):
        build_config({"model_list": models, "tiers": tiers})


def test_importing_the_config_loads_neither_litellm_nor_redis():
    code = (
        "import sys, router; router.Config; "
        "print(json.dumps([m for m in ('litellm', 'redis', 'aiohttp') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    ("explicit", "configured", "variables", "url"),
    [
        ("redis://flag", "redis://config", {"REDIS_URL": "redis://env"}, "redis://flag"),
        (None, "redis://config", {"REDIS_URL": "redis://env"}, "redis://config"),
        (None, None, {"REDIS_URL": "redis://env"}, "redis://env"),
        (None, None, {"REDIS_URL": ""}, None),  # set but empty: none, so the embedded server
        (None, None, {}, None),
    ],
)
def test_redis_url_precedence_flag_then_config_then_environment(
    explicit, configured, variables, url
):
    env = read_environment(variables)
    assert env.redis_url(explicit=explicit, configured=configured) == url
