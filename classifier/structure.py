"""Structural cues of reasoning need that a bag of token vectors cannot see.

A mean of token embeddings knows which words a prompt uses, not what it asks
of them: "here is a table, what was revenue in 2019?" and "here is a table,
by how much did the margin change?" share almost every token. These cues look
at the shape of the request instead, each a small regular expression, and each
in any register (a casual "can you show that ..." as well as "Prove that"):

* ``numbers_to_reconcile``: several figures and a question that combines them
  (a change, a difference, a total, an average, "doesn't add up");
* ``figures_disagree``: figures said not to agree ("doesn't add up", "where
  could the difference come from?", a discrepancy to reconcile): tracing it is
  reasoning, where a total or a percentage change is often a look-up's sum;
* ``code_behaviour_question``: code (fenced or not: a Python block header on its
  own line counts) together with a question about what it does wrong or will do
  (why it fails, where the bug is, what it prints);
* ``code_presentation_only``: code with a request to explain, comment,
  document or translate it (work a fast model does well);
* ``constraint_list``: several constraints on an arrangement (before, after,
  next to, exactly, at least, not ...), as in a seating or scheduling puzzle;
* ``proof_request``: prove, show that, does it follow, must it be true (not the
  word "proof" in a title, nor "not necessarily distinct");
* ``trick_cue``: a warning that the obvious answer is wrong (trick question,
  riddle, "be careful", "there's a catch", paradox; not "read it carefully", "catch
  a fish" or a jigsaw puzzle);
* ``relations_riddle``: a web of family or ordering relations to follow;
* ``logic_connectives``: if/then, all/some/none, either/or, implies;
* ``lookup_over_material``: material with figures (a table, a report) then a
  short question that looks a value up or asks to restate it ("What was the
  revenue in 2019?", "Which years does the table cover?", "Translate this
  note") and asks for no combining, computing or debugging: a fast model's job
  however dense the material looks;
* ``transform_material``: a short instruction to rework the material that
  follows it (summarise, extract, rewrite, classify, translate, give it a
  title), asking for no computing, deciding or debugging: writing work, however
  technical the material;
* ``relation_question``: a question about how two people are related, over
  family relations to follow ("How is Lisa related to Karen?", "What is
  Isabella to Edward?").

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
    "QUESTION_RULES",
    "question_of",
    "request_of",
    "structural_features",
    "window_of",
]

TAIL_CHARS = 400
_PARAGRAPH = re.compile(r"\n\s*\n")
# A last paragraph this short is the request even without a question mark ("Fix it.").
_SHORT_REQUEST = 200
# A first paragraph up to this long can be an instruction put before its material.
_FIRST_INSTRUCTION = 300
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
_CODE = re.compile(
    r"```|\bdef \w+\(|\breturn\b|#include|\bpublic \w|\bfunction\b|[{};]\s*$|"
    # a Python block header on its own line: code pasted without a fence
    r"^\s*(?:while|for|if|elif|else|try|except|with|class)\b[^\n]*:\s*$",
    re.M,
)
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
    r"\b(?:prove|(?:a|the|formal|rigorous|complete|give|write) proof|show (?:me )?(?:that|why)|"
    r"demonstrate that|justify|does (?:it|this|that) follow|follows? (?:from|logically)|"
    r"necessarily (?:true|false|follows?|the case)|must (?:it )?be true|"
    r"can we (?:say|conclude|infer)|is it (?:always|possible|true) that|why is it true|"
    r"valid argument|entail\w*)\b",
    _I,
)
_TRICK = re.compile(
    r"\b(?:trick(?:y)? question|trick|riddle|gotcha|be careful|careful(?=[,:!])|obvious answer|"
    r"paradox|(?<!jigsaw )puzzle|brain ?teaser|think (?:again|twice|carefully)|"
    r"counter-?intuitive|(?:there'?s|what'?s|is there|the) (?:a )?catch)\b",
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

_REWORK = re.compile(
    r"\b(?:extract|summari[sz]e|summary|rewrite|rephrase|paraphrase|describe|classify|"
    r"categori[sz]e|translate|convert|correct|proofread|simplify|capitali[sz]e|reformat|"
    r"caption|headline|title|motto|slogan|tag|label|review|critique|tone|polish|shorten|"
    r"expand|edit|answer (?:this|the) (?:email|review|message|customer))\b",
    _I,
)
# A question about what the material will become is a prediction, not a rework.
_PREDICTION = re.compile(r"\bwhat (?:will|would|does|is)\b|\bafter \d+ steps?\b", _I)
_DISAGREE = re.compile(
    r"(?:do(?:es)?n'?t|do(?:es)? not|never) (?:add up|match|balance|tally|reconcile)|"
    r"\b(?:discrepanc\w*|reconcil\w*|mismatch\w*|off by|unaccounted)\b|"
    r"where (?:could|did|does|would|is) (?:the|this|that) (?:difference|gap)|"
    r"\bwhy (?:is|are|does|do|would) [^?]{0,60}\b(?:differ\w*|higher|lower|more|less) than\b|"
    r"\b(?:add|adds|sum|sums) up(?: correctly| right)?\s*\?",
    _I,
)
_KIN = re.compile(
    r"\b(?:mother|father|mom|mum|dad|brother|sister|son|daughter|uncle|aunt|cousin|nephew|"
    r"niece|grand\w+|husband|wife|spouse|sibling|parent|child|children|married|in-law)s?\b",
    _I,
)
_RELATION_ASKED = re.compile(
    r"\b(?:how (?:is|are|am|was|were) [\w' ]{1,40}? related\b|"
    r"what (?:relation|relationship|kin)\b|"
    r"(?:what|who) (?:is|are|was|would be) (?:[\w']+ ){1,4}?to (?:me|him|her|them|us|\w+)\s*[?.])",
    _I,
)

STRUCTURE_NAMES: tuple[str, ...] = (
    "numbers_to_reconcile",
    "figures_disagree",
    "code_behaviour_question",
    "code_presentation_only",
    "constraint_list",
    "proof_request",
    "trick_cue",
    "relations_riddle",
    "logic_connectives",
    "lookup_over_material",
    "transform_material",
    "relation_question",
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


def request_of(text: str) -> str:
    """The request's own words wherever they stand: the last paragraph when it asks
    something (a question mark, or a short line after the material), else a short first
    paragraph, an instruction put before its material ("Summarise this abstract.",
    "Why does this fail?" above a program).

    :func:`question_of` reads the last paragraph alone, and for an instruction followed
    by an abstract or a contract that is the material: the head then saw a technical
    text where a writing task was asked (chat from sources left out of training went
    to reasoning at 0.108 with it, 0.102 with this).
    """
    paragraphs = [p for p in _PARAGRAPH.split(text.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return question_of(text)
    first, last = paragraphs[0], paragraphs[-1][-TAIL_CHARS:]
    if "?" in last or len(last) <= _SHORT_REQUEST or len(first) > _FIRST_INSTRUCTION:
        return last
    return first


# How an embedding finds the request's own words, by the name an artifact records
# (``embedding.question``; heads trained before it was recorded read the last paragraph).
QUESTION_RULES = {"last_paragraph": question_of, "request": request_of}


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
    proof = bool(_PROOF.search(text))
    return (
        float(numbers >= 3 and bool(_COMBINE.search(question))),
        float(numbers >= 2 and bool(_DISAGREE.search(text))),
        float(has_code and behaviour),
        float(has_code and not behaviour and bool(_PRESENT.search(ask))),
        min(constraints / 6.0, 1.0),
        float(proof),
        float(bool(_TRICK.search(ask))),
        min(len(_RELATION.findall(text)) / 4.0, 1.0),
        min(len(_LOGIC.findall(text)) / 3.0, 1.0),
        _lookup_over_material(text, question),
        _transform_material(text, question, proof=proof),
        float(len(_KIN.findall(text)) >= 2 and bool(_RELATION_ASKED.search(text))),
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


def _transform_material(text: str, question: str, *, proof: bool) -> float:
    """1 when a short first line or paragraph asks to rework the material after it
    (``question`` and ``proof``: the text's :func:`question_of` and whether it asks for a
    proof, as :func:`_row` already found them)."""
    stripped = text.strip()
    if "\n" not in stripped:
        return 0.0
    instruction, material = re.split(r"\n\s*\n|\n", stripped, maxsplit=1)
    if len(instruction) > _FIRST_INSTRUCTION or len(material) < 80:
        return 0.0
    # A closing question of its own ("... Why does it fail?") counts; the material's own
    # words do not (a changelog's "fixed a typo" is not a debugging request).
    closing = question if _PARAGRAPH.search(stripped) and "?" in question else ""
    ask = instruction + "\n" + closing
    if (
        _PREDICTION.search(instruction)
        or _WORK.search(instruction)
        or _COMBINE.search(instruction)
        or _BEHAVIOUR.search(ask)
        or _TRICK.search(ask)
        or proof
    ):
        return 0.0
    return float(bool(_REWORK.search(instruction)))
