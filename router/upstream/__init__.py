"""Talking to models: LiteLLM dispatch, the direct OpenAI transport, reasoning settings.

The only package that imports LiteLLM or aiohttp for model calls (and, for the simulated
upstream, FastAPI); it knows nothing of tenants' keys, Redis or the proxy's HTTP server.
"""
