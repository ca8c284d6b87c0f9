"""The same proxy through Anthropic's Messages API, streaming the answer.

THINKROUTE_BASE=http://127.0.0.1:8000 THINKROUTE_API_KEY=sk-... python examples/anthropic_sdk.py
"""

import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("THINKROUTE_BASE", "http://127.0.0.1:8000"),
    api_key=os.environ.get("THINKROUTE_API_KEY", "sk-thinkroute-local-dev"),
)
with client.messages.stream(
    model="auto",
    max_tokens=1024,
    messages=[{"role": "user", "content": "Is 2^61 - 1 prime? Explain briefly."}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
print()
