"""How long one warm routing decision takes, on typical 20-60-word questions.

A decision is what the proxy does per request: pick the text to score, embed
it, run the head, apply the policy. Prints one JSON object on one line:

    python bench/route_latency.py [--model DIR] [--backend auto|onnx|torch] [--quantize]
                                  [--threads N] [--spin] [--n N]

``--model`` picks an artifact (default: the shipped head, over the static
embedding); the transformer options apply to a head trained over the whole
sentence transformer (``thinkroute train --embedding transformer``).

``p50_ms``/``p99_ms`` time decisions on texts the embedding cache has not
seen (the cache is switched off), ``cached_p50_ms`` the same question again
(an LRU hit; ``null`` for the static embedding, which keeps no cache),
``batch_texts_per_s`` ``score_texts`` on batches of 32. ``import_s`` is the
one-off cost of importing the classifier and the policy, and ``load_s`` that
of ``DifficultyClassifier.load()`` after it (for the transformer, its model
libraries and the ONNX export already on disk). The machine's other load
moves these numbers: repeat runs and compare medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable

import numpy as np

# Fifty questions of 20-60 words, one paragraph each: maths, coding, chat, writing.
QUESTIONS = [
    " ".join(paragraph.split())
    for paragraph in """
Prove that the square root of two is irrational, and then explain whether the same argument works
for the square root of any prime number, or whether it fails somewhere.

A train leaves at 3pm going 60 mph and another leaves the same station at 4pm going 80 mph in the
same direction. When and where does the second train catch up with the first one?

What is the probability that at least two people in a room of 30 share a birthday? Please show the
calculation step by step and explain why the answer is so much higher than most people expect it to
be when they first hear the question.

Find all real solutions of x^4 - 5x^2 + 4 = 0, explain the substitution you use, and check each root
by plugging it back into the original equation.

How many ways can you tile a 2 by 10 rectangle with 1 by 2 dominoes? Derive the recurrence rather
than just giving the number, and say what famous sequence appears.

Compute the integral of x times e to the x from zero to one using integration by parts, and explain
how you choose which factor to differentiate and which to integrate.

Is the series sum of 1 over n log n convergent or divergent? Give a rigorous argument using the
integral test or the Cauchy condensation test, and compare it with the series of 1 over n times the
square of log n, which behaves differently.

Let f be continuous on [0,1] with f(0) = f(1). Show that there is some x in [0, 1/2] with f(x) =
f(x + 1/2), and say whether 1/2 can be replaced by 2/5.

My recipe serves four and needs 300 grams of flour and 2 eggs. How much of each do I need for ten
people, and how should I round the eggs?

Explain the difference between a permutation and a combination with a simple example, and say when
a lottery question needs one rather than the other.

Find the eigenvalues and eigenvectors of the matrix [[2, 1], [1, 2]] and explain what they say about
the linear map geometrically, for example what happens to the unit circle under the map.

If I invest 5000 dollars at 4 percent interest compounded monthly, how much will I have after ten
years, and how does that compare with compounding once a year?

Show that every group of prime order is cyclic, and explain which theorem about the orders of
subgroups does most of the work in the proof. Then say whether a group of order p squared must be
cyclic too, with an example if not.

Write a Python function that returns the length of the longest strictly increasing subsequence of a
list of integers in O(n log n) time, and explain why the patience sorting idea behind it works.

Why does my React component re-render every time its parent renders even though its props do not
change? How would useMemo or React.memo help here, and when are they not worth it?

Write a SQL query that finds, for each customer, their most recent order and its total, given tables
customers, orders and order_items with the usual keys. Ties on the date should be broken by the
order id, and customers without orders should still appear with nulls.

What is the difference between a process and a thread in Linux, and when would you choose
multiprocessing over threading in a Python web scraper?

Implement an LRU cache in Java with constant-time get and put, and explain which standard library
classes you could reuse instead of writing the doubly linked list yourself.

My Rust code fails with "cannot borrow as mutable because it is also borrowed as immutable" inside a
loop over a vector. What does this mean and how do I fix it?

Explain how a hash map handles collisions, compare separate chaining with open addressing, and say
what happens to lookup performance as the load factor grows, and why most implementations resize
long before the table is full.

Write a bash one-liner that finds the ten largest files under the current directory and prints
their sizes in human-readable form, largest first.

How do I set up a GitHub Actions workflow that runs pytest on Python 3.11 and 3.12 for every pull
request and caches the pip downloads between runs?

Design a rate limiter for an HTTP API that allows 100 requests per minute per user across several
servers behind a load balancer. Which algorithm, data structure and shared store would you use, how
do you keep it correct when clocks drift, and what happens when the store is down?

Convert a callback-based Node.js function that reads a file and parses it as JSON into one that
uses async and await, and make sure both read errors and parse errors reach the caller.

Why is 0.1 plus 0.2 not equal to 0.3 in JavaScript, and how should I store and compare money
amounts in a shopping cart instead?

Write a C function that reverses a singly linked list in place, and explain how you would test it,
including the empty list and a list with one element.

Explain what a Python decorator is, then write one that retries a function up to three times with
exponential backoff when it raises a ConnectionError, and keeps the wrapped function's name and
docstring.

Hi! I just moved to a new city and I do not know anyone here. What are some good ways to meet people
and make friends as an adult who works from home?

What should I pack for a week-long hiking trip in the Alps in early September? I will sleep in
mountain huts, so I do not need a tent or a stove.

Can you recommend a few science fiction novels for someone who loved The Martian and Project Hail
Mary and wants something with a similar sense of humour?

My houseplants keep getting yellow leaves even though I water them every few days. What could be
going wrong, and how do I figure out which of those causes it is?

What is the difference between baking soda and baking powder, and can I use one instead of the other
in a banana bread recipe?

I have a job interview for a junior data analyst position next week. What questions should I expect
and how should I prepare in the time I have left? I know some SQL and Excel but have never used
Python at work, and the job ad mentions dashboards and A/B tests.

Tell me a bit about the history of the Silk Road and why it mattered for the exchange of ideas,
religions and technologies as well as goods between China and Europe.

How do noise-cancelling headphones actually work? Explain it simply, like you would to a curious
twelve-year-old who likes science.

What are some healthy breakfast ideas that take less than ten minutes to make and keep me full until
lunch? I do not eat eggs.

Why do cats knead blankets with their paws? My cat does it every evening before she falls asleep on
my lap.

Is it better to rent or buy a home in a city where prices are high? What factors should I weigh if I
might move again in five years, and how do interest rates change the picture?

Write a short, friendly email to my team announcing that the office will be closed next Friday for
maintenance, and that everyone should work from home.

Write a sequence of three haiku about the first snow of winter falling on a quiet city at night,
with a turn in the last one.

Rewrite this sentence to sound more professional: hey, so the report is gonna be late cause we found
some bugs in the numbers, sorry about that.

Draft the opening paragraph of a cover letter for a nurse applying to a pediatric ward, emphasising
patience, calm under pressure, and experience with anxious families.

Write a product description of about fifty words for a handmade ceramic coffee mug with a blue
glaze, aimed at gift buyers in an online shop.

Summarise the plot of Romeo and Juliet in five sentences for a student who has not read it yet,
without giving away more than the prologue does.

Write a persuasive paragraph arguing that cities should replace car lanes with protected bike lanes,
anticipating the strongest objection from shop owners and answering it with evidence from cities
that have already done it.

Write the opening of a mystery story set on a night train from Vienna to Venice, in which the
narrator notices that one passenger has no luggage at all.

Give me three catchy names and taglines for a small bakery that specialises in sourdough bread and
opens early for commuters.

Write a toast for my sister's wedding that is warm and a little funny, about two minutes long,
mentioning our childhood road trips and the time she got us lost in Scotland.

Turn these notes into a clear paragraph for a project update: migration done, two services left,
latency improved 30 percent, risk in billing sync, next review Tuesday.

Write a limerick about a programmer who keeps forgetting to save their work, and then a second one
in which they finally learn their lesson.
""".strip().split("\n\n")
]


def _time_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="artifact directory (default: shipped)")
    parser.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    parser.add_argument("--quantize", action="store_true", help="int8 ONNX model")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--spin", action="store_true", help="let ONNX Runtime threads spin")
    parser.add_argument("--n", type=int, default=300, help="timed decisions")
    parser.add_argument("--mode", default="balanced", help="routing mode for policy.decide")
    args = parser.parse_args()

    start = time.perf_counter()
    from classifier.artifact import read_artifact
    from classifier.model import DEFAULT_ARTIFACT, DifficultyClassifier
    from router.policy import decide

    import_s = time.perf_counter() - start
    params = {"backend": args.backend, "quantize": args.quantize, "num_threads": args.threads}
    if args.spin:
        params["spin"] = True
    if read_artifact(args.model or DEFAULT_ARTIFACT).embedding.get("kind") != "static":
        DifficultyClassifier.load(args.model, **params)  # the one-off ONNX export, if any
    start = time.perf_counter()
    clf = DifficultyClassifier.load(args.model, **params)
    load_s = time.perf_counter() - start
    thresholds = clf.thresholds
    has_cache = "cache_size" in clf.embedder.get_params()

    def route(text: str) -> object:
        score = clf.score_messages([{"role": "user", "content": text}])
        return decide(score, mode=args.mode, thresholds=thresholds)

    # Uncached: with the LRU off, every call pays for the embedding.
    if has_cache:
        clf.embedder.set_params(cache_size=0)
    questions = iter(QUESTIONS * (args.n // len(QUESTIONS) + 2))
    _time_ms(lambda: route(next(questions)), 20)  # warm-up
    uncached = _time_ms(lambda: route(next(questions)), args.n)

    cached = None
    if has_cache:
        clf.embedder.set_params(cache_size=4096)
        route(QUESTIONS[0])
        cached = round(float(np.median(_time_ms(lambda: route(QUESTIONS[0]), 200))), 3)
        clf.embedder.set_params(cache_size=0)

    batch = (QUESTIONS * 2)[:32]
    batches = max(3, args.n // 100)
    clf.score_texts(batch)
    batch_ms = _time_ms(lambda: clf.score_texts(batch), batches)

    result = {
        "embedding": clf.artifact.embedding.get("kind", "transformer"),
        "backend": clf.embedder.backend_,
        "threads": args.threads,
        "spin": args.spin,
        "n": args.n,
        "p50_ms": round(float(np.median(uncached)), 3),
        "p90_ms": round(float(np.percentile(uncached, 90)), 3),
        "p99_ms": round(float(np.percentile(uncached, 99)), 3),
        "cached_p50_ms": cached,
        "batch_texts_per_s": round(32_000 / float(np.median(batch_ms)), 1),
        "import_s": round(import_s, 2),
        "load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
