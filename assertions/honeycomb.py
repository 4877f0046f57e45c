"""A complete level-1 checker for Honeycomb query JSON, given the dataset's column list.

    >>> from assertions import honeycomb
    >>> honeycomb.check({"calculations": [{"op": "MAX"}]}, ["duration_ms"])
    [Failure(rule='calc_column_missing', message='calculation MAX needs a column')]

The language as data is in `assertions.honeycomb_spec`, the rules in
`assertions.honeycomb_rules`, the normal form that comparisons use in `assertions.honeycomb_normal`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from assertions.core import Checker, Failure, FailureCounter
from assertions.honeycomb_normal import atoms, normalize, parse_query
from assertions.honeycomb_rules import RULES
from assertions.parsing import ParseError, load_object, parse_names

__all__ = [
    "CHECKER",
    "ParseError",
    "atoms",
    "canonical",
    "canonical_query",
    "check",
    "complexity",
    "is_valid",
    "normalize",
    "parse_query",
    "summarize",
]

CHECKER = Checker(RULES)
"""The rules as a `Checker` over an already parsed query dict and a frozenset of columns."""

def check(query: str | bytes | dict, columns: str | Iterable[str]) -> list[Failure]:
    """Every failure of ``query`` against the Honeycomb query spec and ``columns``.

    ``query``: a dict, or JSON / Python-repr text (unreadable text is one ``query_not_json``
    failure, never an exception). ``columns``: an iterable of whole names, or a string holding
    a JSON/Python list or comma-joined names.
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
    """How many parts a query has, to filter out trivially simple rows: the number of its
    atoms (`assertions.honeycomb_normal.atoms`); a default written out adds none, ``{}`` has 0."""
    return len(atoms(query))


def canonical(query: str | bytes | dict) -> str:
    """Canonical JSON text of a query (`normalize`, sorted keys), for exact match: two queries
    that Honeycomb runs the same way give the same text."""
    return json.dumps(canonical_query(query), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_query(query: str | bytes | dict) -> dict:
    """The canonical form of a query as a dict (`assertions.honeycomb_normal.normalize`)."""
    return normalize(query)
