"""The run report: an HTML page a person would rather look at than read.

It shows the funnel of rows per stage, rejection reasons by count, the distribution of a
chosen measure (length, complexity) before and after, examples of near-duplicate pairs,
judge critiques, and a sample of errored rows. Charts are inline SVG: the page is one file
with no scripts and no network.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

import jinja2
import numpy as np
import pandas as pd

from ..table import ID, records


@dataclass
class ReportOptions:
    """What the report measures and shows.

    Args:
        measure: a field name or a function of the row giving a number (e.g. the
            Honeycomb query's complexity); its distribution is drawn before and after.
        measure_label: the axis label for ``measure``.
        text_field: the field shown in near-duplicate pairs and critique examples.
        examples: how many examples to show per section.
    """

    measure: str | Callable | None = None
    measure_label: str = "measure"
    text_field: str | None = None
    examples: int = 6


def _measure(df: pd.DataFrame, measure) -> np.ndarray:
    if measure is None or len(df) == 0:
        return np.array([])
    values = []
    for row in records(df):
        try:
            value = row.get(measure) if isinstance(measure, str) else measure(row)
            values.append(float(value))
        except (TypeError, ValueError, KeyError):
            continue
    return np.array(values, dtype=float)


def histogram(before: np.ndarray, after: np.ndarray, bins: int = 20) -> dict | None:
    if len(before) == 0:
        return None
    lo, hi = float(np.min(before)), float(np.max(before))
    if len(after):
        lo, hi = min(lo, float(np.min(after))), max(hi, float(np.max(after)))
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


def _near_duplicates(run, field, limit) -> list[dict]:
    rejected = run.rejected
    if "dup_of" not in rejected.columns:
        return []
    by_id = {}
    for table in [run.source] + [t for _, r in run.stages for t in (r.kept, r.rejected)]:
        by_id.update({r[ID]: r for r in records(table)})
    pairs = []
    for row in records(rejected[rejected["dup_of"].notna()].head(limit)):
        score = row.get("rouge_l", row.get("cosine"))
        pairs.append({"stage": row.get("_stage"), "score": score, "rejected": _text(row, field),
                      "kept": _text(by_id.get(row["dup_of"]), field), "reason": row.get("_reason")})
    return pairs


def _critiques(run, field, limit) -> list[dict]:
    """Verdicts from the stages that wrote a critique, judged rows first, each row once."""
    seen, judged, unjudged = set(), [], []
    for _, result in run.stages:
        for table in (result.rejected, result.kept):
            if "critique" not in table.columns:
                continue
            for r in records(table[table["critique"].notna()]):
                if r[ID] in seen:
                    continue
                seen.add(r[ID])
                item = {"outcome": r.get("outcome"), "critique": r.get("critique"),
                        "text": _text(r, field)}
                (judged if r.get("outcome") is not None else unjudged).append(item)
    return (judged + unjudged)[: 2 * limit]


def _reasons(run) -> list[dict]:
    counts = []
    for name, result in run.stages:
        for code, n in (result.stats.get("reasons") or {}).items():
            counts.append({"stage": name, "code": code, "count": n, "kind": "rejected"})
        for code, n in (result.stats.get("errors") or {}).items():
            counts.append({"stage": name, "code": code, "count": n, "kind": "errored"})
    return sorted(counts, key=lambda c: -c["count"])


def render_report(pipeline, run, manifest: dict) -> str:
    opts: ReportOptions = pipeline.report
    env = jinja2.Environment(loader=jinja2.PackageLoader("curate", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    errored = [{"stage": r.get("_stage"), "code": r.get("_reason_code"), "reason": r.get("_reason")}
               for r in records(run.errored.head(opts.examples))] if len(run.errored) else []
    funnel = [{"stage": name, **{k: r.stats[k] for k in ("rows_in", "rows_created", "kept",
                                                          "rejected", "errored", "seconds")},
               "reused": r.stats.get("reused", False)} for name, r in run.stages]
    reasons = _reasons(run)
    return env.get_template("report.html").render(
        title=pipeline.name, manifest=manifest, funnel=funnel,
        funnel_top=max([len(run.source)] + [f["rows_in"] + f["rows_created"] for f in funnel]),
        reasons=reasons, reasons_top=max([r["count"] for r in reasons] or [1]),
        hist=histogram(_measure(run.source, opts.measure), _measure(run.kept, opts.measure)),
        measure_label=opts.measure_label,
        near_dups=_near_duplicates(run, opts.text_field, opts.examples),
        critiques=_critiques(run, opts.text_field, opts.examples), errored=errored,
        escape=html.escape)
