"""Align an LLM judge with a domain expert (Hamel Husain's Honeycomb case study, "Creating a
LLM-as-a-Judge That Drives Business Results"): the expert labels judged rows, then agreement,
Cohen's kappa, the confusion matrix and the disagreements show how to tune the judge.

    export_for_review(judged, "review.csv", fields=["nlq", "query"])
    # ... the expert fills in expert_critique and expert_outcome ...
    report = alignment_report(read_review("review.csv"))
    report.disagreements     # the rows to learn from
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..core.table import ID, to_jsonable
from ..io.atomic import atomic_path

JUDGE_CRITIQUE, JUDGE_OUTCOME = "judge_critique", "judge_outcome"
EXPERT_CRITIQUE, EXPERT_OUTCOME = "expert_critique", "expert_outcome"
LABELS = ("good", "bad")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_sheet(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula (OWASP's CSV injection
    advice): a ``'`` before a leading = + - @ tab or CR, and before a leading ``'`` that
    precedes one of those or another ``'``, so that :func:`from_sheet` gives ``text`` back
    exactly."""
    if text.startswith(FORMULA_STARTS) or (text[:1] == "'"
                                           and text[1:2] in (*FORMULA_STARTS, "'")):
        return "'" + text
    return text


def from_sheet(cell: str) -> str:
    """The text :func:`to_sheet` wrote: one leading ``'`` dropped where it added one."""
    if cell[:1] == "'" and cell[1:2] in (*FORMULA_STARTS, "'"):
        return cell[1:]
    return cell


def cell_text(value) -> str:
    """A value in a review sheet: strings as they are, the rest as JSON (missing: empty)."""
    value = to_jsonable(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def export_for_review(df: pd.DataFrame, path, fields, *, critique: str = "critique",
                      outcome: str = "outcome") -> Path:
    """Write rows for an expert: ``_id``, the ``fields``, the judge's critique and outcome,
    and empty ``expert_critique`` / ``expert_outcome`` columns to fill in."""
    missing = [c for c in [ID, *fields, critique, outcome] if c not in df.columns]
    if missing:
        raise InputError(path, f"the table lacks {missing} needed for the review sheet")
    path = Path(path)
    header = [ID, *fields, JUDGE_CRITIQUE, JUDGE_OUTCOME, EXPERT_CRITIQUE, EXPERT_OUTCOME]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in df.to_dict("records"):
            cells = [row[ID], *(row[c] for c in fields), row[critique], row[outcome]]
            writer.writerow([to_sheet(cell_text(v)) for v in cells] + ["", ""])
    return path


def read_review(path, *, labels=LABELS) -> pd.DataFrame:
    """Read a filled-in review sheet. Outcomes are checked against ``labels`` (case and
    spaces ignored; empty = not reviewed yet); a bad value raises an error naming the file
    and line. Cells are read as :func:`to_sheet` wrote them: ``'-1 is wrong`` is
    ``-1 is wrong``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such review file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (ID, JUDGE_OUTCOME, EXPERT_OUTCOME) if c not in columns]
        if missing:
            raise InputError(path, f"missing column(s) {missing}; expected the header written "
                                   f"by export_for_review", line=1)
        rows = []
        for row in reader:
            row = {k: from_sheet(v) if isinstance(v, str) else v for k, v in row.items()}
            for column in (JUDGE_OUTCOME, EXPERT_OUTCOME):
                value = (row.get(column) or "").strip().lower()
                if value and value not in labels:
                    raise InputError(path, f"{column} must be one of {', '.join(labels)} "
                                           f"(or empty), got {row.get(column)!r}",
                                     line=reader.line_num)
                row[column] = value or None
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def cohen_kappa(a: list, b: list) -> float:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e).
    NaN when chance agreement is already 1 (both raters always gave one same label)."""
    if len(a) != len(b) or not a:
        raise ValueError("cohen_kappa needs two non-empty lists of equal length")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    expected = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    if expected == 1:
        return float("nan")
    return (observed - expected) / (1 - expected)


@dataclass
class AlignmentReport:
    """Judge vs expert on the rows both rated."""

    n: int
    agreement: float
    kappa: float
    confusion: pd.DataFrame
    disagreements: pd.DataFrame
    unreviewed: int = 0

    def __str__(self) -> str:
        lines = [f"rows compared   {self.n}" + (f"  ({self.unreviewed} not reviewed yet)"
                                                 if self.unreviewed else ""),
                 f"agreement       {self.agreement:.1%}",
                 f"Cohen's kappa   {self.kappa:.3f}",
                 "confusion (rows: judge, columns: expert)",
                 self.confusion.to_string()]
        return "\n".join(lines)


def alignment_report(reviewed: pd.DataFrame, *, judge: str = JUDGE_OUTCOME,
                     expert: str = EXPERT_OUTCOME, labels=LABELS) -> AlignmentReport:
    """Agreement between the judge's and the expert's outcomes (rows the expert left empty
    are skipped and counted in ``unreviewed``)."""
    if not isinstance(reviewed, pd.DataFrame):
        reviewed = read_review(reviewed, labels=labels)
    both = reviewed[reviewed[judge].notna() & reviewed[expert].notna()]
    if both.empty:
        raise ValueError("no row has both a judge and an expert outcome yet")
    a, b = both[judge].tolist(), both[expert].tolist()
    names = [x for x in labels if x in set(a) | set(b)] + sorted((set(a) | set(b)) - set(labels))
    confusion = pd.crosstab(pd.Categorical(a, categories=names),
                            pd.Categorical(b, categories=names),
                            rownames=["judge"], colnames=["expert"], dropna=False)
    return AlignmentReport(
        n=len(both), agreement=sum(x == y for x, y in zip(a, b)) / len(both),
        kappa=cohen_kappa(a, b), confusion=confusion,
        disagreements=both[both[judge] != both[expert]].reset_index(drop=True),
        unreviewed=len(reviewed) - len(both))
