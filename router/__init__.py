"""thinkroute's public SDK: route each request to a fast or a reasoning model.

>>> from router import decide
>>> decide(0.9, mode="balanced", thresholds={"balanced": 0.5}).tier
'reasoning'
"""

from router.policy import MODES, RouteDecision, decide, explain

__all__ = ["MODES", "RouteDecision", "decide", "explain"]
