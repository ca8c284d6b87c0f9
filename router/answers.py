"""One request's use of the answer caches: which entry, look it up, store the answer.

The exact cache (:mod:`router.state.cache`) is looked up first; on a miss, if it is
on, the semantic cache (:mod:`router.state.semantic_cache`) may point at the entry
of a near-identical question. An answered miss is stored under its exact key
and, for the semantic cache, indexed by its question.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.requests import ChatRequest
from router.state.cache import (
    CacheSettings,
    ResponseCache,
    bypass_requested,
    cache_key,
    is_cacheable,
    no_store_requested,
)
from router.state.semantic_cache import SemanticCache, partition_key, query_text
from router.state.store import Store
from router.upstream.dispatch import Target

__all__ = ["AnswerCache", "CacheEntry"]


@dataclass(slots=True)
class CacheEntry:
    """Where one request's answer lives in the cache, if it may be read from there."""

    key: str | None = None  # None: not read from cache (not cacheable, or bypassed)
    may_store: bool = False
    # The question as the semantic cache indexes it once answered: (partition, text, vector).
    question: tuple[str, str, Any] | None = None


class AnswerCache:
    """The exact and semantic caches of one Router.

    ``embedder`` and ``embedding_model`` are called on first semantic use, so
    the classifier may still be loading when the Router is built.
    """

    def __init__(
        self,
        store: Store,
        settings: CacheSettings,
        *,
        embedder: Callable[[], Any],
        embedding_model: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.exact = ResponseCache(store, settings)
        self._store = store
        self._embedder = embedder
        self._embedding_model = embedding_model
        self._semantic: SemanticCache | None = None

    def entry(
        self, request: ChatRequest, *, tenant: str, target: Target, headers: Mapping[str, str]
    ) -> CacheEntry:
        if not is_cacheable(request, self.settings) or bypass_requested(request, headers):
            return CacheEntry()
        key = cache_key(
            tenant=tenant, request=request, model=target.model_name,
            reasoning_effort=target.reasoning_key,
        )  # fmt: skip
        return CacheEntry(key=key, may_store=not no_store_requested(request, headers))

    async def lookup(
        self, entry: CacheEntry, request: ChatRequest, *, tenant: str, target: Target
    ) -> dict[str, Any] | None:
        """The cached answer for this entry, or for a near-identical question."""
        if entry.key is None:
            return None
        hit = await self.exact.get(entry.key)
        if hit is None and not self._store.is_available:
            # Redis is down: this request was not looked up, and nothing will be stored.
            entry.key, entry.may_store = None, False
            return None
        if hit is None and self.settings.semantic.enabled:
            hit = await self._similar(entry, request, tenant=tenant, target=target)
        return hit

    async def save(
        self, entry: CacheEntry, response: dict[str, Any], *, tenant: str, ttl_s: int
    ) -> None:
        if entry.key is None or not entry.may_store:
            return
        stored = await self.exact.put(entry.key, response, ttl_s=ttl_s)
        if stored and entry.question is not None and self._semantic is not None:
            partition, text, embedding = entry.question
            await self._semantic.add(
                tenant=tenant, partition=partition, text=text, embedding=embedding,
                exact_key=entry.key, ttl_s=ttl_s,
            )  # fmt: skip

    async def _similar(
        self, entry: CacheEntry, request: ChatRequest, *, tenant: str, target: Target
    ) -> dict[str, Any] | None:
        semantic = self._semantic_cache()
        text = query_text(request)
        partition = partition_key(
            request, model=target.model_name, reasoning_effort=target.reasoning_key
        )
        if not text or not partition or not semantic.accepts(text):
            return None
        # The embedder's LRU usually holds this text already: it was just scored.
        embedder = self._embedder()
        embedding = (await asyncio.to_thread(embedder.transform, [text]))[0]
        found = await semantic.find(
            tenant=tenant, partition=partition, text=text, embedding=embedding
        )
        hit = await self.exact.get(found) if found else None
        if hit is None:
            entry.question = (partition, text, embedding)
        return hit

    def _semantic_cache(self) -> SemanticCache:
        if self._semantic is None:
            namespace = re.sub(r"[^A-Za-z0-9_.-]", "-", self._embedding_model())
            self._semantic = SemanticCache(self._store, self.settings.semantic,
                                           namespace=namespace)  # fmt: skip
        return self._semantic
