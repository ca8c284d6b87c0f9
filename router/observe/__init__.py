"""Watching the proxy: Prometheus metrics, structured logs, OpenTelemetry traces.

Observes outcomes it is handed; it imports no Redis, LiteLLM or web framework at run time
and makes no routing decision.
"""
