"""Read the record formats the classifier trains and is judged on.

Three JSON Lines shapes are accepted (and CSV with flat columns):

* outcome records: ``{"id", "source", "subset", "prompt", "fast": {"score"},
  "reasoning": {"score"}}``: both models measured on one prompt;
* strong/weak records: the same with ``weak`` and ``strong`` in place of
  ``fast`` and ``reasoning`` (a weaker signal: no reasoning model involved);
* prompt records: ``{"id", "source", "subset", "prompt", "expected_tier"}``
  where the tier is what a person expects the prompt to need;
* one-sided outcome records: ``fast`` or ``reasoning`` alone, as
  ``thinkroute export-decisions`` writes a request whose served answer alone
  was scored (``POST /v1/feedback``). The other side was never asked, so it is
  read as ``UNSCORED`` (0.5, an even chance): a failed fast answer then counts
  as a half win for the reasoning model, a right one as none, and so on.
  Measured by ``bench/retrain_on_history.py`` (a tenant of unseen prompts):
  retraining on such records moved APGR by +0.01 (within noise), where
  reading them as expected tiers (prompt records) lost 0.05 and leaving out
  the ambiguous ones lost 0.03-0.07; scoring both answers gained 0.03-0.05.

A record may carry ``messages`` (an OpenAI chat) instead of ``prompt``; the
scored text is then derived by :func:`classifier.text.text_for_scoring`.

CSV files use the same names, flattened: ``fast_score``, ``reasoning_score``,
``weak_score``, ``strong_score``, ``expected_tier``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from classifier.errors import DataFormatError
from classifier.text import text_for_scoring

__all__ = ["Record", "load_records", "read_records"]

Pair = Literal["fast/reasoning", "weak/strong"]
Tier = Literal["fast", "reasoning"]
TIERS: tuple[Tier, ...] = ("fast", "reasoning")

# (low, high) field names for each kind of measured pair.
_PAIRS: dict[Pair, tuple[str, str]] = {
    "fast/reasoning": ("fast", "reasoning"),
    "weak/strong": ("weak", "strong"),
}
# The score read for the side of a one-sided outcome that nobody measured.
UNSCORED = 0.5


@dataclass(frozen=True, slots=True)
class Record:
    """One prompt, with either two measured scores or an expected tier."""

    id: str
    source: str
    subset: str
    text: str
    pair: Pair | None = None
    low_score: float | None = None
    high_score: float | None = None
    expected_tier: Tier | None = None
    is_one_sided: bool = False  # one score was measured, the other is UNSCORED

    @property
    def has_outcome(self) -> bool:
        return self.pair is not None

    @property
    def measures_routing(self) -> bool:
        """Both the fast and the reasoning model were scored: the only records that
        can calibrate a score, place a threshold or measure APGR (a one-sided
        record's other side is a guess)."""
        return self.pair == "fast/reasoning" and not self.is_one_sided

    @property
    def gap(self) -> float:
        """How much better the costlier model scored (negative when it did worse)."""
        if self.low_score is None or self.high_score is None:
            raise ValueError(f"record {self.id!r} has no measured outcome")
        return self.high_score - self.low_score


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield the records of one ``.jsonl``/``.json`` or ``.csv`` file.

    Raises
    ------
    DataFormatError
        On the first bad record, naming the file and line.
    FileNotFoundError
        When the file does not exist.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    else:
        yield from _read_jsonl(path)


def load_records(paths: Iterable[str | Path]) -> list[Record]:
    """Read every record of several files into one list, checking ids are unique."""
    records: list[Record] = []
    seen: dict[str, str] = {}
    for path in paths:
        for line, record in enumerate(read_records(path), start=1):
            if record.id in seen:
                raise DataFormatError(
                    path, line, f"duplicate id {record.id!r} (first seen in {seen[record.id]})"
                )
            seen[record.id] = str(path)
            records.append(record)
    return records


def _read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, number, "not valid UTF-8") from exc
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, number, f"not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise DataFormatError(path, number, "a record must be a JSON object")
            yield _parse(obj, path, number, _nested_score)


def _read_csv(path: Path) -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            reader = csv.DictReader(handle)
            # Line numbers count the header, as an editor shows them.
            for number, row in enumerate(reader, start=2):
                obj = {key: value for key, value in row.items() if value not in (None, "")}
                yield _parse(obj, path, number, _flat_score)
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, 0, "not valid UTF-8") from exc
        except csv.Error as exc:
            raise DataFormatError(path, reader.line_num, f"bad CSV ({exc})") from exc


def _nested_score(obj: dict[str, Any], side: str) -> Any:
    value = obj.get(side)
    return value.get("score") if isinstance(value, dict) else value


def _flat_score(obj: dict[str, Any], side: str) -> Any:
    return obj.get(f"{side}_score")


def _parse(obj: dict[str, Any], path: Path, line: int, score_of: Any) -> Record:
    def fail(problem: str) -> DataFormatError:
        return DataFormatError(path, line, problem)

    record_id = obj.get("id")
    if not isinstance(record_id, str | int) or isinstance(record_id, bool) or record_id == "":
        raise fail("missing or empty 'id'")
    text = _text_of(obj, fail)

    def has(side: str) -> bool:
        return obj.get(side) is not None or obj.get(f"{side}_score") is not None

    kinds = [pair for pair, sides in _PAIRS.items() if any(has(side) for side in sides)]
    tier = obj.get("expected_tier")
    if len(kinds) > 1 or (kinds and tier is not None):
        raise fail("a record is either an outcome (fast/reasoning or weak/strong) or a prompt")
    fields: dict[str, Any] = {}
    if kinds == ["fast/reasoning"] and not (has("fast") and has("reasoning")):
        side = "fast" if has("fast") else "reasoning"
        scores = {
            "fast": UNSCORED,
            "reasoning": UNSCORED,
            side: _score(score_of(obj, side), side, fail),
        }
        fields = {
            "pair": "fast/reasoning",
            "low_score": scores["fast"],
            "high_score": scores["reasoning"],
            "is_one_sided": True,
        }
    elif kinds:
        pair = kinds[0]
        low, high = _PAIRS[pair]
        fields = {
            "pair": pair,
            "low_score": _score(score_of(obj, low), low, fail),
            "high_score": _score(score_of(obj, high), high, fail),
        }
    elif tier is not None:
        if tier not in TIERS:
            raise fail(f"'expected_tier' must be one of {list(TIERS)}, not {tier!r}")
        fields = {"expected_tier": tier}
    else:
        raise fail("no outcome ('fast'/'reasoning' or 'weak'/'strong') and no 'expected_tier'")

    return Record(
        id=str(record_id),
        source=str(obj.get("source") or "unknown"),
        subset=str(obj.get("subset") or ""),
        text=text,
        **fields,
    )


def _text_of(obj: dict[str, Any], fail: Any) -> str:
    if "messages" in obj:
        messages = obj["messages"]
        if isinstance(messages, str):  # CSV carries the chat as a JSON string
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError as exc:
                raise fail("'messages' is not valid JSON") from exc
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise fail("'messages' must be a list of chat messages")
        text = text_for_scoring(messages)
    else:
        prompt = obj.get("prompt")
        if not isinstance(prompt, str):
            raise fail("missing 'prompt' (a string) or 'messages'")
        text = prompt
    if not text.strip():
        raise fail("the prompt is empty")
    return text


def _score(value: Any, side: str, fail: Any) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise fail(f"'{side}' score must be a number in [0, 1], not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise fail(f"'{side}' score must be a number in [0, 1], not {value!r}")
    return score
