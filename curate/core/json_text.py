"""JSON text for whole columns at once, built in Arrow: the library's one JSON-lines encoder.

`column_json` gives each value of a column exactly the text ``json.dumps(value,
ensure_ascii=False)`` writes (missing values as ``null``); `json_line_array` joins such columns
into one JSON object per row. The run folder, `write_table`'s ``.jsonl`` and the export are
written this way (faster than a per-row writer: see the README's performance section). Only
strings holding a quote, a backslash or a control character, floats and nested values are
encoded one by one.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .table import column_values

encode_json_string = json.encoder.c_encode_basestring or json.encoder.py_encode_basestring
"""A str as JSON text, quotes included: what ``json.dumps(s, ensure_ascii=False)`` writes."""
_dumps = json.JSONEncoder(ensure_ascii=False).encode
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what json.dumps(..., ensure_ascii=False) escapes
TEXT = "large_string"  # pyarrow's name for pa.large_string(), usable before pyarrow loads


def json_value(value) -> str:
    """One plain value's JSON text."""
    kind = type(value)
    if kind is str:
        return encode_json_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _dumps(value)


def json_values(values: list) -> list[str]:
    """A list of plain values as JSON texts: one pass through C for the common uniform
    lists (text, integers, finite floats), value by value otherwise."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return list(map(encode_json_string, values))
    if kinds == {type(None)}:
        return ["null"] * len(values)
    if kinds == {int}:
        return list(map(int.__repr__, values))
    if kinds == {float} and all(map(math.isfinite, values)):
        return list(map(float.__repr__, values))
    return list(map(json_value, values))


def string_json(strings: pa.Array) -> pa.Array:
    """Arrow strings as JSON string texts (nulls as ``null``)."""
    strings = strings.cast(TEXT)
    quote = pa.scalar('"', TEXT)
    quoted = pc.binary_join_element_wise(quote, strings, quote, pa.scalar("", TEXT))
    special = pc.match_substring_regex(strings, _NEEDS_ESCAPE).fill_null(False)
    if pc.any(special).as_py():
        escaped = list(map(encode_json_string, strings.filter(special).to_pylist()))
        quoted = pc.replace_with_mask(quoted, special, pa.array(escaped, type=TEXT))
    return quoted.fill_null("null")


def arrow_values(series: pd.Series) -> pa.Array | None:
    """The column as an Arrow array when Arrow holds it exactly as text, integers or
    booleans; else None."""
    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_integer_dtype(dtype) \
            or pd.api.types.is_bool_dtype(dtype):
        try:
            values = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
            return None
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return None


def column_json(series: pd.Series) -> pa.Array:
    """Every value of a column as JSON text (what ``json.dumps`` of its plain value writes)."""
    values = arrow_values(series)
    if values is not None:
        kind = values.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return string_json(values)
        if pa.types.is_boolean(kind):
            words = pc.if_else(values, pa.scalar("true", TEXT), pa.scalar("false", TEXT))
            return words.fill_null("null")
        if pa.types.is_integer(kind):
            return values.cast(TEXT).fill_null("null")
        if pa.types.is_null(kind):
            return pa.array(["null"] * len(values), type=TEXT)
    plain = column_values(series, jsonable=True)
    if series.dtype == object and plain and set(map(type, plain)) <= {str, type(None)}:
        return json_strings(plain)
    return text_array(json_values(plain))


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_array(texts: list[str]) -> pa.Array:
    """JSON texts as an Arrow array. A lone surrogate (JSON can carry one, UTF-8 cannot) is
    written as its ``\\uXXXX`` escape, which reads back as the same character."""
    try:
        return pa.array(texts, type=TEXT)
    except UnicodeError:
        return pa.array([_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", t)
                         for t in texts], type=TEXT)


def json_strings(texts) -> pa.Array:
    """Texts (an Arrow array, or a list of str and None) as JSON string texts."""
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return string_json(texts)
    try:
        return string_json(pa.array(texts, type=TEXT))
    except UnicodeError:  # a lone surrogate: Arrow holds UTF-8 only; text_array escapes it
        return text_array(json_values(list(texts)))


def join_texts(pieces: list, rows: int) -> pa.Array:
    """Literal strings and text arrays joined row by row into one text array."""
    if not any(isinstance(p, (pa.Array, pa.ChunkedArray)) for p in pieces):
        return pa.array(["".join(pieces)] * rows, type=TEXT)
    return pc.binary_join_element_wise(
        *(pa.scalar(p, TEXT) if isinstance(p, str) else p.cast(TEXT) for p in pieces),
        pa.scalar("", TEXT))


def json_line_array(df: pd.DataFrame, end: str = "") -> pa.Array:
    """Every row as one JSON object (``json.dumps`` of its plain-JSON dict, keys in column
    order) followed by ``end``."""
    if not len(df.columns):
        return pa.array(["{}" + end] * len(df), type=TEXT)
    pieces: list = []
    for i, column in enumerate(df.columns):
        pieces.append(("{" if i == 0 else ", ") + encode_json_string(str(column)) + ": ")
        pieces.append(column_json(df[column]))
    pieces.append("}" + end)
    return join_texts(pieces, len(df))


def id_texts(series: pd.Series) -> pa.Array:
    """A column as Arrow text, each value as ``str`` writes it (ids, labels)."""
    values = arrow_values(series)
    if values is not None and not pa.types.is_boolean(values.type):
        return values.cast(TEXT)
    return pa.array([str(v) for v in series.tolist()], type=TEXT)


def text_column(texts: pa.Array, index) -> pd.Series:
    """An Arrow text array as a pandas text column (the ``str`` dtype) on ``index``."""
    return pd.Series(pd.arrays.ArrowStringArray(texts.cast(TEXT)), index=index).astype("str")


def text_buffer(texts: pa.Array) -> memoryview:
    """The bytes of every text of an Arrow string array with no nulls, one after another."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = texts.cast(TEXT)
    if texts.null_count:
        raise ValueError("text array holds nulls")
    if not len(texts):
        return memoryview(b"")
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64, count=len(texts) + 1,
                            offset=texts.offset * 8)
    return memoryview(texts.buffers()[2])[offsets[0]:offsets[-1]]
