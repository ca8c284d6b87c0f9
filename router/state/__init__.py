"""Everything that lives in Redis: budgets, tenants, caches, the decision log, feedback.

The only package that imports ``redis``; it knows nothing of HTTP (FastAPI) or of how
models are called (LiteLLM).
"""
