"""The expert's labels: which rows to walk, and ``<run>/review/labels.csv``.

The file is a review sheet of :mod:`curate.review.alignment` (``read_review`` and
``alignment_report`` read it as it is) with four more columns: ``expert_answer``,
``judge_stage``, ``judge_fingerprint`` (a changed judge prompt starts a new round) and
``labelled_at``. Each label is merged in under a lock (``review/.labels.csv.lock``) and the
file replaced atomically, so a refresh, a crash or a second app on the run loses nothing.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from filelock import FileLock

from .alignment import (EXPERT_CRITIQUE, EXPERT_OUTCOME, JUDGE_CRITIQUE, JUDGE_OUTCOME,
                         LABELS, cell_text, from_sheet, to_sheet)
from ..core.table import ID
from ..errors import InputError
from ..io.atomic import atomic_path, output_errors
from .table import RunTable

REVIEW_FOLDER = "review"
LABELS_FILE = "labels.csv"
EXPERT_ANSWER = "expert_answer"
JUDGE_STAGE, JUDGE_FINGERPRINT, LABELLED_AT = "judge_stage", "judge_fingerprint", "labelled_at"
TRAILING = (JUDGE_CRITIQUE, JUDGE_OUTCOME, EXPERT_CRITIQUE, EXPERT_OUTCOME, EXPERT_ANSWER,
            JUDGE_STAGE, JUDGE_FINGERPRINT, LABELLED_AT)


@dataclass
class JudgedStage:
    """The judge stage whose verdicts are being labelled."""

    stage: str
    step: int
    fingerprint: str
    fields: list[str]
    critique: str | None
    verdict: str


def judged_stages(table: RunTable) -> list[JudgedStage]:
    """Every stage of the run that declared a verdict column."""
    found = []
    for step, stats in enumerate(table.stage_stats):
        roles = stats.get("added_columns") or {}
        verdict = next((c for c, r in roles.items() if r == "verdict"), None)
        if verdict is None or verdict not in table.rows.columns:
            continue
        critique = next((c for c, r in roles.items() if r == "critique"), None)
        declared = (stats.get("params") or {}).get("fields")
        fields = [f for f in (declared if isinstance(declared, list) else table.fields)
                  if f in table.rows.columns and f not in roles]
        found.append(JudgedStage(stats["stage"], step, str(stats.get("fingerprint", "")), fields,
                           critique, verdict))
    return found


class Walk:
    """The judged rows in the order the expert sees them: a seeded shuffle, cut to
    ``sample`` rows when asked (growing the sample keeps the rows already in it)."""

    def __init__(self, table: RunTable, judge: JudgedStage, sample: int | None = None, seed: int = 0):
        judged = np.flatnonzero(table.rows[judge.verdict].notna().to_numpy())
        order = judged[np.random.default_rng(seed).permutation(len(judged))]
        self.positions = order[:sample] if sample else order
        self.ids = [str(i) for i in table.rows[ID].to_numpy(dtype=object)[self.positions]]
        self.index = {row_id: i for i, row_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def neighbour(self, row_id: str, offset: int) -> str | None:
        at = self.index.get(row_id)
        if at is None or not 0 <= at + offset < len(self.ids):
            return None
        return self.ids[at + offset]

    def next_unlabelled(self, labelled: set, after: str | None = None) -> str | None:
        start = self.index.get(after, -1) + 1 if after else 0
        for row_id in self.ids[start:] + self.ids[:start]:
            if row_id not in labelled:
                return row_id
        return None


class LabelStore:
    """Reads and writes ``<run>/review/labels.csv`` (see the module docstring)."""

    def __init__(self, run_folder):
        self.folder = Path(run_folder) / REVIEW_FOLDER
        self.path = self.folder / LABELS_FILE

    def write_problem(self) -> str | None:
        """Why no label can be saved here, or None: asked of the file system (with the
        process's effective user), not tried, as the app writes nothing until a label."""
        target = self.folder if self.folder.is_dir() else self.folder.parent
        effective = os.access in os.supports_effective_ids
        if os.access(target, os.W_OK | os.X_OK, effective_ids=effective):
            return None
        return f"labels cannot be saved: {target} is not writable"

    def read(self) -> tuple[list[str], list[dict]]:
        """The header and every label in the file (none when there is no file yet)."""
        if not self.path.exists():
            return [], []
        with open(self.path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            if ID not in header or EXPERT_OUTCOME not in header:
                raise InputError(self.path, "not a labels file (no _id / expert_outcome column)",
                                 line=1)
            return header, [{k: from_sheet(v) if isinstance(v, str) else v
                             for k, v in row.items()} for row in reader]

    def labels_for(self, judge: JudgedStage) -> dict[str, dict]:
        """This round's labels (this judge stage and fingerprint) by row id."""
        return {row[ID]: row for row in self.read()[1]
                if row.get(JUDGE_STAGE) == judge.stage
                and row.get(JUDGE_FINGERPRINT) == judge.fingerprint}

    def save(self, judge: JudgedStage, record: dict, expert_outcome: str, expert_critique: str = "",
             expert_answer: str = "") -> dict:
        """Add or replace the label of one row in this round, on disk, at once."""
        if expert_outcome not in LABELS:
            raise ValueError(f"expert_outcome must be one of {', '.join(LABELS)}")
        label = {ID: record[ID], **{f: cell_text(record.get(f)) for f in judge.fields},
                 JUDGE_CRITIQUE: cell_text(record.get(judge.critique)) if judge.critique else "",
                 JUDGE_OUTCOME: cell_text(record.get(judge.verdict)),
                 EXPERT_CRITIQUE: expert_critique.strip(), EXPERT_OUTCOME: expert_outcome,
                 EXPERT_ANSWER: expert_answer.strip(), JUDGE_STAGE: judge.stage,
                 JUDGE_FINGERPRINT: judge.fingerprint,
                 LABELLED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with output_errors(self.path):
            self.folder.mkdir(exist_ok=True)
        with output_errors(self.path), FileLock(self.folder / f".{LABELS_FILE}.lock"):
            header, rows = self.read()
            key = (label[ID], judge.stage, judge.fingerprint)
            rows = [r for r in rows if (r.get(ID), r.get(JUDGE_STAGE),
                                        r.get(JUDGE_FINGERPRINT)) != key] + [label]
            self._write(header, rows, judge.fields)
        return label

    def _write(self, header: list[str], rows: list[dict], fields: list[str]) -> None:
        fields_before = [c for c in header if c != ID and c not in TRAILING]
        columns = [ID, *dict.fromkeys([*fields_before, *fields]), *TRAILING]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({c: to_sheet(row.get(c) or "") for c in columns} for row in rows)
