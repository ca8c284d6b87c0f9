"""Decide which part of a chat the classifier scores.

The question is "will a reasoning model answer *this turn* better?", so the
text scored is built as follows, and in this order (the embedding model
truncates at its window, so what matters most comes first):

1. The last user turn, in full. It is what the model must answer now.
2. When that turn is short (under ``FOLLOW_UP_WORDS`` words: "why?", "now
   for n = 5", "write it in Rust"), the previous user turn, cut to
   ``CONTEXT_WORDS`` words. A short follow-up inherits the difficulty of the
   question it follows; a long, self-contained turn does not, and adding
   old context to it would only dilute its own signal.
3. System prompts are left out by default. They are usually an
   application's boilerplate, the same for all of its traffic, so they carry
   no per-query signal, the measured training data has none (their effect
   would be untrained), and a long one would fill the embedding window.
   ``include_system=True`` appends the first ``CONTEXT_WORDS`` words of them.

Assistant and tool turns are not scored: they are the models' words, not the
task. Content parts that are not text (images, audio, files) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CONTEXT_WORDS", "FOLLOW_UP_WORDS", "message_text", "text_for_scoring"]

FOLLOW_UP_WORDS = 12
CONTEXT_WORDS = 96


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message; non-text content parts are skipped."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def text_for_scoring(messages: Sequence[Mapping[str, Any]], *, include_system: bool = False) -> str:
    """The text whose difficulty is scored for a chat (see the module docstring).

    Examples
    --------
    >>> text_for_scoring([
    ...     {"role": "user", "content": "Prove that there are infinitely many primes."},
    ...     {"role": "assistant", "content": "Suppose there are finitely many..."},
    ...     {"role": "user", "content": "Now do it for primes of the form 4k+3."},
    ... ])
    'Now do it for primes of the form 4k+3.\\n\\nProve that there are infinitely many primes.'
    """
    user_turns = [
        text for text in (message_text(m) for m in messages if m.get("role") == "user") if text
    ]
    pieces: list[str] = []
    if user_turns:
        last = user_turns[-1]
        pieces.append(last)
        if len(user_turns) > 1 and len(last.split()) < FOLLOW_UP_WORDS:
            pieces.append(_first_words(user_turns[-2], CONTEXT_WORDS))
    if include_system or not pieces:
        # A chat with no user turn is still scored on whatever instructions it has.
        system = [message_text(m) for m in messages if m.get("role") in ("system", "developer")]
        pieces.extend(_first_words(text, CONTEXT_WORDS) for text in system if text)
    return "\n\n".join(pieces)


def _first_words(text: str, limit: int) -> str:
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit])
