"""The default prompts of the LLM stages: the judge's conversation (instructions, few-shot
turns, the row) and the repair request, with the fields shown as ``name: value`` lines."""
from __future__ import annotations

import json

from ...core.table import to_jsonable

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
