"""Semantic partial credit for a predicted Honeycomb query against the gold one.

    >>> from examples.honeycomb import scoring
    >>> gold = {"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route"]}
    >>> pred = '{"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route", "service.name"]}'
    >>> round(scoring.score(pred, gold)["part_f1"], 4)
    0.963

Exact match says only whether two queries are the same; this says how much of the gold
query a prediction got right. A query is cut into nine parts, each compared after the
canonicalisation below, with Honeycomb's defaults applied to what a query leaves out:

- set parts, scored by precision, recall and F1 over their items (both empty: 1.0; one
  empty: 0.0): ``calculations`` (op, column; none at all means COUNT, as Honeycomb runs
  it), ``filters`` (column, op, value), ``breakdowns``, ``orders`` (op, column, order; a
  missing order is ascending) and ``havings`` (calculate_op, column, op, value);
- scalar parts, 1.0 when equal and 0.0 otherwise: ``filter_combination`` (AND unless OR is
  given, and AND whenever fewer than two filters make it meaningless), ``time_range`` (the
  window the query covers: a relative time_range, 7200 seconds when no time is given, or
  the absolute window from start_time/end_time), ``granularity`` and ``limit`` (absent
  unless given).

Values are compared as Honeycomb reads them: numbers as numbers (``500``, ``500.0`` and
``"500"`` are one value), the list of an ``in``/``not-in`` filter as a set, and no value at
all for ``exists``/``does-not-exist``. Keys the language does not know are ignored here
(the checker reports them). Orders are compared as a set: their sequence is not scored.

Every part counts in the mean, even when both queries leave it out: adding a breakdown,
a filter or a limit nobody asked for costs as much as leaving one out. A prediction that
is not a query (not a JSON or Python-repr object, read as the checker reads it) scores 0
on every part.
"""
from __future__ import annotations

import json
import re
from typing import Any

from assertions import honeycomb_spec as spec
from assertions.honeycomb import parse_query
from assertions.parsing import ParseError

__all__ = ["PARTS", "SET_PARTS", "ParseError", "parts_of", "part_scores", "score", "summarize"]

SET_PARTS = ("calculations", "filters", "breakdowns", "orders", "havings")
SCALAR_PARTS = ("filter_combination", "time_range", "granularity", "limit")
PARTS = ("calculations", "filters", "filter_combination", "breakdowns", "orders", "havings",
         "time_range", "granularity", "limit")

DEFAULT_CALCULATION = ("COUNT", None)
"""What Honeycomb computes for a query with no calculations."""
DEFAULT_ORDER = "ascending"
"""The direction of an order that names none (Honeycomb's default; the checker asks for it)."""

_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
_ITEM_FIELDS = {
    "calculations": spec.CALC_KEYS,
    "filters": spec.FILTER_KEYS,
    "orders": spec.ORDER_KEYS,
    "havings": spec.HAVING_KEYS,
}


def score(prediction: Any, gold: Any) -> dict:
    """``{"parts": {part: {"precision", "recall", "f1"}}, "part_f1": mean F1 over PARTS}``."""
    parts = part_scores(prediction, gold)
    return {"parts": parts, "part_f1": sum(p["f1"] for p in parts.values()) / len(parts)}


def part_scores(prediction: Any, gold: Any) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of every part of ``prediction`` against ``gold``.

    ``prediction`` is a dict or text (JSON or a Python-repr dict); text that is not a query
    scores 0 everywhere. ``gold`` must be a query: `ParseError` otherwise.
    """
    expected = parts_of(gold)
    try:
        predicted = parts_of(prediction)
    except ParseError:
        return {part: _prf(0.0, 0.0) for part in PARTS}
    scores = {}
    for part in PARTS:
        if part in SET_PARTS:
            scores[part] = _set_score(predicted[part], expected[part])
        else:
            same = float(predicted[part] == expected[part])
            scores[part] = _prf(same, same)
    return scores


def summarize(scores: list[dict]) -> dict:
    """Means over rows of `score` results: ``{"part_f1", "parts": {part: {p, r, f1}}}``."""
    n = len(scores)
    if not n:
        return {"part_f1": 0.0, "parts": {}}
    parts = {part: {name: round(sum(s["parts"][part][name] for s in scores) / n, 4)
                    for name in ("precision", "recall", "f1")} for part in PARTS}
    return {"part_f1": round(sum(s["part_f1"] for s in scores) / n, 4), "parts": parts}


def parts_of(query: Any) -> dict[str, Any]:
    """The nine parts of a query in comparable form (frozensets and plain values)."""
    parsed = parse_query(query)
    filters = _items(parsed, "filters")
    calculations = _items(parsed, "calculations") or frozenset({_key(DEFAULT_CALCULATION)})
    combination = parsed.get("filter_combination")
    if len(filters) < 2 or combination is None:
        combination = spec.DEFAULT_FILTER_COMBINATION
    return {
        "calculations": calculations,
        "filters": filters,
        "filter_combination": _key(combination),
        "breakdowns": _items(parsed, "breakdowns"),
        "orders": _items(parsed, "orders"),
        "havings": _items(parsed, "havings"),
        "time_range": _window(parsed),
        "granularity": _key(_value(parsed.get("granularity"))),
        "limit": _key(_value(parsed.get("limit"))),
    }


def _items(query: dict, part: str) -> frozenset:
    value = query.get(part)
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        return frozenset({_key(["not a list", _value(value)])})
    return frozenset(_key(_item(part, item)) for item in value)


def _item(part: str, item: Any) -> Any:
    """One list element as a tuple of its meaningful fields (anything else as is)."""
    if part == "breakdowns":
        return _value(item)
    if not isinstance(item, dict):
        return ["not an object", _value(item)]
    fields = [_value(item.get(name)) for name in _ITEM_FIELDS[part]]
    if part == "filters":
        column, op, value = fields
        if op in spec.FILTER_OPS_WITHOUT_VALUE:
            value = None
        elif op in spec.FILTER_OPS_WITH_LIST_VALUE and isinstance(value, list):
            value = sorted({_key(v) for v in value})
        fields = [column, op, value]
    elif part == "orders" and fields[2] is None:
        fields[2] = DEFAULT_ORDER
    return fields


def _window(query: dict) -> str:
    """The time the query covers: ``rel <seconds>`` or ``abs <start> <end>``."""
    span, start, end = (_value(query.get(key)) for key in ("time_range", "start_time", "end_time"))
    span = spec.DEFAULT_TIME_RANGE if span is None else span
    if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in (span, start, end)):
        return _key(["unreadable", span, start, end])
    if start is not None and end is not None:
        return _key(["abs", start, end])
    if start is not None:
        return _key(["abs", start, _value(start + span)])
    if end is not None:
        return _key(["abs", _value(end - span), end])
    return _key(["rel", span])


def _value(value: Any) -> Any:
    """A value in canonical form: numbers and numeric text as numbers (``500.0`` -> ``500``)."""
    if isinstance(value, str):
        return _number_text(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted({_key(v) for v in value})
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    return value


def _number_text(text: str) -> Any:
    try:
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return _value(float(text))
    except (ValueError, OverflowError):  # more digits than int() converts
        pass
    return text


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def _set_score(predicted: frozenset, expected: frozenset) -> dict[str, float]:
    if not predicted and not expected:
        return _prf(1.0, 1.0)
    hits = len(predicted & expected)
    return _prf(hits / len(predicted) if predicted else 0.0, hits / len(expected) if expected else 0.0)


def _prf(precision: float, recall: float) -> dict[str, float]:
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
