"""Judge-expert agreement as the label page shows it, and the few-shot export.

The figures are :func:`curate.review.alignment.alignment_report` on the labels file, with
"good" as the positive label and the expert as the reference (TPR: of the rows the expert
called good, the share the judge called good; TNR the same for bad). One line per judge
fingerprint (round); a last line scores the current judge against the expert's latest label
of every row. The current round's disagreements export as few-shot critique examples
(``<run>/review/critique_examples.jsonl``: the row's fields, ``critique``, ``outcome``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .alignment import (EXPERT_CRITIQUE, EXPERT_OUTCOME, JUDGE_OUTCOME, LABELS,
                         alignment_report, read_review)
from ..core.table import ID
from ..io.atomic import write_jsonl
from .labels import JUDGE_FINGERPRINT, JUDGE_STAGE, LABELLED_AT, REVIEW_FOLDER, JudgedStage, LabelStore
from .table import RunTable

FEW_SHOT_FILE = "critique_examples.jsonl"
POSITIVE, NEGATIVE = LABELS


@dataclass
class Figures:
    """One agreement line (and, for the current round, the matrix and disagreements)."""

    n: int
    agreement: float
    kappa: float
    tpr: float | None
    tnr: float | None
    confusion: list[list] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    disagreements: list[dict] = field(default_factory=list)
    label: str = ""
    current: bool = False


def _rate(confusion: pd.DataFrame, label: str) -> float | None:
    """Of the rows the expert gave ``label``, the share the judge gave it too."""
    if label not in confusion.columns or label not in confusion.index:
        return None
    column = confusion[label]
    return float(column[label] / column.sum()) if column.sum() else None


def figures(rows: pd.DataFrame, label: str = "", current: bool = False) -> Figures | None:
    """Agreement on the rows both judge and expert rated (None when there are none)."""
    if rows.empty or not (rows[JUDGE_OUTCOME].notna() & rows[EXPERT_OUTCOME].notna()).any():
        return None
    report = alignment_report(rows)
    confusion = report.confusion
    names = [str(n) for n in confusion.index]
    disagreements = [{"id": r[ID], "judge": r[JUDGE_OUTCOME], "expert": r[EXPERT_OUTCOME],
                      "critique": r.get(EXPERT_CRITIQUE) or ""}
                     for r in report.disagreements.to_dict("records")]
    return Figures(report.n, report.agreement, report.kappa, _rate(confusion, POSITIVE),
                   _rate(confusion, NEGATIVE),
                   [[int(v) for v in row] for row in confusion.to_numpy()], names,
                   disagreements, label, current)


def read_labels(store: LabelStore, judge: JudgedStage) -> pd.DataFrame:
    """Every label of ``judge``'s stage in the file, as ``read_review`` reads it."""
    if not store.path.exists():
        return pd.DataFrame(columns=[ID, JUDGE_OUTCOME, EXPERT_OUTCOME, JUDGE_FINGERPRINT])
    rows = read_review(store.path)
    return rows[rows[JUDGE_STAGE] == judge.stage] if JUDGE_STAGE in rows.columns else rows


def this_round(labels: pd.DataFrame, judge: JudgedStage) -> pd.DataFrame:
    if JUDGE_FINGERPRINT not in labels.columns:
        return labels
    return labels[labels[JUDGE_FINGERPRINT] == judge.fingerprint]


def rounds(labels: pd.DataFrame, judge: JudgedStage) -> list[Figures]:
    """One line per judge fingerprint, oldest round first."""
    if labels.empty or JUDGE_FINGERPRINT not in labels.columns:
        return []
    began = labels.groupby(JUDGE_FINGERPRINT)[LABELLED_AT].min().sort_values()
    lines = []
    for number, fingerprint in enumerate(began.index, start=1):
        line = figures(labels[labels[JUDGE_FINGERPRINT] == fingerprint],
                       f"round {number} · judge {str(fingerprint)[:12]}",
                       current=fingerprint == judge.fingerprint)
        if line is not None:
            lines.append(line)
    return lines


def current_judge_on_all(table: RunTable, labels: pd.DataFrame, judge: JudgedStage) -> Figures | None:
    """The current judge's outcomes against the expert's latest label of each row."""
    if labels.empty:
        return None
    latest = labels.sort_values(LABELLED_AT).drop_duplicates(ID, keep="last")
    now = []
    for row_id in latest[ID]:
        position = table.position(row_id)
        value = table.rows[judge.verdict].iat[position] if position is not None else None
        now.append(str(value).strip().lower() if isinstance(value, str) else None)
    rescored = latest.assign(**{JUDGE_OUTCOME: now})
    return figures(rescored, "current judge · every labelled row")


def few_shot_examples(table: RunTable, disagreements: list[dict]) -> tuple[list[dict], int]:
    """Few-shot critique examples from disagreements with an expert critique, and how many
    were skipped for having none."""
    added = {c for s in table.stage_stats for c in (s.get("added_columns") or {})}
    examples, skipped = [], 0
    for item in disagreements:
        position = table.position(item["id"])
        if position is None or not item["critique"].strip():
            skipped += 1
            continue
        record = table.record(position)
        fields = {f: record.get(f) for f in table.fields if f not in added
                  and record.get(f) is not None}
        examples.append({**fields, "critique": item["critique"].strip(),
                         "outcome": item["expert"]})
    return examples, skipped


def export_few_shot(table: RunTable, current: Figures | None) -> tuple[int, int]:
    """Write the current round's disagreements as few-shot examples into the run folder."""
    examples, skipped = few_shot_examples(table, current.disagreements if current else [])
    write_jsonl(table.folder / REVIEW_FOLDER / FEW_SHOT_FILE, examples)
    return len(examples), skipped
