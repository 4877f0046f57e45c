"""A compact notation for writing Honeycomb queries by hand.

``Q("P99(duration_ms)", where=[ROOT, ("http.route", "=", "/api/search")], by=["service.name"],
order=["P99(duration_ms) desc"], last=DAY)`` builds the query dict with the keys in the usual
order. Calculations are ``OP`` or ``OP(column)``; filters are ``(column, op)`` or
``(column, op, value)``; orders are ``"<calc or column> asc|desc"``; havings are
``(calc, op, value)``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

HOUR, DAY, WEEK = 3600, 86400, 604800

# "requests" and "traces" are root spans: spans without a parent.
ROOT = ("trace.parent_id", "does-not-exist")

CALC_OPS = {
    "COUNT", "CONCURRENCY", "COUNT_DISTINCT", "HEATMAP", "SUM", "AVG", "MAX", "MIN",
    "P001", "P01", "P05", "P10", "P25", "P50", "P75", "P90", "P95", "P99", "P999",
    "RATE_AVG", "RATE_SUM", "RATE_MAX",
}
_CALC = re.compile(r"^([A-Z0-9_]+)(?:\((.+)\))?$")
_DIRECTION = {"asc": "ascending", "desc": "descending"}


def calc(spec: str) -> dict:
    """``"P99(duration_ms)"`` -> ``{"op": "P99", "column": "duration_ms"}``."""
    m = _CALC.match(spec)
    if not m or m.group(1) not in CALC_OPS:
        raise ValueError(f"not a calculation: {spec!r}")
    out = {"op": m.group(1)}
    if m.group(2):
        out["column"] = m.group(2)
    return out


def _filter(spec: tuple) -> dict:
    column, op, *value = spec
    out = {"column": column, "op": op}
    if value:
        out["value"] = value[0]
    return out


def _order(spec: str) -> dict:
    body, _, direction = spec.rpartition(" ")
    m = _CALC.match(body)
    out = calc(body) if m and m.group(1) in CALC_OPS else {"column": body}
    out["order"] = _DIRECTION[direction]
    return out


def _having(spec: tuple) -> dict:
    calculation = calc(spec[0])
    return {"calculate_op": calculation.pop("op"), **calculation, "op": spec[1], "value": spec[2]}


def Q(*calcs: str, where=(), any: bool = False, by=(), order=(), having=(),  # noqa: A002
      last: int | None = None, start: int | None = None, end: int | None = None,
      gran: int | None = None, limit: int | None = None) -> dict:
    """Build a query dict; ``any=True`` combines the filters with OR."""
    parts = {"calculations": [calc(c) for c in calcs], "filters": [_filter(f) for f in where],
             "filter_combination": "OR" if any else None, "breakdowns": list(by),
             "orders": [_order(o) for o in order], "havings": [_having(h) for h in having],
             "time_range": last, "start_time": start, "end_time": end, "granularity": gran,
             "limit": limit}
    return {key: value for key, value in parts.items() if value is not None and value != []}


def ts(when: str) -> int:
    """UNIX seconds of a UTC time written ``"YYYY-MM-DD HH:MM"``."""
    return int(datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp())


def query_columns(query: dict) -> list[str]:
    """Every column a query names, in first-use order."""
    named = [item["column"] for part in ("calculations", "filters", "orders", "havings")
             for item in query.get(part, []) if item.get("column")]
    return list(dict.fromkeys(named + query.get("breakdowns", [])))
