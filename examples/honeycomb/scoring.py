"""How much of the gold query an answer got right: F1 over the atoms the queries set.

    >>> from examples.honeycomb import scoring
    >>> gold = {"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route"]}
    >>> pred = '{"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route", "service.name"]}'
    >>> round(scoring.score(pred, gold)["atom_f1"], 4)
    0.8

A query is the set of atoms it sets (`assertions.honeycomb_normal.atoms`): each calculation,
filter, breakdown, order and having, and each scalar other than Honeycomb's default, in the
normal form exact match uses too. Atom F1 is ``2 * shared / (answer's + gold's)``: what both
leave at the default earns nothing, so ``{}`` scores 0 against any gold that sets something
(a held-out gold always does). An answer that is not a query scores 0 and is no exact match.
``parts`` gives precision, recall and F1 per kind of atom either query sets.
"""
from __future__ import annotations

from typing import Any

from assertions.honeycomb import atoms, canonical
from assertions.parsing import ParseError

__all__ = ["KINDS", "ParseError", "score", "summarize"]

KINDS = ("calculation", "filter", "filter_combination", "breakdown", "order", "having",
         "time", "granularity", "limit")
"""The kinds of atoms, the first item of each atom tuple."""


def score(prediction: Any, gold: Any) -> dict:
    """``{"atom_f1", "precision", "recall", "exact", "parts": {kind: {precision, recall, f1}}}``.

    ``prediction`` is a dict or text (JSON or a Python-repr dict); ``gold`` must be a query:
    `ParseError` otherwise.
    """
    expected = atoms(gold)
    try:
        predicted, exact = atoms(prediction), canonical(prediction) == canonical(gold)
    except ParseError:
        predicted, exact = None, False
    present = {atom[0] for atom in (expected if predicted is None else predicted | expected)}
    parts = {kind: _prf(_of(predicted, kind), _of(expected, kind))
             for kind in KINDS if kind in present}
    whole = _prf(predicted, expected)
    return {"atom_f1": whole["f1"], "precision": whole["precision"], "recall": whole["recall"],
            "exact": exact, "parts": parts}


def summarize(scores: list[dict]) -> dict:
    """Means over rows of `score` results: ``{"atom_f1", "precision", "recall", "parts"}``;
    a kind's means are over the rows where either query sets it (``rows``)."""
    def means(items: list[dict], names: tuple[str, ...]) -> dict:
        return {name: round(sum(i[name] for i in items) / len(items), 4) if items else 0.0
                for name in names}

    parts = {}
    for kind in KINDS:
        if seen := [s["parts"][kind] for s in scores if kind in s["parts"]]:
            parts[kind] = {**means(seen, ("precision", "recall", "f1")), "rows": len(seen)}
    return {**means(scores, ("atom_f1", "precision", "recall")), "parts": parts}


def _of(found: frozenset | None, kind: str) -> frozenset | None:
    return None if found is None else frozenset(atom for atom in found if atom[0] == kind)


def _prf(predicted: frozenset | None, expected: frozenset) -> dict[str, float]:
    """Precision, recall and F1 of atom sets (``predicted`` None: not a query, all 0)."""
    if predicted is None:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    if not predicted and not expected:
        precision = recall = 1.0
    else:
        shared = len(predicted & expected)
        precision = shared / len(predicted) if predicted else 0.0
        recall = shared / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
