"""OpenAI's Responses API (``POST /v1/responses``), translated to and from chat completions.

``requests`` reads a Responses body into the router's chat request, ``output``
writes a chat answer as a Responses object, ``events`` turns a chunk stream into
Responses stream events, and ``routes`` puts them on the server's request path.
The first three import no web framework, so the SDK (``Router.responses``) uses them too.
"""
