"""thinkroute in-process, without a proxy: decide, then answer.

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
    done = router.completion({"model": "auto", "messages": chat})
    print(done.response["choices"][0]["message"]["content"], f"(${done.cost_usd:.6f})")
