"""The scripts in examples/ run unchanged against a live proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.router.conftest import ACME_KEY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(command: list[str], **env: str) -> str:
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, cwd=EXAMPLES.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("script", ["openai_sdk.py", "anthropic_sdk.py", "curl.sh"])
def test_client_examples_talk_to_the_proxy(proxy, script):
    launcher = ["sh"] if script.endswith(".sh") else [sys.executable]
    output = run([*launcher, str(EXAMPLES / script)], THINKROUTE_URL=f"{proxy.url}/v1",
                 THINKROUTE_BASE=proxy.url, THINKROUTE_API_KEY=ACME_KEY)  # fmt: skip
    assert "answer to" in output


def test_the_sdk_example_routes_in_process(upstream, tmp_path):
    config = yaml.safe_load((EXAMPLES.parent / "deploy" / "config.sim.yaml").read_text())
    for deployment in config["model_list"]:
        deployment["litellm_params"]["api_base"] = upstream.base_url
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    output = run([sys.executable, str(EXAMPLES / "sdk_router.py"), str(path)],
                 THINKROUTE_API_KEY="sk-example-0123456789")  # fmt: skip
    assert "via" in output and "answer to" in output
