"""An opt-in semantic cache: answer a near-identical question from the exact cache.

Within one tenant and one *partition* (everything in the request but the last
user message's text: system prompt, earlier turns, requested and chosen model,
effort, sampling parameters, tools), a question whose embedding lies within
``min_similarity`` (cosine) of a stored question's, and which passes the guards,
is answered by the stored question's exact-cache entry. The index holds only a
pointer to that entry (its exact key), never an answer.

Embeddings place "What is 12% of 250?" next to "What is 15% of 250?", and
"Is Paris bigger than London?" next to its mirror image, so a match must also
pass :func:`guards_allow`: the same numbers in the same order, the same names
and identifiers, negations, direction words, operators, quoted literals, the
data a template ends with ("Spell this word backward: but" is not "...: that"),
and no topic word replaced by another ("capital" is not "population"). What is
left is rewording around the question: politeness, punctuation, case,
contractions, whitespace, words added or moved. ``bench/semantic_cache.py``
measures what gets through.

The index, per tenant (every key carries the ``{tenant}`` hash tag)::

    thinkroute:{t}:sem:<scope>:<table>:<bucket>  set of entry ids (one LSH bucket)
    thinkroute:{t}:sem:e:<id>                    hash: v (float16 vector), g (guards), k (exact key)
    thinkroute:{t}:sem:index                     zset "<id>:<scope>:<buckets>" by expiry time

A lookup reads its 8 buckets in one round trip and at most ``max_candidates``
entries in a second; it never scans the tenant. Like the exact cache, it only
ever speeds a request up: with Redis down, ``find`` misses and ``add`` declines.

    semantic = SemanticCache(store, SemanticCacheSettings(enabled=True))
    partition = partition_key(request, model="fast", reasoning_effort=None)
    text = query_text(request)
    if partition and text and semantic.accepts(text):
        key = await semantic.find(tenant="acme", partition=partition, text=text, embedding=vector)
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.errors import StoreUnavailableError
from router.requests import ChatRequest
from router.state import cache as exact_cache
from router.state.cache import SemanticCacheSettings
from router.state.semantic_guards import (
    GuardSignature,
    count_word_pieces,
    guard_signature,
    guards_allow,
)
from router.state.store import Store

__all__ = [
    "SemanticCache",
    "SemanticCacheSettings",
    "partition_key",
    "query_text",
]

logger = logging.getLogger(__name__)

# Random-hyperplane LSH: a pair at cosine 0.95 shares a given table's bucket with
# probability 0.90**8 = 0.43, so it misses all 8 tables 1.2% of the time (0.3% at 0.97).
LSH_TABLES = 8
LSH_BITS = 8
LSH_SEED = 20241127


# --- the partition ----------------------------------------------------------------------------


def query_text(request: ChatRequest) -> str | None:
    """The last message's text when it is a user turn of text only, else None (not cacheable)."""
    last = request.messages[-1]
    if last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(part.get("type") == "text" for part in content):
        texts = [part.get("text") for part in content]
        return "\n".join(texts) if all(isinstance(t, str) for t in texts) else None
    return None


def partition_key(request: ChatRequest, *, model: str, reasoning_effort: str | None) -> str | None:
    """A digest of everything that selects the answer except the last user turn's text.

    Built from the same fields as :func:`router.state.cache.cache_key`, so two requests
    share a partition exactly when their exact keys would differ only by that
    text. None when the last message is not a user turn of text.
    """
    if query_text(request) is None:
        return None
    last = {name: value for name, value in request.messages[-1].items() if name != "content"}
    return exact_cache.answer_digest(
        request, model=model, reasoning_effort=reasoning_effort,
        messages=[*request.messages[:-1], last],
    )  # fmt: skip


# --- the index --------------------------------------------------------------------------------


class SemanticCache:
    """Pointers from questions to exact-cache keys, found by embedding similarity.

    ``namespace`` names the embedding model (e.g. ``"all-MiniLM-L6-v2"``): vectors
    of another model live in other partitions and are never compared.
    """

    def __init__(
        self,
        store: Store,
        settings: SemanticCacheSettings,
        *,
        namespace: str = "default",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.namespace = namespace
        self.clock = clock

    def accepts(self, text: str) -> bool:
        """Whether ``text`` may be looked up or added (check before computing its embedding)."""
        count = count_word_pieces(text)
        return self.settings.enabled and 0 < count <= self.settings.max_query_tokens

    async def find(
        self, *, tenant: str, partition: str, text: str, embedding: Sequence[float] | NDArray[Any]
    ) -> str | None:
        """The exact-cache key of the most similar stored question the guards allow, or None."""
        vector = _unit(embedding)
        if vector is None or not self.accepts(text):
            return None
        scope = self._scope(partition)
        client = self.store.client
        try:
            pipe = client.pipeline(transaction=False)
            for table, bucket in enumerate(_buckets(vector)):
                pipe.smembers(_bucket_key(tenant, scope, table, bucket))
            ids = _candidates(await self.store.call(pipe.execute()), self.settings.max_candidates)
            if not ids:
                return None
            pipe = client.pipeline(transaction=False)
            for entry_id in ids:
                pipe.hmget(_entry_key(tenant, entry_id), ["v", "g", "k"])
            rows = await self.store.call(pipe.execute())
        except StoreUnavailableError as exc:
            logger.warning("semantic cache read skipped: %s", exc)
            return None
        return _best(vector, guard_signature(text), rows, self.settings.min_similarity)

    async def add(
        self,
        *,
        tenant: str,
        partition: str,
        text: str,
        embedding: Sequence[float] | NDArray[Any],
        exact_key: str,
        ttl_s: int | None = None,
    ) -> bool:
        """Index a question whose answer is in the exact cache under ``exact_key``.

        Lives ``min(ttl_s, settings.ttl_s)`` seconds: pass the exact entry's TTL, so
        the pointer never outlives the answer. Beyond ``max_entries_per_tenant`` the
        entries closest to expiry are dropped. Returns whether the entry was stored.
        """
        vector = _unit(embedding)
        if vector is None or not self.accepts(text):
            return False
        ttl = min(ttl_s or self.settings.ttl_s, self.settings.ttl_s)
        scope = self._scope(partition)
        entry_id = hashlib.blake2b(f"{scope}\0{text}".encode(), digest_size=12).hexdigest()
        buckets = _buckets(vector)
        member = f"{entry_id}:{scope}:{bytes(buckets).hex()}"
        index = _index_key(tenant)
        now = self.clock()
        client = self.store.client
        pipe = client.pipeline(transaction=False)
        entry = {"v": vector.astype("<f2").tobytes(), "g": guard_signature(text).to_json()}
        pipe.hset(_entry_key(tenant, entry_id), mapping={**entry, "k": exact_key})
        pipe.expire(_entry_key(tenant, entry_id), ttl)
        for table, bucket in enumerate(buckets):
            # Buckets outlive their entries (settings.ttl_s, renewed by each add): an
            # entry's own, shorter TTL must not cut its neighbours out of the bucket.
            pipe.sadd(_bucket_key(tenant, scope, table, bucket), entry_id)
            pipe.expire(_bucket_key(tenant, scope, table, bucket), self.settings.ttl_s)
        pipe.zadd(index, {member: now + ttl})
        pipe.expire(index, self.settings.ttl_s)
        pipe.zrangebyscore(index, "-inf", now)
        pipe.zremrangebyscore(index, "-inf", now)
        pipe.zcard(index)
        try:
            *_, expired, _, count = await self.store.call(pipe.execute())
            evicted: list[Any] = []
            if count > self.settings.max_entries_per_tenant:
                excess = count - self.settings.max_entries_per_tenant
                evicted = [m for m, _ in await self.store.call(client.zpopmin(index, excess))]
            stale = [_text(m) for m in [*expired, *evicted]]
            if stale:
                await self.store.call(_forget(client.pipeline(transaction=False), tenant, stale))
        except StoreUnavailableError as exc:
            logger.warning("semantic cache write skipped: %s", exc)
            return False
        return member not in stale

    def _scope(self, partition: str) -> str:
        return hashlib.blake2b(
            f"{self.namespace}\0{partition}".encode(), digest_size=16
        ).hexdigest()


def _index_key(tenant: str) -> str:
    if not exact_cache.TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r} cannot be part of a cache key")
    return f"thinkroute:{{{tenant}}}:sem:index"


def _entry_key(tenant: str, entry_id: str) -> str:
    return f"thinkroute:{{{tenant}}}:sem:e:{entry_id}"


def _bucket_key(tenant: str, scope: str, table: int, bucket: int) -> str:
    if not exact_cache.TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r} cannot be part of a cache key")
    return f"thinkroute:{{{tenant}}}:sem:{scope}:{table}:{bucket:02x}"


def _forget(pipe: Any, tenant: str, members: list[str]) -> Any:
    """Delete entries and their bucket memberships, named by their index members."""
    for member in members:
        entry_id, scope, buckets = member.split(":")
        pipe.delete(_entry_key(tenant, entry_id))
        for table, bucket in enumerate(bytes.fromhex(buckets)):
            pipe.srem(_bucket_key(tenant, scope, table, bucket), entry_id)
    return pipe.execute()


@lru_cache(maxsize=4)
def _planes(dim: int) -> NDArray[np.float32]:
    # Fixed seed: every replica must hash a vector into the same buckets. Were a
    # numpy release to change this stream, lookups would only miss, never mismatch.
    rng = np.random.default_rng(LSH_SEED)
    return rng.standard_normal((LSH_TABLES * LSH_BITS, dim)).astype(np.float32)


def _buckets(vector: NDArray[np.float32]) -> list[int]:
    bits = (_planes(vector.shape[0]) @ vector > 0).reshape(LSH_TABLES, LSH_BITS)
    return [int(b) for b in np.packbits(bits, axis=1)[:, 0]]


def _candidates(members: list[set[Any]], limit: int) -> list[str]:
    counts = Counter(_text(m) for bucket in members for m in bucket)
    return [m for m, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def _best(
    query: NDArray[np.float32], signature: GuardSignature, rows: list[Any], min_similarity: float
) -> str | None:
    width = query.shape[0] * 2  # float16
    live = [row for row in rows if isinstance(row[0], bytes) and len(row[0]) == width and all(row)]
    if not live:
        return None  # expired (or written by another model or format)
    vectors = np.frombuffer(b"".join(row[0] for row in live), dtype="<f2").reshape(len(live), -1)
    vectors = vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    similarities = (vectors @ query) / np.where(norms > 0, norms, np.inf)
    for i in np.argsort(-similarities):
        if similarities[i] < min_similarity:
            break
        try:
            if guards_allow(signature, GuardSignature.from_json(live[i][1])):
                return _text(live[i][2])
        except ValueError:
            continue
    return None


def _unit(embedding: Sequence[float] | NDArray[Any]) -> NDArray[np.float32] | None:
    vector = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
    if not np.isfinite(norm) or norm == 0.0:
        return None
    return vector / norm


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
