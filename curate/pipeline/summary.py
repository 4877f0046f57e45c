"""The funnel table printed in the terminal at the end of a run."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

COLUMNS = ("stage", "in", "new", "kept", "rejected", "errored", "top reason", "seconds", "work")


def top_reason(stats: dict) -> str:
    """The most common rejection (or error) code of a stage, with its count."""
    for key in ("reasons", "errors"):
        counts = stats.get(key) or {}
        if counts:
            code, n = next(iter(counts.items()))
            return f"{code} ({n})"
    return ""


def funnel_rows(manifest: dict) -> list[list[str]]:
    rows = []
    for s in manifest["stages"]:
        work = "reused" if s.get("reused") else "ran"
        seconds = s.get("computed_seconds") if s.get("reused") else s.get("seconds")
        rows.append([s["stage"], f"{s['rows_in']:,}", f"{s['rows_created']:,}", f"{s['kept']:,}",
                     f"{s['rejected']:,}", f"{s['errored']:,}", top_reason(s),
                     f"{seconds or 0:.1f}", work])
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
    reused = manifest.get("reused", {})
    note = (f"; {reused['stages']} of {reused['of']} stages reused (seconds: when computed)"
            if reused.get("stages") else "")
    console.print(f"run folder: {out}  (report.html, manifest.json, rejected.jsonl.gz, errored.jsonl){note}; "
                  f"this run took {manifest['seconds']:.1f} s")
