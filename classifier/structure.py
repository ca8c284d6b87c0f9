"""Structural cues of reasoning need that a bag of token vectors cannot see.

A mean of token embeddings knows which words a prompt uses, not what it asks
of them: "here is a table, what was revenue in 2019?" and "here is a table,
by how much did the margin change?" share almost every token. These cues look
at the shape of the request instead, each a small regular expression, and each
in any register (a casual "can you show that ..." as well as "Prove that"):

* ``numbers_to_reconcile``: several figures and a question that combines them
  (a change, a difference, a total, an average, "doesn't add up");
* ``code_behaviour_question``: code together with a question about what it does
  wrong or will do (why it fails, where the bug is, what it prints);
* ``code_presentation_only``: code with a request to explain, comment,
  document or translate it (work a fast model does well);
* ``constraint_list``: several constraints on an arrangement (before, after,
  next to, exactly, at least, not ...), as in a seating or scheduling puzzle;
* ``proof_request``: prove, show that, does it follow, must it be true;
* ``trick_cue``: a warning that the obvious answer is wrong (trick question,
  riddle, careful, paradox);
* ``relations_riddle``: a web of family or ordering relations to follow;
* ``logic_connectives``: if/then, all/some/none, either/or, implies;
* ``lookup_over_material``: material with figures (a table, a report) then a
  short question that looks a value up or asks to restate it ("What was the
  revenue in 2019?", "Which years does the table cover?", "Translate this
  note") and asks for no combining, computing or debugging: a fast model's job
  however dense the material looks.

The question is usually at the end of a long prompt, after the table or the
code, so cues about the request read the text's last :data:`TAIL_CHARS`
characters as well as its first ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "STRUCTURE_NAMES",
    "TAIL_CHARS",
    "WINDOW_CHARS",
    "fired_cues",
    "question_of",
    "structural_features",
    "window_of",
]

TAIL_CHARS = 400
# Longer texts are read as their first this many characters and their question
# (about what the embedding's window sees), so a huge prompt costs no more.
WINDOW_CHARS = 4096
_I = re.IGNORECASE

_NUMBER = re.compile(r"(?<![\w.])[-−(]?\$?\d[\d,]*(?:\.\d+)?%?")
_COMBINE = re.compile(
    r"\b(?:change[sd]?|difference|differ\w*|average|mean|ratio|proportion|percent(?:age)?|"
    r"sum of|total of|combined|add(?:s)? up|reconcil\w*|discrepanc\w*|how much more|"
    r"increase[sd]?|decrease[sd]?|grow(?:th|n)?|exceed\w*|gap|left over|remain\w*|"
    r"balance[sd]? out|off by|missing)\b",
    _I,
)
_CODE = re.compile(r"```|\bdef \w+\(|\breturn\b|#include|\bpublic \w|\bfunction\b|[{};]\s*$", re.M)
_BEHAVIOUR = re.compile(
    r"\b(?:why|bug\w*|wrong|fail\w*|never (?:ends|finishes|stops|terminates)|infinite|"
    r"hang\w*|crash\w*|doesn'?t work|does not work|not working|incorrect|mistake|error|"
    r"fix\w*|what (?:does|will|would) (?:it|this|the \w+) (?:print|output|return)|"
    r"output of|trace|off[- ]by[- ]one|edge case)\b",
    _I,
)
_PRESENT = re.compile(
    r"\b(?:explain|describe|comment\w*|docstring|document\w*|translate|convert|port|"
    r"rewrite (?:it|this) in|in plain english|summari[sz]e|complexity|rename|format)\b",
    _I,
)
_CONSTRAINT = re.compile(
    r"\b(?:must|cannot|can'?t|not next to|next to|before|after|left of|right of|"
    r"exactly|at least|at most|only if|unless|neither|either|between|immediately|"
    r"adjacent|directly|above|below|older|younger|taller|shorter)\b",
    _I,
)
_PROOF = re.compile(
    r"\b(?:prove|proof|show (?:me )?(?:that|why)|demonstrate that|justify|"
    r"does (?:it|this|that) follow|follows? (?:from|logically)|necessarily|must (?:it )?be true|"
    r"can we (?:say|conclude|infer)|is it (?:always|possible|true) that|why is it true|"
    r"valid argument|entail\w*)\b",
    _I,
)
_TRICK = re.compile(
    r"\b(?:trick(?:y)? question|trick|riddle|gotcha|careful(?:ly)?|obvious answer|"
    r"paradox|puzzle|brain ?teaser|think (?:again|twice)|counter-?intuitive|catch)\b",
    _I,
)
_RELATION = re.compile(
    r"\b(?:mother|father|brother|sister|son|daughter|uncle|aunt|cousin|nephew|niece|"
    r"grand\w+|husband|wife|sibling\w*|parent\w*|in-law)s?\b",
    _I,
)
_LOOKUP = re.compile(
    r"^\s*(?:what|which|when|who|whom|where|in (?:which|what)|list|name|state|"
    r"how (?:is|was|were|are|did|does|do)\b)",
    _I,
)
# A question that asks for work, not a look-up: computing, deciding, debugging.
_WORK = re.compile(
    r"\b(?:prove|show that|find|compute|calculate|determine|solve|how many|minimum|maximum|"
    r"probability|implement|algorithm|optimi[sz]e|step by step)\b|[=<>^$\\]",
    _I,
)
_LOGIC = re.compile(
    r"\b(?:if\b.{1,80}\bthen|all \w+ are|no \w+ (?:are|is)|some \w+ are|either\b.{1,80}\bor|"
    r"implies|therefore|only if|if and only if|true or false|unless)\b",
    _I,
)

STRUCTURE_NAMES: tuple[str, ...] = (
    "numbers_to_reconcile",
    "code_behaviour_question",
    "code_presentation_only",
    "constraint_list",
    "proof_request",
    "trick_cue",
    "relations_riddle",
    "logic_connectives",
    "lookup_over_material",
    "log_numbers",
)
# A cue "fires" (for an explanation) at or above this value.
_FIRES = 0.5


def structural_features(texts: Sequence[str]) -> NDArray[np.float64]:
    """One row of :data:`STRUCTURE_NAMES` per text, each cue in [0, 1] (numbers: a log count)."""
    rows = np.empty((len(texts), len(STRUCTURE_NAMES)), dtype=np.float64)
    for i, text in enumerate(texts):
        rows[i] = _row(text)
    return rows


def fired_cues(row: Sequence[float] | NDArray[np.float64]) -> list[str]:
    """The cue names of one :func:`structural_features` row that fired."""
    return [name for name, value in zip(STRUCTURE_NAMES[:-1], row, strict=False) if value >= _FIRES]


def question_of(text: str) -> str:
    """The request's own words: its last paragraph, at most :data:`TAIL_CHARS` characters.

    Long prompts put the material first (a table, a program, premises) and the
    question last, where a truncated embedding never reaches it.
    """
    stripped = text.strip()
    last = stripped.rsplit("\n\n", 1)[-1] if "\n\n" in stripped else stripped
    return last[-TAIL_CHARS:]


def window_of(text: str) -> str:
    """The part of ``text`` the cues read: all of it up to :data:`WINDOW_CHARS` characters,
    else its first :data:`WINDOW_CHARS` characters and its question (bounded work on the
    request path, whatever the length)."""
    if len(text) <= WINDOW_CHARS:
        return text
    return text[:WINDOW_CHARS] + "\n\n" + question_of(text)


def _row(text: str) -> tuple[float, ...]:
    text = window_of(text)
    ask = text[:TAIL_CHARS] + "\n" + text[-TAIL_CHARS:] if len(text) > 2 * TAIL_CHARS else text
    question = question_of(text)
    numbers = len(_NUMBER.findall(text))
    has_code = bool(_CODE.search(text))
    behaviour = bool(_BEHAVIOUR.search(ask))
    constraints = len(_CONSTRAINT.findall(text))
    return (
        float(numbers >= 3 and bool(_COMBINE.search(question))),
        float(has_code and behaviour),
        float(has_code and not behaviour and bool(_PRESENT.search(ask))),
        min(constraints / 6.0, 1.0),
        float(bool(_PROOF.search(text))),
        float(bool(_TRICK.search(ask))),
        min(len(_RELATION.findall(text)) / 4.0, 1.0),
        min(len(_LOGIC.findall(text)) / 3.0, 1.0),
        _lookup_over_material(text, question),
        math.log1p(numbers),
    )


def _lookup_over_material(text: str, question: str) -> float:
    """1 when figures come first and the question after them only looks up or restates."""
    if len(question) > 250 or question == text.strip():  # no material before the question
        return 0.0
    if len(_NUMBER.findall(text[: len(text) - len(question)])) < 3:
        return 0.0
    if _COMBINE.search(question) or _WORK.search(question) or _BEHAVIOUR.search(question):
        return 0.0
    return float(bool(_LOOKUP.search(question) or _PRESENT.search(question)))
