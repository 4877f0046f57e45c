"""The one normal form of a Honeycomb query, and the atoms a query sets.

The checker's canonical form, exact match and atom scoring (`examples/honeycomb/scoring.py`)
all compare queries through `normalize` and `atoms`, so they never disagree. Conventions:

- **Text** is read as the checker reads it: JSON or a Python-repr dict.
- **Order and repeats** of keys, calculations, filters, breakdowns, havings and ``in``/``not-in``
  values mean nothing (sorted, repeats dropped); orders keep their sequence. Nulls, empty
  lists and an empty ``join_column`` are dropped.
- **Numbers**: wherever a value is compared (filter and having values, ``in`` lists, times,
  granularity, limit), ``500.0`` is ``500`` and plain decimal text is a number (``"404"``,
  ``"1.2"``); ``"true"`` and ``"007"`` stay text.
- **exists / does-not-exist** take no value: a value given with them is dropped.
- **Calculations**: a query that names none computes COUNT, as Honeycomb runs it, so COUNT
  is written out.
- **Empty**: a query that sets nothing (``{}``, or only defaults such as ``{"time_range":
  7200}``) stays empty, has no atoms, and the checker rejects it (``query_empty``).
- **Orders**: a missing direction stays missing (the checker asks for one).
- **filter_combination**: AND unless OR is given; dropped with fewer than two filters.
- **Time**: ``time_range`` (default 7200) runs forward from ``start_time`` or back from
  ``end_time`` (Honeycomb's rule), so a window is relative (``time_range``) or absolute
  (``start_time`` and ``end_time``). Non-numeric times, or all three keys, stay as written.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from assertions import honeycomb_spec as spec
from assertions.parsing import ParseError, load_object

__all__ = ["ParseError", "atoms", "is_empty", "is_number", "normalize", "number", "parse_query", "time_window"]

DEFAULT_CALCULATION = {"op": "COUNT"}
_SORTED_PARTS = ("calculations", "filters", "breakdowns", "havings")
_TIME_KEYS = ("time_range", "start_time", "end_time")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def parse_query(text: str | bytes | dict) -> dict:
    """A query dict from JSON or a Python-repr dict; raises `ParseError` for anything else."""
    if isinstance(text, dict):
        return text
    loaded = load_object(text)
    if not isinstance(loaded, dict):
        raise ParseError(f"a query must be a JSON object, got {type(loaded).__name__}")
    return loaded


def is_empty(query: dict) -> bool:
    """True when a parsed query sets nothing: every key absent, null, an empty list, or at
    Honeycomb's default (``time_range`` 7200, a ``filter_combination`` of AND or OR, which
    means nothing without filters)."""
    for key, value in query.items():
        if value is None or value == [] or key == "time_range" and type(value) is int \
                and value == spec.DEFAULT_TIME_RANGE:
            continue
        if key == "filter_combination" and value in spec.FILTER_COMBINATIONS:
            continue
        return False
    return True


def number(value: Any) -> Any:
    """A value as it is compared: integral floats as ints, plain decimal text as a number."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    match = _DECIMAL.fullmatch(value) if isinstance(value, str) else None
    try:
        return value if not match else int(value) if match.group(2) is None else number(float(value))
    except ValueError:  # more digits than int() converts: compared as written
        return value


def normalize(query: str | bytes | dict) -> dict:
    """The normal form of a query (a new dict; the conventions are in the module docstring).

    Parts of the wrong shape (``"calculations": "COUNT"``) are kept as written, so the
    normal form of any parsed object exists; text that is not a query raises `ParseError`.
    """
    parsed = parse_query(query)
    result = {key: _drop_nulls(value) for key, value in parsed.items() if value is not None and value != []}
    for key, item in (("filters", _filter), ("havings", _having)):
        if isinstance(result.get(key), list):
            result[key] = [item(value) if isinstance(value, dict) else value for value in result[key]]
    for key in _SORTED_PARTS:
        if isinstance(result.get(key), list):
            result[key] = _unique_sorted(result[key])
    result.update({key: number(result[key]) for key in ("granularity", "limit") if key in result})
    if isinstance(result.get("filters"), list) and len(result["filters"]) >= 2:
        result.setdefault("filter_combination", spec.DEFAULT_FILTER_COMBINATION)
    else:  # meaningless without two filters
        result.pop("filter_combination", None)
    window = time_window(result)
    if window is None:  # times kept as written
        result.update({key: number(result[key]) for key in _TIME_KEYS if key in result})
    else:
        for key in _TIME_KEYS:
            result.pop(key, None)
        result.update({"time_range": window[1]} if window[0] == "relative"
                      else {"start_time": window[1], "end_time": window[2]})
    if "calculations" not in result and not is_empty(result):
        result["calculations"] = [dict(DEFAULT_CALCULATION)]
    return result


def time_window(query: dict) -> tuple | None:
    """``("relative", seconds)`` or ``("absolute", start, end)`` of a parsed query (defaults
    applied), or None when its times are not numbers or conflict (all three given)."""
    span, start, end = (number(query.get(key)) for key in _TIME_KEYS)
    if not all(value is None or is_number(value) for value in (span, start, end)):
        return None
    if start is not None and end is not None:
        return None if span is not None else ("absolute", start, end)
    span = spec.DEFAULT_TIME_RANGE if span is None else span
    if start is not None:
        return ("absolute", start, number(start + span))
    if end is not None:
        return ("absolute", number(end - span), end)
    return ("relative", span)


def atoms(query: str | bytes | dict) -> frozenset:
    """The atoms a query sets, in normal form: one per calculation, filter, breakdown, order
    and having, and one per scalar that differs from Honeycomb's default (OR, a time window
    other than the last 7200 seconds, granularity, limit).

    An atom is a tuple whose first item names its part: ``("calculation", op, column)``,
    ``("filter", column, op, value)``, ``("breakdown", column)``, ``("order", op, column,
    direction)``, ``("having", calculate_op, column, op, value)``, ``("filter_combination",
    "OR")``, ``("time", "relative", seconds)`` / ``("time", "absolute", start, end)``,
    ``("granularity", seconds)``, ``("limit", rows)``. Items of the wrong shape and keys the
    language does not know set no atom (the checker reports them). ``{}`` has none.
    """
    normal = normalize(query)
    found = set()
    for part, kind, fields in (("calculations", "calculation", spec.CALC_KEYS),
                               ("filters", "filter", spec.FILTER_KEYS),
                               ("orders", "order", spec.ORDER_KEYS),
                               ("havings", "having", spec.HAVING_KEYS)):
        items = normal.get(part) if isinstance(normal.get(part), list) else []
        found.update((kind, *(_hashable(item.get(name)) for name in fields))
                     for item in items if isinstance(item, dict))
    if isinstance(normal.get("breakdowns"), list):
        found.update(("breakdown", _hashable(column)) for column in normal["breakdowns"])
    if normal.get("filter_combination", spec.DEFAULT_FILTER_COMBINATION) != spec.DEFAULT_FILTER_COMBINATION:
        found.add(("filter_combination", _hashable(normal["filter_combination"])))
    window = time_window(normal)
    if window is None:
        found.add(("time", "as written", *(_hashable(normal.get(key)) for key in _TIME_KEYS)))
    elif window != ("relative", spec.DEFAULT_TIME_RANGE):
        found.add(("time", *window))
    found.update((key, _hashable(normal[key])) for key in ("granularity", "limit") if key in normal)
    return frozenset(found)


# -- helpers ------------------------------------------------------------------------------------
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    return value


def _filter(item: dict) -> dict:
    harmless = {key for key in spec.FILTER_HARMLESS_EMPTY_KEYS if item.get(key) == ""}
    cleaned = {key: value for key, value in item.items() if key not in harmless}
    op, value = cleaned.get("op"), cleaned.get("value")
    if op in spec.FILTER_OPS_WITHOUT_VALUE:
        cleaned.pop("value", None)
    elif isinstance(value, list):
        values = [number(element) for element in value]
        cleaned["value"] = _unique_sorted(values) if op in spec.FILTER_OPS_WITH_LIST_VALUE else values
    elif "value" in cleaned:
        cleaned["value"] = number(value)
    return cleaned


def _having(item: dict) -> dict:
    cleaned = dict(item)
    if "value" in cleaned:
        cleaned["value"] = number(cleaned["value"])
    return cleaned


def _unique_sorted(values: list) -> list:
    by_key = {_sort_key(value): value for value in values}
    return [by_key[key] for key in sorted(by_key)]


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _hashable(value: Any) -> Any:
    """A value usable inside an atom: lists as tuples, objects as canonical JSON text."""
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return _sort_key(value)
    return value
