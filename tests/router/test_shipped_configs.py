"""Config files shipped in the repository load as they are."""

from pathlib import Path

import pytest

from router.config import load_config

SHIPPED = sorted((Path(__file__).parents[2] / "deploy").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    config = load_config(path, env={"THINKROUTE_API_KEY": "sk-test-key-123"})
    assert set(config.tiers) == {"fast", "reasoning"}
