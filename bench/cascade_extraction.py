"""How often classifier.answers finds the answer the benchmark's own parser found.

Reads cascade records (``fast_answers`` with the benchmark's ``answer``/``key``) and
prints one JSON object: per source/subset, over every cheap model's answer,

- ``same_key``: the extractor's key equals the benchmark answer run through the same
  normaliser (extraction agrees; spelling conventions cancel out), over answers the
  benchmark parsed;
- ``same_key_as_data``: the extractor's key equals the data's own ``key`` verbatim;
- ``found`` / ``bench_found``: share of answers with a key, extractor vs benchmark;
- ``pair_agreement``: over pairs of answers to one prompt that both parsers keyed,
  how often "these two agree" comes out the same (what the cascade decides on).

Usage: python bench/cascade_extraction.py [FILE] (default: ../shared/data/cascade/train.jsonl)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from classifier.answers import extract_answer, normalise_answer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "../shared/data/cascade/train.jsonl"


def group_of(record: dict[str, Any]) -> str:
    if record["source"] == "zeroeval":
        return f"zeroeval/{record['subset']}"
    # reasoning-gym subsets are difficulty/category/task: report by category.
    difficulty, category, _ = record["subset"].split("/", 2)
    return f"reasoning-gym/{category}"


def measure(path: Path) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in path.open(encoding="utf-8"):
        record = json.loads(line)
        keys = []
        for answer in record["fast_answers"]:
            mine = extract_answer(answer["text"]).key
            theirs = normalise_answer(answer["answer"]) if answer["parsed"] else None
            for group in (group_of(record), record["source"], "all"):
                tally = counts[group]
                tally["answers"] += 1
                tally["found"] += mine is not None
                tally["bench_found"] += theirs is not None
                if theirs is not None:
                    tally["bench_parsed"] += 1
                    tally["same_key"] += mine == theirs
                    tally["same_key_as_data"] += mine == answer["key"]
            keys.append((mine, answer["key"] if answer["parsed"] else None))
        fast_mine, fast_data = keys[0]
        for mine, data in keys[1:]:
            if None in (fast_mine, fast_data, mine, data):
                continue
            for group in (group_of(record), record["source"], "all"):
                counts[group]["pairs"] += 1
                counts[group]["pair_agreement"] += (fast_mine == mine) == (fast_data == data)
    report = {}
    for group, tally in sorted(counts.items()):
        parsed = tally["bench_parsed"] or 1
        report[group] = {
            "answers": tally["answers"],
            "same_key": round(tally["same_key"] / parsed, 4),
            "same_key_as_data": round(tally["same_key_as_data"] / parsed, 4),
            "found": round(tally["found"] / tally["answers"], 4),
            "bench_found": round(tally["bench_found"] / tally["answers"], 4),
            "pairs": tally["pairs"],
            "pair_agreement": round(tally["pair_agreement"] / (tally["pairs"] or 1), 4),
        }
    return report


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    print(json.dumps(measure(path), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
