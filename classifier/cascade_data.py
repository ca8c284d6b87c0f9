"""Cascade records (outcomes plus the cheap models' real answers), prices, and the held-out split.

A cascade record is an outcome record with ``fast_answers``: each cheap model's reply
to the prompt (see ``../shared/data/cascade/README.md``). The verifier's reply is the
entry whose model is named (``self``: the fast model's next sample). Prices come from
LiteLLM's bundled price map, read as a data file (the classifier never imports
LiteLLM), with the public list prices below where the map has no entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from classifier.errors import DataFormatError

__all__ = [
    "CascadeRecord",
    "ModelPrice",
    "is_held_out",
    "model_price",
    "read_cascade_records",
]

SELF = "self"
# Share of zeroeval prompts (by a hash of the prompt id) the shipped verifier never sees.
HELD_OUT_PERCENT = 30
# Characters per token for English and code, for token counts the data does not record.
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True, slots=True)
class CascadeRecord:
    """One prompt with both tiers' scores and the cheap models' replies."""

    id: str
    source: str
    subset: str
    prompt: str
    fast_model: str
    fast_score: float
    reasoning_model: str
    reasoning_score: float
    reasoning_output_chars: int | None
    answers: tuple[tuple[str, int, str], ...]  # (model, sample, text); [0] is the fast tier's

    @property
    def fast_text(self) -> str:
        return self.answers[0][2]

    @property
    def gap(self) -> float:
        return self.reasoning_score - self.fast_score

    def verifier_answer(self, verifier: str) -> tuple[str, str] | None:
        """The verifier's ``(model, reply)``: a named model's (exact, or by prefix), or
        ``self``'s next sample; ``None`` when this record has none (e.g. one-sample
        reasoning-gym prompts)."""
        if verifier == SELF:
            for model, sample, text in self.answers[1:]:
                if model == self.fast_model and sample > self.answers[0][1]:
                    return model, text
            return None
        for model, _, text in self.answers[1:]:
            if model == verifier:
                return model, text
        for model, _, text in self.answers[1:]:
            if model.startswith(verifier) and model != self.fast_model:
                return model, text
        return None

    def verifier_text(self, verifier: str) -> str | None:
        """The verifier's reply, or ``None``; see :meth:`verifier_answer`."""
        answer = self.verifier_answer(verifier)
        return None if answer is None else answer[1]

    def verifier_models(self) -> list[str]:
        """Every name :meth:`verifier_text` answers for on this record."""
        names = [model for model, _, _ in self.answers[1:] if model != self.fast_model]
        if self.verifier_text(SELF) is not None:
            names.append(SELF)
        return names


def read_cascade_records(paths: Iterable[str | Path]) -> list[CascadeRecord]:
    """Read cascade JSONL files; a record without both scores or answers is an error."""
    records: list[CascadeRecord] = []
    for path in paths:
        path = Path(path)
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    records.append(_parse(line, path, number))
    return records


def _parse(line: str, path: Path, number: int) -> CascadeRecord:
    try:
        obj: dict[str, Any] = json.loads(line)
        answers = tuple(
            (str(a["model"]), int(a.get("sample", 0)), str(a.get("text") or ""))
            for a in obj["fast_answers"]
        )
        if not answers:
            raise ValueError("fast_answers is empty")
        output_chars = obj["reasoning"].get("output_chars")
        return CascadeRecord(
            id=str(obj["id"]),
            source=str(obj.get("source", "")),
            subset=str(obj.get("subset", "")),
            prompt=str(obj["prompt"]),
            fast_model=str(obj["fast"]["model"]),
            fast_score=float(obj["fast"]["score"]),
            reasoning_model=str(obj["reasoning"]["model"]),
            reasoning_score=float(obj["reasoning"]["score"]),
            reasoning_output_chars=None if output_chars is None else int(output_chars),
            answers=answers,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"not a cascade record ({type(exc).__name__}: {exc}); see docs/cascade.md"
        raise DataFormatError(path, number, problem) from exc


def is_held_out(record_id: str) -> bool:
    """Whether a zeroeval prompt belongs to the split the shipped verifier never trained on."""
    if not record_id.startswith("zeroeval/"):
        return False
    # Salted: the data was itself split from a larger set by a hash of the id.
    digest = hashlib.sha256(f"thinkroute-verifier:{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


# -- prices ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens, and where the figure came from."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    source: str

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


# The data's model names as LiteLLM's map spells them (one provider's list price each).
PRICE_ALIASES = {
    "o1-mini-2024-09-12": "azure/o1-mini-2024-09-12",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "meta-llama/llama-3.3-70b-instruct": "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
}
# Public list prices (cascade README) for models LiteLLM's bundled map lacks.
LIST_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gemini-1.5-flash": (0.075, 0.30),
    "claude-3-5-haiku": (0.80, 4.00),
    "gpt-4o": (2.50, 10.00),
    "o1-mini": (1.10, 4.40),
}


def model_price(model: str, given: dict[str, tuple[float, float]] | None = None) -> ModelPrice:
    """A model's price: ``given`` first, then LiteLLM's map, then the list prices above.

    Raises
    ------
    KeyError
        If no source prices the model (pass it in ``given``).
    """
    if given and model in given:
        return ModelPrice(*given[model], source="given")
    litellm_map = _litellm_price_map()
    for name in (model, PRICE_ALIASES.get(model)):
        entry = litellm_map.get(name) if name else None
        if entry and "input_cost_per_token" in entry and "output_cost_per_token" in entry:
            return ModelPrice(
                entry["input_cost_per_token"] * 1e6,
                entry["output_cost_per_token"] * 1e6,
                source=f"litellm:{name}",
            )
    for prefix in sorted(LIST_PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            return ModelPrice(*LIST_PRICES[prefix], source="list price")
    raise KeyError(f"no price for {model!r}: give one with --price {model}=IN/OUT")


@cache
def _litellm_price_map() -> dict[str, Any]:
    """LiteLLM's bundled price map, found on disk without importing LiteLLM."""
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    return {}
