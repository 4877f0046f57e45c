"""What the near-duplicate stages share: the rejected rows' ``_dup_of``, score and reason."""
from __future__ import annotations

import operator

import numpy as np
import pandas as pd

from ..core.table import ID

DUP_OF = "_dup_of"
_COMPARE = {">": operator.gt, ">=": operator.ge}


def score_text(score: float, threshold: float, min_digits: int = 2, op: str = ">") -> str:
    """Shortest rounding of ``score`` that still reads as ``op`` (``>`` or ``>=``) the
    threshold."""
    for digits in range(min_digits, 18):
        text = f"{score:.{digits}f}"
        if _COMPARE[op](float(text), threshold):
            return text
    return repr(score)


def mark_near_duplicates(df: pd.DataFrame, keep: np.ndarray, dup_pos: np.ndarray,
                         scores: np.ndarray, score_column: str, label: str,
                         threshold: float, min_digits: int = 2,
                         op: str = ">") -> tuple[pd.DataFrame, pd.Series]:
    """Add ``_dup_of`` (the kept row's id) and the score column to the rows, filled on the
    rejected ones (`Stage.run` leaves both off the kept rows), and the reason of each:
    ``"<label> 0.83 > 0.7 vs <id>"``."""
    ids = df[ID].to_numpy()
    rejected = np.flatnonzero(~keep)
    dup_of = np.full(len(df), None, dtype=object)
    dup_of[rejected] = ids[dup_pos[rejected]]
    score = np.full(len(df), np.nan)
    score[rejected] = scores[rejected].astype(np.float64)
    out = df.assign(**{DUP_OF: pd.Series(dup_of, index=df.index, dtype=object),
                       score_column: pd.Series(score, index=df.index)})
    reasons = pd.Series([""] * len(df), index=df.index, dtype=object)
    distinct, which = np.unique(score[rejected], return_inverse=True)  # few distinct values
    texts = [score_text(float(s), threshold, min_digits, op) for s in distinct]
    reasons.iloc[rejected] = [f"{label} {texts[w]} {op} {threshold} vs {i}"
                              for w, i in zip(which.tolist(), dup_of[rejected])]
    return out, reasons
