"""The HTTP faces: the FastAPI server, the OpenAI and Anthropic wire formats, the dashboard.

The only package that imports FastAPI or Starlette; it maps HTTP onto :class:`router.proxy.Router`
and may not touch Redis, LiteLLM or scikit-learn directly.
"""
