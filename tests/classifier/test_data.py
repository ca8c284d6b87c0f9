"""Reading outcome, strong/weak and prompt records from JSONL and CSV."""

import json
from pathlib import Path

import pytest

from classifier.data import load_records, read_records
from classifier.errors import DataFormatError

OUTCOME = {
    "id": "zeroeval/gsm/17",
    "source": "zeroeval",
    "subset": "gsm",
    "prompt": "Janet's ducks...",
    "fast": {"model": "gpt-4o-mini", "score": 1.0},
    "reasoning": {"model": "o1-mini", "score": 0.0},
}
STRONG_WEAK = {
    "id": "routellm/gsm8k/0",
    "source": "routellm",
    "subset": "gsm8k",
    "prompt": "A robe...",
    "weak": {"model": "mixtral", "score": 0.0},
    "strong": {"model": "gpt-4", "score": 1.0},
}
PROMPT = {
    "id": "alpaca/1",
    "source": "alpaca_eval",
    "subset": "oasst",
    "prompt": "Hi!",
    "expected_tier": "fast",
}


def write_jsonl(path, *objects):
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def test_each_jsonl_kind_is_read(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", OUTCOME, STRONG_WEAK, PROMPT)
    outcome, strong_weak, prompt = read_records(path)
    assert (outcome.pair, outcome.gap, outcome.text) == ("fast/reasoning", -1.0, "Janet's ducks...")
    assert (strong_weak.pair, strong_weak.gap) == ("weak/strong", 1.0)
    assert (prompt.pair, prompt.expected_tier, prompt.has_outcome) == (None, "fast", False)


def test_csv_uses_flat_columns(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text(
        "id,source,subset,prompt,fast_score,reasoning_score,expected_tier\n"
        "a,s,x,What is 1+1?,1,1,\n"
        'b,s,x,"Prove it, please",,,reasoning\n',
        encoding="utf-8",
    )
    first, second = read_records(path)
    assert first.pair == "fast/reasoning" and first.gap == 0.0
    assert second.expected_tier == "reasoning" and second.text == "Prove it, please"


def test_messages_are_scored_like_a_chat(tmp_path):
    record = {
        "id": "c1",
        "expected_tier": "fast",
        "messages": [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "Tell me a joke"},
        ],
    }
    (parsed,) = read_records(write_jsonl(tmp_path / "chat.jsonl", record))
    assert parsed.text == "Tell me a joke"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({**PROMPT, "id": ""}), "missing or empty 'id'"),
        (json.dumps({**PROMPT, "prompt": 3}), "missing 'prompt'"),
        (json.dumps({**PROMPT, "prompt": "   "}), "prompt is empty"),
        (json.dumps({**PROMPT, "expected_tier": "medium"}), "'expected_tier' must be one of"),
        (
            json.dumps({**OUTCOME, "fast": {"score": 1.5}}),
            "'fast' score must be a number in [0, 1]",
        ),
        (json.dumps({**OUTCOME, "reasoning": {"score": "high"}}), "'reasoning' score"),
        (json.dumps({"id": "x", "prompt": "p"}), "no outcome"),
        (json.dumps({**OUTCOME, "expected_tier": "fast"}), "either an outcome"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PROMPT) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as caught:
        list(read_records(path))
    assert caught.value.line == 3
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_invalid_utf8_is_a_data_error(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "x", "prompt": "caf\xe9", "expected_tier": "fast"}\n')
    with pytest.raises(DataFormatError, match="UTF-8"):
        list(read_records(path))


def test_duplicate_ids_across_files_are_refused(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", PROMPT)
    second = write_jsonl(tmp_path / "b.jsonl", PROMPT)
    with pytest.raises(DataFormatError, match="duplicate id"):
        load_records([first, second])


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_records([tmp_path / "nowhere.jsonl"])


EVERYDAY = [
    {"id": "bbh/web_of_lies/3", "source": "bbh", "subset": "web_of_lies",
     "prompt": "Question: Fidel lies. Does Jerry tell the truth?", "expected_tier": "reasoning"},
    {"id": "debugbench/python3-explain/9", "source": "debugbench", "subset": "python3-explain",
     "prompt": "Explain this code:\n```python\ndef f(x):\n    return x\n```",
     "expected_tier": "fast"},
]  # fmt: skip
SHARED_EVERYDAY = Path(__file__).resolve().parents[2] / "../shared/data/everyday/train.jsonl"


def test_everyday_records_load_as_prompt_records(tmp_path):
    first, second = read_records(write_jsonl(tmp_path / "everyday.jsonl", *EVERYDAY))
    assert (first.source, first.subset, first.expected_tier) == ("bbh", "web_of_lies", "reasoning")
    assert second.expected_tier == "fast" and second.text.endswith("```")  # code kept verbatim
    assert not first.has_outcome and not second.measures_routing


@pytest.mark.skipif(not SHARED_EVERYDAY.exists(), reason="the shared data is not on this machine")
def test_the_shared_everyday_set_loads_with_both_tiers_per_mixed_source():
    records = load_records([SHARED_EVERYDAY])
    assert len(records) == 4035
    tiers: dict[str, set] = {}
    for record in records:
        tiers.setdefault(record.source, set()).add(record.expected_tier)
    assert tiers["tatqa"] == tiers["debugbench"] == {"fast", "reasoning"}
    assert tiers["dolly"] == {"fast"} and tiers["folio"] == {"reasoning"}
