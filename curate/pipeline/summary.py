"""The funnel table printed in the terminal at the end of a run."""
from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .recompute import short

COLUMNS = ("stage", "in", "new", "kept", "rejected", "errored", "top reason", "seconds", "work")


def top_reason(stats: dict) -> str:
    """The most common rejection code of a stage and its most common error, with counts."""
    shown = []
    for key, label in (("reasons", ""), ("errors", "errored: ")):
        counts = stats.get(key) or {}
        if counts:
            code, n = next(iter(counts.items()))
            shown.append(f"{label}{code} ({n})")
    return "; ".join(shown)


def errored_lines(manifest: dict, out) -> list[str]:
    """One line per stage (and the export) that errored rows: how many, the first error
    and where its function raised; then where every errored row is."""
    export = manifest.get("export_errored") or {}
    lines = []
    for s in [*manifest["stages"], {**export, "stage": f"{export.get('stage')} (the export)",
                                    "rows_in": manifest["rows"].get("kept", 0)
                                    + export.get("errored", 0)}]:
        if not s.get("errored"):
            continue
        first = s.get("first_error") or {}
        at = f" at {first['at']}" if first.get("at") else ""
        row = f" (row from {first['source']})" if first.get("source") else ""
        lines.append(f"errored: {s['stage']}: {s['errored']:,} of {s['rows_in']:,} rows; first: "
                     f"{first.get('reason', '?')}{at}{row}")
    if lines:
        lines.append(f"every errored row, with its reason and traceback, is in "
                     f"{Path(out) / 'errored.jsonl'}")
    return lines


def funnel_rows(manifest: dict) -> list[list[str]]:
    rows = []
    for s in manifest["stages"]:
        work = "reused" if s.get("reused") else short(s.get("recomputed"))
        seconds = s.get("computed_seconds") if s.get("reused") else s.get("seconds")
        counts = (f"{s[k]:,}" for k in ("rows_in", "rows_created", "kept", "rejected", "errored"))
        rows.append([s["stage"], *counts, top_reason(s), f"{seconds or 0:.1f}", work])
    return rows


LLM_COLUMNS = ("LLM stage", "requests", "parsed", "parse failed", "truncated",
               "request failed", "produced", "tokens", "cost $", "structured", "health")


def llm_rows(manifest: dict) -> list[list[str]]:
    """One row per LLM stage: what its requests gave, and its health (``ok``, or a flag when
    it produced nothing or many of its requests failed)."""
    rows = []
    for s in manifest["stages"]:
        replies = s.get("replies")
        if not replies:
            continue
        spent = s.get("llm_computed") or s.get("llm") or {}
        tokens = spent.get("prompt_tokens", 0) + spent.get("completion_tokens", 0)
        produced = s.get("produced", 0)
        health = s.get("health") or ("produced nothing" if replies["requests"] and not produced
                                     else "ok")
        rows.append([s["stage"], f"{replies['requests']:,}", f"{replies['parsed']:,}",
                     f"{replies['parse_failed']:,}", f"{replies['truncated']:,}",
                     f"{replies['request_failed']:,}", f"{produced:,}", f"{tokens:,}",
                     f"{spent.get('cost_usd', 0):.4f}", s.get("structured", "-"), health])
    return rows


def print_funnel(manifest: dict, out, console: Console | None = None) -> None:
    console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    rows = manifest["rows"]
    table = Table(title=f"funnel: {rows['source']:,} source rows -> {rows['kept']:,} kept")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("stage", "top reason", "work") else "right")
    for row in funnel_rows(manifest):
        table.add_row(*row)
    console.print(table)
    health = llm_rows(manifest)
    if health:
        llm_table = Table(title="LLM stages")
        for col in LLM_COLUMNS:
            llm_table.add_column(col, justify="left" if col in ("LLM stage", "structured",
                                                                "health") else "right")
        for row in health:
            style = "bold red" if row[-1] != "ok" else None
            llm_table.add_row(*row, style=style)
        console.print(llm_table)
    for s in manifest["stages"]:
        if str(s.get("recomputed")).startswith("unstable"):
            console.print(f"recomputed on every run: stage {s['stage']!r}: {s['recomputed']}; "
                          f"leave a global it needs but does not depend on (a connection, a "
                          f"client) out with curate.fingerprint_ignore(...)", soft_wrap=True,
                          highlight=False)
    for line in errored_lines(manifest, out):
        console.print(line, style="bold red" if line.startswith("errored") else None,
                      soft_wrap=True, highlight=False)
    reused = manifest.get("reused", {})
    note = (f"; {reused['stages']} of {reused['of']} stages reused (seconds: when computed)"
            if reused.get("stages") else "")
    console.print(f"run folder: {out}  (report.html, manifest.json, rejected.jsonl.gz, errored.jsonl){note}; "
                  f"this run took {manifest['seconds']:.1f} s")
