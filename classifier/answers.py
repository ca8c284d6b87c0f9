"""Final answers out of real model output, as keys two answers can be compared by.

A cascade asks the fast model and a cheap verifier the same question and escalates
when their final answers differ. That needs the *final* answer of free text: a JSON
``"answer"`` field, an ``<answer>`` tag, LaTeX ``\\boxed{}``, an "the answer is ..."
phrase, a bare short reply (a short sentence stating one number, "The total is 300.",
answers with that number), or the number a concluding sentence ends on. The
extracted span is then normalised (numbers to one spelling, ``\\frac``, thousands
separators, currency and units dropped, quotes stripped, Python literals to one
repr, yes/no and multiple-choice letters) so that ``"$1,200.00"`` and ``"1200"``
agree. Prose with no recognisable final answer (writing, chat) gives no key: the
cascade then leaves the prompt-only decision in force.

Examples
--------
>>> extract_answer('... so the total is 12.\\n\\n**Final answer:** $\\\\boxed{\\\\frac{3}{4}}$').key
'0.75'
>>> extract_answer('{"reasoning": "...", "answer": "1,200 dollars"}').key
'1200'
>>> extract_answer("Dear team, thanks for the lovely evening...").key is None
True
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Answer", "extract_answer", "normalise_answer", "same_answer"]

# How an answer was found, strongest first; the verifier head learns how much each counts.
HOW = ("json", "tag", "boxed", "phrase", "short", "concluding_number", "none")

# A bare reply this short (after trimming) is taken as the answer itself; a longer
# sentence is conversation, not an answer to compare.
SHORT_REPLY_CHARS = 60
SHORT_REPLY_WORDS = 4
# An answer phrase longer than this is an explanation ("the answer is that we ...").
MAX_PHRASE_CHARS = 80
# Normalised keys longer than this are prose, not a comparable answer.
MAX_KEY_CHARS = 400
# Numbers compare to this many decimal places (0.3333333 and 1/3 agree).
DECIMALS = 6


@dataclass(frozen=True, slots=True)
class Answer:
    """The final answer found in one reply.

    Attributes
    ----------
    key : str or None
        Normalised comparison key; ``None`` means no answer was found.
    span : str or None
        The text the key was made from, before normalisation.
    how : str
        Where it came from: one of ``json``, ``tag``, ``boxed``, ``phrase``,
        ``short``, ``concluding_number``, ``none``.
    """

    key: str | None
    span: str | None
    how: str

    @property
    def is_found(self) -> bool:
        return self.key is not None


NO_ANSWER = Answer(key=None, span=None, how="none")

_JSON_ANSWER = re.compile(r'"(?:final_)?answer"\s*:\s*')
_LATEX_AS_ESCAPE = re.compile(r"[\f\b\t\r][a-z]|\n(?:eq|u\b|abla|ot|e\b|i\b)")
_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PHRASE = re.compile(
    r"(?:final answer|the answer|answer|result|output)\s*(?:is|would be|will be|:|=)\s*:?\s*"
    r"(?P<rest>[^\n]+)",
    re.IGNORECASE,
)
_CONCLUSION = re.compile(
    r"\b(?:therefore|thus|so|hence|total|answer|result|in all|altogether)\b|=", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
# A short sentence that states one number as its answer: "The total is 300.", "She has
# 12 apples left.", "It costs $4.50." The number follows a linking verb and only a unit
# may follow it, so "March 5" or "version 3 of 4" are not read as numbers.
_SENTENCE_NUMBER = re.compile(
    r"^[A-Za-z][^\d\n]{0,80}?\b(?:is|are|was|were|equals?|makes?|gives?|comes? to|totals?|"
    r"(?:a )?total of|gets?|has|have|had|needs?|costs?|takes?|pays?|earns?|spends?|sold|"
    r"left with|will be|would be)\s*:?\s+(?P<rest>[-−+]?\s*(?:\\?\$|€|£)?\s*\d[^\n]*)$",
    re.IGNORECASE,
)


def extract_answer(text: str | None) -> Answer:
    """Find the final answer in a model's reply and normalise it.

    Parameters
    ----------
    text : str or None
        The reply's visible content.

    Returns
    -------
    Answer
        ``Answer.key`` is ``None`` when the reply has no recognisable final answer.
    """
    if not text or not text.strip():
        return NO_ANSWER
    for how, finder in _FINDERS:
        span = finder(text)
        if span is None:
            continue
        key = normalise_answer(span)
        if key is not None:
            return Answer(key=key, span=span, how=how)
    return NO_ANSWER


def same_answer(first: Answer, second: Answer) -> bool | None:
    """Whether two answers agree; ``None`` when either has no key to compare."""
    if first.key is None or second.key is None:
        return None
    return first.key == second.key


# -- finding the span --------------------------------------------------------------


def _json_field(text: str) -> str | None:
    """The last ``"answer": value`` in the text, tolerant of broken JSON around it."""
    matches = list(_JSON_ANSWER.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return _raw_json_string(text[start:])
    if isinstance(value, str):
        # Models write LaTeX into JSON strings unescaped: "\frac" and "\times" decode
        # to a form feed and a tab. Read such a string as written instead.
        return _raw_json_string(text[start:]) if _LATEX_AS_ESCAPE.search(value) else value
    if value is None:
        return None
    return json.dumps(value)


def _raw_json_string(text: str) -> str | None:
    """A JSON string read as the model meant it: only ``\\"``, ``\\\\`` and ``\\n`` unescaped."""
    quoted = re.match(r'"((?:[^"\\]|\\.)*)"', text, re.DOTALL)
    if quoted is None:
        return None
    raw = re.sub(r"\\n(?![A-Za-z])", "\n", quoted.group(1))
    return raw.replace('\\"', '"').replace("\\\\", "\\")


def _tag(text: str) -> str | None:
    found = _TAG.findall(text)
    return found[-1] if found else None


def _boxed(text: str) -> str | None:
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    return _balanced(text, matches[-1].end())


def _balanced(text: str, start: int) -> str | None:
    """The text up to the brace closing the one just before ``start``."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def _phrase(text: str) -> str | None:
    matches = list(_PHRASE.finditer(text))
    if not matches:
        return None
    rest = matches[-1].group("rest").strip().strip("*").strip()
    # The answer ends where its sentence does: a full stop followed by a space or the end.
    rest = re.split(r"(?<=[^\d\s])\.(?:\s|$)|\.\s", rest, maxsplit=1)[0]
    if rest[:1] in _CLOSERS:
        rest = _literal_prefix(rest)  # "[1, 2], sorted" answers [1, 2]
    else:
        # "12, because 3 * 4 = 12" and "12 since ..." answer 12.
        rest = re.split(r",\s|\s(?:because|since|as|which|so)\s", rest, maxsplit=1)[0]
    rest = rest.strip().strip("*").strip()
    # A long clause after "the answer is" is an explanation, not a final answer.
    return rest if 0 < len(rest) <= MAX_PHRASE_CHARS else None


_CLOSERS = {"[": "]", "(": ")", "{": "}", "'": "'", '"': '"'}


def _literal_prefix(text: str) -> str:
    """The bracketed or quoted literal ``text`` opens with (all of it if never closed)."""
    opener, closer = text[0], _CLOSERS[text[0]]
    if opener == closer:
        end = text.find(closer, 1)
        return text if end < 0 else text[: end + 1]
    depth = 0
    for i, char in enumerate(text):
        depth += (char == opener) - (char == closer)
        if depth == 0:
            return text[: i + 1]
    return text


def _short(text: str) -> str | None:
    """A one-line reply that is its own answer: a few words, a literal, or a short
    sentence stating one number ("The total is 300.")."""
    stripped = text.strip()
    if len(stripped) > SHORT_REPLY_CHARS or "\n" in stripped:
        return None
    if len(stripped.split()) <= SHORT_REPLY_WORDS or stripped[0] in "[({'\"":
        return stripped
    return stripped if _sentence_number(_unwrap(stripped)) is not None else None


def _concluding_number(text: str) -> str | None:
    """The last number of a closing line that reads as a conclusion ("So ... 240 sheets.")."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if len(last) > 200:
        return None
    if not _CONCLUSION.search(last):
        # A closing sentence stating one number ("Each friend gets 4 cookies.") concludes too.
        return last.strip() if _sentence_number(_unwrap(last)) is not None else None
    numbers = _NUMBER.findall(last)
    return numbers[-1] if numbers else None


_FINDERS = (
    ("json", _json_field),
    ("tag", _tag),
    ("boxed", _boxed),
    ("phrase", _phrase),
    ("short", _short),
    ("concluding_number", _concluding_number),
)


# -- normalising -------------------------------------------------------------------

_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"\\[,;:!]|\\quad|\\qquad|\\ |~")
_MC_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.):]\s*.*)?$")
_NUMERIC = re.compile(
    r"^(?P<sign>[-+−]?)\s*(?:\\\$|\$|€|£|USD\s*)?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.?\d+(?:[eE][-+]?\d+)?)"
    r"(?:\s*/\s*(?P<den>\d+))?"
    r"\s*(?:\\?%|percent)?\s*(?P<unit>[A-Za-z][A-Za-z ./²³^]{0,30})?$"
)
_HEX = re.compile(r"^-?0x[0-9a-fA-F]+$")
_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect"}


def normalise_answer(span: str | None) -> str | None:
    """A comparison key for one answer span, or ``None`` when nothing comparable is left.

    Parameters
    ----------
    span : str or None
        An extracted answer, e.g. ``"$1,200.00"``, ``"\\\\frac{1}{3}"``, ``"'abc'"``, ``"(B)"``.

    Returns
    -------
    str or None
        Numbers become a canonical decimal (``"1200"``, ``"0.333333"``); Python/JSON
        literals one ``repr``; quoted strings their content; yes/no ``"yes"``/``"no"``;
        multiple-choice options their letter; other words case-folded with spaces
        collapsed.
    """
    if span is None:
        return None
    text = _unwrap(span)
    if not text or len(text) > MAX_KEY_CHARS:
        return None
    quoted = _unquote(text)
    if quoted is not None:  # a quoted string is a literal: keep its case and spaces
        return quoted
    for normaliser in (_number, _literal, _choice, _sentence_number):
        key = normaliser(text)
        if key is not None:
            return key
    lowered = " ".join(text.split()).casefold().rstrip(".")
    if lowered in _YES:
        return "yes"
    if lowered in _NO:
        return "no"
    return lowered or None


def _unwrap(span: str) -> str:
    text = span.strip().strip("`").strip()
    text = re.sub(r"^\*\*|\*\*$", "", text).strip()
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opener) and text.endswith(closer) and len(text) > 2 * len(opener):
            text = text[len(opener) : -len(closer)].strip()
    boxed = _BOXED.search(text)
    if boxed is not None:
        text = _balanced(text, boxed.end()) or text
    # "x = 5" and "n \approx 3.2" answer with their right-hand side.
    text = re.sub(r"^[A-Za-z]\w*\s*(?:=|\\approx|≈)\s*", "", text)
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _FRAC.sub(r"\1/\2", text)
    text = _LATEX_SPACING.sub("", text) if re.search(r"\d[\\~]", text) else text
    text = text.replace("\\%", "%").replace("\\$", "$").replace("\\left", "").replace("\\right", "")
    return text.strip().rstrip(".").strip()


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if text[0] not in inner:
            return inner
    return None


def _number(text: str) -> str | None:
    if _HEX.match(text):
        return _format_number(Fraction(int(text, 16)))
    match = _NUMERIC.match(text.replace("{,}", ","))
    if match is None:
        return None
    try:
        value = Fraction(match.group("num").replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None
    if match.group("den"):
        denominator = int(match.group("den"))
        if denominator == 0:
            return None
        value /= denominator
    if match.group("sign") in ("-", "−"):
        value = -value
    return _format_number(value)


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if not math.isfinite(as_float):
        return str(value)
    rounded = f"{as_float:.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if rounded in ("-0", "") else rounded


def _sentence_number(text: str) -> str | None:
    """The number a short sentence states as its answer ("The total is $300." -> 300)."""
    match = _SENTENCE_NUMBER.match(text)
    return _number(match.group("rest").strip()) if match else None


def _literal(text: str) -> str | None:
    """Lists, tuples, dicts and sets (Python or JSON spelling) to one ``repr``."""
    if text[0] not in "[({" or len(text) < 2:
        return None
    for parse in (ast.literal_eval, json.loads):
        try:
            return repr(parse(text))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _choice(text: str) -> str | None:
    match = _MC_LETTER.match(text)
    if match is None:
        return None
    # "(B)", "B)", "B." and "B) 42 apples" answer option B; a bare lowercase word does not.
    return match.group(1)
