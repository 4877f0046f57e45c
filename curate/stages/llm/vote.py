"""Vote: self-consistency (Wang et al., 2023, "Self-Consistency Improves Chain of Thought
Reasoning in Language Models")."""
from __future__ import annotations

import random

from ...core.table import canonical_json
from ...errors import StageError
from .answers import TIE_POLICIES, AnswerAfter, JsonAnswer, canonical, tally
from .base import LLMStage, Made

__all__ = ["AnswerAfter", "JsonAnswer", "Vote", "canonical", "tally"]


class Vote(LLMStage):
    """Self-consistency vote over ``n`` samples per row: extract an answer from each,
    canonicalise it, and keep the row when the most common answer reaches ``min_agreement``.
    The row gets ``votes`` (answer -> count), ``agreement``, ``answer`` (the canonical
    majority answer) and ``rationale`` (the first reply that reached it).

    Args (besides those of every LLM stage, :class:`~.base.LLMStage`):
        prompt: ``prompt(row) -> str | messages`` (e.g. a few-shot chain-of-thought prompt).
        n: samples per row; temperature: their sampling temperature.
        extract: ``extract(text) -> answer | None`` (default: the number after "The answer
            is"; :class:`JsonAnswer` for structured replies). One that raises makes that
            sample unusable (``llm_parse_failed``).
        canonicalize: ``canonicalize(answer) -> str`` (default :func:`canonical`).
        min_agreement: keep the row if the majority answer has at least this share of the
            ``n`` samples (failed samples count as no vote).
        tie: "reject" (default), "first" (the tied answer sampled first) or "random"
            (seeded by ``seed`` and the row's fields).
        rationales: also store every reply that reached the majority answer, and every
            reply whose answer got fewer votes (``minority``).
        outputs: ``{name: column}`` for the columns written: ``votes``, ``agreement``,
            ``answer``, ``rationale``, ``rationales``, ``minority`` (default: the same names).
    """

    declares_columns = True
    produces = "answers"
    sampled = True
    max_rounds = 1  # no corrective retry: an unreadable sample is no vote

    def __init__(self, llm, prompt, *, n: int = 5, temperature: float = 0.7, extract=None,
                 canonicalize=None, min_agreement: float = 0.5, tie: str = "reject",
                 rationales: bool = False, outputs=None, **kwargs):
        super().__init__(llm, prompt, temperature=temperature, **kwargs)
        if prompt is None:
            raise StageError(self.name, "prompt must be a function of the row")
        if n < 1 or not 0 <= min_agreement <= 1:
            raise StageError(self.name, f"need n >= 1 and 0 <= min_agreement <= 1, got n={n}, "
                                        f"min_agreement={min_agreement}")
        if tie not in TIE_POLICIES:
            raise StageError(self.name, f"tie must be one of {TIE_POLICIES}, got {tie!r}")
        names = ("votes", "agreement", "answer", "rationale") + \
            (("rationales", "minority") if rationales else ())
        self.outputs = {k: dict(outputs or {}).get(k, k) for k in names}
        self.n = int(n)
        self.extract = extract if extract is not None else AnswerAfter()
        self.canonicalize = canonicalize if canonicalize is not None else canonical
        self.min_agreement, self.tie, self.rationales = float(min_agreement), tie, rationales

    def added_columns(self) -> dict[str, str]:
        roles = {"answer": "answer", "minority": "minority"}
        return {column: roles.get(key, "annotation") for key, column in self.outputs.items()}

    def value_from(self, row: dict, text: str) -> tuple[str, object]:
        """A sample's text and its canonical answer (None: it gave none)."""
        return text, self.canonicalize(self.extract(super().value_from(row, text)))

    def rows_from(self, row: dict, samples: list) -> Made:
        texts = [s[0] if s else None for s in samples]
        answers = [s[1] if s else None for s in samples]
        rng = random.Random(f"{self.seed}:{canonical_json(row)}")
        winner, votes, agreement, code, reason = tally(answers, self.n, self.min_agreement,
                                                       self.tie, rng)
        reached = [t for t, a in zip(texts, answers) if winner is not None and a == winner]
        lost = [{self.outputs["answer"]: a, self.outputs["rationale"]: t} for t, a in zip(texts, answers)
                if winner is not None and a is not None and votes[a] < votes[winner]]
        values = [votes, round(agreement, 4), winner, reached[0] if reached else None, reached, lost]
        columns = {self.outputs[k]: v for k, v in zip(self.outputs, values)}
        if winner is None:
            return Made("rejected", columns, code=code, reason=reason, produced=0)
        return Made(columns=columns)

    def health(self, requests, parsed, failures, produced) -> dict:
        return {**super().health(requests, parsed, failures, produced),
                "samples": requests, "failed_samples": requests - parsed}
