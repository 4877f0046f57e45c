"""The funnel table printed in the terminal at the end of a run."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def print_funnel(run, console: Console | None = None) -> None:
    console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 110)
    table = Table(title=f"funnel: {len(run.source)} source rows -> {len(run.kept)} kept")
    for col in ("stage", "in", "new", "kept", "rejected", "errored", "top reason", "s", ""):
        table.add_column(col, justify="left" if col in ("stage", "top reason", "") else "right")
    for name, result in run.stages:
        s = result.stats
        top = next(iter(s.get("reasons") or s.get("errors") or {}), "")
        table.add_row(name, str(s["rows_in"]), str(s["rows_created"]), str(s["kept"]),
                      str(s["rejected"]), str(s["errored"]), top, f"{s['seconds']:.1f}",
                      "reused" if s.get("reused") else "")
    console.print(table)
    console.print(f"run folder: {run.out}  (report.html, manifest.json, rejected.jsonl)")
