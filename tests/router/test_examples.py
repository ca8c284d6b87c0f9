"""The scripts in examples/ run unchanged against a live proxy."""

from __future__ import annotations

import os
import re
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


@pytest.mark.parametrize(
    "script", ["openai_sdk.py", "anthropic_sdk.py", "curl.sh", "langchain_chat.py"]
)
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


def test_langchain_features_pass_through_the_proxy(proxy, clean_upstream):
    """What ChatOpenAI sends beyond a plain chat (tools, structured output, stream_options,
    reasoning_effort, max_completion_tokens) is accepted and forwarded."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    class Answer(BaseModel):
        text: str

    llm = ChatOpenAI(model="auto", base_url=f"{proxy.url}/v1", api_key=ACME_KEY,
                     max_retries=0, include_response_headers=True)  # fmt: skip
    assert llm.bind_tools([add]).invoke("What is 2 + 3?").content.startswith("[fast-model]")
    # The simulator answers in prose and calls no tool, so there is nothing to parse.
    assert llm.with_structured_output(Answer, method="function_calling").invoke("Hi.") is None
    chunks = list(llm.stream("Say hi.", stream_usage=True))
    assert sum(chunks[1:], chunks[0]).usage_metadata["total_tokens"] > 0
    thinking = ChatOpenAI(model="auto", base_url=f"{proxy.url}/v1", api_key=ACME_KEY,
                          reasoning_effort="low", max_tokens=200, max_retries=0,
                          include_response_headers=True)  # fmt: skip
    answer = thinking.invoke("Say hi.")
    assert answer.response_metadata["headers"]["x-thinkroute-reason"] == "client_set_reasoning"

    tools, structured, streamed, reasoning = [r["body"] for r in clean_upstream.requests]
    assert tools["tools"][0]["function"]["name"] == "add"
    assert structured["tool_choice"]["function"]["name"] == "Answer"
    assert structured["parallel_tool_calls"] is False
    assert streamed["stream"] is True
    assert reasoning["model"] == "reasoning-model" and reasoning["reasoning_effort"] == "low"
    assert reasoning["max_completion_tokens"] == 200


def test_langchain_example_routes_both_ways_and_streams_with_usage(proxy):
    output = run([sys.executable, str(EXAMPLES / "langchain_chat.py")],
                 THINKROUTE_URL=f"{proxy.url}/v1", THINKROUTE_API_KEY=ACME_KEY)  # fmt: skip
    # Routed both ways, with the decision read from the response headers.
    assert "-> fast (fast," in output and "-> reasoning (reasoning," in output
    # LangChain asked for the stream's usage (stream_options) and got it in the last chunk.
    streamed = re.search(r"streamed, (\d+) tokens", output)
    assert streamed and int(streamed.group(1)) > 0
