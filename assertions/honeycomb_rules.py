"""Rules of the Honeycomb query checker, one function per part of a query.

Every rule takes the parsed query (a dict) and the set of column names, and returns a
list of failures. Rules never assume a type: a value of the wrong shape is a failure.
Failure names are stable: ``<part>_<problem>`` such as ``calc_column_missing``.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from assertions import honeycomb_spec as spec
from assertions.core import Failure
from assertions.honeycomb_normal import is_empty, is_number, time_window

# Membership is tested in sets, on every query; messages list the spec's ordered tuples.
TOP_LEVEL_KEYS = frozenset(spec.TOP_LEVEL_KEYS)
CALC_OPS = frozenset(spec.CALC_OPS)
FILTER_OPS = frozenset(spec.FILTER_OPS)
HAVING_OPS = frozenset(spec.HAVING_OPS)
SCALAR_TYPES = (str, int, float, bool)
_MAX_SHOWN = 80


def show(value: Any) -> str:
    """A short JSON rendering of a value for a failure message."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def is_int(value: Any) -> bool:
    """True for integers only: a bool or a float is not an integer here."""
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(options: tuple) -> str:
    return ", ".join(options)


def _is_member(value: Any, options: frozenset | tuple) -> bool:
    return isinstance(value, str) and value in options


def _object_items(query: dict, key: str, prefix: str, shape: str) -> tuple[list[dict], list[Failure]]:
    """The dict items of a list-valued key, with failures for a non-list value and for non-dict items."""
    value = query.get(key)
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [Failure(f"{key}_not_list", f"{key} must be a list of {shape}, got {show(value)}")]
    items, failures = [], []
    for position, item in enumerate(value, start=1):
        if isinstance(item, dict):
            items.append(item)
        else:
            message = f"{key} item {position} must be an object {shape}, got {show(item)}"
            failures.append(Failure(f"{prefix}_not_object", message))
    return items, failures


def _unknown_keys(item: dict, allowed: tuple, prefix: str, what: str) -> list[Failure]:
    return [
        Failure(f"{prefix}_key_unknown", f"{what} has unknown key {show(key)}; allowed keys are {_one_of(allowed)}")
        for key in item
        if key not in allowed
    ]


def _known_column(column: Any, columns: frozenset, prefix: str, what: str) -> list[Failure]:
    rule = f"{prefix}_column_unknown"
    if not isinstance(column, str):
        return [Failure(rule, f"{what} column must be a column name (a string), got {show(column)}")]
    if column in columns:
        return []
    close = difflib.get_close_matches(column, sorted(columns), n=1, cutoff=0.6)
    hint = f"did you mean {show(close[0])}?" if close else "use one of the given columns"
    return [Failure(rule, f"{what} column {show(column)} is not one of the given columns; {hint}")]


def _op_column(op: str, column: Any, prefix: str, what: str) -> list[Failure]:
    """Failures when a column is given to COUNT/CONCURRENCY or missing for any other op."""
    if op in spec.CALC_OPS_WITHOUT_COLUMN and column is not None:
        message = f"{what} {op} takes no column; remove \"column\": {show(column)}"
        return [Failure(f"{prefix}_column_unexpected", message)]
    if op not in spec.CALC_OPS_WITHOUT_COLUMN and column is None:
        return [Failure(f"{prefix}_column_missing", f"{what} {op} needs a column")]
    return []


def _calculations_of(query: dict) -> frozenset:
    """The (op, column) pairs of the query's calculations, for orders and havings to refer to."""
    calcs = query.get("calculations")
    if not isinstance(calcs, list):
        return frozenset()
    return frozenset(
        (calc.get("op"), calc.get("column"))
        for calc in calcs
        if isinstance(calc, dict) and isinstance(calc.get("op"), str) and _is_column_or_none(calc.get("column"))
    )


def _is_column_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def check_top_level_keys(query: dict, columns: frozenset) -> list[Failure]:
    allowed = _one_of(spec.TOP_LEVEL_KEYS)
    return [
        Failure("query_key_unknown", f"unknown top-level key {show(key)}; allowed keys are {allowed}")
        for key in query
        if key not in TOP_LEVEL_KEYS
    ]


def check_not_empty(query: dict, columns: frozenset) -> list[Failure]:
    """A query that sets nothing, or only defaults, answers no question (Honeycomb would count
    every event of the last two hours)."""
    if not is_empty(query):
        return []
    message = ("the query is empty: it sets no calculation, filter, breakdown or time; add what the "
               "question asks for, e.g. \"calculations\": [{\"op\": \"COUNT\"}], and its filters, "
               "breakdowns and time range")
    return [Failure("query_empty", message)]


def _op_failure(item: dict, op, known: frozenset, listed: tuple, prefix: str, noun: str) -> Failure | None:
    """The failure of a missing or unknown op (``<prefix>_op_missing`` / ``_op_unknown``)."""
    if op is None:
        return Failure(f"{prefix}_op_missing", f"{noun} {show(item)} needs an op, one of {_one_of(listed)}")
    if not _is_member(op, known):
        return Failure(f"{prefix}_op_unknown", f"{noun} op {show(op)} is not known; use one of {_one_of(listed)}")
    return None


def check_calculations(query: dict, columns: frozenset) -> list[Failure]:
    items, failures = _object_items(query, "calculations", "calc", "{op, column}")
    for calc in items:
        failures += _unknown_keys(calc, spec.CALC_KEYS, "calc", "calculation")
        op, column = calc.get("op"), calc.get("column")
        op_failure = _op_failure(calc, op, CALC_OPS, spec.CALC_OPS, "calc", "calculation")
        if op_failure:
            failures.append(op_failure)
        else:
            found = _op_column(op, column, "calc", "calculation")
            if not found and column is not None:
                found = _known_column(column, columns, "calc", f"calculation {op}")
            failures += found
    return failures


def check_filters(query: dict, columns: frozenset) -> list[Failure]:
    items, failures = _object_items(query, "filters", "filter", "{column, op, value}")
    for item in items:
        harmless = {key for key in spec.FILTER_HARMLESS_EMPTY_KEYS if item.get(key) in ("", None)}
        extra = {key: value for key, value in item.items() if key not in harmless}
        failures += _unknown_keys(extra, spec.FILTER_KEYS, "filter", "filter")
        column, op = item.get("column"), item.get("op")
        if column is None:
            failures.append(Failure("filter_column_missing", f"filter {show(item)} needs a column"))
        else:
            failures += _known_column(column, columns, "filter", "filter")
        op_failure = _op_failure(item, op, FILTER_OPS, spec.FILTER_OPS, "filter", "filter")
        if op_failure:
            failures.append(op_failure)
        else:
            failures += _filter_value(op, item.get("value"))
    return failures


def _filter_value(op: str, value: Any) -> list[Failure]:
    if op in spec.FILTER_OPS_WITHOUT_VALUE:
        if value is None:
            return []
        message = f"filter op '{op}' takes no value; remove \"value\": {show(value)}"
        return [Failure("filter_value_unexpected", message)]
    if value is None:
        kind = "a list value" if op in spec.FILTER_OPS_WITH_LIST_VALUE else "a value"
        return [Failure("filter_value_missing", f"filter op '{op}' needs {kind}")]
    if op in spec.FILTER_OPS_WITH_LIST_VALUE:
        if not isinstance(value, list):
            return [Failure("filter_value_not_list", f"filter op '{op}' needs a list value, got {show(value)}")]
        if not value:
            return [Failure("filter_value_empty", f"filter op '{op}' needs at least one value in its list")]
        if not all(isinstance(element, SCALAR_TYPES) for element in value):
            message = f"filter op '{op}' needs a list of strings, numbers or booleans, got {show(value)}"
            return [Failure("filter_value_type", message)]
        return []
    if not isinstance(value, SCALAR_TYPES):
        message = f"filter op '{op}' needs a single string, number or boolean value, got {show(value)}"
        if isinstance(value, list):
            message += "; use 'in' to match any of several values"
        return [Failure("filter_value_type", message)]
    return []


def check_filter_combination(query: dict, columns: frozenset) -> list[Failure]:
    value = query.get("filter_combination")
    if value is None or _is_member(value, spec.FILTER_COMBINATIONS):
        return []
    return [Failure("filter_combination_invalid", f"filter_combination must be \"AND\" or \"OR\", got {show(value)}")]


def check_breakdowns(query: dict, columns: frozenset) -> list[Failure]:
    value = query.get("breakdowns")
    if value is None:
        return []
    if not isinstance(value, list):
        return [Failure("breakdowns_not_list", f"breakdowns must be a list of column names, got {show(value)}")]
    failures: list[Failure] = []
    for column in value:
        failures += _known_column(column, columns, "breakdown", "breakdown")
    return failures


def _calc_reference(op: Any, column: Any, calcs: frozenset, prefix: str, op_rule: str) -> list[Failure]:
    """Failures when an order or having does not name a calculation of the query."""
    if not _is_member(op, CALC_OPS):
        message = f"{prefix} op {show(op)} is not a calculation op; use one of {_one_of(spec.CALC_OPS)}"
        return [Failure(op_rule, message)]
    if op in spec.UNORDERABLE_CALC_OPS:
        return [Failure(f"{prefix}_heatmap", f"{op} cannot be used in {prefix}s; use another calculation")]
    found = _op_column(op, column, prefix, prefix)
    if found:
        return found
    if not _is_column_or_none(column):
        message = f"{prefix} column must be a column name (a string), got {show(column)}"
        return [Failure(f"{prefix}_column_unknown", message)]
    if (op, column) not in calcs:
        wanted = {"op": op, "column": column} if column is not None else {"op": op}
        name = f"{op}({column})" if column is not None else str(op)
        message = f"{prefix} on {name} needs the calculation {show(wanted)} in calculations"
        return [Failure(f"{prefix}_calc_missing", message)]
    return []


def check_orders(query: dict, columns: frozenset) -> list[Failure]:
    items, failures = _object_items(query, "orders", "order", "{op, column, order}")
    calcs = _calculations_of(query)
    breakdowns = query.get("breakdowns") if isinstance(query.get("breakdowns"), list) else []
    for order in items:
        failures += _unknown_keys(order, spec.ORDER_KEYS, "order", "order")
        direction, op, column = order.get("order"), order.get("op"), order.get("column")
        if not _is_member(direction, spec.ORDER_DIRECTIONS):
            message = f"order {show(order)} needs \"order\": \"ascending\" or \"descending\", got {show(direction)}"
            failures.append(Failure("order_direction_invalid", message))
        if op is None and column is None:
            message = f"order {show(order)} needs an op (a calculation) or a column (a breakdown)"
            failures.append(Failure("order_target_missing", message))
        elif op is None:
            if not isinstance(column, str) or column not in breakdowns:
                message = f"order by column {show(column)} needs that column in breakdowns"
                failures.append(Failure("order_breakdown_missing", message))
        else:
            failures += _calc_reference(op, column, calcs, "order", "order_op_unknown")
    return failures


def check_havings(query: dict, columns: frozenset) -> list[Failure]:
    items, failures = _object_items(query, "havings", "having", "{calculate_op, column, op, value}")
    calcs = _calculations_of(query)
    for having in items:
        failures += _unknown_keys(having, spec.HAVING_KEYS, "having", "having")
        calculate_op, column, op, value = (having.get(key) for key in spec.HAVING_KEYS)
        if calculate_op is None:
            message = f"having {show(having)} needs a calculate_op naming a calculation"
            failures.append(Failure("having_calculate_op_missing", message))
        else:
            failures += _calc_reference(calculate_op, column, calcs, "having", "having_calculate_op_unknown")
        op_failure = _op_failure(having, op, HAVING_OPS, spec.HAVING_OPS, "having", "having")
        if op_failure:
            failures.append(op_failure)
        if value is None:
            failures.append(Failure("having_value_missing", f"having {show(having)} needs a value to compare with"))
        elif not is_number(value):
            failures.append(Failure("having_value_not_number", f"having value must be a number, got {show(value)}"))
    return failures


def _positive_int(query: dict, key: str, meaning: str) -> list[Failure]:
    value = query.get(key)
    if value is None or (is_int(value) and value > 0):
        return []
    return [Failure(f"{key}_invalid", f"{key} must be a positive integer ({meaning}), got {show(value)}")]


def check_times(query: dict, columns: frozenset) -> list[Failure]:
    failures = _positive_int(query, "time_range", "seconds")
    failures += _positive_int(query, "start_time", "UNIX seconds")
    failures += _positive_int(query, "end_time", "UNIX seconds")
    time_range, start, end = query.get("time_range"), query.get("start_time"), query.get("end_time")
    if time_range is not None and start is not None and end is not None:
        message = "time_range cannot be combined with both start_time and end_time; keep at most one of them"
        failures.append(Failure("time_range_conflict", message))
    if is_int(start) and is_int(end) and end <= start:
        failures.append(Failure("end_time_before_start", f"end_time {end} must be after start_time {start}"))
    return failures


def check_granularity(query: dict, columns: frozenset) -> list[Failure]:
    failures = _positive_int(query, "granularity", "seconds")
    granularity, span = query.get("granularity"), time_window(query)  # the default 7200 included
    if failures or granularity is None or span is None:
        return failures
    window = span[1] if span[0] == "relative" else span[2] - span[1]
    if not is_int(window) or window <= 0:  # times unreadable, or not a positive span
        return failures
    lowest = -(-window // spec.GRANULARITY_MIN_DIVISOR)  # ceiling division keeps integers exact
    highest = window // spec.GRANULARITY_MAX_DIVISOR
    allowed = f"for a {window}-second window use a granularity from {lowest} to {highest} seconds"
    if highest < lowest:
        allowed = f"a {window}-second window is too short for any granularity; remove granularity"
    if granularity * spec.GRANULARITY_MIN_DIVISOR < window:
        failures.append(Failure("granularity_too_small", f"granularity {granularity} is below window/1000; {allowed}"))
    elif granularity * spec.GRANULARITY_MAX_DIVISOR > window:
        failures.append(Failure("granularity_too_large", f"granularity {granularity} is above window/10; {allowed}"))
    return failures


def check_limit(query: dict, columns: frozenset) -> list[Failure]:
    return _positive_int(query, "limit", "a row count")


RULES = (
    check_top_level_keys,
    check_not_empty,
    check_calculations,
    check_filters,
    check_filter_combination,
    check_breakdowns,
    check_orders,
    check_havings,
    check_times,
    check_granularity,
    check_limit,
)
