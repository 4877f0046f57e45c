"""Chat-data formats: sharegpt, OpenAI ``messages`` and alpaca, and the conversions between them.

- sharegpt: ``{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}``
- messages: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
- alpaca:   ``{"instruction": str, "input": str, "output": str}`` (optional ``system``),
  one exchange only.

The one definition of the formats for the project: the exporters write rows with
`from_messages` and the trainer reads them with `to_messages`. Alpaca's prompt fields become
one user turn, ``instruction + ALPACA_INPUT + input`` (Stanford Alpaca's ``### Input:``
heading), which `from_messages` splits again, so alpaca rows round-trip exactly.
"""
from __future__ import annotations

FORMATS = ("sharegpt", "messages", "alpaca")
ALPACA_INPUT = "\n\n### Input:\n"

# Every speaker name accepted on reading (sharegpt's and OpenAI's, and "model" as some
# sharegpt dumps write it), and the name each format writes.
ROLE_ALIASES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                "assistant": "assistant", "model": "assistant"}
SHAREGPT_SPEAKER = {"system": "system", "user": "human", "assistant": "gpt"}
KEYS = {"sharegpt": "conversations", "messages": "messages", "alpaca": "instruction and output"}


class ChatFormatError(ValueError):
    """A row that is not a conversation of the format it was read as."""


def detect_format(row: dict) -> str:
    """The format of one row, told by its keys."""
    if "conversations" in row:
        return "sharegpt"
    if "messages" in row:
        return "messages"
    if "instruction" in row and "output" in row:
        return "alpaca"
    raise ChatFormatError("expected key(s) conversations, messages or instruction/output "
                          f"(format: auto), got keys {sorted(row)}")


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise ChatFormatError(f"message content must be text, got {type(content).__name__}")


def _role(name) -> str:
    if name not in ROLE_ALIASES:
        raise ChatFormatError(f"unknown role {name!r}; expected one of {', '.join(ROLE_ALIASES)}")
    return ROLE_ALIASES[name]


def to_messages(row: dict, fmt: str = "auto") -> list[dict]:
    """The row's conversation as OpenAI-style messages with the roles system, user and
    assistant; ``fmt="auto"`` tells the format by the row's keys."""
    if fmt not in ("auto", *FORMATS):
        raise ChatFormatError(f"unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    found = detect_format(row) if fmt == "auto" else fmt
    key = {"sharegpt": "conversations", "messages": "messages"}.get(found)
    if key is not None:
        turns = row.get(key)
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ChatFormatError(f"expected {key!r} to hold a list of turns (format: {found}), "
                                  f"got keys {sorted(row)}")
        names = ("from", "value") if found == "sharegpt" else ("role", "content")
        return [{"role": _role(t.get(names[0])), "content": _text(t.get(names[1]))}
                for t in turns]
    if "instruction" not in row or "output" not in row:
        raise ChatFormatError(f"expected key(s) {KEYS[found]} (format: {found}), "
                              f"got keys {sorted(row)}")
    prompt = _text(row["instruction"]) + (ALPACA_INPUT + _text(row["input"])
                                           if row.get("input") else "")
    system = [{"role": "system", "content": _text(row["system"])}] if row.get("system") else []
    return system + [{"role": "user", "content": prompt},
                     {"role": "assistant", "content": _text(row["output"])}]


def from_messages(messages: list[dict], fmt: str) -> dict:
    """Build a row of format ``fmt`` from OpenAI-style messages."""
    messages = [{"role": _role(m["role"]), "content": m["content"]} for m in messages]
    if fmt == "messages":
        return {"messages": messages}
    if fmt == "sharegpt":
        return {"conversations": [{"from": SHAREGPT_SPEAKER[m["role"]], "value": m["content"]}
                                  for m in messages]}
    if fmt == "alpaca":
        system = [m["content"] for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        if len(turns) != 2 or [m["role"] for m in turns] != ["user", "assistant"]:
            raise ChatFormatError("alpaca holds exactly one user turn and one assistant turn; "
                                  f"this conversation has {len(turns)} turns")
        instruction, _, given = turns[0]["content"].partition(ALPACA_INPUT)
        row = {"instruction": instruction, "input": given, "output": turns[1]["content"]}
        if system:
            row["system"] = "\n\n".join(system)
        return row
    raise ChatFormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def convert(row: dict, fmt: str) -> dict:
    """Convert one row from any known format to ``fmt``."""
    return from_messages(to_messages(row), fmt)
