"""The semantic cache: its guards, its partitions, and its index in a real Redis.

Embeddings come from the real bundled model (loaded once for the module), so
"similar enough" below means what it will mean in production.
"""

from __future__ import annotations

import itertools
import logging
import uuid

import anyio
import numpy as np
import pytest
from pydantic import ValidationError

from classifier.embedding import SentenceEmbedder
from router.requests import ChatRequest, parse_chat_request
from router.state.cache import cache_key
from router.state.semantic_cache import (
    SemanticCache,
    SemanticCacheSettings,
    partition_key,
    query_text,
)
from router.state.semantic_guards import guard_failures, guard_signature, guards_allow
from router.state.store import Store

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
QUESTION = "Explain how a hash table works."
ON = SemanticCacheSettings(enabled=True)

# Meaning-preserving rewrites: politeness, punctuation, case, contractions, whitespace.
PARAPHRASES = [
    "Please explain how a hash table works.",
    "explain how a hash table works?",
    "Can you explain how a hash table works?",
    "Explain how a hash table works, please.",
    "  Explain how a  hash table works  ",
]
# Each pair sits closer than the default threshold (0.95) for the embedding, yet
# an answer to one is wrong for the other; the named guard tells them apart.
NEAR_MISSES = {
    "numbers": (
        "How many legs do 12 spiders have in total?",
        "How many legs do 13 spiders have in total?",
    ),
    "names": (
        "Did Alice send the letter to Bob before the meeting?",
        "Did Bob send the letter to Alice before the meeting?",
    ),
    "negations": (
        "Is it safe to eat raw eggs during pregnancy?",
        "Is it not safe to eat raw eggs during pregnancy?",
    ),
    "negations (contracted)": (
        "Is it safe to eat raw eggs during pregnancy?",
        "Isn't it safe to eat raw eggs during pregnancy?",
    ),
    "directions": (
        "Sort these numbers in ascending order: 5, 3, 9, 1",
        "Sort these numbers in descending order: 5, 3, 9, 1",
    ),
    "negations in a list": (
        "List three fruits that are high in vitamin C.",
        "List three fruits that are not high in vitamin C.",
    ),
}
# Pure guard cases: (a, b, the guards that must fail; [] means the pair may match).
GUARD_TABLE = [
    ("What is the capital of France?", "what is the capital of france", []),
    ("I walked 5km in 2.50 hours", "I walked 5 km in 2.5 hours.", []),
    ("What is 1,000 - 3?", "What is 1000-3?", []),
    ("Don't use recursion.", "Do not use recursion", []),
    ("Give me five examples", "Give me 5 examples", []),
    ("What's the first prime?", "What is the 1st prime?", []),
    ("Please explain recursion.", "Can you explain recursion?", []),
    ("Janet's ducks lay 16 eggs per day.", "Janet’s ducks lay 16 eggs per day", []),
    ("What is the capital of France?", "What is the capital of Germany?", ["names"]),
    ("Is Paris bigger than London?", "Is London bigger than Paris?", ["names"]),
    ("Write a function in Python", "Write a function in Rust", ["names"]),
    ("Find x if 2x + 3 = 7", "Find y if 2y + 3 = 7", ["names"]),
    ("What is 3/4 of 12?", "What is 4/3 of 12?", ["numbers"]),
    ("What is 12.5% of 80?", "What is 12.05% of 80?", ["numbers"]),
    ("Give me five examples", "Give me six examples", ["numbers"]),
    ("Use recursion.", "Do not use recursion", ["negations"]),
    ("A recipe with sugar", "A recipe without sugar", ["negations"]),
    ("Sort ascending", "Sort descending", ["directions"]),
    ("Which is the largest planet?", "Which is the smallest planet?", ["directions"]),
    ("What happened before the war?", "What happened after the war?", ["directions"]),
    ("Compute 2 + 3 * 4", "Compute 2 * 3 + 4", ["operators"]),
    ("What is 17 + 25?", "What is 17 - 25?", ["operators"]),
    ("Spell 'hello' backwards", "Spell 'world' backwards", ["literals", "wording"]),
    ("Reverse `abc`", "Reverse `ABC`", ["literals"]),
    ("Spell this word backward: but", "Spell this word backward: that", ["payload"]),
    (
        "Classify the sentiment: I loved it",
        "Classify the sentiment: I hated it",
        ["payload", "wording"],
    ),
    ("What is the capital of France?", "What is the population of France?", ["wording"]),
    ("Explain recursion.", "Explain recursion. Thanks in advance!", []),
    ("Quick question: what is a monad?", "What is a monad?", []),
    (
        "Is the ball left of the box and above the cup?",
        "Is the ball above the box and left of the cup?",
        ["directions"],
    ),
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder(cache_size=256).fit()


@pytest.fixture
async def tenant(store):
    """A tenant name no other test uses; its index keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = [k async for k in store.client.scan_iter(match=f"thinkroute:{{{name}}}:sem:*")]
    if keys:
        await store.client.delete(*keys)


def request(text: str = QUESTION, **changes) -> ChatRequest:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "temperature": 0}
    return parse_chat_request({**body, **changes})


def partition(req: ChatRequest | None = None, *, model="fast", effort=None) -> str:
    key = partition_key(req or request(), model=model, reasoning_effort=effort)
    assert key is not None
    return key


class Index:
    """A SemanticCache for one tenant and partition, embedding its texts itself."""

    def __init__(self, cache: SemanticCache, embedder: SentenceEmbedder, tenant: str) -> None:
        self.cache, self.embedder, self.tenant = cache, embedder, tenant

    async def add(self, text: str, key: str, *, part: str | None = None, **kw) -> bool:
        return await self.cache.add(
            tenant=kw.pop("tenant", self.tenant), partition=part or partition(), text=text,
            embedding=self.embedder.transform([text])[0], exact_key=key, **kw,
        )  # fmt: skip

    async def find(self, text: str, *, part: str | None = None, tenant: str | None = None):
        return await self.cache.find(
            tenant=tenant or self.tenant, partition=part or partition(), text=text,
            embedding=self.embedder.transform([text])[0],
        )  # fmt: skip


@pytest.fixture
def index(store, embedder, tenant) -> Index:
    return Index(SemanticCache(store, ON, namespace="test"), embedder, tenant)


def cosine(embedder: SentenceEmbedder, a: str, b: str) -> float:
    vectors = embedder.transform([a, b])
    return float(vectors[0] @ vectors[1])


# --- the guards (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "failing"), GUARD_TABLE)
def test_guards_tell_apart_exactly_the_pairs_whose_answers_differ(a, b, failing):
    assert guard_failures(guard_signature(a), guard_signature(b)) == failing
    assert guard_failures(guard_signature(b), guard_signature(a)) == failing
    assert guards_allow(guard_signature(a), guard_signature(b)) is (not failing)


def test_a_guard_signature_survives_its_stored_form():
    signature = guard_signature("Did Alice pay $12.50 for `x_1`, not 'twelve'? Sort descending.")
    assert type(signature).from_json(signature.to_json()) == signature
    assert b"Alice" not in signature.to_json()  # names are stored as hashes


# --- the partition ----------------------------------------------------------------------------

OTHER_PARTITION = {
    "system prompt": lambda: (
        request(messages=[{"role": "system", "content": "Be terse."}, *request().messages]),
        {},
    ),
    "earlier turn": lambda: (
        request(
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                *request().messages,
            ]
        ),
        {},
    ),
    "requested model": lambda: (request(model="auto:quality"), {}),
    "chosen model": lambda: (request(), {"model": "reasoning"}),
    "chosen effort": lambda: (request(), {"effort": "high"}),
    "temperature": lambda: (request(temperature=0.7), {}),
    "max_tokens": lambda: (request(max_tokens=50), {}),
    "tools": lambda: (
        request(tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}]),
        {},
    ),
    "response_format": lambda: (request(response_format={"type": "json_object"}), {}),
}
SAME_PARTITION = {
    "another question": lambda: request("What is a binary heap?"),
    "stream": lambda: request(stream=True),
    "user label": lambda: request(user="end-user-7"),
    "text as content parts": lambda: request([{"type": "text", "text": QUESTION}]),
}


@pytest.mark.parametrize("change", list(OTHER_PARTITION))
def test_a_change_outside_the_last_user_turn_changes_the_partition(change):
    changed, choice = OTHER_PARTITION[change]()
    assert partition(changed, **choice) != partition()


@pytest.mark.parametrize("variant", list(SAME_PARTITION))
def test_the_last_user_turn_and_framing_fields_keep_the_partition(variant):
    assert partition(SAME_PARTITION[variant]()) == partition()


def test_only_a_last_user_turn_of_text_can_be_matched():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    tool_turn = [*request().messages, {"role": "assistant", "content": "It hashes keys."}]
    with_image = request([{"type": "text", "text": "What is this?"}, image])
    for req in (with_image, request(messages=tool_turn)):
        assert query_text(req) is None
        assert partition_key(req, model="fast", reasoning_effort=None) is None
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert query_text(request(parts)) == "a\nb"


# --- the index in Redis -----------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("paraphrase", PARAPHRASES)
async def test_a_paraphrase_is_answered_with_the_stored_questions_entry(index, paraphrase):
    exact = cache_key(tenant=index.tenant, request=request(), model="fast", reasoning_effort=None)
    assert await index.add(QUESTION, exact)
    assert await index.find(paraphrase) == exact


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(NEAR_MISSES))
async def test_a_near_miss_never_hits_although_its_embedding_is_close(index, embedder, kind):
    stored, asked = NEAR_MISSES[kind]
    assert cosine(embedder, stored, asked) >= ON.min_similarity  # only the guards stand between
    assert await index.add(stored, "exact-key-of-stored")
    assert await index.find(asked) is None
    assert await index.find(stored) == "exact-key-of-stored"


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_a_closer_near_miss_does_not_hide_a_paraphrase(store, embedder, tenant):
    settings = SemanticCacheSettings(enabled=True, min_similarity=0.9)
    index = Index(SemanticCache(store, settings, namespace="test"), embedder, tenant)
    asked = "Sort these numbers in ascending order: 15, 3, 9, 1, 22, 7"
    near_miss = "Sort these numbers in ascending order: 15, 3, 9, 1, 22, 8"
    paraphrase = "Can you sort these numbers in ascending order: 15, 3, 9, 1, 22, 7"
    assert cosine(embedder, asked, near_miss) > cosine(embedder, asked, paraphrase) > 0.9
    assert await index.add(near_miss, "ends-in-8")
    assert await index.add(paraphrase, "ends-in-7")
    assert await index.find(asked) == "ends-in-7"


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_another_tenant_never_finds_the_entry(index, store):
    other = f"test-{uuid.uuid4().hex[:12]}"
    assert await index.add(QUESTION, "acme-key")
    assert await index.find(QUESTION, tenant=other) is None
    assert await index.find(QUESTION) == "acme-key"
    assert not [k async for k in store.client.scan_iter(match=f"thinkroute:{{{other}}}:*")]


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("change", list(OTHER_PARTITION))
async def test_another_partition_never_finds_the_entry(index, change):
    changed, choice = OTHER_PARTITION[change]()
    assert await index.add(QUESTION, "key")
    assert await index.find(PARAPHRASES[0], part=partition(changed, **choice)) is None


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_another_embedding_model_never_finds_the_entry(index, store):
    assert await index.add(QUESTION, "key")
    other_model = SemanticCache(store, ON, namespace="another-model")
    vector = index.embedder.transform([QUESTION])[0]
    found = await other_model.find(
        tenant=index.tenant, partition=partition(), text=QUESTION, embedding=vector
    )
    assert found is None


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_an_entry_expires_and_never_outlives_the_settings_ttl(index, store):
    assert await index.add(QUESTION, "short-lived", ttl_s=1)
    assert await index.find(PARAPHRASES[0]) == "short-lived"
    await anyio.sleep(1.2)
    assert await index.find(PARAPHRASES[0]) is None

    capped = SemanticCache(store, SemanticCacheSettings(enabled=True, ttl_s=30), namespace="t")
    vector = index.embedder.transform([QUESTION])[0]
    part = partition()
    assert await capped.add(
        tenant=index.tenant, partition=part, text=QUESTION, embedding=vector, exact_key="k",
        ttl_s=86_400,
    )  # fmt: skip
    pattern = f"thinkroute:{{{index.tenant}}}:sem:*"
    ttls = [await store.client.ttl(k) async for k in store.client.scan_iter(match=pattern)]
    assert ttls and all(0 < ttl <= 30 for ttl in ttls)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_a_tenant_keeps_at_most_max_entries_dropping_the_oldest(store, embedder, tenant):
    settings = SemanticCacheSettings(enabled=True, max_entries_per_tenant=3)
    clock = itertools.count(1_000_000).__next__
    index = Index(SemanticCache(store, settings, namespace="t", clock=clock), embedder, tenant)
    questions = [
        "What is a binary heap?",
        "How does TCP congestion control work?",
        "Why is the sky blue?",
        "What causes inflation?",
        "How do vaccines train the immune system?",
    ]
    for i, question in enumerate(questions):
        assert await index.add(question, f"key-{i}")
    assert [await index.find(q) for q in questions] == [None, None, "key-2", "key-3", "key-4"]
    prefix = f"thinkroute:{{{tenant}}}:sem:"
    entries = [k async for k in store.client.scan_iter(match=prefix + "e:*")]
    assert len(entries) == 3 and await store.client.zcard(prefix + "index") == 3
    live = {k.decode().rsplit(":", 1)[1] for k in entries}
    buckets = [k async for k in store.client.scan_iter(match=prefix + "*:*:*") if b":e:" not in k]
    members = set().union(*[await store.client.smembers(k) for k in buckets])
    assert {m.decode() for m in members} == live  # evicted entries left no bucket behind


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.anyio
async def test_off_by_default_and_long_questions_are_left_to_the_exact_cache(index, store):
    assert SemanticCacheSettings().enabled is False
    off = Index(SemanticCache(store, SemanticCacheSettings()), index.embedder, index.tenant)
    assert await off.add(QUESTION, "key") is False
    assert await off.find(QUESTION) is None
    # Past the window the embedding reads, an edit would be invisible to it.
    long = QUESTION + " Give details." * 60
    assert not index.cache.accepts(long)
    assert await index.add(long, "key") is False
    assert not [k async for k in store.client.scan_iter(match=f"thinkroute:{{{index.tenant}}}:*")]


def test_settings_reject_unknown_fields_and_a_dangerously_low_threshold():
    with pytest.raises(ValidationError):
        SemanticCacheSettings(enabld=True)
    with pytest.raises(ValidationError):
        SemanticCacheSettings(min_similarity=0.5)


@pytest.mark.anyio
async def test_redis_down_means_miss_and_no_store_without_logging_the_prompt(caplog):
    store = Store.from_url(CLOSED_PORT_URL)
    cache = SemanticCache(store, ON)
    vector = np.ones(384, dtype=np.float32)
    args = {"tenant": "acme", "partition": partition(), "text": QUESTION, "embedding": vector}
    with caplog.at_level(logging.WARNING, logger="router"):
        assert await cache.find(**args) is None
        assert await cache.add(**args, exact_key="key") is False
    await store.aclose()
    assert any(r.name == "router.state.semantic_cache" for r in caplog.records)
    assert "hash table" not in caplog.text
