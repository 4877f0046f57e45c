"""Judge: an LLM critique and a good/bad outcome per row, with few-shot examples.

The critique-then-outcome format follows Hamel Husain's Honeycomb case study ("Your AI
product needs evals"), where the judge's critiques were aligned with a domain expert's
(see :mod:`curate.alignment`). The judge sees exactly the fields it is given (the
question, the columns, the query), never the rest of the row.
"""
from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from ..errors import StageError
from ..llm.stage_support import build_messages, errored_frame, failure_sample, metered
from ..llm.structured import (ParseError, check_schema_valid, complete_parsed, extract_json,
                              validate)
from ..llm.types import PARSE_FAILED, Failure, Request
from ..stage import Stage, StageResult
from ..table import canonical_json, to_jsonable

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


def _default_keep(verdict: dict) -> bool:
    return verdict.get("outcome") == "good"


class Judge(Stage):
    """LLM-as-judge: adds the verdict's fields (``critique``, ``outcome``) as columns.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        fields: the row fields the judge sees, e.g. ``["nlq", "columns", "query"]``.
        instructions: what makes an example good (the system prompt of the default prompt).
        examples: few-shot examples: dicts with the ``fields`` plus the verdict
            (``critique``, ``outcome``), shown as earlier turns of the conversation.
        prompt: optional ``prompt(fields, examples) -> str | messages`` replacing the
            default conversation; ``fields`` holds only the named fields.
        schema: JSON Schema of the verdict (default: critique string + outcome good/bad).
        keep: ``keep(verdict) -> bool`` (default: outcome == "good"); ``"all"`` keeps every
            row and only annotates it.
        temperature, max_tokens: sampling for the judge (default temperature 0).
        on_failure: ``"error"`` (default): a row whose verdict cannot be had (request failed,
            reply cut off or unparseable after the retry) is errored with the reason;
            ``"keep"``: an advisory judge: the row is kept with ``outcome`` None, the reason
            in ``critique`` and the code in ``judge_failure`` (counted as ``unjudged``).

    Rejected rows get ``_reason_code="judge_bad"`` and the critique as ``_reason``. Replies
    that still do not parse after one corrective retry are errored (``llm_parse_failed``).
    """

    def __init__(self, llm, *, fields, instructions: str = INSTRUCTIONS, examples=(),
                 prompt=None, schema: dict | None = None, keep=None,
                 temperature: float | None = 0.0, max_tokens: int | None = None,
                 on_failure: str = "error", name: str | None = None):
        super().__init__(name)
        if on_failure not in ("error", "keep"):
            raise StageError(self.name, f"on_failure must be 'error' or 'keep', got {on_failure!r}")
        self.on_failure = on_failure
        if isinstance(fields, str) or not fields:
            raise StageError(self.name, "fields must be a non-empty list of field names, "
                                        "e.g. fields=['nlq', 'query']")
        if keep is not None and keep != "all" and not callable(keep):
            raise StageError(self.name, f"keep must be a function of the verdict or 'all', "
                                        f"got {keep!r}")
        if schema is not None:
            check_schema_valid(schema)
        self.llm, self.fields, self.instructions = llm, list(fields), instructions
        self.schema, self.prompt, self.keep = schema, prompt, keep
        self.verdict_keys = list((schema or JUDGE_SCHEMA).get("properties", {})) or \
            ["critique", "outcome"]
        self.examples = [dict(e) for e in examples]
        for i, example in enumerate(self.examples):
            missing = [f for f in [*self.fields, *self.verdict_keys] if f not in example]
            if missing:
                raise StageError(self.name, f"few-shot example {i} lacks {missing}")
        self.temperature, self.max_tokens = temperature, max_tokens

    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def messages_for(self, row: dict) -> list[dict]:
        """The conversation sent for one row (handy to inspect a prompt)."""
        shown = {f: row[f] for f in self.fields}
        examples = [{k: e[k] for k in [*self.fields, *self.verdict_keys]} for e in self.examples]
        if self.prompt is not None:
            return build_messages(self.name, self.prompt, shown, examples)
        return judge_messages(self.instructions, examples, shown, self.verdict_keys)

    def parse_verdict(self, text: str) -> dict:
        value = extract_json(text)
        if not isinstance(value, dict):
            raise ParseError(f"expected a JSON object, got a {type(value).__name__}")
        if self.schema is None and isinstance(value.get("outcome"), str):
            value["outcome"] = value["outcome"].strip().lower()
        return validate(value, self.schema or JUDGE_SCHEMA)

    def _keeps(self, verdict: dict) -> bool:
        if self.keep == "all":
            return True
        if self.keep is None:
            return _default_keep(verdict)
        try:
            return bool(self.keep(verdict))
        except Exception as error:
            raise StageError(self.name, f"the keep function raised {type(error).__name__}: "
                                        f"{error} on the verdict {verdict!r:.200}") from error

    def process(self, df: pd.DataFrame) -> StageResult:
        rows = df.to_dict("records")
        requests = [Request(self.messages_for(r), temperature=self.temperature,
                            max_tokens=self.max_tokens) for r in rows]
        with metered(self.name, len(requests)) as meter:
            outcomes = complete_parsed(self.llm, requests, self.parse_verdict,
                                       usage=meter.usage, meter=meter)
        failures = {i: o for i, o in enumerate(outcomes) if isinstance(o, Failure)}
        unjudged = {}
        if self.on_failure == "keep":  # an advisory judge: a failed verdict keeps the row
            unjudged, failures = failures, {}
        good = [i for i in range(len(rows)) if i not in failures]
        verdicts = [outcomes[i].value if i not in unjudged else
                    {"critique": f"not judged: {unjudged[i].reason}", "outcome": None,
                     "judge_failure": unjudged[i].code} for i in good]
        judged = df.iloc[good].copy()
        for key in dict.fromkeys([*self.verdict_keys, *(k for v in verdicts for k in v)]):
            judged[key] = pd.Series([v.get(key) for v in verdicts], index=judged.index,
                                    dtype=object)
        keep = [True if i in unjudged else self._keeps(v) for i, v in zip(good, verdicts)]
        reasons = pd.Series([_reason(v) for v in verdicts], index=judged.index, dtype=object)
        result = self.result(judged, keep, BAD, reasons,
                             errored=errored_frame(self.name, df, failures))
        failed = {**failures, **unjudged}
        n_parse = sum(f.code == PARSE_FAILED for f in failed.values())
        result.stats.update({
            "outcomes": dict(Counter(str(v.get("outcome")) for v in verdicts)),
            "unjudged": len(unjudged),
            "parse_failed": n_parse, "request_failed": len(failed) - n_parse,
            "failure_sample": failure_sample([(rows[i]["_id"], f) for i, f in failed.items()]),
            "llm": meter.usage.as_stats()})
        return result


def _reason(verdict: dict) -> str:
    critique = verdict.get("critique")
    if isinstance(critique, str) and critique.strip():
        return " ".join(critique.split())
    return f"judged bad: {canonical_json(verdict)}"
