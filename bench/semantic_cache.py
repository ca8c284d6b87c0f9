"""How often the semantic cache answers a question it should not, and one it should.

Builds three kinds of pairs from the prompt sets in ``../shared/data`` (read, never copied):

- paraphrases: mechanical, meaning-preserving rewrites (politeness, punctuation, case,
  contractions, whitespace, a small synonym table, "X, please"). A hit is wanted.
- near misses: one edit that changes the answer (a number changed or two swapped, a
  name replaced or two swapped, a negation added or removed, a direction word, an
  operator or a quoted literal flipped). Any hit is a false hit.
- content swaps: one lowercase content word replaced by another word of the prompt
  sets, the edit no guard looks for (only the embedding can tell); any hit is false.
- neighbours: each prompt and its nearest other prompt (cosine) in the same set and
  subset, the "similar but different question" a real tenant sends. Any hit is a false hit.

For thresholds 0.90-0.97 it reports the rates with and without the guards, which
guard catches what (and what the rates become without each guard), then replays the
pairs through :class:`SemanticCache` in Redis to measure what LSH loses against an
exhaustive search and how long a lookup takes. Prints one JSON object:

    python bench/semantic_cache.py [--data DIR] [--bases 420] [--groups-per-file 12]
                                   [--per-group 35] [--seed 0]
                                   [--redis-url URL | --no-redis]

Paraphrases built by rules are easier than a person's rewording, so the paraphrase hit
rate is an upper bound; the false-hit rates are the figures to judge the cache on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

THRESHOLDS = (0.90, 0.93, 0.95, 0.97)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = ("prompts/train.jsonl", "outcomes/train.jsonl", "outcomes/strong_weak_train.jsonl")
NEAR_MISS_CAP = 110  # per kind, so no single edit dominates the near-miss rate


def _words(text: str) -> list[str]:
    return text.split()


PEOPLE = _words("""
James John Robert Michael William David Richard Joseph Thomas Charles Mary Patricia
Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Janet Tom Alice Bob Carol Emma Olivia
Liam Noah Mark Paul Anna Maria Jack Lily Sam Ben Kate Peter Tim Jim Lisa Amy Emily Henry Julia
Jane Tony Mike Sara Rachel Adam""")
PLACES = _words("""France Germany Spain Italy China Japan India Brazil Canada Mexico Russia Egypt
Australia England Britain America Europe Africa Asia Paris London Berlin Tokyo Rome Madrid
Chicago Boston Texas California Florida Greece Turkey Ireland Poland Sweden""")
LANGUAGES = _words("""
Python Java JavaScript Rust Ruby Swift Kotlin TypeScript Haskell Perl PHP Scala
English French Spanish German Chinese Japanese Italian Russian""")
NAME_LISTS = (PEOPLE, PLACES, LANGUAGES)
ANTONYMS = dict(
    pair
    for a, b in (
        ("larger", "smaller"),
        ("largest", "smallest"),
        ("greater", "smaller"),
        ("greatest", "smallest"),
        ("more", "less"),
        ("most", "least"),
        ("maximum", "minimum"),
        ("increase", "decrease"),
        ("increasing", "decreasing"),
        ("ascending", "descending"),
        ("before", "after"),
        ("earlier", "later"),
        ("above", "below"),
        ("higher", "lower"),
        ("highest", "lowest"),
        ("longer", "shorter"),
        ("longest", "shortest"),
        ("first", "last"),
        ("left", "right"),
        ("positive", "negative"),
        ("even", "odd"),
        ("true", "false"),
        ("faster", "slower"),
        ("best", "worst"),
        ("better", "worse"),
        ("older", "younger"),
        ("oldest", "youngest"),
        ("sum", "difference"),
        ("product", "quotient"),
        ("multiply", "divide"),
        ("top", "bottom"),
        ("north", "south"),
        ("east", "west"),
        ("buy", "sell"),
        ("win", "lose"),
        ("inside", "outside"),
        ("same", "different"),
        ("all", "some"),
        ("add", "subtract"),
        ("maximize", "minimize"),
        ("rise", "fall"),
    )  # fmt: skip
    for pair in ((a, b), (b, a))
)
SYNONYMS = dict(
    pair
    for a, b in (
        ("calculate", "compute"),
        ("determine", "find"),
        ("provide", "give"),
        ("assist", "help"),
        ("utilize", "use"),
        ("select", "choose"),
        ("enumerate", "list"),
        ("create", "make"),
        ("quickly", "rapidly"),
        ("purchase", "buy"),
        ("obtain", "get"),
    )  # fmt: skip
    for pair in ((a, b), (b, a))
)
CONTRACTIONS = [("do not", "don't"), ("does not", "doesn't"), ("is not", "isn't"),
                ("are not", "aren't"), ("cannot", "can't"), ("what is", "what's"),
                ("it is", "it's"), ("I am", "I'm"), ("will not", "won't")]  # fmt: skip
QUESTION_OPENERS = {"what", "how", "why", "who", "when", "where", "which", "is", "are", "can",
                    "do", "does", "explain", "write", "describe", "give", "list", "find",
                    "calculate", "compute", "tell", "create", "suggest", "name"}  # fmt: skip


# --- data ---------------------------------------------------------------------------------------


def load_pool(data: Path, groups_per_file: int, per_group: int, rng: random.Random, accepts):
    """Up to ``per_group`` eligible prompts from ``groups_per_file`` groups (set, subset) a file."""
    pool: list[dict[str, Any]] = []
    for name in FILES:
        groups: dict[str, list[str]] = defaultdict(list)
        with open(data / name, encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                text = row["prompt"]
                if len(text.split()) >= 4 and accepts(text):
                    source = row["source"]
                    subset = "" if source == "self-instruct" else row.get("subset") or ""
                    groups[f"{source}/{subset}"].append(text)
        usable = sorted(group for group, texts in groups.items() if len(set(texts)) >= 2)
        for group in rng.sample(usable, min(groups_per_file, len(usable))):
            unique = sorted(set(groups[group]))
            for text in rng.sample(unique, min(per_group, len(unique))):
                pool.append({"text": text, "group": group, "file": name})
    # Some sets repeat a prompt under two subsets (easy/hard); one copy is enough.
    return list({item["text"]: item for item in pool}.values())


# --- paraphrases --------------------------------------------------------------------------------


def _lower_first(text: str) -> str:
    first = text.split(maxsplit=1)[0] if text.split() else ""
    return text[0].lower() + text[1:] if first.lower() in QUESTION_OPENERS else text


def _polite_prefix(t: str, rng: random.Random) -> str | None:
    return rng.choice(["Please, ", "Quick question: ", "Hi! ", "Hello, ", "Hey, "]) + _lower_first(
        t
    )


def _can_you(t: str, rng: random.Random) -> str | None:
    first = t.split(maxsplit=1)[0].lower() if t.split() else ""
    if first not in QUESTION_OPENERS:
        return None
    return rng.choice(
        ["Can you tell me ", "Could you tell me ", "I'd like to know "]
    ) + _lower_first(t)


def _polite_suffix(t: str, rng: random.Random) -> str | None:
    return t.rstrip() + rng.choice(
        [" Thanks!", " Thank you.", " Please answer.", " Thanks in advance."]
    )


def _punctuation(t: str, rng: random.Random) -> str | None:
    stripped = t.rstrip()
    if stripped.endswith("?"):
        return stripped[:-1] + rng.choice([".", ""])
    if stripped.endswith("."):
        return stripped[:-1] + rng.choice(["?", ""])
    return stripped + "?"


def _lowercase(t: str, rng: random.Random) -> str | None:
    if re.search(r"[`'\"“‘=]", t) or t == t.lower():
        return None  # literals and formulas are case-sensitive data
    return t.lower()


def _contraction(t: str, rng: random.Random) -> str | None:
    for long, short in rng.sample(CONTRACTIONS, len(CONTRACTIONS)):
        for a, b in ((long, short), (short, long)):
            pattern = re.compile(rf"\b{re.escape(a)}\b", re.IGNORECASE)
            if pattern.search(t):
                return pattern.sub(lambda m, b=b: _match_case(m.group(), b), t, count=1)
    return None


def _whitespace(t: str, rng: random.Random) -> str | None:
    changed = re.sub(r", ", ",  ", t, count=2) if ", " in t else "  " + t.replace(" ", "  ", 1)
    return changed + rng.choice([" ", "\n", ""])


def _synonym(t: str, rng: random.Random) -> str | None:
    words = [m for m in re.finditer(r"\b\w+\b", t) if m.group().lower() in SYNONYMS]
    if not words:
        return None
    m = rng.choice(words)
    return t[: m.start()] + _match_case(m.group(), SYNONYMS[m.group().lower()]) + t[m.end() :]


def _please_reorder(t: str, rng: random.Random) -> str | None:
    m = re.match(r"(?i)please,? (.+?)([.?!]?)\s*$", t, re.DOTALL)
    if m:
        body = m.group(1)
        return body[0].upper() + body[1:] + ", please" + (m.group(2) or ".")
    stripped = t.rstrip()
    end = stripped[-1] if stripped and stripped[-1] in ".?!" else ""
    return stripped[: len(stripped) - len(end)] + ", please" + (end or ".")


PARAPHRASES: dict[str, Callable[[str, random.Random], str | None]] = {
    "polite_prefix": _polite_prefix,
    "can_you_tell_me": _can_you,
    "polite_suffix": _polite_suffix,
    "punctuation": _punctuation,
    "lowercase": _lowercase,
    "contraction": _contraction,
    "whitespace": _whitespace,
    "synonym": _synonym,
    "x_please": _please_reorder,
}


def paraphrase(text: str, rng: random.Random) -> tuple[str, str] | None:
    """One or two rewrites of ``text``, with their names."""
    names = rng.sample(list(PARAPHRASES), len(PARAPHRASES))
    wanted = 1 if rng.random() < 0.6 else 2
    applied, current = [], text
    for name in names:
        changed = PARAPHRASES[name](current, rng)
        if changed is not None and changed != current:
            applied.append(name)
            current = changed
            if len(applied) == wanted:
                break
    return (current, "+".join(sorted(applied))) if applied else None


# --- near misses --------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _number_change(t: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(t))
    if not found:
        return None
    m = rng.choice(found)
    value = m.group()
    if "." in value:
        new = value[:-1] + str((int(value[-1]) + rng.randint(1, 8)) % 10)
    else:
        new = str(int(value) + rng.choice([1, 2, 3, 5, 10]))
    return t[: m.start()] + new + t[m.end() :]


def _number_swap(t: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(t))
    pairs = [(a, b) for i, a in enumerate(found) for b in found[i + 1 :] if a.group() != b.group()]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    return t[: a.start()] + b.group() + t[a.end() : b.start()] + a.group() + t[b.end() :]


def _names_in(t: str) -> list[tuple[str, list[str]]]:
    return [(w, names) for names in NAME_LISTS for w in names if re.search(rf"\b{w}\b", t)]


def _name_replace(t: str, rng: random.Random) -> str | None:
    found = _names_in(t)
    if not found:
        return None
    name, names = rng.choice(found)
    other = rng.choice([n for n in names if n != name and not re.search(rf"\b{n}\b", t)])
    return re.sub(rf"\b{name}\b", other, t)


def _name_swap(t: str, rng: random.Random) -> str | None:
    found = [name for name, _ in _names_in(t)]
    if len(found) < 2:
        return None
    a, b = rng.sample(found, 2)
    return re.sub(rf"\b({a}|{b})\b", lambda m: b if m.group() == a else a, t)


_AUX = re.compile(r"\b(is|are|was|were|can|could|should|would|will|does|did|has|must)\b(?! not)")


def _negation_insert(t: str, rng: random.Random) -> str | None:
    found = list(_AUX.finditer(t))
    if not found or re.search(r"\bnot\b|n['’]t\b", t):
        return None
    m = rng.choice(found)
    return t[: m.end()] + " not" + t[m.end() :]


def _negation_remove(t: str, rng: random.Random) -> str | None:
    for pattern, repl in ((r"\bnot ", ""), (r"\bwithout\b", "with"), (r"\bnever\b", "always")):
        if re.search(pattern, t):
            return re.sub(pattern, repl, t, count=1)
    m = re.search(r"\b(\w+)n['’]t\b", t)
    if m:
        base = {"ca": "can", "wo": "will"}.get(m.group(1).lower(), m.group(1))
        return t[: m.start()] + base + t[m.end() :]
    return None


def _direction_flip(t: str, rng: random.Random) -> str | None:
    words = [m for m in re.finditer(r"\b\w+\b", t) if m.group().lower() in ANTONYMS]
    if not words:
        return None
    m = rng.choice(words)
    return t[: m.start()] + _match_case(m.group(), ANTONYMS[m.group().lower()]) + t[m.end() :]


_OPERATOR = re.compile(r"(?<=[\w)] )[-+*/<>](?= [\w(])|(?<=\d)[-+*/<>](?=\d)")
_FLIP = {"+": "-", "-": "+", "*": "/", "/": "*", "<": ">", ">": "<"}


def _operator_flip(t: str, rng: random.Random) -> str | None:
    found = list(_OPERATOR.finditer(t))
    if not found:
        return None
    m = rng.choice(found)
    return t[: m.start()] + _FLIP[m.group()] + t[m.end() :]


_QUOTED = re.compile(r"(?<!\w)'([^'\n]{1,60})'(?!\w)|\"([^\"\n]{1,60})\"|`([^`\n]{1,60})`")


def _literal_change(t: str, rng: random.Random) -> str | None:
    found = [m for m in _QUOTED.finditer(t) if re.search(r"[A-Za-z]", m.group())]
    if not found:
        return None
    m = rng.choice(found)
    group = next(i for i in (1, 2, 3) if m.group(i) is not None)
    inner = m.group(group)
    letters = [i for i, c in enumerate(inner) if c.isalpha()]
    i = rng.choice(letters)
    new = inner[:i] + ("a" if inner[i].lower() != "a" else "e") + inner[i + 1 :]
    return t[: m.start(group)] + new + t[m.end(group) :]


NEAR_MISSES: dict[str, Callable[[str, random.Random], str | None]] = {
    "number_change": _number_change,
    "number_swap": _number_swap,
    "name_replace": _name_replace,
    "name_swap": _name_swap,
    "negation_insert": _negation_insert,
    "negation_remove": _negation_remove,
    "direction_flip": _direction_flip,
    "operator_flip": _operator_flip,
    "literal_change": _literal_change,
}


def _match_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


# --- pairs, rates -------------------------------------------------------------------------------


_CONTENT_WORD = re.compile(r"\b[a-z]{5,}\b")


def _content_swap(t: str, rng: random.Random, vocabulary: list[str]) -> str | None:
    found = [m for m in _CONTENT_WORD.finditer(t) if m.group() not in QUESTION_OPENERS]
    if not found:
        return None
    m = rng.choice(found)
    other = rng.choice(vocabulary)
    return None if other == m.group() else t[: m.start()] + other + t[m.end() :]


def build_pairs(pool, bases: int, rng: random.Random, accepts) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = []
    chosen = rng.sample(range(len(pool)), min(bases, len(pool)))
    vocabulary = sorted({w for item in pool for w in _CONTENT_WORD.findall(item["text"])})
    near: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in chosen:
        text = pool[i]["text"]
        rewritten = paraphrase(text, rng)
        if rewritten and accepts(rewritten[0]):
            pairs.append({"kind": "paraphrase", "sub": rewritten[1], "a": i, "b": rewritten[0]})
        swapped = _content_swap(text, rng, vocabulary) if rng.random() < 0.3 else None
        if swapped and accepts(swapped):
            pairs.append({"kind": "content_swap", "sub": "content_swap", "a": i, "b": swapped})
        for name, edit in NEAR_MISSES.items():
            changed = edit(text, rng)
            if changed and changed != text and accepts(changed):
                near[name].append({"kind": "near_miss", "sub": name, "a": i, "b": changed})
    for items in near.values():
        pairs.extend(rng.sample(items, min(NEAR_MISS_CAP, len(items))))
    return pairs


def neighbour_pairs(pool, vectors: np.ndarray) -> list[dict[str, Any]]:
    """Each prompt with its nearest other prompt in the same group (unordered, deduplicated)."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(pool):
        by_group[item["group"]].append(i)
    seen, pairs = set(), []
    for members in by_group.values():
        if len(members) < 2:
            continue
        sims = vectors[members] @ vectors[members].T
        np.fill_diagonal(sims, -1.0)
        for row, i in enumerate(members):
            j = members[int(np.argmax(sims[row]))]
            if (min(i, j), max(i, j)) in seen or _same_text(pool[i]["text"], pool[j]["text"]):
                continue
            seen.add((min(i, j), max(i, j)))
            pairs.append({"kind": "neighbour", "sub": pool[i]["group"], "a": i, "b_index": j})
    return pairs


def _same_text(a: str, b: str) -> bool:
    def norm(t: str) -> str:
        return re.sub(r"\W+", " ", t.lower()).strip()

    return norm(a) == norm(b)


def rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def summarise(pairs, allowed: Callable[[dict[str, Any]], bool], threshold: float, kind: str):
    chosen = [p for p in pairs if p["kind"] == kind]
    hits = sum(1 for p in chosen if p["cosine"] >= threshold and allowed(p))
    return rate(hits, len(chosen))


def report(pairs, guards: tuple[str, ...]) -> dict[str, Any]:
    def guarded(p):
        return not p["failures"]

    def unguarded(p):
        return True

    by_threshold = {}
    for t in THRESHOLDS:
        by_threshold[f"{t:.2f}"] = {
            "paraphrase_hit_rate": summarise(pairs, guarded, t, "paraphrase"),
            "paraphrase_hit_rate_unguarded": summarise(pairs, unguarded, t, "paraphrase"),
            "near_miss_false_hit_rate": summarise(pairs, guarded, t, "near_miss"),
            "near_miss_false_hit_rate_unguarded": summarise(pairs, unguarded, t, "near_miss"),
            "neighbour_false_hit_rate": summarise(pairs, guarded, t, "neighbour"),
            "neighbour_false_hit_rate_unguarded": summarise(pairs, unguarded, t, "neighbour"),
            "content_swap_false_hit_rate": summarise(pairs, guarded, t, "content_swap"),
            "content_swap_false_hit_rate_unguarded": summarise(pairs, unguarded, t, "content_swap"),
        }
    ablation = {}
    for t in (0.90, 0.95):
        ablation[f"{t:.2f}"] = {
            guard: {
                kind: summarise(pairs, lambda p, g=guard: set(p["failures"]) <= {g}, t, kind)
                for kind in ("paraphrase", "near_miss", "neighbour", "content_swap")
            }
            for guard in guards
        }
    return {"by_threshold": by_threshold, "without_one_guard": ablation}


def breakdown(pairs, kind: str, threshold: float) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        if p["kind"] == kind:
            for sub in p["sub"].split("+") if kind == "paraphrase" else [p["sub"]]:
                groups[sub if kind != "neighbour" else p["family"]].append(p)
    out = {}
    for sub, items in sorted(groups.items()):
        close = [p for p in items if p["cosine"] >= threshold]
        caught = Counter(g for p in close for g in p["failures"])
        alone = Counter(p["failures"][0] for p in close if len(p["failures"]) == 1)
        out[sub] = {
            "n": len(items),
            "cosine_p50": round(float(np.median([p["cosine"] for p in items])), 3),
            "above_threshold": len(close),
            "hits_with_guards": sum(1 for p in close if not p["failures"]),
            "failing_guard": dict(caught.most_common()),
            "only_guard": dict(alone.most_common()),
        }
    return out


# --- the index in Redis -------------------------------------------------------------------------


async def replay(url: str, pool, pool_vectors, pairs, pair_vectors, signatures) -> dict[str, Any]:
    """Index the pool in Redis, look up every variant, compare with an exhaustive search."""
    from router.state.semantic_cache import SemanticCache, SemanticCacheSettings
    from router.state.semantic_guards import guards_allow
    from router.state.store import Store

    store = Store.from_url(url, timeout_s=2.0)
    if not await store.ping():
        await store.aclose()
        return {"skipped": f"no Redis at {url}"}
    tenant = f"bench-{uuid.uuid4().hex[:10]}"
    partition = "bench-partition"
    settings = SemanticCacheSettings(enabled=True, max_entries_per_tenant=len(pool) + 10, ttl_s=600)
    cache = SemanticCache(store, settings, namespace="bench")
    out: dict[str, Any] = {"indexed": len(pool)}
    try:
        add_ms = []
        for i, item in enumerate(pool):
            start = time.perf_counter()
            await cache.add(tenant=tenant, partition=partition, text=item["text"],
                            embedding=pool_vectors[i], exact_key=f"k{i}")  # fmt: skip
            add_ms.append((time.perf_counter() - start) * 1000)
        out["add_p50_ms"] = round(float(np.median(add_ms)), 3)
        queries = [(p, pair_vectors[n]) for n, p in enumerate(pairs) if p["kind"] != "neighbour"]
        pool_signatures = [signatures[item["text"]] for item in pool]
        for t in THRESHOLDS:
            thresholded = SemanticCache(
                store, settings.model_copy(update={"min_similarity": t}), namespace="bench"
            )
            found_ms, agree, exhaustive_hits, wrong = [], 0, 0, Counter()
            for p, vector in queries:
                start = time.perf_counter()
                key = await thresholded.find(
                    tenant=tenant, partition=partition, text=p["b"], embedding=vector
                )
                found_ms.append((time.perf_counter() - start) * 1000)
                best = _exhaustive(pool_vectors, pool_signatures, vector, signatures[p["b"]], t,
                                   guards_allow)  # fmt: skip
                if best is not None:
                    exhaustive_hits += 1
                    agree += key == f"k{best}"
                right = f"k{p['a']}" if p["kind"] == "paraphrase" else None
                if key is not None and key != right:
                    wrong[p["kind"]] += 1
            out[f"{t:.2f}"] = {
                "lsh_recall_vs_exhaustive": rate(agree, exhaustive_hits),
                "false_hits_paraphrase_to_other_prompt": wrong["paraphrase"],
                "false_hits_near_miss": wrong["near_miss"],
                "false_hits_content_swap": wrong["content_swap"],
                "queries": len(queries),
            }
            if t == 0.95:
                out["find_p50_ms"] = round(float(np.median(found_ms)), 3)
                out["find_p99_ms"] = round(float(np.percentile(found_ms, 99)), 3)
    finally:
        keys = [k async for k in store.client.scan_iter(match=f"thinkroute:{{{tenant}}}:*")]
        for start in range(0, len(keys), 500):
            await store.client.delete(*keys[start : start + 500])
        await store.aclose()
    return out


def _exhaustive(vectors, signatures, query, signature, threshold, allow) -> int | None:
    sims = vectors @ query
    for i in np.argsort(-sims):
        if sims[i] < threshold:
            return None
        if allow(signature, signatures[i]):
            return int(i)
    return None


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    from classifier.model import EMBEDDERS, DifficultyClassifier

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--bases", type=int, default=420)
    parser.add_argument("--groups-per-file", type=int, default=12)
    parser.add_argument("--per-group", type=int, default=35)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument(
        "--embedding",
        choices=sorted(EMBEDDERS),
        default=DifficultyClassifier.load().artifact.embedding.get("kind", "transformer"),
        help="the vectors the cache compares; by default the shipped classifier's",
    )
    args = parser.parse_args()

    from router.state.semantic_cache import SemanticCache, SemanticCacheSettings
    from router.state.semantic_guards import GUARDS, guard_failures, guard_signature
    from router.state.store import Store

    rng = random.Random(args.seed)
    # The cache's own rule for which questions it takes (its store is never used here).
    accepts = SemanticCache(
        Store.from_url(args.redis_url), SemanticCacheSettings(enabled=True)
    ).accepts
    pool = load_pool(args.data, args.groups_per_file, args.per_group, rng, accepts)
    # Groups of a few rows (MT-Bench categories) keep no neighbours; a family labels the report.
    for item in pool:
        item["family"] = item["group"].split("/")[0]

    embedder = EMBEDDERS[args.embedding]().fit()
    start = time.perf_counter()
    pool_vectors = embedder.transform([item["text"] for item in pool])
    pairs = build_pairs(pool, args.bases, rng, accepts) + neighbour_pairs(pool, pool_vectors)
    variants = [p["b"] for p in pairs if "b" in p]
    variant_vectors = embedder.transform(variants) if variants else np.empty((0, embedder.dim_))
    embed_s = time.perf_counter() - start

    pair_vectors, v = [], iter(variant_vectors)
    signatures = {}
    for p in pairs:
        a_text = pool[p["a"]]["text"]
        if p["kind"] == "neighbour":
            b_vector = pool_vectors[p["b_index"]]
            p["b"] = pool[p.pop("b_index")]["text"]
        else:
            b_vector = next(v)
        p["family"] = pool[p["a"]]["family"]
        pair_vectors.append(b_vector)
        p["cosine"] = float(pool_vectors[p["a"]] @ b_vector)
        for text in (a_text, p["b"]):
            if text not in signatures:
                signatures[text] = guard_signature(text)
        p["failures"] = guard_failures(signatures[a_text], signatures[p["b"]])
    for item in pool:
        signatures.setdefault(item["text"], guard_signature(item["text"]))

    counts = Counter(p["kind"] for p in pairs)
    result: dict[str, Any] = {
        "embedding_model": f"{embedder.model}-{embedder.kind}",
        "backend": embedder.backend_,
        "texts_embedded": len(pool) + len(variants),
        "embed_s": round(embed_s, 1),
        "pool": {"prompts": len(pool), "groups": len({item["group"] for item in pool})},
        "pairs": dict(counts) | {"total": len(pairs)},
        **report(pairs, GUARDS),
        "near_miss_by_edit@0.95": breakdown(pairs, "near_miss", 0.95),
        "near_miss_by_edit@0.90": breakdown(pairs, "near_miss", 0.90),
        "paraphrase_by_rewrite@0.95": breakdown(pairs, "paraphrase", 0.95),
        "content_swap@0.95": breakdown(pairs, "content_swap", 0.95),
        "neighbour_by_set@0.90": breakdown(pairs, "neighbour", 0.90),
        "examples": examples(pairs, pool),
    }
    if not args.no_redis:
        result["redis"] = asyncio.run(
            replay(args.redis_url, pool, pool_vectors, pairs, pair_vectors, signatures)
        )
    print(json.dumps(result))


def examples(pairs, pool, limit: int = 4, width: int = 110) -> dict[str, list[Any]]:
    """A few pairs that would be served at 0.95 wrongly, or refused although alike."""

    def clip(text: str) -> str:
        return " ".join(text.split())[:width]

    def show(p):
        return [round(p["cosine"], 3), p["sub"], clip(pool[p["a"]]["text"]), clip(p["b"])]

    ranked = sorted(pairs, key=lambda p: -p["cosine"])
    false_hits = [p for p in ranked if p["kind"] != "paraphrase" and p["cosine"] >= 0.95
                  and not p["failures"]]  # fmt: skip
    refused = [p for p in ranked if p["kind"] == "paraphrase" and p["cosine"] >= 0.95
               and p["failures"]]  # fmt: skip
    return {
        "false_hits@0.95": [show(p) for p in false_hits[:limit]],
        "paraphrases_refused_by_guards@0.95": [[*show(p), p["failures"]] for p in refused[:limit]],
    }


if __name__ == "__main__":
    main()
