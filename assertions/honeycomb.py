"""A complete level-1 checker for Honeycomb query JSON, given the dataset's column list.

    >>> from assertions import honeycomb
    >>> honeycomb.check({"calculations": [{"op": "MAX"}]}, ["duration_ms"])
    [Failure(rule='calc_column_missing', message='calculation MAX needs a column')]

The same functions filter training rows, score a model's outputs, and drive
self-healing at inference (`assertions.self_heal`). The language itself, as data,
is in `assertions.honeycomb_spec`; the rules are in `assertions.honeycomb_rules`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from assertions import honeycomb_spec as spec
from assertions.core import Checker, Failure, FailureCounter
from assertions.honeycomb_rules import RULES
from assertions.parsing import ParseError, load_object, parse_names

__all__ = [
    "CHECKER",
    "ParseError",
    "canonical",
    "canonical_query",
    "check",
    "complexity",
    "is_valid",
    "parse_query",
    "summarize",
]

CHECKER = Checker(RULES)
"""The rules as a `Checker` over an already parsed query dict and a frozenset of columns."""

_LIST_PARTS = ("calculations", "filters", "breakdowns", "orders", "havings")
_SORTED_PARTS = ("calculations", "filters", "breakdowns", "havings")


def parse_query(text: str | bytes | dict) -> dict:
    """A query dict from JSON or a Python-repr dict; raises `ParseError` for anything else."""
    if isinstance(text, dict):
        return text
    loaded = load_object(text)
    if not isinstance(loaded, dict):
        raise ParseError(f"a query must be a JSON object, got {type(loaded).__name__}")
    return loaded


def check(query: str | bytes | dict, columns: str | Iterable[str]) -> list[Failure]:
    """Every failure of ``query`` against the Honeycomb query spec and ``columns``.

    ``query`` is a dict, or text holding JSON or a Python-repr dict; text that cannot
    be read gives a single ``query_not_json`` failure, never an exception.
    ``columns`` is any iterable of names, or a string holding a JSON/Python list or
    comma-joined names. Columns are matched as whole names.
    """
    column_set = parse_names(columns)
    if isinstance(query, (str, bytes)):
        try:
            query = load_object(query)
        except ParseError as error:
            message = f"the query is not valid JSON ({error}); return one JSON object and nothing else"
            return [Failure("query_not_json", message)]
    if not isinstance(query, dict):
        kind = type(query).__name__
        message = f"the query must be a JSON object with keys such as calculations and filters, got {kind}"
        return [Failure("query_not_object", message)]
    return CHECKER.check(query, column_set)


def is_valid(query: str | bytes | dict, columns: str | Iterable[str]) -> bool:
    return not check(query, columns)


def summarize(rows: Iterable[tuple[Any, Any]]) -> FailureCounter:
    """Failure counts over ``(query, columns)`` pairs; see `FailureCounter.most_common`."""
    counter = FailureCounter()
    for query, columns in rows:
        counter.add(check(query, columns))
    return counter


def complexity(query: str | bytes | dict) -> int:
    """How many parts a query has, for filtering out trivially simple training rows.

    Convention: one per calculation, filter, breakdown, order and having, plus one for
    each of start_time, end_time, granularity and limit that is set, plus one for a
    time_range other than the 7200-second default (writing the default out does not
    make a query more complex). Parts of the wrong type count zero.
    """
    parsed = parse_query(query)
    parts = sum(len(parsed[key]) for key in _LIST_PARTS if isinstance(parsed.get(key), list))
    parts += sum(parsed.get(key) is not None for key in ("start_time", "end_time", "granularity", "limit"))
    time_range = parsed.get("time_range")
    parts += time_range is not None and time_range != spec.DEFAULT_TIME_RANGE
    return parts


def canonical(query: str | bytes | dict) -> str:
    """Order-insensitive canonical JSON text of a query, for exact-match comparisons.

    Two queries that Honeycomb runs the same way give the same text: see
    `canonical_query` for the normalisations.
    """
    return json.dumps(canonical_query(query), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_query(query: str | bytes | dict) -> dict:
    """The canonical form of a query as a dict.

    Drops null values, empty lists and empty ``join_column``; sorts calculations,
    filters, breakdowns, havings and the values of in/not-in filters (their order has
    no meaning) but keeps orders in order; makes the 7200-second default time_range
    and the AND filter_combination explicit, and drops filter_combination when fewer
    than two filters make it meaningless.
    """
    parsed = parse_query(query)
    result = {key: _clean(value) for key, value in parsed.items() if value is not None and value != []}
    if isinstance(result.get("filters"), list):
        result["filters"] = [_canonical_filter(item) for item in result["filters"]]
    for key in _SORTED_PARTS:
        if isinstance(result.get(key), list):
            result[key] = sorted(result[key], key=_sort_key)
    _set_filter_combination(result)
    if all(result.get(key) is None for key in ("time_range", "start_time", "end_time")):
        result["time_range"] = spec.DEFAULT_TIME_RANGE
    return result


def _clean(value: Any) -> Any:
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if item is not None}
    return value


def _canonical_filter(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    harmless = {key for key in spec.FILTER_HARMLESS_EMPTY_KEYS if item.get(key) == ""}
    cleaned = {key: value for key, value in item.items() if key not in harmless}
    if cleaned.get("op") in spec.FILTER_OPS_WITH_LIST_VALUE and isinstance(cleaned.get("value"), list):
        cleaned["value"] = sorted(cleaned["value"], key=_sort_key)
    return cleaned


def _set_filter_combination(result: dict) -> None:
    filters = result.get("filters")
    if not isinstance(filters, list) or len(filters) < 2:
        result.pop("filter_combination", None)
    else:
        result.setdefault("filter_combination", spec.DEFAULT_FILTER_COMBINATION)


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)

