"""How deep JSON nests, checked before a parser recurses into it: pyarrow's JSON reader
crashes the process (SIGSEGV) on a few thousand levels, and ``json`` raises RecursionError
near a thousand."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError

MAX_DEPTH = 100  # levels of nesting read; deeper JSON is an input error naming its line


_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}\n")))


@functools.cache
def _steps() -> np.ndarray:
    """+1 for an opening bracket, -1 for a closing one (built on first use: importing
    this module, as an unchanged rerun does, needs no numpy)."""
    step = np.zeros(256, dtype=np.int8)
    step[list(b"[{")], step[list(b"]}")] = 1, -1
    return step


def check_depth(path, data: bytes, lines: bool) -> None:
    """Refuse JSON nested more than `MAX_DEPTH` levels before a parser recurses into it
    (one line naming the line and column); ``lines``: each line is a value of its own.

    Brackets counted a line at a time, strings included, bound each line's depth from
    above (one pass in C keeps only the brackets and line breaks, a few vectorised passes
    count them); only a line over the limit is scanned exactly."""
    marks = np.frombuffer(data.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if np.count_nonzero(marks != 10) <= MAX_DEPTH:
        return
    depth = np.cumsum(_steps()[marks], dtype=np.int32)
    breaks = marks == 10
    if lines and depth[breaks].any():  # a line left unbalanced (brackets in strings)
        last = np.maximum.accumulate(np.where(breaks, np.arange(len(marks)), -1))
        depth -= np.where(last >= 0, depth[np.maximum(last, 0)], 0)
    over = np.flatnonzero(depth > MAX_DEPTH)
    if not len(over):
        return
    starts = [0]
    if lines:  # where the lines over the limit start
        offsets = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        starts = [0 if n == 0 else int(offsets[n - 1]) + 1
                  for n in np.unique(np.cumsum(breaks)[over])]
    for start in starts:
        end = data.find(b"\n", start) if lines else -1
        deep = _too_deep(data[start:end if end >= 0 else len(data)])
        if deep is not None:
            where = start + deep
            line = data.count(b"\n", 0, where) + 1
            column = where - (data.rfind(b"\n", 0, where) + 1) + 1
            raise InputError(path, f"JSON nested more than {MAX_DEPTH} levels deep (at "
                                   f"column {column}); flatten the value or store it as text",
                             line=line)


def _too_deep(text: bytes) -> int | None:
    """The offset at which ``text`` (JSON) passes `MAX_DEPTH` levels, strings skipped."""
    depth, in_string, escaped = 0, False, False
    for offset, byte in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 92:  # backslash
                escaped = True
            elif byte == 34:  # quote
                in_string = False
        elif byte == 34:
            in_string = True
        elif byte in (91, 123):
            depth += 1
            if depth > MAX_DEPTH:
                return offset
        elif byte in (93, 125):
            depth -= 1
    return None
