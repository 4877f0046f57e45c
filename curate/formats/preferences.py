"""Preference pairs (chosen / rejected) for DPO, read off a run's lineage: no extra LLM call.

Each pair is rendered with the export's templates in TRL's conversational preference format,
from three sources: ``repair`` (a repaired row against the row it replaced), ``vote`` (the
majority reply against one whose answer lost, kept by ``Vote(rationales=True)``) and ``judge``
(for one prompt, a row a judge called good against one it called bad). The chosen side must
pass the checker (and no trusted judge called it bad); the rejected side must have failed
the checker, lost a vote, or been called bad by a ``Judge(..., trusted=True)``: an untrusted
judge's verdicts (the embedded demo model's) make no pair. Every pair names its two rows
(``chosen_id``, ``rejected_id``), the kind, the stage and the evidence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from assertions.calling import call_checker
from ..core.table import ID, PARENT, REASON, REASON_CODE, row_dicts
from ..errors import StageError
from ..io.atomic import write_jsonl

FILE = "preference.jsonl"


@dataclass
class StageView:
    """One stage of a run as the pairs need it: what it is, its input and its result."""

    name: str
    type: str
    params: dict
    roles: dict
    input: pd.DataFrame
    result: object  # StageResult

    def column(self, role: str) -> str | None:
        return next((c for c, r in self.roles.items() if r == role), None)

    @property
    def trusted_judge(self) -> bool:
        return self.type == "Judge" and self.params.get("trusted") is True


def stage_views(run, stages=None) -> list[StageView]:
    """The stages of a run (a :class:`~curate.pipeline.runner.RunResult`, live or from
    :func:`~curate.open_run`): described by the stage objects when given, else by the
    manifest."""
    described = [{"type": type(s).__name__, "params": s.params(),
                  "added_columns": s.added_columns()} for s in stages] \
        if stages is not None else run.manifest.get("stages", [])
    views, current = [], run.source
    for info, (name, result) in zip(described, run.stages):
        views.append(StageView(name, info.get("type", ""), info.get("params") or {},
                               info.get("added_columns") or {}, current, result))
        current = result.kept
    return views


class PreferencePairs:
    """What makes a pair (see the module docstring): the checker the chosen side must pass.

    Args:
        check: a checker (:mod:`assertions.calling`: parameters named after row fields,
            returning failures); the chosen side must pass it and a rejected side that fails
            it is evidence.
        check_fields: ``{parameter: field}`` where the checker's names differ from the row's.
        kinds: which sources to use (default all: ``repair``, ``vote``, ``judge``).
    """

    def __init__(self, check, check_fields=None, kinds=("repair", "vote", "judge")):
        if not callable(check):
            raise StageError("preferences", f"check must be a checker function, got {check!r}")
        unknown = set(kinds) - {"repair", "vote", "judge"}
        if unknown:
            raise StageError("preferences", f"unknown kinds {sorted(unknown)}; choose from "
                                            f"repair, vote, judge")
        self.check, self.check_fields, self.kinds = check, check_fields, tuple(kinds)

    def failures(self, row: dict) -> list[str] | None:
        """The checker's failures on ``row``; None when it raised (no evidence either way)."""
        try:
            return [str(f) for f in call_checker(self.check, row, self.check_fields)]
        except Exception:
            return None

    # -- the pairs -------------------------------------------------------------------------
    def pairs(self, run, export, stages=None) -> list[dict]:
        """Every pair of ``run``, rendered with ``export`` (a :class:`ChatExport`)."""
        views = stage_views(run, stages)
        trusted = [v for v in views if v.trusted_judge]
        found, seen = [], set()
        makers = {"repair": self._repairs, "vote": self._votes, "judge": self._judged}
        for view in views:
            for kind in self.kinds:
                for chosen, rejected, evidence in makers[kind](view, trusted, export):
                    pair = self._render(export, kind, view.name, chosen, rejected, evidence)
                    key = pair and json.dumps([pair["prompt"], pair["chosen"], pair["rejected"]])
                    if pair and key not in seen:
                        seen.add(key)
                        found.append(pair)
        return found

    def write(self, run, export, folder, stages=None) -> tuple[Path, dict]:
        """Write ``preference.jsonl`` into ``folder``: (its path, pairs by kind)."""
        pairs = self.pairs(run, export, stages)
        counts = {k: sum(p["kind"] == k for p in pairs) for k in self.kinds}
        return write_jsonl(Path(folder) / FILE, pairs), counts

    def _passes(self, row: dict, trusted: list[StageView]) -> bool:
        return self.failures(row) == [] and not any(_judged_bad(j, row) for j in trusted)

    def _against(self, row: dict, trusted: list[StageView]) -> str | None:
        """The trusted evidence against a row, or None."""
        failed = self.failures(row)
        if failed:
            return f"fails the checker: {failed[0]}"
        judge = next((j for j in trusted if _judged_bad(j, row)), None)
        return f"judged bad by the trusted judge {judge.name!r}" if judge else None

    def _repairs(self, view: StageView, trusted, export):
        if view.type != "Repair":
            return
        before = f"_{view.params.get('field')}_before_repair"
        kept = view.result.kept
        if before not in kept.columns or PARENT not in kept.columns:
            return
        originals = {r[ID]: r for r in _rows(view.input)}
        for row in _rows(kept[kept[before].notna()]):
            original = originals.get(row.get(PARENT))
            if original is None or not self._passes(row, trusted):
                continue
            evidence = self._against(original, trusted)
            if evidence:
                yield row, original, f"repaired by {view.name!r}; the original {evidence}"

    def _votes(self, view: StageView, trusted, export):
        column = view.column("minority")
        if view.type != "Vote" or column is None or column not in view.result.kept.columns:
            return
        answer = view.column("answer")
        outputs = view.params.get("outputs")
        tally = outputs.get("votes", "votes") if isinstance(outputs, dict) else "votes"
        for row in _rows(view.result.kept):
            if not isinstance(row.get(column), list) or not self._passes(row, trusted):
                continue
            counts = row.get(tally) if isinstance(row.get(tally), dict) else {}
            for lost in row[column]:
                yield row, {**row, **lost}, (
                    f"lost the vote in {view.name!r}: {lost.get(answer)!r} against "
                    f"{row.get(answer)!r} ({counts.get(row.get(answer), '?')} votes to "
                    f"{counts.get(lost.get(answer), '?')})")

    def _judged(self, view: StageView, trusted, export):
        """(good, bad) for each row a trusted judge called bad that shares its prompt with a
        row it called good (the first such row that passes the checker)."""
        if not view.trusted_judge:
            return
        verdict, critique = view.column("verdict"), view.column("critique")
        groups: dict[str, dict] = {}
        for row in [*_rows(view.result.kept), *_rows(view.result.rejected)]:
            prompt = _prompt_key(export, row)
            if prompt is None:
                continue
            group = groups.setdefault(prompt, {"good": [], "bad": []})
            if _judged_bad(view, row):
                group["bad"].append(row)
            elif str(row.get(verdict)).strip().lower() == "good" and self._passes(row, trusted):
                group["good"].append(row)
        for group in groups.values():
            for bad in group["bad"] if group["good"] else ():
                said = bad.get(critique) or bad.get(REASON) or ""
                yield group["good"][0], bad, \
                    f"judged bad by the trusted judge {view.name!r}{': ' + said if said else ''}"

    @staticmethod
    def _render(export, kind, stage, chosen, rejected, evidence) -> dict | None:
        try:
            mine, theirs = export.messages(chosen), export.messages(rejected)
        except (KeyError, IndexError, ValueError, TypeError):  # a row the templates cannot fill
            return None
        if mine[:-1] != theirs[:-1] or mine[-1]["content"] == theirs[-1]["content"]:
            return None
        return {"prompt": mine[:-1], "chosen": mine[-1:], "rejected": theirs[-1:],
                "chosen_id": chosen[ID], "rejected_id": rejected[ID], "kind": kind,
                "stage": stage, "evidence": evidence}


def _rows(df: pd.DataFrame) -> list[dict]:
    """Every column of the rows (ids and bookkeeping included) as plain values."""
    return row_dicts(df, list(df.columns))


def _judged_bad(view: StageView, row: dict) -> bool:
    """Whether the judge of ``view`` called ``row`` bad (its verdict column, or its
    rejection of the row)."""
    verdict = view.column("verdict")
    value = row.get(verdict) if verdict else None
    return (isinstance(value, str) and value.strip().lower() == "bad") or \
        (row.get(REASON_CODE) == "judge_bad" and row.get("_stage") == view.name)


def _prompt_key(export, row: dict) -> str | None:
    try:
        return json.dumps(export.messages(row)[:-1], sort_keys=True)
    except (KeyError, IndexError, ValueError, TypeError):
        return None
