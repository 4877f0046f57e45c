"""Judge: an LLM critique and a good/bad outcome per row, with few-shot examples.

The critique-then-outcome format follows Hamel Husain's Honeycomb case study ("Your AI
product needs evals"), where the judge's critiques were aligned with a domain expert's
(see :mod:`curate.alignment`). The judge sees exactly the fields it is given (the
question, the columns, the query), never the rest of the row.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Mapping

import pandas as pd

from ...core.stage import StageResult
from ...core.table import canonical_json, to_jsonable
from ...errors import StageError
from ...llm.dialects import drop_added_nulls
from ...llm.structured import ParseError, extract_json, validate
from ...llm.types import Failure
from .base import LLMStage, outcome_health, shown_fields

JUDGE_SCHEMA = {
    "type": "object",
    "required": ["critique", "outcome"],
    "properties": {"critique": {"type": "string"}, "outcome": {"enum": ["good", "bad"]}},
}
INSTRUCTIONS = (
    "You review training examples for correctness and usefulness. Read the example, write a "
    "short critique that names every concrete problem (or says why it is correct), then "
    "give the outcome: \"good\" if the example is correct and useful, otherwise \"bad\".")
FORMAT = ("Reply with only a JSON object: {\"critique\": \"...\", \"outcome\": \"good\" or "
          "\"bad\"}.")
BAD = "judge_bad"


def render_fields(fields: dict) -> str:
    """Fields as ``name: value`` lines (non-strings as compact JSON)."""
    lines = []
    for name, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(to_jsonable(value),
                                                               ensure_ascii=False)
        lines.append(f"{name}: {text}")
    return "\n".join(lines)


def judge_messages(instructions: str, examples: list[dict], fields: dict,
                   verdict_keys: list[str], format_hint: str = FORMAT) -> list[dict]:
    """The default judge conversation: instructions, few-shot turns, then the row."""
    messages = [{"role": "system", "content": f"{instructions}\n\n{format_hint}"}]
    for example in examples:
        shown = {k: v for k, v in example.items() if k not in verdict_keys}
        verdict = {k: example[k] for k in verdict_keys if k in example}
        messages.append({"role": "user", "content": render_fields(shown)})
        messages.append({"role": "assistant", "content": json.dumps(verdict, ensure_ascii=False)})
    messages.append({"role": "user", "content": render_fields(fields)})
    return messages


class Judge(LLMStage):
    """LLM-as-judge: adds the verdict's fields (``critique``, ``outcome``) as columns.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        fields: the row fields the judge sees, e.g. ``["nlq", "columns", "query"]``.
        instructions: what makes an example good (the system prompt of the default prompt).
        examples: few-shot examples: dicts with the ``fields`` plus the verdict
            (``critique``, ``outcome``), shown as earlier turns of the conversation.
        prompt: optional ``prompt(row, examples) -> str | messages`` replacing the default
            conversation; ``row`` holds only the named fields.
        schema: JSON Schema of the verdict (default: critique string + outcome good/bad).
        keep: ``keep(verdict) -> bool`` (default: outcome == "good"); ``"all"`` keeps every
            row and only annotates it.
        outputs: ``{verdict key: column}`` to write a verdict key under another column name
            (``outputs={"critique": "judge_critique"}``); the stage refuses to overwrite a
            column the input already has.
        temperature, max_tokens: sampling for the judge (default temperature 0).
        on_failure: ``"error"`` (default): a row whose verdict cannot be had (request failed,
            reply cut off or unparseable after the retry) is errored with the reason;
            ``"keep"``: an advisory judge: the row is kept with an empty verdict and the
            failure in ``_judge_failure`` (counted as ``unjudged``); ``"reject"``.

    Rejected rows get ``_reason_code="judge_bad"`` and the critique as ``_reason``.
    """

    declares_columns = True
    context_names = ("examples",)
    produces = "verdicts"

    def __init__(self, llm, *, fields, instructions: str = INSTRUCTIONS, examples=(),
                 prompt=None, schema: dict | None = None, keep=None,
                 outputs: Mapping[str, str] | None = None, temperature: float | None = 0.0,
                 **kwargs):
        super().__init__(llm, prompt, schema=schema or JUDGE_SCHEMA, temperature=temperature,
                         **kwargs)
        if isinstance(fields, str) or not fields:
            raise StageError(self.name, "fields must be a non-empty list of field names, "
                                        "e.g. fields=['nlq', 'query']")
        if keep is not None and keep != "all" and not callable(keep):
            raise StageError(self.name, f"keep must be a function of the verdict or 'all', "
                                        f"got {keep!r}")
        self.fields, self.instructions, self.keep = list(fields), instructions, keep
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

    def judge_messages_for(self, row: dict, row_id=None) -> list[dict] | None:
        """The conversation sent for one row (only the judged fields are shown)."""
        examples = [{k: e[k] for k in [*self.fields, *self.verdict_keys]} for e in self.examples]
        return self.messages_for(shown_fields(row, self.fields), row_id, examples=examples)

    def parse_reply(self, row: dict, text: str) -> dict:
        value = extract_json(text)
        if not isinstance(value, dict):
            raise ParseError(f"expected a JSON object, got a {type(value).__name__}")
        if not self.custom_schema and isinstance(value.get("outcome"), str):
            value["outcome"] = value["outcome"].strip().lower()
        schema = self.schema_for(row)
        value = validate(drop_added_nulls(value, schema), schema)
        return self.parse(row, value) if self.parse is not None else value

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

    def process_rows(self, df: pd.DataFrame, rows: list[dict]) -> StageResult:
        ids = df["_id"].tolist()
        messages = [self.judge_messages_for(r, i) for r, i in zip(rows, ids)]
        live = [p for p, m in enumerate(messages) if m is not None]
        requests = [self.request(messages[p], row=rows[p]) for p in live]
        parsers = [lambda text, row=rows[p]: self.parse_reply(row, text) for p in live]
        outcomes: list = [None] * len(rows)  # None: the prompt failed, the row is errored
        for p, outcome in zip(live, self.run_requests(requests, parsers)):
            outcomes[p] = outcome
        failures = {i: o for i, o in enumerate(outcomes) if isinstance(o, Failure)}
        judged_pos = [i for i in live if i not in failures]
        verdicts = [outcomes[i].value for i in judged_pos]
        judged = df.iloc[judged_pos].copy()
        for key in dict.fromkeys([*self.verdict_keys, *(k for v in verdicts for k in v)]):
            judged[self.outputs.get(key, key)] = pd.Series([v.get(key) for v in verdicts],
                                                           index=judged.index, dtype=object)
        keep = [self._keeps(v) for v in verdicts]
        reasons = pd.Series([_reason(v) for v in verdicts], index=judged.index, dtype=object)
        kept_failed, rejected_failed, errored = self.failed_rows(df, failures)
        result = self.result(judged, keep, BAD, reasons, errored=errored)
        if len(kept_failed):
            unjudged = kept_failed.assign(**{self.outputs[k]: None for k in self.verdict_keys})
            unjudged["_judge_failure"] = [failures[p].code for p in sorted(failures)]
            result.kept = pd.concat([result.kept, unjudged], ignore_index=True)
        if len(rejected_failed):
            result.rejected = pd.concat([result.rejected, rejected_failed], ignore_index=True)
        parsed, failed = outcome_health([outcomes[p] for p in live], [ids[p] for p in live])
        result.stats.update(self.health(len(requests), parsed, failed, len(verdicts)))
        result.stats.update({"outcomes": dict(Counter(str(v.get("outcome")) for v in verdicts)),
                             "unjudged": len(kept_failed)})
        return result


def _reason(verdict: dict) -> str:
    critique = verdict.get("critique")
    if isinstance(critique, str) and critique.strip():
        return " ".join(critique.split())
    return f"judged bad: {canonical_json(verdict)}"
