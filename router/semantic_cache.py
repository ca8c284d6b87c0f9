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
and identifiers, negations, direction words, operators and quoted literals.

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

import base64
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from router.cache import NOT_IN_KEY, TENANT_PATTERN
from router.errors import StoreUnavailableError
from router.requests import ChatRequest
from router.store import Store

__all__ = [
    "GUARDS",
    "GuardSignature",
    "SemanticCache",
    "SemanticCacheSettings",
    "guard_failures",
    "guard_signature",
    "guards_allow",
    "partition_key",
    "query_text",
]

logger = logging.getLogger(__name__)

# Bump when the partition payload or the stored entry format changes: old entries then miss.
KEY_VERSION = 1
# Random-hyperplane LSH: a pair at cosine 0.95 shares a given table's bucket with
# probability 0.90**8 = 0.43, so it misses all 8 tables 1.2% of the time (0.3% at 0.97).
LSH_TABLES = 8
LSH_BITS = 8
LSH_SEED = 20241127
GUARDS = ("numbers", "names", "negations", "directions", "operators", "literals")


class SemanticCacheSettings(BaseModel):
    """The ``cache: {semantic: ...}`` section of the config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    # Cosine similarity of the two questions' embeddings, after which the guards decide.
    min_similarity: float = Field(default=0.95, ge=0.8, le=1.0)
    ttl_s: int = Field(default=3600, gt=0)
    max_entries_per_tenant: int = Field(default=10_000, gt=0)
    # Words and punctuation marks in the question; longer ones are left to the exact
    # cache. Each is at least one of the model's 256 word pieces, so 128 keeps the
    # whole question inside the window the embedding reads (past it, an edit is unseen).
    max_query_tokens: int = Field(default=128, gt=0, le=250)
    # Entries compared per lookup, the ones sharing the most buckets with the question.
    max_candidates: int = Field(default=64, gt=0)


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

    Built from the same fields as :func:`router.cache.cache_key`, so two requests
    share a partition exactly when their exact keys would differ only by that
    text. None when the last message is not a user turn of text.
    """
    if query_text(request) is None:
        return None
    params = {
        name: value
        for name, value in request.params_for_upstream().items()
        if name not in NOT_IN_KEY and value is not None
    }
    last = {name: value for name, value in request.messages[-1].items() if name != "content"}
    params["messages"] = [*request.messages[:-1], last]
    payload = {
        "v": KEY_VERSION,
        "requested_model": request.model,
        "model": model,
        "reasoning_effort": reasoning_effort,
        "params": params,
    }
    return hashlib.sha256(_canonical_json(payload)).hexdigest()


# --- the guards -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardSignature:
    """What two questions must share to be answered alike; stored with each entry.

    Names are kept as 32-bit hashes of lowercased words, so the index holds no
    prompt text in clear beyond numbers and a few function words.
    """

    numbers: tuple[str, ...]  # canonical, in order: "3/4" and "4/3" differ
    names: frozenset[int]  # hashes of the words that are names or identifiers here
    words: tuple[int, ...]  # hash of every word, lowercased, in order
    negations: tuple[str, ...]  # sorted
    directions: tuple[str, ...]  # sorted
    operators: str  # in order
    literals: tuple[int, ...]  # hashes of quoted strings and code, in order

    def to_json(self) -> bytes:
        packed = np.asarray(self.words, dtype="<u4").tobytes()
        body = {
            "n": list(self.numbers),
            "e": sorted(self.names),
            "w": base64.b64encode(packed).decode(),
            "x": list(self.negations),
            "d": list(self.directions),
            "o": self.operators,
            "q": list(self.literals),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> GuardSignature:
        """Parse :meth:`to_json`'s output; raises ValueError on anything else."""
        try:
            body = json.loads(raw)
            words = np.frombuffer(base64.b64decode(body["w"]), dtype="<u4")
            return cls(
                numbers=tuple(str(n) for n in body["n"]),
                names=frozenset(int(h) for h in body["e"]),
                words=tuple(int(h) for h in words),
                negations=tuple(str(x) for x in body["x"]),
                directions=tuple(str(d) for d in body["d"]),
                operators=str(body["o"]),
                literals=tuple(int(h) for h in body["q"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("not a guard signature") from exc


def guard_signature(text: str) -> GuardSignature:
    """Extract the numbers, names, negations, direction words, operators and literals.

    - numbers: digits (``1,000`` = ``1000``, ``0.50`` = ``.5``, ``5km`` gives 5, a
      minus sign attached to the digits counts) and number words (``five`` = ``5``,
      ``first`` = ``1st``), in order;
    - names: capitalised words not opening a sentence (or opening it but not a
      common sentence opener), acronyms, identifiers (``snake_case``, ``camelCase``,
      ``x2``) and single-letter variables;
    - negations (``not``, ``n't``, ``no``, ``never``, ``without``, ``except`` ...) and
      direction words (``more``/``less``, ``before``/``after``, ``maximum`` ...) as multisets;
    - operators (``+ - * / ^ = < > %`` and currency signs) in order, ignoring hyphens
      inside words; literals: text in quotes or backticks, exactly, in order.
    """
    numbers: list[tuple[int, str]] = []
    for match in _NUMBER.finditer(text):
        numbers.append((match.start(), _canonical_number(match)))
    names: set[int] = set()
    words: list[int] = []
    negations: list[str] = []
    directions: list[str] = []
    for match in _WORD.finditer(text):
        word, is_negated = _split_contraction(match.group())
        lower = word.lower()
        hashed = _hash(lower)
        words.append(hashed)
        if is_negated:
            negations.append("not")
        if lower in _NEGATIONS:
            negations.append(_NEGATIONS[lower])
        if lower in _DIRECTIONS:
            directions.append(lower)
        if lower in _NUMBER_WORDS:
            numbers.append((match.start(), _NUMBER_WORDS[lower]))
        if _is_name(word, opens_sentence=_opens_sentence(text, match.start())):
            names.add(hashed)
    return GuardSignature(
        numbers=tuple(value for _, value in sorted(numbers)),
        names=frozenset(names),
        words=tuple(words),
        negations=tuple(sorted(negations)),
        directions=tuple(sorted(directions)),
        operators=_operators(text),
        literals=tuple(_hash(literal) for literal in _literals(text)),
    )


def guard_failures(a: GuardSignature, b: GuardSignature) -> list[str]:
    """The guards (names from :data:`GUARDS`) that tell the two questions apart."""
    failures = []
    if a.numbers != b.numbers:
        failures.append("numbers")
    # A word counts as a name when either text writes it as one, so "france" still
    # matches "France" in a lowercased paraphrase, and "Paris ... London" never
    # matches "London ... Paris".
    names = a.names | b.names
    if [w for w in a.words if w in names] != [w for w in b.words if w in names]:
        failures.append("names")
    if a.negations != b.negations:
        failures.append("negations")
    if a.directions != b.directions:
        failures.append("directions")
    if a.operators != b.operators:
        failures.append("operators")
    if a.literals != b.literals:
        failures.append("literals")
    return failures


def guards_allow(a: GuardSignature, b: GuardSignature) -> bool:
    """Whether an answer to one question may serve the other, as far as the guards see."""
    return not guard_failures(a, b)


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
        count = len(_PRE_TOKEN.findall(text))
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
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r} cannot be part of a cache key")
    return f"thinkroute:{{{tenant}}}:sem:index"


def _entry_key(tenant: str, entry_id: str) -> str:
    return f"thinkroute:{{{tenant}}}:sem:e:{entry_id}"


def _bucket_key(tenant: str, scope: str, table: int, bucket: int) -> str:
    if not TENANT_PATTERN.fullmatch(tenant):
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
    scored = []
    for raw_vector, raw_guards, key in rows:
        if not isinstance(raw_vector, bytes) or raw_guards is None or key is None:
            continue  # expired (or written by something else)
        vector = _unit(np.frombuffer(raw_vector, dtype="<f2"))
        if vector is not None and vector.shape == query.shape:
            similarity = float(vector @ query)
            if similarity >= min_similarity:
                scored.append((similarity, raw_guards, _text(key)))
    for _, raw_guards, key in sorted(scored, key=lambda item: -item[0]):
        try:
            if guards_allow(signature, GuardSignature.from_json(raw_guards)):
                return key
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


def _canonical_json(value: Any) -> bytes:
    # As router.cache does it: sorted keys, and 0.0 is 0.
    return json.dumps(
        _normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


# --- the guards' vocabulary -------------------------------------------------------------------


def _vocabulary(words: str) -> list[str]:
    return words.split()


_PRE_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w)\]}])-)?"
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?|(?P<bare>\.\d+))"
    r"(?P<ord>(?:st|nd|rd|th)(?![a-z]))?"
)
_LITERALS = re.compile(
    r"```(.*?)```|`([^`\n]+)`|\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”"
    r"|(?<!\w)'([^'\n]{1,200})'(?!\w)|‘([^’\n]{1,200})’",
    re.DOTALL,
)
_OPERATORS = frozenset("+-*/^=<>%×÷≤≥≠√∑∫∏|&~$€£¥·−")
_CONTRACTIONS = frozenset({"s", "re", "ll", "ve", "m", "d", "t"})
_IRREGULAR_NOT = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}

_NEGATIONS = {
    **dict.fromkeys(
        _vocabulary("not no never none nobody nothing nowhere neither nor non cannot nope"), "not"
    ),
    **dict.fromkeys(_vocabulary("except excluding exclude excluded besides"), "except"),
    "without": "without",
    "unless": "unless",
}
# Words whose opposite (or absence) changes the answer; compared as a multiset.
_DIRECTIONS = frozenset(
    _vocabulary("""
    more less fewer most least greater greatest larger largest bigger biggest smaller smallest
    higher highest lower lowest longer longest shorter shortest older oldest younger youngest
    faster fastest slower slowest better best worse worst above below over under maximum
    minimum max min maximize minimize maximise minimise maximal minimal increase increases
    increased increasing decrease decreases decreased decreasing ascending descending rise
    rises fall falls before after earlier later previous next last top bottom up down left
    right north south east west positive negative even odd true false add plus sum subtract
    minus difference multiply times product divide divided quotient buy sell win lose all
    every always some sometimes only same different equal inside outside start end beginning
    """)
)
_UNITS = _vocabulary("""
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen
""")
_TENS = _vocabulary("twenty thirty forty fifty sixty seventy eighty ninety")
_ORDINALS = _vocabulary(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
)
_NUMBER_WORDS = {
    **{word: str(n) for n, word in enumerate(_UNITS)},
    **{word: str(20 + 10 * n) for n, word in enumerate(_TENS)},
    **{word: f"#{n}" for n, word in enumerate(_ORDINALS, start=1)},  # as "1st" gives
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
    "half": "0.5",
    "twice": "x2",
    "double": "x2",
    "triple": "x3",
}
# Capitalised only because they open a sentence: question words, pronouns,
# determiners, auxiliaries, conjunctions, politeness, and the imperatives that
# start instructions. Anything else capitalised counts as a name.
_OPENERS = frozenset(
    _vocabulary("""
    a an the this that these those there here it its i you we they he she my your our their
    his her me us them what which who whom whose when where why how whether if then so but
    and or also now next first finally after before given each every all some any no not
    yes is are was were be been am do does did have has had can could would will shall
    should may might must please thanks thank hi hello hey dear ok okay sure well in on at
    for from to of by with as about into than like just only again instead however
    therefore thus hence meanwhile similarly additionally furthermore moreover still yet
    although though because since while until unless suppose assume consider imagine let
    write explain describe tell give list find calculate compute solve determine show prove
    create make generate provide suggest summarize summarise translate convert identify
    classify compare evaluate simplify rewrite use answer choose select pick fill complete
    predict implement design plan draft compose edit correct check verify name rank sort
    count estimate analyze analyse discuss define outline brainstorm recommend help act
    pretend respond reply read return output input question note task quick one two three
    another other many much most more few several both either neither such same very
    really actually maybe perhaps hmm
    """)
)


def _canonical_number(match: re.Match[str]) -> str:
    digits = (match["int"] or "").replace(",", "") + (match["frac"] or match["bare"] or "")
    if match["ord"]:
        return f"#{int(match['int'] or 0)}"
    try:
        value = format(Decimal(digits).normalize(), "f")
    except InvalidOperation:
        value = digits
    return f"-{value}" if match["sign"] else value


def _split_contraction(token: str) -> tuple[str, bool]:
    """``don't`` -> (``do``, negated); ``Tom's`` -> (``Tom``, not); ``O'Brien`` stays whole."""
    parts = re.split(r"['’]", token, maxsplit=1)
    if len(parts) == 1 or parts[1].lower() not in _CONTRACTIONS:
        return token, False
    head, tail = parts
    if tail.lower() == "t" and head.lower().endswith("n"):
        stem = head[:-1]
        return _IRREGULAR_NOT.get(stem.lower(), stem), True
    return head, False


def _is_name(word: str, *, opens_sentence: bool) -> bool:
    if not word or word[0].isdigit():
        return False  # numbers have their own guard
    if "_" in word or any(c.isdigit() for c in word):
        return True  # identifiers: snake_case, x2, gpt4
    if len(word) == 1:
        return word not in ("a", "i", "I") and not (word == "A" and opens_sentence)
    if word[0].isupper():
        return word.isupper() or not (opens_sentence and word.lower() in _OPENERS)
    return any(c.isupper() for c in word[1:])  # camelCase


def _opens_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“‘(*#>[-")
    return not before or before[-1] in ".!?:\n"


def _operators(text: str) -> str:
    found = []
    for i, char in enumerate(text):
        if char not in _OPERATORS:
            continue
        if (
            char == "-"
            and 0 < i < len(text) - 1
            and text[i - 1].isalpha()
            and text[i + 1].isalpha()
        ):
            continue  # a hyphenated word
        found.append(char)
    return "".join(found)


def _literals(text: str) -> list[str]:
    return [next(g for g in match.groups() if g is not None) for match in _LITERALS.finditer(text)]


def _hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
