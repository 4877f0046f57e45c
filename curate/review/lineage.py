"""One row's page: its fields, its whole lineage, and the exact training text it became.

A row's history is read off the run table: it enters at the source or at its ``_origin``
stage, passes later stages kept, and leaves at ``__step`` (or never: kept). Each stage's
decision is its declared ``added_columns``; ancestors are followed through ``_parent``.
A kept row's export line is found by position in ``export/<format>.jsonl``.
"""
from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np

from ..core.table import (FIELD, ID, ORIGIN, PARENT, REASON, REASON_CODE, SOURCE,
                          is_bookkeeping)
from .shown import Shown, raw_link
from .table import STATUS, STEP, RunTable, value_text

MAX_ANCESTORS = 20


def pretty(value) -> str:
    """A value for a ``<pre>``: strings as they are, the rest as indented JSON."""
    return value_text(value, indent=2)


def shown(record: dict, name: str, compact: bool = False) -> Shown:
    """The row's field ``name`` for a page (cut when long, with a link to all of it)."""
    text = (value_text if compact else pretty)(record.get(name))
    return Shown(text, raw_link(record.get(ID), field=name))


def row_fields(table: RunTable, record: dict, compact: bool = False) -> list[tuple[str, Shown]]:
    return [(name, shown(record, name, compact)) for name in table.fields
            if record.get(name) is not None]


def bookkeeping(record: dict) -> list[tuple[str, Shown]]:
    return [(k, shown(record, k)) for k, v in record.items()
            if is_bookkeeping(k) and k not in (STATUS, STEP) and v is not None]


def _decision(record: dict, step: int, left: int, table: RunTable) -> dict:
    if step < left or record[STATUS] == "kept":
        return {"outcome": "kept"}
    if record[STATUS] == "replaced":
        return {"outcome": "replaced", "children": table.children(record[ID])}
    return {"outcome": record[STATUS], "code": record.get(REASON_CODE),
            "reason": shown(record, REASON, compact=True), "field": record.get(FIELD)}


def _added_values(table: RunTable, stats: dict, record: dict) -> tuple[list, dict | None]:
    """The values a stage wrote on the row, and the near-duplicate it matched (if any)."""
    match, roles = None, stats.get("added_columns") or {}
    values = [{"column": column, "role": role, "text": shown(record, column, compact=True)}
              for column, role in roles.items()
              if record.get(column) is not None and role != "duplicate_of"]
    dup = next((c for c, r in roles.items() if r == "duplicate_of"), None)
    if dup and record.get(dup):
        score_column = next((c for c, r in roles.items() if r == "similarity"), None)
        match = near_duplicate(table, record, record[dup], record.get(score_column))
    return values, match


def near_duplicate(table: RunTable, record: dict, other_id: str, score) -> dict:
    """This row and the row it was found to repeat, field by field, side by side."""
    position = table.position(other_id)
    other = table.record(position) if position is not None else {}
    fields = [(name, shown(record, name), shown(other, name))
              for name in table.fields if record.get(name) is not None
              or other.get(name) is not None]
    return {"id": other_id, "found": position is not None, "score": score, "fields": fields}


def history(table: RunTable, record: dict) -> list[dict]:
    """What every stage the row went through did with it, in order."""
    origin = record.get(ORIGIN)
    # -1: the source, else the index of the stage that made it
    born = table.stage_names.index(origin) if origin in table.stage_names else -1
    left = int(record[STEP])
    events = []
    if born < 0:
        events.append({"stage": "source", "outcome": "read",
                       "reason": f"from {record.get(SOURCE) or 'the source'}"})
    for step in range(max(born, 0), min(left, len(table.stage_names) - 1) + 1):
        event = {"stage": table.stage_names[step], **_decision(record, step, left, table)}
        if step == born:
            event["created_from"] = record.get(PARENT)
        event["recorded"], event["match"] = _added_values(table, table.stage_stats[step], record)
        events.append(event)
    return events


def lineage(table: RunTable, row_id: str) -> list[dict]:
    """The row and each ancestor through ``_parent``, the row itself first."""
    chain, seen, current = [], set(), row_id
    while current and current not in seen and len(chain) < MAX_ANCESTORS:
        seen.add(current)
        position = table.position(current)
        if position is None:
            chain.append({"id": current, "found": False})
            break
        record = table.record(position)
        chain.append({"id": current, "found": True, "status": record[STATUS],
                      "fields": row_fields(table, record, compact=True),
                      "history": history(table, record)})
        current = record.get(PARENT)
    return chain


class ExportLines:
    """Lines of the run's export files, found by the position of a kept row."""

    def __init__(self, table: RunTable):
        self.folder = table.folder
        self.kept = table.kept_count
        self.files = self._files(table.manifest.get("export") or {})
        self._offsets: dict[str, np.ndarray] = {}

    def _files(self, export: dict) -> dict[str, Path]:
        files = {}
        for fmt, info in export.items():
            recorded = Path(str((info or {}).get("path", "")))
            here = self.folder / "export" / recorded.name
            path = here if here.is_file() else recorded
            if path.is_file() and path.suffix == ".jsonl":
                files[fmt] = path
        return files

    def _line_starts(self, fmt: str) -> np.ndarray:
        """Where each line starts (indexed once, without reading the file into memory)."""
        if fmt not in self._offsets:
            ends = np.zeros(0, dtype=np.int64)
            with open(self.files[fmt], "rb") as fh:
                if self.files[fmt].stat().st_size:
                    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            self._offsets[fmt] = np.concatenate([[0], ends + 1]).astype(np.int64)
        return self._offsets[fmt]

    def warm(self) -> None:
        for fmt in self.files:
            self._line_starts(fmt)

    def raw(self, fmt: str, position: int) -> str | None:
        """The ``fmt`` export line of the kept row at ``position`` (None: there is none)."""
        if fmt not in self.files or position >= self.kept:
            return None
        starts = self._line_starts(fmt)
        if position + 1 >= len(starts):
            return None
        with open(self.files[fmt], "rb") as fh:
            fh.seek(int(starts[position]))
            data = fh.read(int(starts[position + 1] - starts[position]))
        return data.decode("utf-8").rstrip("\n")

    def for_row(self, position: int, row_id: str) -> list[dict]:
        """Each export format's text for the kept row at ``position`` (none for other rows)."""
        found = []
        for fmt in self.files:
            text = self.raw(fmt, position)
            if text is None:
                continue
            link = raw_link(row_id, export=fmt)
            found.append({"format": fmt, "raw": Shown(text, link),
                          "turns": [(who, Shown(said, link)) for who, said in turns(text)],
                          "mismatch": len(self._line_starts(fmt)) - 1 != self.kept})
        return found


def turns(line: str) -> list[tuple[str, str]]:
    """A training example as (speaker, text) pairs: sharegpt, messages or alpaca rows."""
    try:
        item = json.loads(line)
    except ValueError:
        return [("line", line)]
    if isinstance(item.get("conversations"), list):
        return [(str(t.get("from")), value_text(t.get("value"))) for t in item["conversations"]]
    if isinstance(item.get("messages"), list):
        return [(str(t.get("role")), value_text(t.get("content"))) for t in item["messages"]]
    return [(str(k), value_text(v)) for k, v in item.items()]


def row_page(table: RunTable, exports: ExportLines, row_id: str) -> dict | None:
    """Everything the row page shows, or None when the run has no such row."""
    position = table.position(row_id)
    if position is None:
        return None
    record = table.record(position)
    return {"id": row_id, "record": record, "status": record[STATUS],
            "fields": row_fields(table, record), "bookkeeping": bookkeeping(record),
            "lineage": lineage(table, row_id), "children": table.children(row_id),
            "export": exports.for_row(position, row_id), "kept_position": position
            if position < table.kept_count else None}
