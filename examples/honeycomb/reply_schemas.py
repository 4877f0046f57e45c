"""JSON Schemas of the Honeycomb example's LLM replies, built from the query language's
tables (``assertions.honeycomb_spec``): sent with each request (structured output) and checked
on every reply. The query schema can be narrowed to one row's columns, so that a constrained
decoder cannot name a column the dataset lacks; the checker still runs for what a schema cannot
express (an order naming one of the query's calculations, granularity against the window).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from assertions import honeycomb_spec as spec

CRITIQUE_CHARS = 400   # a critique long enough to name the problems, short enough to finish
QUESTION_CHARS = 240


def _column(columns: Iterable[str] | None) -> dict:
    names = sorted({str(c) for c in columns}) if columns else []
    return {"enum": names} if names else {"type": "string", "minLength": 1}


def _object(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def query_schema(columns: Iterable[str] | None = None) -> dict:
    """The shape of a Honeycomb query; with ``columns``, every column name must be one."""
    column = _column(columns)
    scalar = {"type": ["string", "number", "boolean"]}
    orderable = [op for op in spec.CALC_OPS if op not in spec.UNORDERABLE_CALC_OPS]
    calculation = {"anyOf": [
        _object({"op": {"enum": list(spec.CALC_OPS_WITHOUT_COLUMN)}}, ["op"]),
        _object({"op": {"enum": list(spec.CALC_OPS_WITH_COLUMN)}, "column": column},
                ["op", "column"])]}
    filter_ = {"anyOf": [
        _object({"column": column, "op": {"enum": list(spec.FILTER_OPS_WITH_SINGLE_VALUE)},
                 "value": scalar}, ["column", "op", "value"]),
        _object({"column": column, "op": {"enum": list(spec.FILTER_OPS_WITHOUT_VALUE)}},
                ["column", "op"]),
        _object({"column": column, "op": {"enum": list(spec.FILTER_OPS_WITH_LIST_VALUE)},
                 "value": {"type": "array", "items": scalar, "minItems": 1}},
                ["column", "op", "value"])]}
    order = {"anyOf": [
        _object({"op": {"enum": orderable}, "column": column,
                 "order": {"enum": list(spec.ORDER_DIRECTIONS)}}, ["op", "order"]),
        _object({"column": column, "order": {"enum": list(spec.ORDER_DIRECTIONS)}},
                ["column", "order"])]}
    having = _object({"calculate_op": {"enum": orderable}, "column": column,
                      "op": {"enum": list(spec.HAVING_OPS)}, "value": {"type": "number"}},
                     ["calculate_op", "op", "value"])
    seconds = {"type": "integer", "minimum": 1}
    return {
        "type": "object",
        "properties": {
            "calculations": {"type": "array", "items": calculation, "minItems": 1},
            "filters": {"type": "array", "items": filter_},
            "filter_combination": {"enum": list(spec.FILTER_COMBINATIONS)},
            "breakdowns": {"type": "array", "items": column},
            "orders": {"type": "array", "items": order},
            "havings": {"type": "array", "items": having},
            "time_range": seconds, "start_time": seconds, "end_time": seconds,
            "granularity": seconds, "limit": seconds,
        },
        "additionalProperties": False,
    }


QUERY_SCHEMA = query_schema()


def augment_schema(row: Mapping | None = None) -> dict:
    """An augmentation reply: a new question and query, and ``swap: [old, new]`` when a
    column was substituted. With a row, the query may name any column of the row's
    dataset (its own columns and the ones a swap may bring in); the checker then holds the
    new row to its own column list."""
    columns = _dataset_columns(row) if row else None
    return _object({
        "nlq": {"type": "string", "minLength": 1, "maxLength": QUESTION_CHARS},
        "query": query_schema(None if columns is None else columns),
        "swap": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string",
                                                                         "minLength": 1},
                                               "minItems": 2, "maxItems": 2}]},
    }, ["nlq", "query"])


def _dataset_columns(row: Mapping) -> list[str]:
    from examples.honeycomb.schemas import load_schema

    names = list(row.get("columns") or [])
    if row.get("schema"):
        names += [c.name for c in load_schema(row["schema"]).columns]
    return names


AUGMENT_SCHEMA = augment_schema()

REWORD_SCHEMA = _object({"nlq": {"type": "string", "minLength": 8,
                                 "maxLength": QUESTION_CHARS}}, ["nlq"])
"""A rewording reply: the question only (the query and columns are the parent's)."""

CRITIQUE_SCHEMA = _object({
    "critique": {"type": "string", "minLength": 1, "maxLength": CRITIQUE_CHARS},
    "outcome": {"enum": ["good", "bad"]},
}, ["critique", "outcome"])


def repair_schema(row: Mapping | None = None) -> dict:
    """A repair reply ``{"query": {...}}``, its columns narrowed to the row's."""
    return _object({"query": query_schema(row["columns"] if row else None)}, ["query"])


REPAIR_SCHEMA = repair_schema()
