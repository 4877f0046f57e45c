"""The default prompts of the LLM stages and the text they are made of: the judge's
conversation (instructions, few-shot turns, the row), the repair request with its feedback,
fields as ``name: value`` lines, checker failures as ``rule: message`` lines."""
from __future__ import annotations

import json
import re

from assertions.calling import as_failures

from ...core.table import REASON, row_dicts, to_jsonable

JUDGE_SCHEMA = {
    "type": "object",
    "required": ["critique", "outcome"],
    "properties": {"critique": {"type": "string"}, "outcome": {"enum": ["good", "bad"]}},
}
INSTRUCTIONS = (
    "You review training examples for correctness and usefulness. Read the example, write a "
    "short critique that names every concrete problem (or says why it is correct), then "
    "give the outcome: \"good\" if the example is correct and useful, otherwise \"bad\".")
FOLLOWUP = ("The {field} still fails these checks:\n{failures}\nReply with only the "
            "corrected {field}.")
_FENCED = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)
FORMAT = ("Reply with only a JSON object: {\"critique\": \"...\", \"outcome\": \"good\" or "
          "\"bad\"}.")


def render_fields(fields: dict) -> str:
    """Fields as ``name: value`` lines (non-strings as compact JSON)."""
    return "\n".join(f"{name}: " + (value if isinstance(value, str) else
                                     json.dumps(to_jsonable(value), ensure_ascii=False))
                     for name, value in fields.items())


def judge_messages(instructions: str, examples: list[dict], fields: dict,
                   verdict_keys: list[str], format_hint: str = FORMAT) -> list[dict]:
    """The default judge conversation: instructions, few-shot turns, then the row."""
    messages = [{"role": "system", "content": f"{instructions}\n\n{format_hint}"}]
    for example in examples:
        verdict = {k: example[k] for k in verdict_keys if k in example}
        messages += [{"role": "user", "content": render_fields(
                         {k: v for k, v in example.items() if k not in verdict_keys})},
                     {"role": "assistant", "content": json.dumps(verdict, ensure_ascii=False)}]
    return messages + [{"role": "user", "content": render_fields(fields)}]


def repair_messages(field: str, fields: dict, feedback: str) -> list[dict]:
    """The default repair request: the row's fields, the problems, and what to reply."""
    return [{"role": "user", "content": (
        f"This example has a problem in its {field}.\n\n{render_fields(fields)}\n\n"
        f"Problems:\n{feedback}\n\nReply with only the corrected {field}.")}]


def describe_failure(item) -> str:
    """A checker's failure as one line: ``rule: message``; a string as it is."""
    return item if isinstance(item, str) else str(as_failures([item])[0])


def feedback_columns(feedback, columns) -> list[str]:
    """The columns holding a row's feedback: those named, else the first of ``critique``,
    ``_failures`` and ``_reason`` that ``columns`` holds."""
    if feedback is not None and not callable(feedback):
        return [feedback] if isinstance(feedback, str) else list(feedback)
    return next(([c] for c in ("critique", "_failures", REASON) if c in columns), [])


def feedbacks(df, rows: list[dict], feedback) -> list[str]:
    """Each row's feedback as text: ``feedback(row)`` when it is a function (the row with
    its feedback columns), else the feedback columns' values."""
    names = feedback_columns(feedback, df.columns)
    extra = row_dicts(df, [c for c in names if c in df.columns])
    full = [{**row, **more} for row, more in zip(rows, extra)]
    if callable(feedback):
        return [str(feedback(row)) for row in full]
    return [feedback_text(row.get(c) for c in names) for row in full]


def feedback_text(values) -> str:
    """Feedback from a row's feedback columns' values: lists of failures one per line."""
    parts = []
    for value in values:
        if isinstance(value, (list, tuple)):
            parts.extend(describe_failure(v) for v in value)
        elif value is not None and value == value and str(value).strip():
            parts.append(str(value).strip())
    return "\n".join(parts) or "(no feedback recorded)"


def strip_fence(text: str) -> str:
    """A reply without surrounding whitespace and a single enclosing ``` fence."""
    match = _FENCED.match(text.strip())
    return match.group(1).strip() if match else text.strip()
