"""Exact duplicate removal on one field or on several keys made of fields."""
from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from ..errors import StageError
from ..stage import Stage, StageResult
from ..table import ID, canonical_json, to_jsonable
from ..text import normalize_text as _normalize


def _as_keys(fields) -> list[tuple[str, ...]]:
    """``"nlq"`` -> one key; ``("nlq", "columns")`` -> one compound key; a list -> many."""
    if isinstance(fields, str):
        return [(fields,)]
    if isinstance(fields, tuple):
        return [fields]
    if isinstance(fields, list):
        return [(k,) if isinstance(k, str) else tuple(k) for k in fields]
    raise TypeError(f"expected a field name, a tuple of names or a list of them, got {fields!r}")


class ExactDedup(Stage):
    """Drop a row when any of the named keys repeats a row kept before it (first one wins).

    A key is one field or a tuple of fields. The rule Hamel Husain applies to the Honeycomb
    natural-language-to-query data in his fine-tuning case study ("drop a row if any of
    (nlq, columns), (columns, query), (nlq, query) repeats") reads::

        ExactDedup([("nlq", "columns"), ("columns", "query"), ("nlq", "query")])

    Rows are taken in table order and compared with the rows kept so far, so ``dup_of``
    always names a kept row. Values are compared in a canonical form: dicts and lists as JSON
    with sorted keys; strings of the fields in ``json_fields`` that parse as a JSON object or
    array likewise (so ``'{"a":1,"b":2}'`` equals ``{"b": 2, "a": 1}``); lists in ``unordered``
    fields as multisets; text in ``normalize_text`` fields stripped, with whitespace runs
    collapsed and casefolded. Missing values (None/NaN) compare equal to each other.

    Args:
        fields: a field name, a tuple of names (one compound key), or a list whose items
            are names or tuples of names (several keys; a row goes if any key repeats).
        json_fields: fields whose string values are parsed as JSON before comparing.
        unordered: fields holding lists whose order does not matter.
        normalize_text: True for every key field, or a collection of field names.
        name: stage name (default ``exact_dedup``).

    Output: ``dup_of`` (the kept row's ``_id``) on rejected rows; rejection code
    ``duplicate_<key>`` with the key's fields joined by ``+`` (``duplicate_nlq+columns``);
    stats ``duplicates_by_key``.
    """

    def __init__(self, fields, json_fields=(), unordered=(), normalize_text=False,
                 name: str | None = None):
        super().__init__(name)
        try:
            keys = _as_keys(fields)
        except TypeError as exc:
            raise StageError(self.name, str(exc)) from None
        if not keys or any(not key or not all(isinstance(f, str) for f in key) for key in keys):
            raise StageError(self.name, f"expected non-empty keys of field names, got {fields!r}")
        self.keys = keys
        self.json_fields = self._named("json_fields", json_fields)
        self.unordered = self._named("unordered", unordered)
        self.normalize_text = (self.required_fields() if normalize_text is True
                               else self._named("normalize_text", normalize_text or ()))

    def _named(self, what: str, names) -> tuple[str, ...]:
        names = (names,) if isinstance(names, str) else tuple(names)
        known = self.required_fields()
        for name in names:
            if name not in known:
                raise StageError(self.name, f"{what} names {name!r}, which is not among the "
                                            f"dedup fields ({', '.join(known)})", field=name)
        return names

    def required_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for key in self.keys for f in key))

    @staticmethod
    def key_name(key: tuple[str, ...]) -> str:
        return "+".join(key)

    # -- canonical form -------------------------------------------------------------------
    def canonical(self, field: str, value) -> str:
        """The text two values of ``field`` must share to count as equal."""
        if isinstance(value, str) and field in self.json_fields:
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                value = parsed
        if isinstance(value, str) and field in self.normalize_text:
            value = _normalize(value)
        value = to_jsonable(value)
        if field in self.unordered and isinstance(value, list):
            value = sorted(value, key=canonical_json)
        return canonical_json(value)

    # -- the pass ---------------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        canon = {f: [self.canonical(f, v) for v in df[f]] for f in self.required_fields()}
        seen: list[dict] = [{} for _ in self.keys]
        ids = df[ID].tolist()
        keep = [True] * len(df)
        dup_of: list = [None] * len(df)
        codes, reasons = [""] * len(df), [""] * len(df)
        counts: Counter = Counter()
        for pos in range(len(df)):
            values = [tuple(canon[f][pos] for f in key) for key in self.keys]
            for k, value in enumerate(values):
                first = seen[k].get(value)
                if first is not None:
                    name = self.key_name(self.keys[k])
                    keep[pos], dup_of[pos] = False, ids[first]
                    codes[pos] = f"duplicate_{name}"
                    reasons[pos] = f"same {name} as kept row {ids[first]}"
                    counts[name] += 1
                    break
            else:
                for k, value in enumerate(values):
                    seen[k][value] = pos
        out = df.copy()
        out["dup_of"] = pd.Series(dup_of, index=df.index, dtype=object)
        return self.result(out, keep, pd.Series(codes, index=df.index),
                           pd.Series(reasons, index=df.index),
                           duplicates_by_key={self.key_name(k): counts[self.key_name(k)]
                                              for k in self.keys})
