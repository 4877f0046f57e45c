"""Faults injected at known rates into a Honeycomb table, each faulted row labelled.

Curation is measured by what it removes, so the benchmarks need rows whose faults are known.
:func:`inject_faults` turns exactly ``round(rate * eligible)`` of the rows it may touch (the
derived rows: column swaps, rewordings; never the seeds) into each kind of fault:

- checker-detectable (the level-1 checker must fail them): ``truncated_json`` (the query as
  cut-off JSON text), ``unknown_column`` (a column reference replaced by one the row's list
  lacks), ``unknown_key`` (a top-level key renamed, ``group_by``, or an unknown key added to a
  calculation or a filter);
- wrong but valid (the checker passes them): ``dropped_filter``, ``changed_calculation`` (its
  orders and havings follow), ``changed_breakdown`` (swapped or one added),
  ``changed_time_window`` (changed, or set where the question implied the default);
- ``near_duplicate``: light rewordings and copies of a few clean rows, appended (its share is
  of rows *added*).

A faulted row replaces its original in place (so a dedup stage cannot catch it as a copy of
its clean self), and is checked to be of its kind; a row a kind cannot apply to is skipped.
The result depends only on the table and the seed. The label column (``fault``) holds the
kind, or None for a clean row; ``fault_detail`` says what was changed.
"""
from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from assertions.honeycomb import canonical, check
from examples.honeycomb.schemas import load_schema, load_schemas

CHECKER_DETECTABLE = ("truncated_json", "unknown_column", "unknown_key")
WRONG_BUT_VALID = ("dropped_filter", "changed_calculation", "changed_breakdown",
                   "changed_time_window")
NEAR_DUPLICATE = "near_duplicate"
RULES = {"truncated_json": "query_not_json", "unknown_column": "_column_unknown",
         "unknown_key": "_key_unknown"}  # the checker's rule names (their ends) for each kind
KINDS = CHECKER_DETECTABLE + WRONG_BUT_VALID + (NEAR_DUPLICATE,)
DEFAULT_RATES = {"truncated_json": 0.03, "unknown_column": 0.03, "unknown_key": 0.03,
                 "dropped_filter": 0.05, "changed_calculation": 0.05, "changed_breakdown": 0.05,
                 "changed_time_window": 0.05, "near_duplicate": 0.10}

WINDOWS = (3600, 14400, 86400, 172800, 604800, 1209600, 2592000)  # never 7200: the default
AGGREGATES = ("SUM", "AVG", "MAX", "MIN", "P50", "P90", "P95", "P99", "COUNT_DISTINCT")
MEASURED_KINDS = ("numeric", "duration", "bytes")
GROUPING_KINDS = ("enum", "string", "code", "id")
WRONG_KEYS = {"calculations": "aggregations", "filters": "where", "breakdowns": "group_by",
              "orders": "order_by", "time_range": "timeRange", "havings": "having",
              "limit": "max_rows"}
ITEM_KEYS = {"calculations": ("alias", "p99"), "filters": ("negate", "case_sensitive")}
PREFIXES = ("", "show me ", "can you show ", "I want to see ", "please show ", "give me ")
SUFFIXES = ("", " please", " now", " for me", " thanks")


def _column_refs(query: dict) -> list[tuple[str, int]]:
    """``(part, index)`` of every column a query reads (orders and havings name a calculation)."""
    refs = [(part, i) for part in ("calculations", "filters")
            for i, item in enumerate(query.get(part) or []) if item.get("column")]
    return refs + [("breakdowns", i) for i in range(len(query.get("breakdowns") or []))]


def _set_column(query: dict, part: str, index: int, column: str) -> str:
    if part == "breakdowns":
        old, query["breakdowns"][index] = query["breakdowns"][index], column
    else:
        old, query[part][index]["column"] = query[part][index]["column"], column
    return old


def _kinds(row: Mapping) -> dict[str, str]:
    schema = row.get("schema")
    return load_schema(schema).kinds() if isinstance(schema, str) else {}


def truncated_json(query: dict, row: Mapping, rng: random.Random):
    text = json.dumps(query, ensure_ascii=False)
    cut = rng.randint(len(text) // 3, len(text) - 2)
    return text[:cut], f"query cut after {cut} of {len(text)} characters"


def unknown_column(query: dict, row: Mapping, rng: random.Random):
    refs = _column_refs(query)
    others = sorted({c for s in load_schemas().values() for c in s.names} - set(row["columns"]))
    if not refs or not others:
        return None
    part, index = rng.choice(refs)
    new = rng.choice(others)
    old = _set_column(query, part, index, new)
    return query, f"{part} column {old} -> {new}, which the column list lacks"


def unknown_key(query: dict, row: Mapping, rng: random.Random):
    present = [k for k in WRONG_KEYS if k in query]
    items = [(part, i) for part in ITEM_KEYS for i in range(len(query.get(part) or []))]
    if present and (not items or rng.random() < 0.5):
        key = rng.choice(present)
        renamed = {WRONG_KEYS[key] if k == key else k: v for k, v in query.items()}
        return renamed, f"top-level key {key} written as {WRONG_KEYS[key]}"
    if not items:
        return None
    part, index = rng.choice(items)
    key = rng.choice(ITEM_KEYS[part])
    query[part][index][key] = True if part == "filters" else "value"
    return query, f"{part} item {index + 1} given the unknown key {key}"


def dropped_filter(query: dict, row: Mapping, rng: random.Random):
    filters = query.get("filters") or []
    if not filters:
        return None
    gone = filters.pop(rng.randrange(len(filters)))
    if not filters:
        del query["filters"]
    if len(filters) < 2:
        query.pop("filter_combination", None)
    return query, f"dropped the filter {json.dumps(gone, ensure_ascii=False)}"


def _follow_calculation(query: dict, old: dict, new: dict) -> None:
    """Orders and havings that named ``old`` name ``new`` instead."""
    for part, op_key in (("orders", "op"), ("havings", "calculate_op")):
        for item in query.get(part) or []:
            if item.get(op_key) == old.get("op") and item.get("column") == old.get("column"):
                item[op_key] = new["op"]
                item.pop("column", None)
                if new.get("column"):
                    item["column"] = new["column"]


def changed_calculation(query: dict, row: Mapping, rng: random.Random):
    calcs = query.get("calculations") or []
    if not calcs:
        return None
    index = rng.randrange(len(calcs))
    old = dict(calcs[index])
    kinds = _kinds(row)
    if old.get("op") in ("COUNT", "CONCURRENCY"):
        new = {"op": "CONCURRENCY" if old["op"] == "COUNT" else "COUNT"}
    elif rng.random() < 0.5 and kinds:
        columns = [c for c in row["columns"] if kinds.get(c) in MEASURED_KINDS and c != old.get("column")]
        if not columns:
            return None
        new = {"op": old["op"], "column": rng.choice(columns)}
    else:
        new = {"op": rng.choice([op for op in AGGREGATES if op != old.get("op")]),
               "column": old.get("column")}
    calcs[index] = new
    _follow_calculation(query, old, new)
    return query, f"calculation {json.dumps(old)} -> {json.dumps(new)}"


def changed_breakdown(query: dict, row: Mapping, rng: random.Random):
    breakdowns = list(query.get("breakdowns") or [])
    kinds = _kinds(row)
    unused = [c for c in row["columns"] if c not in breakdowns
              and (not kinds or kinds.get(c) in GROUPING_KINDS)]
    if not unused:
        return None
    new = rng.choice(unused)
    if breakdowns and rng.random() < 0.5:
        index = rng.randrange(len(breakdowns))
        old, breakdowns[index] = breakdowns[index], new
        for item in query.get("orders") or []:
            if item.get("column") == old and not item.get("op"):
                item["column"] = new
        query["breakdowns"] = breakdowns
        return query, f"breakdown {old} -> {new}"
    query["breakdowns"] = breakdowns + [new]
    return query, f"extra breakdown {new}"


def changed_time_window(query: dict, row: Mapping, rng: random.Random):
    if query.get("start_time") is not None or query.get("end_time") is not None:
        return None
    old = query.get("time_range")
    query["time_range"] = rng.choice([w for w in WINDOWS if w != old])
    said = f"time_range {old}" if old is not None else "the default window"
    return query, f"{said} -> time_range {query['time_range']}"


FAULTS: dict[str, Callable] = {f.__name__: f for f in (
    truncated_json, unknown_column, unknown_key,  # CHECKER_DETECTABLE
    dropped_filter, changed_calculation, changed_breakdown, changed_time_window)}  # WRONG_BUT_VALID


def is_of_kind(kind: str, original, faulted, columns) -> bool:
    """Whether ``faulted`` really is a fault of ``kind``: the checker fails a checker-detectable
    one by a rule of that kind (`RULES`); it passes a wrong-but-valid one, which differs from
    ``original`` in canonical form."""
    failures = check(faulted, columns)
    if kind in CHECKER_DETECTABLE:
        return any(f.rule.endswith(RULES[kind]) for f in failures)
    return not failures and canonical(faulted) != canonical(original)


def fault_row(kind: str, row: Mapping, rng: random.Random, tries: int = 6):
    """``(faulted query, detail)`` of ``kind`` for ``row``, or None when none applies."""
    for _ in range(tries):
        made = FAULTS[kind](copy.deepcopy(row["query"]), row, rng)
        if made is not None and is_of_kind(kind, row["query"], made[0], row["columns"]):
            return made
    return None


def reworded(nlq: str, variant: int, rng: random.Random) -> str:
    """A light rewording of a question: variant 0 is the question itself (a copy)."""
    if variant == 0:
        return nlq
    text = nlq.rstrip(" ?.!")
    text = rng.choice(PREFIXES) + (text[:1].lower() + text[1:]) + rng.choice(SUFFIXES)
    text += "?" if rng.random() < 0.5 else ""
    if rng.random() < 0.3:
        text = text.upper()[:1] + text[1:]
    return text if text != nlq else nlq + " please"


def _flood(rows: list[dict], eligible: list[int], count: int, sources: int, rng, column: str):
    picked = rng.sample(eligible, min(sources, len(eligible)))
    added = []
    for j in range(count):
        source = rows[picked[j % len(picked)]]
        new = {k: (None if str(k).startswith("_") else v) for k, v in copy.deepcopy(source).items()}
        if "_id" in source:
            new["_parent"] = source["_id"]
        new["nlq"] = reworded(source["nlq"], j // len(picked), rng)
        new[column] = NEAR_DUPLICATE
        new[f"{column}_detail"] = f"copy {j // len(picked) + 1} of row {picked[j % len(picked)]}"
        added.append(new)
    return added


def _eligible_positions(df: pd.DataFrame, eligible) -> list[int]:
    if eligible is None:
        return list(range(len(df)))
    if callable(eligible):
        return [i for i, row in enumerate(df.to_dict("records")) if eligible(row)]
    mask = pd.Series(eligible).astype(bool).to_numpy()
    if len(mask) != len(df):
        raise ValueError(f"eligible has {len(mask)} values for {len(df)} rows")
    return np.flatnonzero(mask).tolist()


def _check_rates(rates: Mapping[str, float], n: int) -> dict[str, int]:
    unknown = sorted(set(rates) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    for kind, rate in rates.items():
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 10:
            raise ValueError(f"rate of {kind} must be a share of the eligible rows, got {rate!r}")
    counts = {kind: round(rate * n) for kind, rate in rates.items()}
    replaced = sum(c for k, c in counts.items() if k != NEAR_DUPLICATE)
    if replaced > n:
        raise ValueError(f"the rates fault {replaced} rows but only {n} rows are eligible")
    return counts


def inject_faults(table, rates: Mapping[str, float] | None = None, seed: int = 0, eligible=None,
                  sources: int = 3, column: str = "fault") -> pd.DataFrame:
    """The table with faults injected, labelled in ``column`` (see the module docstring).

    table: a DataFrame or row dicts with ``nlq``, ``columns``, ``query`` (and ``schema``, for
    the faults that pick a column of the right kind); rates: kind -> share of the eligible rows
    (default `DEFAULT_RATES`; for ``near_duplicate``, the rows added); seed: the same seed gives
    the same table; eligible: a boolean mask, a function of the row, or None (every row);
    sources: how many rows each near-duplicate flood copies; column: the label column (and
    ``<column>_detail``). ValueError for an unknown kind or a rate the eligible rows cannot reach.
    """
    df = pd.DataFrame(table).reset_index(drop=True)
    positions = _eligible_positions(df, eligible)
    counts = _check_rates(DEFAULT_RATES if rates is None else rates, len(positions))
    rng = random.Random(seed)
    rows = [{**row, column: None, f"{column}_detail": None} for row in df.to_dict("records")]
    order = positions[:]
    rng.shuffle(order)
    for kind in [k for k in WRONG_BUT_VALID + CHECKER_DETECTABLE if counts.get(k)]:
        made = 0
        for position in order:
            if made == counts[kind]:
                break
            faulted = None if rows[position][column] else fault_row(kind, rows[position], rng)
            if faulted is not None:
                rows[position].update({"query": faulted[0], column: kind,
                                       f"{column}_detail": faulted[1]})
                made += 1
        if made < counts[kind]:
            raise ValueError(f"{kind}: only {made} of the {len(positions)} eligible rows can take "
                             f"this fault, {counts[kind]} asked; lower its rate")
    clean = [p for p in positions if rows[p][column] is None]
    flood = _flood(rows, clean, counts.get(NEAR_DUPLICATE, 0), sources, rng, column) \
        if counts.get(NEAR_DUPLICATE) and clean else []
    return pd.DataFrame(rows + flood, columns=list(rows[0]) if rows else None)
