"""Route a question through thinkroute with the official OpenAI SDK, and see why it went where.

THINKROUTE_URL=http://127.0.0.1:8000/v1 THINKROUTE_API_KEY=sk-... python examples/openai_sdk.py
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("THINKROUTE_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("THINKROUTE_API_KEY", "sk-thinkroute-local-dev"),
)
for question in ("Write a haiku about tea.", "Prove that there are infinitely many primes."):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": question}]
    )
    answer = raw.parse().choices[0].message.content
    print(
        f"{question}\n  -> {raw.headers['x-thinkroute-tier']} ({raw.headers['x-thinkroute-model']},"
        f" score {raw.headers['x-thinkroute-score']}, ${raw.headers['x-thinkroute-cost-usd']})"
    )
    print(f"  {answer[:120]}")

# The Responses API (client.responses), as OpenAI's newer SDK features and agents use it.
response = client.responses.create(
    model="auto", input="Is 2^61 - 1 prime?", reasoning={"effort": "low"}
)
print(f"Responses API -> {response.model}: {response.output_text[:120]}")
