"""thinkroute's public SDK: route each request to a fast or a reasoning model.

>>> from router import Router                                  # doctest: +SKIP
>>> router = Router.from_config("thinkroute.yaml")             # doctest: +SKIP
>>> router.decide([{"role": "user", "content": "Prove that sqrt(2) is irrational."}]).tier
'reasoning'
"""

import os

# LiteLLM fetches its price list from GitHub when imported unless told not to:
# seconds of retries on a machine without internet, and prices that change under
# a running proxy. Its bundled copy is the default here; set it to False to fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from router.config import Config, load_config
from router.errors import ThinkrouteError
from router.policy import MODES, RouteDecision, decide
from router.proxy import Completion, Router, StreamingCompletion

__all__ = [
    "MODES",
    "Completion",
    "Config",
    "RouteDecision",
    "Router",
    "StreamingCompletion",
    "ThinkrouteError",
    "decide",
    "load_config",
]
