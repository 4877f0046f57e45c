"""What an errored row keeps of the exception its user function raised, and what the
manifest and the end of a run say of a stage's errored rows."""
from __future__ import annotations

import re
import traceback
from pathlib import Path

import pandas as pd

from .table import REASON, REASON_CODE, SOURCE

TRACEBACK = "_traceback"
TRACE_FRAMES = 3  # the last frames of a user function's traceback kept on its errored row
_LIBRARY = str(Path(__file__).resolve().parents[1])  # this package: frames of it are left out


def user_traceback(error: BaseException | None) -> str | None:
    """The last frames of ``error``'s traceback outside this library, and the error itself,
    as Python prints them (None when there is no error)."""
    if error is None:
        return None
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if not f.filename.startswith(_LIBRARY)] or frames
    text = "".join(traceback.format_list(own[-TRACE_FRAMES:]) +
                   traceback.format_exception_only(type(error), error))
    return text if len(text) <= 4000 else text[:3999] + "…"


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def first_error(errored: pd.DataFrame) -> dict:
    """What the manifest says of a stage's errored rows: the first one with a traceback (else
    the first), its reason, where its function raised (file:line) and where the row is from."""
    rows = errored
    if TRACEBACK in errored.columns and errored[TRACEBACK].notna().any():
        rows = errored[errored[TRACEBACK].notna()]
    row = rows.iloc[0]
    trace = row.get(TRACEBACK) if TRACEBACK in rows.columns else None
    frames = _FRAME.findall(trace) if isinstance(trace, str) else []
    at = f"{_short_path(frames[-1][0])}:{frames[-1][1]}" if frames else None
    source = row.get(SOURCE) if SOURCE in rows.columns else None
    return {"code": row[REASON_CODE], "reason": row[REASON], "at": at,
            "source": source if isinstance(source, str) else None}


def _short_path(path: str) -> str:
    """A file as a person would write it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return path
