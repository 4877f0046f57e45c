"""A deterministic augmenter: swap one column of a row for another column of the same kind.

For a row ``{"nlq", "columns", "query", "schema"}``, a column ``X`` the query uses becomes a
column ``Y`` of the same kind (``schemas.py``) it does not use, in all three fields: every
mention of ``X`` in the question (its name or an alias, "route" for ``http.route``) and a
categorical filter value written there ("CrashLoopBackOff", which becomes one of ``Y``'s typical
values); ``X``'s place in the column list (the two trade places if ``Y`` was listed); every
part of the query. A swap is made only where it is safe: the question names ``X``, and a filter
or having value still means something for ``Y`` (durations and byte sizes keep their
thresholds, categorical values are replaced, values of other kinds block the swap). Booleans
are never swapped: "errors" does not become "cache hits" by replacing a word. Rows with no safe
swap are skipped. No LLM is needed; the same seed gives the same rows.
"""
from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from examples.honeycomb.schemas import Column, Schema, load_schema

SWAP_KINDS = frozenset({"id", "enum", "string", "numeric", "duration", "bytes", "code"})
KEEP_THRESHOLD_KINDS = frozenset({"duration", "bytes"})
NO_VALUE_OPS = frozenset({"exists", "does-not-exist"})


@lru_cache(maxsize=4096)
def _pattern(term: str) -> re.Pattern:
    # Whole words, and never part of a dotted column name ("route" is not in "http.route.x").
    return re.compile(r"(?<![\w.])" + re.escape(term) + r"(?![\w]|\.\w)", re.IGNORECASE)


def mentions(nlq: str, schema: Schema) -> dict[str, list[tuple[int, int, str]]]:
    """Column -> ``(start, end, matched text)`` of its mentions in ``nlq``.

    Longer matches win over shorter ones they overlap ("database operation" over "database").
    An alias also matches with a plural "s" ("coupon codes" for "coupon code").
    """
    found = []
    for column in schema.columns:
        plurals = [a + "s" for a in column.aliases if not a.endswith("s")]
        for term in dict.fromkeys((column.name, *column.aliases, *plurals)):
            for m in _pattern(term).finditer(nlq):
                found.append((m.start(), m.end(), column.name))
    found.sort(key=lambda f: (f[0] - f[1], f[0]))
    taken: list[tuple[int, int]] = []
    out: dict[str, list[tuple[int, int, str]]] = {}
    for start, end, name in found:
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        out.setdefault(name, []).append((start, end, nlq[start:end]))
    return out


def _query_columns(query: dict) -> set[str]:
    used = {item["column"] for part in ("calculations", "filters", "orders", "havings")
            for item in query.get(part, []) if item.get("column")}
    return used | set(query.get("breakdowns", []))


def _spoken(matched: str, old: Column, new: Column) -> str:
    """How to say ``new`` where the question said ``matched`` for ``old``."""
    if matched.lower() == old.name.lower() or not new.aliases:
        text = new.name if matched.lower() == old.name.lower() else new.name.replace("_", " ")
    else:
        plural = matched.lower().endswith("s")
        same = [a for a in new.aliases if a.lower().endswith("s") == plural]
        text = (same or list(new.aliases))[0]
    return text[0].upper() + text[1:] if matched[:1].isupper() and text[:1].islower() else text


def _value_span(nlq: str, value: object, blocked: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The one place ``value`` is written in ``nlq``, clear of column mentions, or None."""
    if not isinstance(value, str) or not value:
        return None
    hits = [m.span() for m in _pattern(value).finditer(nlq)]
    if len(hits) != 1 or any(hits[0][0] < e and s < hits[0][1] for s, e in blocked):
        return None
    return hits[0]


def plan_swap(row: Mapping, schema: Schema, old: str, new: str, rng: random.Random,
              found: dict | None = None) -> dict | None:
    """The rewritten row for ``old -> new``, or None when that swap is not safe.

    ``found`` is ``mentions(row["nlq"], schema)`` when the caller already has it.
    """
    query, nlq = row["query"], row["nlq"]
    x, y = schema[old], schema[new]
    if not (x.swappable and y.swappable and x.kind == y.kind and x.kind in SWAP_KINDS):
        return None
    if new in _query_columns(query):
        return None
    found = mentions(nlq, schema) if found is None else found
    if old not in found or new in found:
        return None  # the question would not change, or already talks about the new column
    blocked = [(s, e) for spans in found.values() for s, e, _ in spans]
    edits = [(s, e, _spoken(text, x, y)) for s, e, text in found.get(old, [])]
    new_values: dict[int, object] = {}
    for i, f in enumerate(query.get("filters", [])):
        if f.get("column") != old or f.get("op") in NO_VALUE_OPS:
            continue
        values = f.get("value")
        if x.kind in KEEP_THRESHOLD_KINDS and not isinstance(values, list):
            continue
        if x.kind != "enum":
            return None
        items = values if isinstance(values, list) else [values]
        spans = [_value_span(nlq, v, blocked) for v in items]
        if None in spans or len(y.values) < len(items):
            return None
        picked = rng.sample(list(y.values), len(items))
        edits += [(s, e, str(v)) for (s, e), v in zip(spans, picked)]
        new_values[i] = picked if isinstance(values, list) else picked[0]
    if any(h.get("column") == old and x.kind not in KEEP_THRESHOLD_KINDS
           for h in query.get("havings", [])):
        return None
    return _apply(row, old, new, edits, new_values)


def _apply(row: Mapping, old: str, new: str, edits: list, new_values: dict) -> dict | None:
    edits = sorted(edits)
    if any(a[1] > b[0] for a, b in zip(edits, edits[1:])):
        return None
    nlq = row["nlq"]
    for start, end, text in reversed(edits):
        nlq = nlq[:start] + text + nlq[end:]
    query = copy.deepcopy(row["query"])
    for part in ("calculations", "filters", "orders", "havings"):
        for item in query.get(part, []):
            if item.get("column") == old:
                item["column"] = new
    for i, value in new_values.items():
        query["filters"][i]["value"] = value
    if "breakdowns" in query:
        query["breakdowns"] = [new if c == old else c for c in query["breakdowns"]]
    columns = list(row["columns"])
    at = columns.index(old)
    if new in columns:
        columns[columns.index(new)] = old
    columns[at] = new
    out = dict(row)
    out.update(nlq=nlq, columns=columns, query=query, swap=[old, new])
    return out


def swap_candidates(row: Mapping, schema: Schema) -> list[tuple[str, str]]:
    """Every ``(old, new)`` pair that looks swappable by kind, before the safety checks."""
    used = _query_columns(row["query"])
    pairs = []
    for old in sorted(used):
        if old not in schema or old not in row["columns"]:
            continue
        kind = schema[old].kind
        if kind not in SWAP_KINDS:
            continue
        pairs += [(old, c.name) for c in schema.columns
                  if c.kind == kind and c.name not in used and c.swappable]
    return pairs


def _row_rng(row: Mapping, seed: int) -> random.Random:
    key = json.dumps([row["nlq"], row["query"]], sort_keys=True)
    return random.Random(f"{seed}|{key}")


def swap_row(row: Mapping, schema: Schema | None = None, n: int = 1, seed: int = 0) -> list[dict]:
    """Up to ``n`` rewritten copies of ``row``, each with one different column swapped."""
    schema = schema or load_schema(row["schema"])
    rng = _row_rng(row, seed)
    pairs = swap_candidates(row, schema)
    rng.shuffle(pairs)
    found = mentions(row["nlq"], schema)
    out = []
    for old, new in pairs:
        if len(out) == n:
            break
        swapped = plan_swap(row, schema, old, new, rng, found)
        if swapped is not None:
            out.append(swapped)
    return out


def column_swaps(rows: Iterable[Mapping], n: int = 1, seed: int = 0,
                 schemas: Mapping[str, Schema] | None = None) -> list[dict]:
    """Swapped copies of ``rows`` (up to ``n`` each); rows with no safe swap give none.

    Each new row carries ``swap: [old, new]``. The result depends only on ``seed`` and on
    each row's question and query, not on the order of ``rows``.
    """
    return [swapped for row in rows for swapped in swap_row(
        row, schemas[row["schema"]] if schemas else load_schema(row["schema"]), n=n, seed=seed)]
