"""Chat-data formats: sharegpt, OpenAI ``messages`` and alpaca; conversions and validation.

- sharegpt: ``{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}``
- messages: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
- alpaca:   ``{"instruction": str, "input": str, "output": str}`` (optional ``system``),
  one exchange only.

Each format has a JSON Schema in ``curate/schemas/``; every row the library emits is
validated against it.
"""
from __future__ import annotations

import functools
import json
from importlib import resources

import jsonschema

from ..errors import StageError

FORMATS = ("sharegpt", "messages", "alpaca")
ROLE_TO_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
FROM_TO_ROLE = {v: k for k, v in ROLE_TO_FROM.items()}


@functools.lru_cache(maxsize=None)
def schema(fmt: str) -> dict:
    """The JSON Schema of an emitted format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    text = resources.files("curate.formats").joinpath("schemas", f"{fmt}.schema.json").read_text()
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _validator(fmt: str):
    return jsonschema.Draft202012Validator(schema(fmt))


def validation_errors(row: dict, fmt: str) -> list[str]:
    """Every schema violation of one row, as short sentences (empty when valid)."""
    errors = sorted(_validator(fmt).iter_errors(row), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '<row>'}: {e.message}" for e in errors]


def validate_rows(rows, fmt: str, where: str = "export", step: int = 1) -> None:
    """Raise a StageError naming the first row that does not fit the format's schema
    (``rows`` may be every ``step``-th row of a table: the index named is the table's)."""
    for i, row in enumerate(rows):
        errors = validation_errors(row, fmt)
        if errors:
            raise StageError(where, f"row {i * step} is not valid {fmt}: {errors[0]}", field=fmt)


def detect_format(row: dict) -> str:
    if "conversations" in row:
        return "sharegpt"
    if "messages" in row:
        return "messages"
    if "instruction" in row and "output" in row:
        return "alpaca"
    raise ValueError(f"cannot tell the chat format of a row with keys {sorted(row)}")


# -- conversions (all go through messages) -----------------------------------------------------
def to_messages(row: dict) -> list[dict]:
    """The row's conversation as OpenAI-style messages, whatever its format."""
    fmt = detect_format(row)
    if fmt == "messages":
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if fmt == "sharegpt":
        try:
            return [{"role": FROM_TO_ROLE[t["from"]], "content": t["value"]}
                    for t in row["conversations"]]
        except KeyError as exc:
            raise ValueError(f"unknown sharegpt speaker {exc.args[0]!r}; expected "
                             "system, human or gpt") from None
    prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return messages + [{"role": "user", "content": prompt},
                       {"role": "assistant", "content": row["output"]}]


def from_messages(messages: list[dict], fmt: str) -> dict:
    """Build a row of format ``fmt`` from OpenAI-style messages."""
    if fmt == "messages":
        return {"messages": [dict(role=m["role"], content=m["content"]) for m in messages]}
    if fmt == "sharegpt":
        return {"conversations": [{"from": ROLE_TO_FROM[m["role"]], "value": m["content"]}
                                  for m in messages]}
    if fmt == "alpaca":
        system = [m["content"] for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        if len(turns) != 2 or [m["role"] for m in turns] != ["user", "assistant"]:
            raise ValueError("alpaca holds exactly one user turn and one assistant turn; "
                             f"this conversation has {len(turns)} turns")
        row = {"instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}
        if system:
            row["system"] = "\n\n".join(system)
        return row
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def convert(row: dict, fmt: str) -> dict:
    """Convert one row from any known format to ``fmt``."""
    return from_messages(to_messages(row), fmt)
