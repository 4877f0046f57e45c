"""Judge: an LLM critique and a good/bad outcome per row, with few-shot examples.

The critique-then-outcome format follows Hamel Husain's Honeycomb case study ("Your AI
product needs evals"), where the judge's critiques were aligned with a domain expert's
(see :mod:`curate.review.alignment`). The judge sees exactly the fields it is given (the
question, the columns, the query), never the rest of the row.
"""
from __future__ import annotations

from typing import Mapping

from ...core.table import canonical_json
from ...errors import StageError
from .base import LLMStage, Made
from .support import shown_fields
from .prompts import INSTRUCTIONS, JUDGE_SCHEMA, judge_messages

BAD = "judge_bad"


class Judge(LLMStage):
    """LLM-as-judge: adds the verdict's fields (``critique``, ``outcome``) as columns.

    Args (besides those of every LLM stage, :class:`~.base.LLMStage`):
        fields: the row fields the judge sees, e.g. ``["nlq", "columns", "query"]``.
        instructions: what makes an example good (the system prompt of the default prompt).
        examples: few-shot examples: dicts with the ``fields`` plus the verdict
            (``critique``, ``outcome``), shown as earlier turns of the conversation.
        prompt: optional ``prompt(row, examples) -> str | messages`` replacing the default
            conversation; ``row`` holds only the named fields.
        schema: JSON Schema of the verdict (default: critique string + outcome good/bad,
            the outcome read in any case).
        keep: ``keep(verdict) -> bool`` (default: outcome == "good"); ``"all"`` keeps every
            row and only annotates it.
        outputs: ``{verdict key: column}`` to write a verdict key under another column name
            (``outputs={"critique": "judge_critique"}``); the stage refuses to overwrite a
            column the input already has.
        temperature: 0 by default. on_failure ``"keep"`` makes an advisory judge: a row
            with no verdict is kept, the failure in ``_judge_failure`` (``unjudged``).
        trusted: True when you trust this judge's verdicts as evidence (its agreement with
            an expert measured, :mod:`curate.review.alignment`): only a trusted judge's "bad" makes
            the rejected side of a preference pair (:mod:`curate.formats.preferences`).
            It changes nothing the stage does to rows.

    Rejected rows get ``_reason_code="judge_bad"`` and the critique as ``_reason``.
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
        if keep is not None and keep != "all" and not callable(keep):
            raise StageError(self.name, f"keep must be a function of the verdict or 'all', "
                                        f"got {keep!r}")
        self.fields, self.instructions, self.keep = list(fields), instructions, keep
        self.trusted = bool(trusted)
        self.custom_schema = schema is not None
        fixed = self.schema if not callable(self.schema) else self.schema({})
        self.verdict_keys = list(fixed.get("properties", {})) or ["critique", "outcome"]
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

    def shape(self, value):
        outcome = value.get("outcome") if isinstance(value, dict) else None
        if not self.custom_schema and isinstance(outcome, str):
            return {**value, "outcome": outcome.strip().lower()}
        return value

    def rows_from(self, row: dict, verdict: dict) -> Made:
        columns = {self.outputs.get(k, k): v for k, v in {**dict.fromkeys(self.verdict_keys),
                                                          **verdict}.items()}
        stats = {"outcomes": {str(verdict.get("outcome")): 1}}
        if self._keeps(verdict):
            return Made(columns=columns, stats=stats)
        return Made("rejected", columns, code=BAD, reason=_reason(verdict), stats=stats)

    def unanswered(self, row: dict, failure) -> Made:
        columns = {**{self.outputs[k]: None for k in self.verdict_keys},
                   "_judge_failure": failure.code}
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


def _reason(verdict: dict) -> str:
    critique = verdict.get("critique")
    if isinstance(critique, str) and critique.strip():
        return " ".join(critique.split())
    return f"judged bad: {canonical_json(verdict)}"
