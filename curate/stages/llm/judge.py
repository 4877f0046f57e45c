"""Judge: an LLM critique and a good/bad outcome per row, with few-shot examples, in the
critique-then-outcome format of Hamel Husain's Honeycomb case study ("Your AI product needs
evals"), where the judge's critiques were aligned with a domain expert's (see
:mod:`curate.review.alignment`)."""
from __future__ import annotations

from typing import Mapping

from ...core.table import canonical_json
from ...errors import StageError
from .base import LLMStage, Made
from .support import check_callable, shown_fields
from .prompts import INSTRUCTIONS, JUDGE_SCHEMA, judge_messages

BAD = "judge_bad"


class Judge(LLMStage):
    """LLM-as-judge: writes the verdict's fields (``critique``, ``outcome``) as columns and
    rejects a row judged bad (``_reason_code="judge_bad"``, the critique as ``_reason``).

    Args (besides those of every LLM stage, :class:`~.base.LLMStage`):
        fields: the only row fields the judge sees, e.g. ``["nlq", "columns", "query"]``.
        instructions: what makes an example good (the system prompt of the default prompt).
        examples: few-shot examples: dicts with the ``fields`` plus the verdict
            (``critique``, ``outcome``), shown as earlier turns of the conversation.
        prompt: optional ``prompt(row, examples) -> str | messages`` replacing the default.
        schema: JSON Schema of the verdict (default: critique string + outcome good/bad,
            the outcome read in any case).
        keep: ``keep(verdict) -> bool`` (default: outcome == "good"); ``"all"`` keeps every
            row and only annotates it.
        outputs: ``{verdict key: column}`` renames columns: ``{"critique": "judge_critique"}``.
        temperature: 0 by default. on_failure ``"keep"`` makes an advisory judge: a row
            with no verdict is kept, the failure in ``_judge_failure`` (``unjudged``).
        trusted: True when its verdicts are evidence (its agreement with an expert measured,
            :mod:`curate.review.alignment`): only a trusted judge's "bad" makes the rejected
            side of a preference pair (:mod:`curate.formats.preferences`); rows are unaffected.
    """

    declares_columns = True
    context_names = ("examples",)
    produces = "verdicts"
    counts = {"outcomes": {}, "unjudged": 0}

    def __init__(self, llm, *, fields, instructions: str = INSTRUCTIONS, examples=(),
                 prompt=None, schema: dict | None = None, keep=None,
                 outputs: Mapping[str, str] | None = None, temperature: float | None = 0.0,
                 trusted: bool = False, **kwargs):
        super().__init__(llm, prompt, schema=schema or JUDGE_SCHEMA, temperature=temperature,
                         **kwargs)
        if isinstance(fields, str) or not fields:
            raise StageError(self.name, "fields must be a non-empty list of field names, "
                                        "e.g. fields=['nlq', 'query']")
        if keep != "all":
            check_callable(self.name, "keep", keep, "a function of the verdict or 'all'")
        self.fields, self.instructions, self.keep = list(fields), instructions, keep
        self.trusted = bool(trusted)
        properties = self.schema_for({}).get("properties", {})
        self.verdict_keys = list(properties) or ["critique", "outcome"]
        self.outputs = {k: dict(outputs or {}).get(k, k) for k in self.verdict_keys}
        self.examples = [dict(e) for e in examples]
        for i, example in enumerate(self.examples):
            missing = [f for f in [*self.fields, *self.verdict_keys] if f not in example]
            if missing:
                raise StageError(self.name, f"few-shot example {i} lacks {missing}")

    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def added_columns(self) -> dict[str, str]:
        roles = {"critique": "critique", "outcome": "verdict"}
        return {**{self.outputs[k]: roles.get(k, "annotation") for k in self.verdict_keys},
                "_judge_failure": "annotation"}

    def default_messages(self, row: dict, examples=()) -> list[dict]:
        return judge_messages(self.instructions, list(examples), row, self.verdict_keys)

    def contexts(self, df, rows) -> list[dict]:
        examples = [{k: e[k] for k in [*self.fields, *self.verdict_keys]} for e in self.examples]
        return [{"examples": examples} for _ in rows]

    def shown(self, row: dict) -> dict:
        return shown_fields(row, self.fields)

    def shape(self, value):  # the default schema's outcome is read in any case
        outcome = value.get("outcome") if isinstance(value, dict) else None
        if self.schema == JUDGE_SCHEMA and isinstance(outcome, str):
            return {**value, "outcome": outcome.strip().lower()}
        return value

    def rows_from(self, row: dict, verdict: dict) -> Made:
        written = {**dict.fromkeys(self.verdict_keys), **verdict}
        columns = {self.outputs.get(k, k): v for k, v in written.items()}
        stats = {"outcomes": {str(verdict.get("outcome")): 1}}
        if self._keeps(verdict):
            return Made(columns=columns, stats=stats)
        critique = verdict.get("critique")
        reason = " ".join(critique.split()) if isinstance(critique, str) else ""  # one line
        return Made("rejected", columns, code=BAD, stats=stats,
                    reason=reason or f"judged bad: {canonical_json(verdict)}")

    def unanswered(self, row: dict, failure) -> Made:
        columns = {**dict.fromkeys(self.outputs.values()), "_judge_failure": failure.code}
        return Made(columns=columns, produced=0, stats={"unjudged": 1})

    def _keeps(self, verdict: dict) -> bool:
        if self.keep == "all":
            return True
        if self.keep is None:
            return verdict.get("outcome") == "good"
        try:
            return bool(self.keep(verdict))
        except Exception as error:
            raise StageError(self.name, f"the keep function raised {type(error).__name__}: "
                                        f"{error} on the verdict {verdict!r:.200}") from error
