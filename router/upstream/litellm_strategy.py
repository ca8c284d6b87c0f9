"""thinkroute's decision inside LiteLLM: ``model: auto`` becomes the tier's model group.

For teams that already run LiteLLM. One object, :class:`ThinkrouteStrategy`, works two ways:

* in-process, as a ``litellm.Router`` routing strategy::

      llm = litellm.Router(model_list=config_yaml["model_list"])
      ThinkrouteStrategy(Router.from_config("thinkroute.yaml")).install(llm)
      await llm.acompletion(model="auto", messages=[...])     # or "auto:quality", or "fast"

* in a LiteLLM proxy, as a callback whose ``async_pre_call_hook`` rewrites the request
  body before LiteLLM routes it (``litellm_settings: callbacks: [module.instance]``).

thinkroute's classifier and policy pick the tier (a client's own ``reasoning_effort``
or ``thinking`` is respected, as by thinkroute's proxy); the request goes to that tier's
model group with the tier's reasoning settings, translated for its provider as
thinkroute's dispatch does, and the decision is left in ``metadata["thinkroute"]``
for LiteLLM's logging. Budgets, rate limits, the answer cache, the cascade and
fallbacks between tiers stay features of thinkroute's own proxy: here LiteLLM calls
the model, with LiteLLM's retries, fallbacks and spend tracking.

Installed as a routing strategy, it picks every deployment of the ``litellm.Router``:
in a group it picks at random (as LiteLLM's simple-shuffle, without weights). The
proxy hook only renames the model, so LiteLLM's own strategy still picks within the group.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm.types.router import CustomRoutingStrategyBase

from router.policy import MODES
from router.upstream.dispatch import CLIENT_REASONING_PARAMS, Target
from router.upstream.reasoning import litellm_kwargs

if TYPE_CHECKING:
    from router.policy import RouteDecision
    from router.proxy import Router

__all__ = ["ThinkrouteStrategy"]

# The names thinkroute routes (router.proxy.AUTO_MODELS); any other goes to its own group.
AUTO_MODELS = frozenset({"auto", *(f"auto:{mode}" for mode in MODES)})


class ThinkrouteStrategy(CustomRoutingStrategyBase, CustomLogger):
    """Route LiteLLM's ``model: auto`` requests with thinkroute's classifier and policy.

    ``router`` is a thinkroute :class:`~router.proxy.Router` whose ``model_list`` names
    the same model groups as LiteLLM's (one YAML file can feed both).
    """

    def __init__(self, router: Router) -> None:
        CustomLogger.__init__(self)
        self.router = router
        self.llm_router: litellm.Router | None = None

    def install(self, llm_router: litellm.Router) -> ThinkrouteStrategy:
        """Make this the routing strategy of ``llm_router``; returns ``self``."""
        self.llm_router = llm_router
        llm_router.register_plugin(self)
        return self

    # -- deciding -----------------------------------------------------------------------

    def route(self, model: str, messages: Any, request_kwargs: dict[str, Any]) -> str:
        """The model group for a request, with the decision's reasoning set in ``request_kwargs``.

        A model name that is not ``auto`` or ``auto:<mode>`` is returned as it is.
        """
        if not _is_auto(model):
            return model
        decision = self.router.decide(
            list(messages or ()), model=model,
            requested_effort=_requested_effort(request_kwargs),
        )  # fmt: skip
        self._apply(decision, request_kwargs)
        assert decision.model is not None  # an auto decision always names a tier's model
        return decision.model

    async def aroute(self, model: str, messages: Any, request_kwargs: dict[str, Any]) -> str:
        """:meth:`route` with the classifier run in a thread, off the event loop."""
        if not _is_auto(model):
            return model
        return await asyncio.to_thread(self.route, model, messages, request_kwargs)

    def _apply(self, decision: RouteDecision, request_kwargs: dict[str, Any]) -> None:
        config = self.router.config
        deployment = config.deployment(decision.model or "")
        tier = None if decision.tier == "direct" else config.tiers.get(decision.tier)
        if (
            deployment is not None
            and tier is not None
            and not (CLIENT_REASONING_PARAMS & request_kwargs.keys())
        ):
            target = Target.for_tier(deployment, tier, decision.reasoning_effort)
            request_kwargs.update(litellm_kwargs(deployment.litellm_params, target.reasoning))
        metadata = request_kwargs.get("metadata")
        if not isinstance(metadata, dict):
            metadata = request_kwargs["metadata"] = {}
        metadata["thinkroute"] = decision.as_dict()

    # -- as a litellm.Router routing strategy -------------------------------------------

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> Any:
        kwargs = request_kwargs if request_kwargs is not None else {}
        return self._pick(await self.aroute(model, messages, kwargs))

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> Any:
        kwargs = request_kwargs if request_kwargs is not None else {}
        return self._pick(self.route(model, messages, kwargs))

    def _pick(self, group: str) -> Mapping[str, Any]:
        if self.llm_router is None:
            raise RuntimeError("ThinkrouteStrategy.install(llm_router) was not called")
        deployments = self.llm_router.registry().deployments(group) or []
        if not deployments:
            raise litellm.NotFoundError(
                f"no deployment of the model group '{group}' (thinkroute chose it)",
                model=group,
                llm_provider="thinkroute",
            )
        return random.choice(deployments)

    # -- as a LiteLLM proxy callback ----------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        """Rename ``auto`` to the chosen group before the LiteLLM proxy routes the request."""
        model = data.get("model")
        if isinstance(model, str) and _is_auto(model):
            data["model"] = await self.aroute(model, data.get("messages"), data)
        return data


def _is_auto(model: str) -> bool:
    return model in AUTO_MODELS


def _requested_effort(request_kwargs: Mapping[str, Any]) -> str | None:
    effort = request_kwargs.get("reasoning_effort")
    if effort is not None:
        return str(effort)
    thinking = request_kwargs.get("thinking")
    if isinstance(thinking, dict) and "type" in thinking:
        return "none" if thinking["type"] == "disabled" else "enabled"
    return None
