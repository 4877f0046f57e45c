"""Exporters: turn kept rows into chat-format training files.

:class:`ChatExport` (alias :class:`SharegptExport`) builds each conversation from templates
over row fields: a system text, a human template such as ``NLQ: "{nlq}"\\n\\nColumns:
{columns}``, and the field (or template) that holds the answer. It writes sharegpt JSONL and,
on request, OpenAI ``messages`` JSONL, alpaca JSONL and a datasets folder. Rows are built by
construction (every value a rendered string), so a seeded sample of them, not every row, is
validated against the format's JSON Schema before anything is written.
"""
from __future__ import annotations

import functools
import json
import re
import string
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import StageError
from .chat import FORMATS, from_messages
from .validation import validate_rows
from ..io import save_dataset_folder, write_jsonl
from ..core.fingerprint import fingerprint_of
from ..core.table import row_dicts, to_jsonable

VALIDATED_ROWS = 200  # rows checked against the format's schema (a spread sample)

Template = str | Callable[[dict], str]


def render_value(value) -> str:
    """How a field appears inside a template: strings as is, dicts as JSON, lists as a
    Python list (the form the Honeycomb case study's prompts use)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return repr(list(value))
    return "" if value is None else str(value)


def template_fields(template: str) -> list[str]:
    return list(_keys(template))


@functools.lru_cache(maxsize=64)
def _keys(template: str) -> tuple[str, ...]:
    """The row fields a template reads (``{query[limit]}`` reads ``query``)."""
    names = (re.split(r"[.\[]", name)[0] for _, name, _, _ in string.Formatter().parse(template)
             if name)
    return tuple(dict.fromkeys(names))


class ChatExport:
    """Build chat rows from table rows and write them in one or more formats.

    Args:
        human: template over row fields (``"NLQ: \\"{nlq}\\""``) or a function of the row.
        gpt: the answer: a field name, a template, or a function of the row. Dicts and
            lists are written as JSON.
        system: optional system text, template or function.
        formats: any of ``sharegpt``, ``messages``, ``alpaca`` (first is the main file).
        datasets_folder: also save the first format as a ``datasets`` folder.
    """

    def __init__(self, human: Template, gpt: Template, system: Template | None = None,
                 formats=("sharegpt",), datasets_folder: bool = False, name: str = "export"):
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise StageError(name, f"unknown formats {unknown}; choose from {list(FORMATS)}")
        self.human, self.gpt, self.system = human, gpt, system
        self.formats, self.datasets_folder, self.name = tuple(formats), datasets_folder, name

    def required_fields(self) -> list[str]:
        fields = []
        for part in (self.system, self.human):
            if isinstance(part, str):
                fields += template_fields(part)
        if isinstance(self.gpt, str):
            fields += template_fields(self.gpt) if "{" in self.gpt else [self.gpt]
        return list(dict.fromkeys(fields))

    def _render(self, part: Template, row: dict, answer: bool = False) -> str:
        if callable(part):
            return str(part(row))
        if answer and "{" not in part:
            value = row[part]
            return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
                else render_value(value)
        return part.format_map({k: render_value(row[k]) for k in _keys(part) if k in row})

    def messages(self, row: dict) -> list[dict]:
        out = []
        if self.system is not None:
            out.append({"role": "system", "content": self._render(self.system, row)})
        out.append({"role": "user", "content": self._render(self.human, row)})
        out.append({"role": "assistant", "content": self._render(self.gpt, row, answer=True)})
        return out

    def build(self, df: pd.DataFrame, fmt: str = "sharegpt") -> list[dict]:
        """The rows of one format, validated against its schema."""
        missing = [f for f in self.required_fields() if f not in df.columns]
        if missing:
            raise StageError(self.name, f"the template needs field {missing[0]!r}, which the "
                                        f"table lacks (fields: {', '.join(map(str, df.columns))})",
                             field=missing[0])
        rows = [from_messages(self.messages(r), fmt) for r in row_dicts(df)]
        step = max(1, len(rows) // VALIDATED_ROWS)
        validate_rows(rows[::step], fmt, where=self.name, step=step)
        return rows

    def write(self, df: pd.DataFrame, folder) -> dict[str, str]:
        """Write every requested format into ``folder``; returns {format: path}."""
        folder = Path(folder)
        built = {fmt: self.build(df, fmt) for fmt in self.formats}
        paths = {fmt: str(write_jsonl(folder / f"{fmt}.jsonl", rows, plain=True))
                 for fmt, rows in built.items()}
        if self.datasets_folder:
            first = self.formats[0]
            frame = pd.DataFrame({"conversations": [r.get("conversations") for r in built[first]]}) \
                if first == "sharegpt" else pd.DataFrame(built[first])
            paths["datasets"] = str(save_dataset_folder(frame, folder / "dataset"))
        return paths

    def fingerprint(self):
        return fingerprint_of({"human": self.human, "gpt": self.gpt, "system": self.system,
                               "formats": self.formats, "datasets": self.datasets_folder})


SharegptExport = ChatExport
