"""thinkroute in-process, without a proxy: decide, then answer, in LiteLLM's call shape.

python examples/sdk_router.py deploy/config.sim.yaml   # with `thinkroute sim-upstream` running
"""

import sys

from router import Router

QUESTION = (
    "Let n be a positive integer. Find all functions f from the integers to the integers "
    "such that f(m + f(n)) = f(m) + n."
)

with Router.from_config(sys.argv[1] if len(sys.argv) > 1 else "deploy/config.sim.yaml") as router:
    chat = [{"role": "user", "content": QUESTION}]
    decision = router.decide(chat)
    print(f"{decision.tier} via {decision.model}: {decision.reason} (score {decision.score:.3f})")
    resp = router.completion(model="auto", messages=chat)  # an openai ChatCompletion
    print(resp.choices[0].message.content, f"(${resp.thinkroute.cost_usd:.6f})")
    answer = router.responses(model="auto", input="Write a haiku about tea.")  # Responses API
    print(answer.output_text, f"({answer.thinkroute.decision.tier})")
