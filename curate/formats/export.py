"""Exporters: turn kept rows into chat-format training files.

:class:`ChatExport` builds each conversation from templates over row fields and writes
sharegpt JSONL and, on request, OpenAI ``messages``, alpaca and a datasets folder. Writing
renders a column at a time around one encoded skeleton of the format; the bytes are those of
``json.dumps`` of `build`'s rows (a test holds the two equal). A seeded spread sample of the
rows is validated against the format's JSON Schema before anything is written.
"""
from __future__ import annotations

import functools
import json
import re
import string
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StageError
from .chat import ALPACA_INPUT, FORMATS, from_messages
from .validation import validate_rows
from ..io import save_dataset_folder
from ..io.atomic import write_text_array
from ..core.fingerprint import fingerprint_of
from ..core.json_text import (TEXT, arrow_values, encode_json_string, join_texts,
                              json_strings, text_array)
from ..core.table import REASON, column_values, mark, row_dicts, source_locations

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


def answer_text(value) -> str:
    """An answer field as the assistant's text: dicts and lists as JSON, the rest as in a
    template."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
        else render_value(value)


@functools.lru_cache(maxsize=64)
def template_fields(template: str) -> tuple[str, ...]:
    """The row fields a template reads (``{query[limit]}`` reads ``query``)."""
    names = (re.split(r"[.\[]", name)[0] for _, name, _, _ in string.Formatter().parse(template)
             if name)
    return tuple(dict.fromkeys(names))


@functools.lru_cache(maxsize=64)
def _pieces(template: str) -> tuple[tuple[str, str | None], ...] | None:
    """``((literal, field or None), ...)`` of a template whose fields are plain names (no
    format spec, conversion, index or attribute); None for any other template."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None and (spec or conversion or not name.isidentifier()):
            return None
        out.append((literal, name))
    return tuple(out)


_DUMPS = json.JSONEncoder(ensure_ascii=False).encode
_SLOT = "\x1f{}\x1f"  # a placeholder no template produces; JSON writes it as \u001f{}\u001f


def _blank_text(series: pd.Series) -> np.ndarray:
    """Cells that are text holding nothing but whitespace (other values never render
    empty, and missing ones are `split`'s ``missing_field``)."""
    values = arrow_values(series) if isinstance(series.dtype, pd.StringDtype) else None
    if values is not None:
        trimmed = pc.utf8_length(pc.utf8_trim_whitespace(values.cast(TEXT)))
        return pc.fill_null(pc.equal(trimmed, 0), False).to_numpy(zero_copy_only=False)
    return np.fromiter((type(v) is str and not v.strip() for v in series.tolist()),
                       dtype=bool, count=len(series))


def _per_row(piece, rows: int) -> list:
    """One text per row of a template's piece: a literal repeated, an Arrow array listed."""
    if isinstance(piece, str):
        return [piece] * rows
    return piece.to_pylist() if isinstance(piece, pa.Array) else piece


def _pick(values, at: np.ndarray) -> list[str]:
    return values.take(at).to_pylist() if isinstance(values, pa.Array) else \
        [values[k] for k in at]


class ChatExport:
    """Build chat rows from table rows and write them in one or more formats.

    Args:
        human: template over row fields (``"NLQ: \\"{nlq}\\""``) or a function of the row.
        gpt: the answer: a field name, a template, or a function of the row. Dicts and
            lists are written as JSON.
        system: optional system text, template or function.
        formats: any of ``sharegpt``, ``messages``, ``alpaca`` (first is the main file).
        datasets_folder: also save the first format as a ``datasets`` folder.
        preferences: a :class:`~curate.formats.preferences.PreferencePairs`: a run also
            writes ``preference.jsonl``, chosen/rejected pairs from its lineage (for DPO).
    """

    def __init__(self, human: Template, gpt: Template, system: Template | None = None,
                 formats=("sharegpt",), datasets_folder: bool = False, name: str = "export",
                 preferences=None):
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise StageError(name, f"unknown formats {unknown}; choose from {list(FORMATS)}")
        self.human, self.gpt, self.system = human, gpt, system
        self.formats, self.datasets_folder, self.name = tuple(formats), datasets_folder, name
        self.preferences = preferences

    def required_fields(self) -> list[str]:
        return list(dict.fromkeys(f for role, part in self._turns()
                                  for f in self._reads(role, part)))

    @staticmethod
    def _reads(role: str, part: Template) -> tuple[str, ...]:
        """The fields one turn reads: the answer's field name, or a template's fields."""
        if not isinstance(part, str):
            return ()
        return (part,) if role == "assistant" and "{" not in part else template_fields(part)

    def _render(self, part: Template, row: dict, answer: bool = False) -> str:
        if callable(part):
            return str(part(row))
        if answer and "{" not in part:
            return answer_text(row[part])
        return part.format_map({k: render_value(row[k]) for k in template_fields(part)
                                if k in row})

    def messages(self, row: dict) -> list[dict]:
        return [{"role": role, "content": self._render(part, row, answer=role == "assistant")}
                for role, part in self._turns()]

    def _check_fields(self, df: pd.DataFrame) -> None:
        missing = [f for f in self.required_fields() if f not in df.columns]
        if missing:
            raise StageError(self.name, f"the template needs field {missing[0]!r}, which the "
                                        f"table lacks (fields: {', '.join(map(str, df.columns))})",
                             field=missing[0])

    def build(self, df: pd.DataFrame, fmt: str = "sharegpt") -> list[dict]:
        """The rows of one format, validated against its schema."""
        self._check_fields(df)
        rows = [from_messages(self.messages(r), fmt) for r in row_dicts(df)]
        step = max(1, len(rows) // VALIDATED_ROWS)
        validate_rows(rows[::step], fmt, where=self.name, step=step)
        return rows

    # -- rows that cannot make a conversation ---------------------------------------------------
    def split(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(exportable, errored)``: a row whose template field is missing, or whose turn
        would be empty (only whitespace), is errored (``missing_field``, ``empty_turn``)
        with the export's name as its stage; an export never writes an empty turn."""
        self._check_fields(df)
        n = len(df)
        codes, reasons = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        fields = np.full(n, None, dtype=object)

        def flag(mask, code, reason, field):
            mask = np.asarray(mask, dtype=bool) & (codes == None)  # noqa: E711
            codes[mask], reasons[mask], fields[mask] = code, reason, field

        for name in self.required_fields():
            flag(df[name].isna().to_numpy(), "missing_field", f"field {name!r} is missing "
                 f"(empty or null): the conversation would lack it", name)
        for role, part in self._turns():
            reads = self._reads(role, part)
            flag(self._blank(part, df, role == "assistant"), "empty_turn",
                 f"the {role} turn would be empty", reads[0] if reads else None)
        bad = codes != None  # noqa: E711
        if not bad.any():
            return df, df.iloc[0:0]
        errored = mark(df[bad], self.name, codes[bad], reasons[bad], fields[bad])
        return df[~bad].reset_index(drop=True), errored.reset_index(drop=True)

    def _turns(self) -> list[tuple[str, Template]]:
        system = [("system", self.system)] if self.system is not None else []
        return system + [("user", self.human), ("assistant", self.gpt)]

    def _blank(self, part: Template, df: pd.DataFrame, answer: bool) -> np.ndarray:
        """Rows whose rendered ``part`` holds nothing but whitespace."""
        if callable(part) or (_pieces(part) is None and not (answer and "{" not in part)):
            return np.array([not self._render(part, r, answer).strip() for r in row_dicts(df)],
                            dtype=bool)
        if answer and "{" not in part:
            return _blank_text(df[part])
        blank = np.ones(len(df), dtype=bool)
        for literal, name in _pieces(part):
            if literal.strip():
                return np.zeros(len(df), dtype=bool)
            if name is not None:
                blank &= _blank_text(df[name])
        return blank

    # -- column-wise rendering: what `write` uses ---------------------------------------------
    @staticmethod
    def _field_texts(series: pd.Series, answer: bool = False):
        """A field's column as template text: an Arrow array for Arrow-backed text (missing
        values as ""), else a list of str."""
        if isinstance(series.dtype, pd.StringDtype):
            values = arrow_values(series)
            if values is not None:
                return values.cast(TEXT).fill_null("")
        render = answer_text if answer else render_value
        return [v if type(v) is str else render(v) for v in column_values(series)]

    def _texts(self, part: Template, df: pd.DataFrame, rows, answer: bool = False):
        """``part`` rendered for every row, a column at a time where it can be (an Arrow
        array when every field is Arrow-backed text, else a list of str)."""
        if callable(part):
            return [str(part(r)) for r in rows()]
        if answer and "{" not in part:
            return self._field_texts(df[part], answer=True)
        pieces = _pieces(part)
        if pieces is None:
            return [self._render(part, r) for r in rows()]
        out = []
        for literal, name in pieces:
            if literal:
                out.append(literal)
            if name is not None:
                out.append(self._field_texts(df[name]))
        if all(isinstance(p, (str, pa.Array)) for p in out):
            return join_texts(out, len(df))
        return ["".join(texts) for texts in zip(*(_per_row(p, len(df)) for p in out))]

    def line_array(self, df: pd.DataFrame, fmt: str = "sharegpt", end: str = "\n") -> pa.Array:
        """The JSON lines of one format, each followed by ``end``, as an Arrow text array;
        validated on a spread sample."""
        self._check_fields(df)
        rows = functools.cache(lambda: row_dicts(df))  # only templates that need whole rows
        parts = [(role, self._texts(part, df, rows, answer=role == "assistant"))
                 for role, part in self._turns()]
        skeleton = _DUMPS(from_messages([{"role": role, "content": _SLOT.format(i)}
                                         for i, (role, _) in enumerate(parts)], fmt))
        slots = [encode_json_string(_SLOT.format(i)) for i in range(len(parts))]
        order = sorted(range(len(parts)), key=lambda i: skeleton.index(slots[i]))
        pieces, rest = [], skeleton
        for slot in order:
            literal, rest = rest.split(slots[slot], 1)
            pieces += [literal, json_strings(parts[slot][1])]
        out = join_texts(pieces + [rest + end], len(df))
        if fmt == "alpaca":  # a user turn holding "### Input:" splits into instruction and input
            user = parts[-2][1]
            has_input = (pc.match_substring(user, ALPACA_INPUT).to_numpy(zero_copy_only=False)
                         if isinstance(user, pa.Array) else
                         np.array([ALPACA_INPUT in text for text in user], dtype=bool))
            at = np.flatnonzero(has_input)
            if len(at):
                texts = [(role, _pick(values, at)) for role, values in parts]
                fixed = [_DUMPS(from_messages([{"role": role, "content": values[k]}
                                               for role, values in texts], fmt)) + end
                         for k in range(len(at))]
                out = pc.replace_with_mask(out, pa.array(has_input), text_array(fixed))
        step = max(1, len(out) // VALIDATED_ROWS)
        sample = out.take(np.arange(0, len(out), step)).to_pylist()
        validate_rows([json.loads(line) for line in sample], fmt, where=self.name, step=step)
        return out

    def files(self) -> list[str]:
        """The names `write` gives the files and folders it writes in its folder."""
        return [f"{fmt}.jsonl" for fmt in self.formats] + \
            (["dataset"] if self.datasets_folder else []) + \
            (["preference.jsonl"] if self.preferences is not None else [])

    def write(self, df: pd.DataFrame, folder) -> dict[str, str]:
        """Write every requested format into ``folder``; returns {format: path}. Rows that
        `split` errors are refused (set them aside with `split` first)."""
        folder = Path(folder)
        _, errored = self.split(df)
        if len(errored):
            first = errored.iloc[0]
            raise StageError(self.name, f"{len(errored)} of {len(df)} rows would make an empty "
                                        f"or incomplete conversation ({first[REASON]} at "
                                        f"{', '.join(source_locations(errored))}); set them "
                                        f"aside with .split(df) first")
        built = {fmt: self.line_array(df, fmt) for fmt in self.formats}
        paths = {fmt: str(write_text_array(folder / f"{fmt}.jsonl", lines))
                 for fmt, lines in built.items()}
        if self.datasets_folder:
            first = self.formats[0]
            rows = [json.loads(line) for line in built[first].to_pylist()]
            frame = pd.DataFrame({"conversations": [r.get("conversations") for r in rows]}) \
                if first == "sharegpt" else pd.DataFrame(rows)
            paths["datasets"] = str(save_dataset_folder(frame, folder / "dataset"))
        return paths

    def fingerprint(self):
        made = {"human": self.human, "gpt": self.gpt, "system": self.system,
                "formats": self.formats, "datasets": self.datasets_folder}
        if self.preferences is not None:
            made["preferences"] = self.preferences
        return fingerprint_of(made)
