"""Answers of sampled replies and the vote over them, for :class:`~.vote.Vote`:
extractors (:class:`AnswerAfter`, :class:`JsonAnswer`), canonical forms, and the tally."""
from __future__ import annotations

import random
import re
from collections import Counter

from ...core.table import canonical_json
from ...llm.structured import ParseError, extract_json

NUMBER = r"-?\$?\s*[\d,]*\.?\d+"
TIE_POLICIES = ("reject", "first", "random")


class AnswerAfter:
    """Extract the answer after a marker: ``AnswerAfter("The answer is")`` finds ``42`` in
    "... The answer is 42." (the last occurrence wins; ``pattern`` is what to capture)."""

    def __init__(self, marker: str = "The answer is", pattern: str = NUMBER):
        self.marker, self.pattern = marker, pattern
        self._regex = re.compile(re.escape(marker) + r"[\s:]*(" + pattern + ")", re.IGNORECASE)

    def __call__(self, text: str):
        found = self._regex.findall(text or "")
        return found[-1] if found else None


class JsonAnswer:
    """Extract the JSON in a reply (``key``: one field of it) for structured answers."""

    def __init__(self, key: str | None = None):
        self.key = key

    def __call__(self, text: str):
        try:
            value = extract_json(text)
        except ParseError:
            return None
        if self.key is not None:
            return value.get(self.key) if isinstance(value, dict) else None
        return value


def canonical(answer) -> str | None:
    """A comparable form: numbers without commas, ``$`` or trailing zeros (``1,000.0`` ->
    ``1000``); JSON values as canonical JSON; other text with collapsed whitespace."""
    if answer is None:
        return None
    if isinstance(answer, (dict, list)):
        return canonical_json(answer)
    text = " ".join(str(answer).split())
    number = text.replace(",", "").replace("$", "").replace(" ", "")
    try:
        value = float(number)
    except ValueError:
        return text or None
    return str(int(value)) if value.is_integer() else repr(value)


def tally(answers: list, n: int, min_agreement: float, tie: str, rng: random.Random):
    """The vote over canonical answers (``None`` = no answer): returns ``(winner, votes,
    agreement, code, reason)``; ``winner`` is None and ``code`` set when the row is rejected."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None, {}, 0.0, "vote_no_answer", f"none of the {n} samples gave an answer"
    ranked = votes.most_common()
    top = ranked[0][1]
    tied = [a for a, c in ranked if c == top]
    if len(tied) > 1 and tie == "reject":
        return None, dict(ranked), top / n, "vote_tie", (
            f"tie between {', '.join(map(repr, tied[:4]))} at {top}/{n} votes each")
    if len(tied) > 1 and tie == "random":
        winner = rng.choice(sorted(tied))
    else:  # a clear majority, or tie == "first": the answer that appeared first
        winner = next(a for a in answers if a in tied)
    agreement = top / n
    if agreement < min_agreement:
        return None, dict(ranked), agreement, "vote_low_agreement", (
            f"top answer {winner!r} got {top}/{n} votes ({agreement:.2f} < {min_agreement:.2f})")
    return winner, dict(ranked), agreement, None, None
