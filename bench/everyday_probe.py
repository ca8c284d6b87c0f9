"""How a head routes requests in everyday wording: reasoning need versus chat and writing.

The training sets ask for reasoning in benchmark templates; users ask in prose.
These 40 requests were written for this probe (none comes from a data set), 20
that need careful reasoning though they read like ordinary questions (figures
that must reconcile, why code misbehaves, constraint puzzles, family riddles,
trick questions, a casual "can you show that") and 20 of everyday chat and
writing. Prints one JSON object: the share of each sent to the reasoning tier
at the mode's threshold, and the requests each side got wrong.

    python bench/everyday_probe.py [--model DIR] [--mode balanced] [--why]

Twenty a side is a smoke test, not a measurement: one request is 5 points. With
``--why`` each misrouted request comes with its gate, gain and fired cues.
"""

from __future__ import annotations

import argparse
import json

REASONING = [
    "My three invoices are $120, $45 and $80 but the card statement shows $260. "
    "Where could the difference come from?",
    "The budget sheet says 40% rent, 25% food, 20% savings and 20% other. Does that add up?",
    "Our team had 12 people, 3 left, we hired 5, and then a third of the team moved to "
    "another project. How many are left?",
    "I paid 15% tip on a $64 bill, then split it evenly with two friends, but one friend "
    "already paid $20. How much does each of the others owe me?",
    "Why does my loop never end?\n\ni = 10\nwhile i != 0:\n    i -= 3\n    print(i)",
    "This function should return the largest number in the list but sometimes returns the "
    "wrong one, why?\n\ndef biggest(xs):\n    best = 0\n    for x in xs:\n"
    "        if x > best:\n            best = x\n    return best",
    "What will this print and why?\n\nx = [1, 2, 3]\ny = x\ny.append(4)\nprint(len(x))",
    "Five friends sit in a row at the cinema. Ann won't sit next to Ben, Carl must sit at an "
    "end, and Dana sits right of Ed. How many seatings work?",
    "I need to schedule four meetings on Monday between 9 and 1. The design review must come "
    "before the budget call, the budget call can't be at 11, and I'm out 10-11. What works?",
    "Mary's father has five daughters: Nana, Nene, Nini, Nono. What's the fifth one called?",
    "A man looks at a portrait and says: brothers and sisters I have none, but that man's "
    "father is my father's son. Who is in the portrait?",
    "If my aunt's only brother has a son, and that son's sister is my cousin's mother, "
    "how am I related to her?",
    "A bat and a ball cost $1.10 together and the bat costs a dollar more than the ball. "
    "How much is the ball? Don't just say 10 cents.",
    "Trick question: how many months have 28 days?",
    "If it takes 5 machines 5 minutes to make 5 widgets, how long do 100 machines take "
    "to make 100 widgets?",
    "can you show that the sum of any three consecutive integers is divisible by 3?",
    "Is it true that the square of an odd number is always odd? Explain why, properly.",
    "I flip two coins and tell you at least one is heads. What are the chances both are heads?",
    "A snail climbs 3 m up a 10 m wall each day and slips back 2 m each night. "
    "On which day does it reach the top?",
    "If all bloops are razzies and some razzies are lazzies, does it follow that some "
    "bloops are lazzies?",
]
CHAT = [
    "hi! what's a good name for a grey kitten?",
    "Write a short poem about autumn leaves.",
    "What's the capital of Australia?",
    "Can you suggest a quick vegetarian dinner for two?",
    "Write a friendly email telling my team the office is closed on Friday.",
    "How do I make my sourdough starter more active?",
    "Give me three ideas for a ten-year-old's birthday party.",
    "What does 'serendipity' mean?",
    "Translate 'where is the train station' into Spanish.",
    "Summarise the plot of Pride and Prejudice in three sentences.",
    "Recommend a few podcasts about history.",
    "Rewrite this to sound more polite: send me the file now.",
    "What should I pack for a weekend at the beach?",
    "Tell me a fun fact about octopuses.",
    "Write a birthday message for my grandmother who turns 90.",
    "How do I convert a list to a string in Python?",
    "What time zone is Tokyo in?",
    "Draft a tweet announcing our new coffee shop opening on Main Street.",
    "Why do cats purr?",
    "Write a haiku about the sea.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="artifact directory (default: shipped)")
    parser.add_argument("--mode", default="balanced", help="whose threshold decides")
    parser.add_argument(
        "--why",
        action="store_true",
        help="give each misrouted request's gate, gain and fired cues (see route --explain)",
    )
    args = parser.parse_args()

    from classifier.model import DifficultyClassifier

    clf = DifficultyClassifier.load(args.model)
    threshold = clf.thresholds[args.mode]
    result: dict[str, object] = {"mode": args.mode, "threshold": round(threshold, 4)}
    for name, texts, wanted in (("reasoning", REASONING, True), ("chat", CHAT, False)):
        scores = clf.score_texts(texts)
        to_reasoning = scores >= threshold
        result[f"{name}_to_reasoning"] = round(float(to_reasoning.mean()), 3)
        result[f"{name}_misrouted"] = [
            _why(clf, text) if args.why else f"{score:.2f} {text[:60]}"
            for text, score, hard in zip(texts, scores, to_reasoning, strict=True)
            if hard != wanted
        ]
    print(json.dumps(result))


def _why(clf: object, text: str) -> str:
    """One line on why ``text`` scored as it did: score, gate, gain and the cues that fired."""
    explained = clf.explain_text(text)  # type: ignore[attr-defined]
    cues = ",".join(explained["cues"]) or "-"
    return (
        f"{explained['score']:.2f} gate {explained['gate']:.2f} gain {explained['gain']:.2f} "
        f"cues {cues}: {text[:60]}"
    )


if __name__ == "__main__":
    main()
