"""The run report: an HTML page a person would rather look at than read (funnel, reasons,
examples, distributions, near-duplicates, critiques, errors; the review app browses every row).

Which columns hold pairs, scores and critiques is read from each stage's declaration
(:meth:`Stage.added_columns`), never guessed. The page samples what it shows, so its cost
does not grow with the run; charts are inline SVG: one file, no scripts, no network.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

import jinja2
import numpy as np
import pandas as pd

from ..core.fingerprint import Fingerprint, fingerprint_of
from ..core.table import ID, ORIGIN, REASON, REASON_CODE, isin, row_dicts
from .report_clusters import cluster_section
from .summary import LLM_COLUMNS, errored_lines, llm_rows, top_reason

SAMPLE_ROWS = 20_000  # rows measured for the distribution
SEED = 0
STAGE_EXAMPLES = 3  # kept and rejected rows shown per stage (at most)
EXAMPLE_CHARS = 400


@dataclass
class ReportOptions:
    """What the report measures and shows.

    Args:
        measure: a field name or a function of the row giving a number (e.g. the
            Honeycomb query's complexity); its distribution is drawn before and after.
        measure_label: the axis label for ``measure``.
        text_field: the field shown in near-duplicate pairs and critique examples.
        examples: how many examples to show per section (and per stage).
        clusters: a text field (or a :class:`~curate.clustering.ClusterOptions`) whose
            topics the report shows: cluster sizes in the source and kept, what each stage
            made and removed in each, and a map (see :mod:`.report_clusters`).
    """

    measure: str | Callable | None = None
    measure_label: str = "measure"
    text_field: str | None = None
    examples: int = 6
    clusters: object = None

    def fingerprint(self) -> Fingerprint:
        return fingerprint_of(vars(self))


def _sample(df: pd.DataFrame, n: int, seed: int = SEED) -> pd.DataFrame:
    if len(df) <= n:
        return df
    picks = np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))
    return df.iloc[picks]


def _measure(df: pd.DataFrame, measure) -> np.ndarray:
    if measure is None or len(df) == 0:
        return np.array([])
    values = []
    for row in row_dicts(_sample(df, SAMPLE_ROWS)):
        try:
            value = row.get(measure) if isinstance(measure, str) else measure(row)
            values.append(float(value))
        except (TypeError, ValueError, KeyError):
            continue
    return np.array(values, dtype=float)


def histogram(before: np.ndarray, after: np.ndarray, bins: int = 20) -> dict | None:
    if len(before) == 0:
        return None
    both = np.concatenate([before, after])
    lo, hi = float(both.min()), float(both.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    b, _ = np.histogram(before, edges)
    a, _ = np.histogram(after, edges) if len(after) else (np.zeros(bins, int), None)
    top = max(int(b.max()), int(a.max()), 1)
    return {"before": b.tolist(), "after": a.tolist(), "edges": edges.round(2).tolist(),
            "top": top, "mean_before": round(float(before.mean()), 2),
            "mean_after": round(float(after.mean()), 2) if len(after) else None}


def _text(row: dict | None, field: str | None) -> str:
    if row is None:
        return "(row not found)"
    value = row.get(field) if field else None
    if value is None:
        value = {k: v for k, v in row.items() if not str(k).startswith("_")}
    return str(value)


def _role(stats: dict, role: str) -> str | None:
    """The column a stage declared for ``role`` (see ``Stage.added_columns``)."""
    return next((c for c, r in (stats.get("added_columns") or {}).items() if r == role), None)


def _near_duplicates(manifest, run, field, limit) -> list[dict]:
    """Up to ``limit`` pairs from each stage that records the row a rejected row matched."""
    pairs = []
    for stage, (name, result) in zip(manifest["stages"], run.stages):
        dup_col, score_col = _role(stage, "duplicate_of"), _role(stage, "similarity")
        rejected = result.rejected
        if dup_col is None or dup_col not in rejected.columns:
            continue
        shown = _sample(rejected[rejected[dup_col].notna()], limit)
        kept = result.kept[isin(result.kept[ID], list(set(shown[dup_col])))]
        by_id = dict(zip(kept[ID], row_dicts(kept)))
        scores = shown[score_col].tolist() if score_col in shown.columns else [None] * len(shown)
        for row, dup, score in zip(row_dicts(shown), shown[dup_col], scores):
            pairs.append({"stage": name, "score": None if score is None or score != score
                          else float(score), "rejected": _text(row, field),
                          "kept": _text(by_id.get(dup), field)})
    return pairs


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def _stage_examples(run, field, limit) -> list[dict]:
    """A few kept rows (those the stage made, when it made some) and rejected rows of every
    stage, sampled."""
    shown = []
    for index, (name, result) in enumerate(run.stages):
        kept = result.kept
        made = kept[kept[ORIGIN] == name] if ORIGIN in kept.columns else kept.iloc[0:0]
        rejected = _sample(result.rejected, limit)
        shown.append({"stage": name, "made": bool(len(made)),
                      "kept": [_clip(_text(r, field))
                               for r in row_dicts(_sample(made if len(made) else kept, limit,
                                                          seed=SEED + index))],
                      "rejected": [{"text": _clip(_text(r, field)), "code": r.get(REASON_CODE),
                                    "reason": r.get(REASON)}
                                   for r in row_dicts(rejected, list(rejected.columns))]})
    return shown


def _critiques(manifest, run, field, limit) -> list[dict]:
    """Verdicts from the stages that declare a critique column, judged rows first."""
    judged, unjudged = [], []
    for stage, (_, result) in zip(manifest["stages"], run.stages):
        critique, verdict = _role(stage, "critique"), _role(stage, "verdict")
        if critique is None:
            continue
        for table in (result.rejected, result.kept):
            if critique not in table.columns:
                continue
            shown = _sample(table[table[critique].notna()], 2 * limit)
            for r in row_dicts(shown, list(shown.columns)):
                item = {"outcome": r.get(verdict), "critique": r.get(critique),
                        "text": _text(r, field)}
                (judged if item["outcome"] is not None else unjudged).append(item)
    return (judged + unjudged[:limit])[: 2 * limit]


def _reasons(manifest) -> list[dict]:
    export = manifest.get("export_errored") or {}
    stages = [*manifest["stages"], {"stage": export.get("stage"), "errors": export.get("errors")}]
    counts = []
    for s in stages:
        for key, kind in (("reasons", "rejected"), ("errors", "errored")):
            counts += [{"stage": s["stage"], "code": code, "count": n, "kind": kind}
                       for code, n in (s.get(key) or {}).items()]
    return sorted(counts, key=lambda c: -c["count"])


def render_report(pipeline, run, manifest: dict) -> str:
    opts: ReportOptions = pipeline.report
    env = jinja2.Environment(loader=jinja2.PackageLoader("curate", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    errored = [{"stage": r.get("_stage"), "code": r.get("_reason_code"), "reason": r.get("_reason"),
                "source": r.get("_source"), "traceback": r.get("_traceback")}
               for r in row_dicts(_sample(run.errored, opts.examples), list(run.errored.columns))] \
        if len(run.errored) else []
    funnel = [{**{k: s.get(k) for k in ("stage", "rows_in", "rows_created", "kept", "rejected",
                                        "errored", "seconds", "reused", "computed_seconds")},
               "top_reason": top_reason(s)} for s in manifest["stages"]]
    warnings = [{"stage": s["stage"], "text": w} for s in manifest["stages"]
                for w in s.get("warnings", [])]
    reasons = _reasons(manifest)
    samples = {s["stage"]: s.get("failure_sample", []) for s in manifest["stages"]}
    return env.get_template("report.html").render(
        llm_columns=LLM_COLUMNS, llm_rows=llm_rows(manifest), failure_samples=samples,
        title=pipeline.name, manifest=manifest, funnel=funnel, warnings=warnings,
        funnel_top=max([manifest["rows"]["source"]] +
                       [f["rows_in"] + f["rows_created"] for f in funnel] + [1]),
        reasons=reasons, reasons_top=max([r["count"] for r in reasons] or [1]),
        hist=histogram(_measure(run.source, opts.measure), _measure(run.kept, opts.measure)),
        measure_label=opts.measure_label, sampled=len(run.source) > SAMPLE_ROWS,
        near_dups=_near_duplicates(manifest, run, opts.text_field, opts.examples),
        critiques=_critiques(manifest, run, opts.text_field, opts.examples), errored=errored,
        stage_examples=_stage_examples(run, opts.text_field, min(STAGE_EXAMPLES, opts.examples)),
        run_folder=str(run.out), escape=html.escape,
        errored_summary=errored_lines(manifest, run.out),
        clusters=cluster_section(run, opts.clusters))
