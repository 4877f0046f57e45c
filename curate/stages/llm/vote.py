"""Vote: self-consistency (Wang et al., 2023, "Self-Consistency Improves Chain of Thought
Reasoning in Language Models").

Sample ``n`` replies per row at a temperature, extract an answer from each, canonicalise
it, and keep the row when the most common answer reaches ``min_agreement`` (its share of
the ``n`` samples). The row gets ``votes`` (answer -> count), ``agreement``, ``answer``
(the canonical majority answer), ``rationale`` (the first reply that reached it) and,
with ``rationales=True``, ``rationales`` (every reply that reached it).
"""
from __future__ import annotations

import random
import re
from collections import Counter

import pandas as pd

from ...core.stage import ROW_ERROR, StageResult
from ...core.table import ID, canonical_json
from ...errors import StageError
from ...llm.structured import ParseError, extract_json
from ...llm.types import Failure
from ..filters import renamed
from .base import LLMStage, metered

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


class Vote(LLMStage):
    """Self-consistency vote over ``n`` samples per row.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: ``prompt(row) -> str | messages`` (e.g. a few-shot chain-of-thought prompt).
        n: samples per row; temperature: their sampling temperature.
        extract: ``extract(text) -> answer | None`` (default: the number after "The answer
            is"; :class:`JsonAnswer` for structured replies).
        canonicalize: ``canonicalize(answer) -> str`` (default :func:`canonical`).
        min_agreement: keep the row if the majority answer has at least this share of the
            ``n`` samples (failed samples count as no vote).
        tie: "reject" (default), "first" (the tied answer sampled first) or "random"
            (seeded per row by ``seed``).
        rationales: also store every reply that reached the majority answer.
        outputs: ``{name: column}`` for the columns written: ``votes``, ``agreement``,
            ``answer``, ``rationale``, ``rationales`` (default: the same names).
        on_failure: for a row all of whose samples failed: ``"error"`` (default), ``"keep"``
            or ``"reject"``.
    """

    declares_columns = True
    produces = "answers"

    def __init__(self, llm, prompt, *, n: int = 5, temperature: float = 0.7, extract=None,
                 canonicalize=None, min_agreement: float = 0.5, tie: str = "reject",
                 rationales: bool = False, outputs=None, answer_field: str | None = None,
                 **kwargs):
        super().__init__(llm, prompt, temperature=temperature, **kwargs)
        if prompt is None:
            raise StageError(self.name, "prompt must be a function of the row")
        if n < 1 or not 0 <= min_agreement <= 1:
            raise StageError(self.name, f"need n >= 1 and 0 <= min_agreement <= 1, got n={n}, "
                                        f"min_agreement={min_agreement}")
        if tie not in TIE_POLICIES:
            raise StageError(self.name, f"tie must be one of {TIE_POLICIES}, got {tie!r}")
        outputs = dict(outputs or {})
        if answer_field is not None:
            renamed(self.name, "answer_field", "outputs={'answer': ...}")
            outputs["answer"] = answer_field
        names = ("votes", "agreement", "answer", "rationale") + (("rationales",) if rationales else ())
        self.outputs = {k: outputs.get(k, k) for k in names}
        self.n = int(n)
        self.extract = extract if extract is not None else AnswerAfter()
        self.canonicalize = canonicalize if canonicalize is not None else canonical
        self.min_agreement, self.tie, self.rationales = float(min_agreement), tie, rationales

    def added_columns(self) -> dict[str, str]:
        roles = {"answer": "answer"}
        return {column: roles.get(key, "annotation") for key, column in self.outputs.items()}

    def process_rows(self, df: pd.DataFrame, rows: list[dict]) -> StageResult:
        requests, live = [], []
        for pos, (row, row_id) in enumerate(zip(rows, df[ID])):
            messages = self.messages_for(row, row_id)
            if messages is not None:
                live.append(pos)
                requests += [self.request(messages, sample=s) for s in range(self.n)]
        with metered(self.name, len(requests), self._usage) as meter:
            replies = self.llm.complete_many(requests, usage=self._usage,
                                             on_result=lambda i, r: meter.advance())
        return self._decide(df.iloc[live].reset_index(drop=True), replies, len(requests))

    def _answer(self, text: str | None, row_id):
        if text is None:
            return None
        answer = self.call(lambda t: self.canonicalize(self.extract(t)), text, row_id,
                           "extract")
        return None if answer is ROW_ERROR else answer

    def _decide(self, df, replies, n_requests) -> StageResult:
        columns = {k: [] for k in self.outputs}
        keep, codes, reasons, failures, failed = [], [], [], {}, []
        ids = df[ID].tolist()
        for p, row_id in enumerate(ids):
            mine = replies[p * self.n:(p + 1) * self.n]
            failed += [(row_id, r) for r in mine if isinstance(r, Failure)]
            texts = [r.text if not isinstance(r, Failure) else None for r in mine]
            if all(t is None for t in texts):
                failures[p] = next(r for r in mine if isinstance(r, Failure))
                continue
            answers = [self._answer(t, row_id) for t in texts]
            rng = random.Random(f"{self.seed}:{row_id}")
            winner, votes, agreement, code, reason = tally(answers, self.n, self.min_agreement,
                                                           self.tie, rng)
            reached = [t for t, a in zip(texts, answers) if winner is not None and a == winner]
            values = [votes, round(agreement, 4), winner, reached[0] if reached else None]
            for key, value in zip(columns, values + ([reached] if self.rationales else [])):
                columns[key].append(value)
            keep.append(winner is not None)
            codes.append(code)
            reasons.append(reason)
        voted = df.iloc[[p for p in range(len(ids)) if p not in failures]].copy()
        for key, values in columns.items():
            voted[self.outputs[key]] = pd.Series(values, index=voted.index,
                                                 dtype=float if key == "agreement" else object)
        kept_failed, rejected_failed, errored = self.failed_rows(df, failures)
        result = self.result(voted, keep, pd.Series(codes, index=voted.index, dtype=object),
                             pd.Series(reasons, index=voted.index, dtype=object), errored=errored)
        result.kept = pd.concat([result.kept, kept_failed], ignore_index=True)
        if len(rejected_failed):
            result.rejected = pd.concat([result.rejected, rejected_failed], ignore_index=True)
        result.stats.update(self.health(n_requests, n_requests - len(failed), failed, sum(keep)))
        result.stats.update({"samples": len(replies), "failed_samples": len(failed)})
        return result
