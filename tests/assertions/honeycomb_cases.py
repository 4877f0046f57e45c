"""Columns, calculations and a helper shared by the Honeycomb rule tests."""

from assertions import honeycomb

COLUMNS = [
    "duration_ms",
    "service.name",
    "name",
    "http.method",
    "http.status_code",
    "error",
    "trace.parent_id",
    "trace.trace_id",
    "db.statement",
]

COUNT = {"op": "COUNT"}
P99 = {"op": "P99", "column": "duration_ms"}
AVG = {"op": "AVG", "column": "duration_ms"}
HEATMAP = {"op": "HEATMAP", "column": "duration_ms"}


def rules(query, columns=COLUMNS):
    """The sorted rule names of every failure of ``query``."""
    return sorted(failure.rule for failure in honeycomb.check(query, columns))
