"""Exact duplicate removal on one field or on several keys made of fields."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.json_text import TEXT, id_texts, join_texts, text_column
from ..core.stage import Stage, StageResult
from ..core.table import ID, canonical_json, to_jsonable
from ..errors import StageError


def _as_keys(keys, stage: str) -> list[tuple[str, ...]]:
    """``"nlq"`` -> one key; ``("nlq", "columns")`` -> one compound key; a list -> many."""
    if isinstance(keys, str):
        return [(keys,)]
    if isinstance(keys, tuple):
        return [keys]
    if isinstance(keys, list):
        return [(k,) if isinstance(k, str) else tuple(k) for k in keys]
    raise StageError(stage, f"expected a field name, a tuple of names or a list of them, "
                            f"got {keys!r}")


class ExactDedup(Stage):
    """Drop a row when any of the named keys repeats a row kept before it (first one wins).

    A key is one field or a tuple of fields. The rule Hamel Husain applies to the Honeycomb
    natural-language-to-query data in his fine-tuning case study ("drop a row if any of
    (nlq, columns), (columns, query), (nlq, query) repeats") reads::

        ExactDedup([("nlq", "columns"), ("columns", "query"), ("nlq", "query")])

    Rows are taken in table order and compared with the rows kept so far, so ``_dup_of``
    always names a kept row. Values are compared in a canonical form: dicts and lists as JSON
    with sorted keys; strings of the fields in ``json_fields`` that parse as a JSON object or
    array likewise (so ``'{"a":1,"b":2}'`` equals ``{"b": 2, "a": 1}``); lists in ``unordered``
    fields as multisets; text in ``normalize_text`` fields stripped, with whitespace runs
    collapsed and casefolded. A missing value (None/NaN) matches nothing: a row whose key
    lacks a field is no duplicate by that key (it is kept unless another key repeats), since
    two rows that both lack a field are not thereby the same (a stage or the export that
    needs it errors them).

    Args:
        keys: a field name, a tuple of names (one compound key), or a list whose items
            are names or tuples of names (several keys; a row goes if any key repeats).
        json_fields: fields whose string values are parsed as JSON before comparing.
        unordered: fields holding lists whose order does not matter.
        normalize_text: True for every key field, or a collection of field names.
        name: stage name (default ``exact_dedup``).

    Output: ``_dup_of`` (the kept row's ``_id``) on rejected rows; rejection code
    ``duplicate_<key>`` with the key's fields joined by ``+`` (``duplicate_nlq+columns``);
    stats ``duplicates_by_key``.
    """

    declares_columns = True

    kind = "global"

    def __init__(self, keys, json_fields=(), unordered=(), normalize_text=False,
                 name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        parsed = _as_keys(keys, self.name)
        if not parsed or any(not key or not all(isinstance(f, str) for f in key) for key in parsed):
            raise StageError(self.name, f"expected non-empty keys of field names, got {keys!r}")
        self.keys = parsed
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

    def allows_missing(self) -> bool:
        return True

    def added_columns(self) -> dict[str, str]:
        return {"_dup_of": "duplicate_of"}

    # -- canonical form -------------------------------------------------------------------
    def canonical(self, field: str, value) -> str:
        """The text two values of ``field`` must share to count as equal (one value)."""
        return self._canonical_cells(field, pd.Series([value], dtype=object)).iloc[0]

    @staticmethod
    def plain(values: pd.Series) -> bool:
        """Whether a column holds only text (or is not of object dtype): compared as it is."""
        return values.dtype != object or bool(values.dropna().map(type).isin((str,)).all())

    def _canonical_cells(self, field: str, values: pd.Series, plain: bool | None = None):
        """One value per row that is equal exactly when two cells count as equal; ``plain``:
        :meth:`plain` of the whole column when ``values`` is a slice of it."""
        plain = self.plain(values) if plain is None else plain
        if plain and field not in self.json_fields:
            if field in self.normalize_text and pd.api.types.is_string_dtype(values.dtype):
                return (values.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold())
            return values
        return values.map(lambda v: self._canonical_one(field, v))

    def _canonical_one(self, field: str, value):
        if isinstance(value, str) and field in self.json_fields:
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                value = parsed
        if isinstance(value, str):
            if field in self.normalize_text:
                value = " ".join(value.split()).casefold()
            return "s:" + value
        value = to_jsonable(value)
        if field in self.unordered and isinstance(value, list):
            value = sorted(value, key=canonical_json)
        return "j:" + canonical_json(value)

    def _codes(self, canon: dict[str, pd.Series], key: tuple[str, ...],
               missing: dict[str, np.ndarray]) -> np.ndarray:
        """One integer per row, equal exactly when the rows' key values are equal; a row
        with a missing key field gets a code of its own."""
        if len(key) == 1:
            codes = pd.factorize(canon[key[0]], use_na_sentinel=False)[0]
        else:
            frame = pd.DataFrame({f: canon[f] for f in key})
            codes = frame.groupby(list(key), sort=False, dropna=False).ngroup().to_numpy()
        gaps = np.logical_or.reduce([missing[f] for f in key])
        if gaps.any():
            codes = codes.astype(np.int64, copy=True)
            codes[gaps] = codes.max() + 1 + np.arange(int(gaps.sum()))
        return codes

    # -- the pass ---------------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        canon, missing = self.canonical_columns(df)
        codes = [self._codes(canon, key, missing) for key in self.keys]
        if len(codes) == 1:
            match = _first_positions(codes[0])[codes[0]]
            dup_key = np.where(match != np.arange(len(df)), 0, -1)
        else:
            dup_key, match = _greedy(codes)
        return self.decided(df, dup_key, match)

    def canonical_columns(self, df: pd.DataFrame, plain: dict | None = None):
        """({field: canonical values}, {field: missing mask}) of the key fields; ``plain``:
        {field: :meth:`plain` of the whole column} when ``df`` is a slice of the table."""
        plain = plain or {}
        canon = {f: self._canonical_cells(f, df[f], plain.get(f)).reset_index(drop=True)
                 for f in self.required_fields()}
        return canon, {f: df[f].isna().to_numpy() for f in self.required_fields()}

    def decided(self, df: pd.DataFrame, dup_key: np.ndarray, match: np.ndarray) -> StageResult:
        """The stage's result from, per row, the key that matched a kept row (-1: kept)
        and that row's position."""
        rejected = dup_key >= 0
        names = ["+".join(k) for k in self.keys]
        counts = {n: int((dup_key == k).sum()) for k, n in enumerate(names)}
        # the rejected rows' codes, reasons and kept row's id, built in Arrow
        where = np.flatnonzero(rejected)
        kept_id = id_texts(df[ID]).take(pa.array(match[where]))
        label = pa.array(names, type=TEXT).take(pa.array(dup_key[where]))
        codes_s = text_column(join_texts(["duplicate_", label], len(where)), df.index[where])
        reasons = text_column(join_texts(["same ", label, " as kept row ", kept_id],
                                         len(where)), df.index[where])
        dup_of = pd.Series(None, index=df.index, dtype=object)
        dup_of.iloc[where] = df[ID].iloc[match[where]].to_numpy(dtype=object)
        return self.result(df.assign(_dup_of=dup_of), ~rejected, codes_s, reasons,
                           duplicates_by_key=counts)


def _first_positions(codes: np.ndarray) -> np.ndarray:
    """For each group code, the position of its first row."""
    first = np.empty(codes.max() + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    return first


def _greedy(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Keep-first over several keys: a row goes when any key matches a *kept* row.

    Returns, per row, the index of the key that matched (-1: kept) and the kept row's
    position. Rows are visited in order; only kept rows register their keys.
    """
    columns = [c.tolist() for c in codes]
    owner = [dict() for _ in codes]
    n = len(codes[0])
    dup_key, match = [-1] * n, [-1] * n
    for pos in range(n):
        for k, column in enumerate(columns):
            hit = owner[k].get(column[pos])
            if hit is not None:
                dup_key[pos], match[pos] = k, hit
                break
        else:
            for k, column in enumerate(columns):
                owner[k][column[pos]] = pos
    return np.asarray(dup_key), np.asarray(match)
