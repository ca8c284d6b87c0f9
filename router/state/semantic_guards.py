"""The guards of the semantic cache: what two questions must share to share an answer.

Embeddings place "What is 12% of 250?" next to "What is 15% of 250?", and
"Is Paris bigger than London?" next to its mirror image. A match must also
pass :func:`guards_allow`: the same numbers in the same order, the same names
and identifiers, negations, direction words, operators, quoted literals, the
data a template ends with, and no topic word replaced by another.
``bench/semantic_cache.py`` measures what each guard catches.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher

import numpy as np

__all__ = [
    "GUARDS",
    "GuardSignature",
    "count_word_pieces",
    "guard_failures",
    "guard_signature",
    "guards_allow",
]

GUARDS = (
    "numbers", "names", "negations", "directions", "operators", "literals", "payload", "wording",
)  # fmt: skip


@dataclass(frozen=True)
class GuardSignature:
    """What two questions must share to be answered alike; stored with each entry.

    Names are kept as 32-bit hashes of lowercased words, so the index holds no
    prompt text in clear beyond numbers and a few function words.
    """

    numbers: tuple[str, ...]  # canonical, in order: "3/4" and "4/3" differ
    names: frozenset[int]  # hashes of the words that are names or identifiers here
    words: tuple[int, ...]  # hash of every word, lowercased, in order
    negations: tuple[str, ...]  # in order of appearance, like every sequence here
    directions: tuple[str, ...]
    operators: str
    literals: tuple[int, ...]  # hashes of quoted strings and code
    payload: int | None  # hash of what follows the last line's last ": ", if anything
    content: tuple[int, ...]  # hashes of the other words of 3+ letters, sorted (a multiset)

    def to_json(self) -> bytes:
        packed = np.asarray(self.words, dtype="<u4").tobytes()
        body = {
            "n": list(self.numbers),
            "e": sorted(self.names),
            "w": base64.b64encode(packed).decode(),
            "x": list(self.negations),
            "d": list(self.directions),
            "o": self.operators,
            "q": list(self.literals),
            "p": self.payload,
            "c": list(self.content),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> GuardSignature:
        """Parse :meth:`to_json`'s output; raises ValueError on anything else."""
        try:
            body = json.loads(raw)
            words = np.frombuffer(base64.b64decode(body["w"]), dtype="<u4")
            return cls(
                numbers=tuple(str(n) for n in body["n"]),
                names=frozenset(int(h) for h in body["e"]),
                words=tuple(int(h) for h in words),
                negations=tuple(str(x) for x in body["x"]),
                directions=tuple(str(d) for d in body["d"]),
                operators=str(body["o"]),
                literals=tuple(int(h) for h in body["q"]),
                payload=None if body["p"] is None else int(body["p"]),
                content=tuple(int(h) for h in body["c"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("not a guard signature") from exc


def guard_signature(text: str) -> GuardSignature:
    """Extract what :func:`guard_failures` compares, from one question.

    - numbers: digits (``1,000`` = ``1000``, ``0.50`` = ``.5``, ``5km`` gives 5, a
      minus sign attached to the digits counts) and number words (``five`` = ``5``,
      ``first`` = ``1st``), in order;
    - names: capitalised words other than common sentence openers ("What", "Please"),
      identifiers (``snake_case``, ``camelCase``, ``x2``) and single-letter variables;
    - negations (``not``, ``n't``, ``no``, ``never``, ``without``, ``except`` ...) and
      direction words (``more``/``less``, ``before``/``after``, ``maximum`` ...), in order;
    - operators (``+ - * / ^ = < > %`` and currency signs) in order, ignoring hyphens
      inside words; literals: text in quotes or backticks, exactly, in order;
    - payload: the text after the last ``": "`` of the last line, where templates put
      the data they operate on ("Translate to French: ...", "Spell backward: but");
    - content: every other word of three letters or more (for the "wording" guard).
    """
    numbers: list[tuple[int, str]] = []
    for match in _NUMBER.finditer(text):
        numbers.append((match.start(), _canonical_number(match)))
    names: set[int] = set()
    words: list[int] = []
    negations: list[str] = []
    directions: list[str] = []
    content: list[int] = []
    for match in _WORD.finditer(text):
        word, is_negated = _split_contraction(match.group())
        lower = word.lower()
        hashed = _hash(lower)
        words.append(hashed)
        if is_negated:
            negations.append("not")
        if lower in _NEGATIONS:
            negations.append(_NEGATIONS[lower])
        if lower in _DIRECTIONS:
            directions.append(lower)
        if lower in _NUMBER_WORDS:
            numbers.append((match.start(), _NUMBER_WORDS[lower]))
        if _is_name(word, text, match.start()):
            names.add(hashed)
        elif len(lower) >= 3 and lower.isalpha() and lower not in _FUNCTION_WORDS:
            content.append(hashed)
    return GuardSignature(
        numbers=tuple(value for _, value in sorted(numbers)),
        names=frozenset(names),
        words=tuple(words),
        negations=tuple(negations),
        directions=tuple(directions),
        operators=_operators(text),
        literals=tuple(_hash(literal) for literal in _literals(text)),
        payload=_payload(text),
        content=tuple(sorted(content)),
    )


def guard_failures(a: GuardSignature, b: GuardSignature) -> list[str]:
    """The guards (names from :data:`GUARDS`) that tell the two questions apart."""
    failures = []
    if a.numbers != b.numbers:
        failures.append("numbers")
    # A word counts as a name when either text writes it as one, so "france" still
    # matches "France" in a lowercased paraphrase, and "Paris ... London" never
    # matches "London ... Paris".
    names = a.names | b.names
    if [w for w in a.words if w in names] != [w for w in b.words if w in names]:
        failures.append("names")
    if a.negations != b.negations:
        failures.append("negations")
    if a.directions != b.directions:
        failures.append("directions")
    if a.operators != b.operators:
        failures.append("operators")
    if a.literals != b.literals:
        failures.append("literals")
    # Compared only when both have one: "Quick question: what is X?" may match "What is X?".
    if a.payload is not None and b.payload is not None and a.payload != b.payload:
        failures.append("payload")
    if _replaces_a_word(a, b):
        failures.append("wording")
    return failures


def guards_allow(a: GuardSignature, b: GuardSignature) -> bool:
    """Whether an answer to one question may serve the other, as far as the guards see."""
    return not guard_failures(a, b)


def _replaces_a_word(a: GuardSignature, b: GuardSignature) -> bool:
    """Whether a topic word of one question stands where the other has another word.

    A word swapped for another ("capital" -> "population", "should" -> "could") is
    the edit an embedding of a long question barely sees (half of such swaps
    measured 0.95 or more). Paraphrases add or drop words ("please", "thanks in
    advance") and move them ("X, please"), which remain allowed.
    """
    a_content, b_content = Counter(a.content), Counter(b.content)
    if a_content - b_content and b_content - a_content:
        return True
    topic = a_content.keys() | b_content.keys()
    matcher = SequenceMatcher(None, a.words, b.words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace" and not topic.isdisjoint([*a.words[i1:i2], *b.words[j1:j2]]):
            return True
    return False


# --- the guards' vocabulary -------------------------------------------------------------------


def _vocabulary(words: str) -> list[str]:
    return words.split()


_PRE_TOKEN = re.compile(r"\w+|[^\w\s]")
_POLITENESS = re.compile(r"\b(?:please|thanks(?: in advance)?|thank you)\b")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w)\]}])-)?"
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?|(?P<bare>\.\d+))"
    r"(?P<ord>(?:st|nd|rd|th)(?![a-z]))?"
)
_LITERALS = re.compile(
    r"```(.*?)```|`([^`\n]+)`|\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”"
    r"|(?<!\w)'([^'\n]{1,200})'(?!\w)|‘([^’\n]{1,200})’",
    re.DOTALL,
)
_OPERATORS = frozenset("+-*/^=<>%×÷≤≥≠√∑∫∏|&~$€£¥·−")
_CONTRACTIONS = frozenset({"s", "re", "ll", "ve", "m", "d", "t"})
_IRREGULAR_NOT = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}

_NEGATIONS = {
    **dict.fromkeys(
        _vocabulary("not no never none nobody nothing nowhere neither nor non nope"), "not"
    ),
    **dict.fromkeys(_vocabulary("except excluding exclude excluded besides"), "except"),
    "without": "without",
    "unless": "unless",
}
# Words whose opposite (or absence) changes the answer.
_DIRECTIONS = frozenset(
    _vocabulary("""
    more less fewer most least greater greatest larger largest bigger biggest smaller smallest
    higher highest lower lowest longer longest shorter shortest older oldest younger youngest
    faster fastest slower slowest better best worse worst above below over under maximum
    minimum max min maximize minimize maximise minimise maximal minimal increase increases
    increased increasing decrease decreases decreased decreasing ascending descending rise
    rises fall falls before after earlier later previous next last top bottom up down left
    right north south east west positive negative even odd true false add plus sum subtract
    minus difference multiply times product divide divided quotient buy sell win lose all
    every always some sometimes only same different equal inside outside start end beginning
    """)
)
_UNITS = _vocabulary("""
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen
""")
_TENS = _vocabulary("twenty thirty forty fifty sixty seventy eighty ninety")
_ORDINALS = _vocabulary(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
)
_NUMBER_WORDS = {
    **{word: str(n) for n, word in enumerate(_UNITS)},
    **{word: str(20 + 10 * n) for n, word in enumerate(_TENS)},
    **{word: f"#{n}" for n, word in enumerate(_ORDINALS, start=1)},  # as "1st" gives
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
    "half": "0.5",
    "twice": "x2",
    "double": "x2",
    "triple": "x3",
}
# Capitalised only because they open a sentence: question words, pronouns,
# determiners, auxiliaries, conjunctions, politeness, and the imperatives that
# start instructions. Any other capitalised word counts as a name, at the start
# of a sentence too ("Paris is ..."): a miss costs less than a wrong answer.
_OPENERS: frozenset[str] = frozenset(
    _vocabulary("""
    a an the this that these those there here it its i you we they he she my your our their
    his her me us them what which who whom whose when where why how whether if then so but
    and or also now next first finally after before given each every all some any no not
    yes is are was were be been am do does did have has had can could would will shall
    should may might must please thanks thank hi hello hey dear ok okay sure well in on at
    for from to of by with as about into than like just only again instead however
    therefore thus hence meanwhile similarly additionally furthermore moreover still yet
    although though because since while until unless suppose assume consider imagine let
    write explain describe tell give list find calculate compute solve determine show prove
    create make generate provide suggest summarize summarise translate convert identify
    classify compare evaluate simplify rewrite use answer choose select pick fill complete
    predict implement design plan draft compose edit correct check verify name rank sort
    count estimate analyze analyse discuss define outline brainstorm recommend help act
    pretend respond reply read return output input question note task quick one two three
    another other many much most more few several both either neither such same very
    really actually maybe perhaps hmm
    """)
)


# Words that carry no topic, or whose change another guard judges.
_FUNCTION_WORDS = _OPENERS | _NEGATIONS.keys() | _DIRECTIONS | _NUMBER_WORDS.keys()
_FUNCTION_WORDS |= frozenset(
    _vocabulary("""
    among around between through during within upon onto across along against toward
    towards via per thing things something anything way ways kind lot lots
    """)
)


def _canonical_number(match: re.Match[str]) -> str:
    digits = (match["int"] or "").replace(",", "") + (match["frac"] or match["bare"] or "")
    if match["ord"]:
        return f"#{int(match['int'] or 0)}"
    try:
        value = format(Decimal(digits).normalize(), "f")
    except InvalidOperation:
        value = digits
    return f"-{value}" if match["sign"] else value


def _split_contraction(token: str) -> tuple[str, bool]:
    """``don't`` and ``cannot`` -> (``do``/``can``, negated); ``Tom's`` -> (``Tom``, not)."""
    if "'" not in token and "’" not in token:
        return (token[:3], True) if token.lower() == "cannot" else (token, False)
    parts = re.split(r"['’]", token, maxsplit=1)
    if parts[1].lower() not in _CONTRACTIONS:
        return token, False
    head, tail = parts
    if tail.lower() == "t" and head.lower().endswith("n"):
        stem = head[:-1]
        return _IRREGULAR_NOT.get(stem.lower(), stem), True
    return head, False


def _is_name(word: str, text: str, start: int) -> bool:
    if word[0].isdigit():
        return False  # numbers have their own guard
    if not word.isalpha():
        return True  # identifiers: snake_case, x2, gpt4 (and O'Brien)
    if len(word) == 1:
        # "a" and "I" are words; "A" mid-sentence is a label ("point A"); x, n, f are variables.
        return word not in ("a", "i", "I") and not (word == "A" and _opens_sentence(text, start))
    if word.islower():
        return False
    if word[0].isupper():
        # An opener is capitalised because a sentence starts there, even when the
        # start is hard to see ("... 1101 Thanks!"), or for emphasis ("does NOT").
        return word.lower() not in _OPENERS
    return True  # camelCase


def _opens_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“‘(*#>[-")
    return not before or before[-1] in ".!?:\n"


def _operators(text: str) -> str:
    found = []
    for i, char in enumerate(text):
        if char not in _OPERATORS:
            continue
        if (
            char == "-"
            and 0 < i < len(text) - 1
            and text[i - 1].isalpha()
            and text[i + 1].isalpha()
        ):
            continue  # a hyphenated word
        found.append(char)
    return "".join(found)


def _payload(text: str) -> int | None:
    lines = text.strip().splitlines()
    _, sep, tail = lines[-1].rpartition(": ") if lines else ("", "", "")
    # Its words only: case, punctuation and a "please" or "thanks" do not change the
    # data (operators and quoted text have guards of their own).
    words = _WORD.findall(_POLITENESS.sub(" ", tail.casefold()))
    return _hash(" ".join(words)) if sep and words else None


def _literals(text: str) -> list[str]:
    return [next(g for g in match.groups() if g is not None) for match in _LITERALS.finditer(text)]


def _hash(word: str) -> int:
    return zlib.crc32(word.encode())  # stable across processes, unlike hash()


def count_word_pieces(text: str) -> int:
    """Words and punctuation marks: a cheap upper bound on the embedding's tokens."""
    return len(_PRE_TOKEN.findall(text))
