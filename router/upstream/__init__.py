"""Talking to models: LiteLLM dispatch, the direct OpenAI transport, reasoning settings.

The only package that imports LiteLLM or aiohttp for model calls (and, for the simulated
upstream, FastAPI); it knows nothing of tenants' keys, Redis or the proxy's HTTP server.
"""

import os

# LiteLLM fetches its price list from GitHub when imported unless told not to:
# seconds of retries on a machine without internet, and prices that change under
# a running proxy. Its bundled copy is the default; set it to False to fetch. Here,
# because every module that imports LiteLLM is in this package.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
