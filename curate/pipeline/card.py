"""The dataset card: ``export/README.md``, what the export is and how it was made.

A Hugging Face dataset card (a YAML header with one config per export file, so
``datasets.load_dataset(<export folder>)`` loads it), built from the run's manifest and
stage objects. Nothing that changes between identical runs (times, dates) is written, so a
card is rewritten only when the export is.
"""
from __future__ import annotations

from pathlib import Path

import yaml

TOP_REASONS = 3
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]


def size_category(rows: int) -> str:
    return next((label for limit, label in SIZES if rows < limit), "n>10M")


def _configs(export_files: list[str]) -> list[dict]:
    """One config per JSONL file the export wrote; the first is the default."""
    names = [Path(f).stem for f in export_files if f.endswith(".jsonl")]
    configs = [{"config_name": name, "data_files": [{"split": "train", "path": f"{name}.jsonl"}]}
               for name in names]
    if configs:
        configs[0]["default"] = True
    return configs


def header(manifest: dict, export_files: list[str]) -> str:
    rows = (manifest.get("rows") or {}).get("kept", 0)
    meta = {"license": "other", "task_categories": ["text-generation"],
            "size_categories": [size_category(int(rows))],
            "tags": ["synthetic", "curate-workbench"],
            "pretty_name": manifest.get("name") or "dataset",
            "configs": _configs(export_files)}
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    text = text.replace("license: other\n", "license: other  # fill in the license of your "
                                            "source data and of the models' outputs\n", 1)
    return f"---\n{text}---\n"


def _models(stage) -> str:
    model = getattr(getattr(stage, "llm", None), "model", None)
    return f"`{model}`" if model else ""


def _reasons(stats: dict) -> str:
    top = list((stats.get("reasons") or {}).items())[:TOP_REASONS]
    errors = list((stats.get("errors") or {}).items())[:TOP_REASONS]
    return ", ".join([f"{code} {n}" for code, n in top] +
                     [f"errored {code} {n}" for code, n in errors])


def _tokens(llm: dict) -> str:
    prompt, completion = int(llm.get("prompt_tokens", 0)), int(llm.get("completion_tokens", 0))
    if not prompt + completion:
        return ""
    cost = llm.get("cost_usd") or 0
    return f"{prompt + completion:,} (${cost:.4f})" if cost else f"{prompt + completion:,}"


def stage_table(manifest: dict, stages: list) -> list[str]:
    lines = ["| # | stage | type | model | in | kept | rejected | errored | top reasons | tokens (cost) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, (stats, stage) in enumerate(zip(manifest.get("stages", []), stages), start=1):
        lines.append(f"| {i} | {stats['stage']} | {stats.get('type', '')} | {_models(stage)} | "
                     f"{stats.get('rows_in', '')} | {stats.get('kept', '')} | "
                     f"{stats.get('rejected', '')} | {stats.get('errored', '')} | "
                     f"{_reasons(stats)} | {_tokens(stats.get('llm_computed') or {})} |")
    return lines


def body(manifest: dict, stages: list, export_files: list[str], command: str) -> str:
    name, rows = manifest.get("name") or "dataset", manifest.get("rows") or {}
    source = manifest.get("source") or {}
    where = f"read from `{Path(source['path']).name}`" if source.get("path") else \
        "a table given in memory"
    spec = manifest.get("spec")
    llm = manifest.get("llm_computed") or {}
    files = ", ".join(f"`{f}`" for f in export_files)
    lines = [f"# {name}", "",
             f"{rows.get('kept', 0)} training rows made by curate-workbench from "
             f"{rows.get('source', 0)} source rows: {files}.", "",
             "## Source", "",
             f"- {where}" + (f" (its first {source['limit']} rows)" if source.get("limit") else ""),
             f"- digest of its content `{source.get('key', '')}`", "",
             "## How it was made", "",
             f"- spec `{Path(spec).name}` (sha256 `{manifest.get('spec_hash')}`)" if spec else
             "- a pipeline built in Python (no spec file)",
             f"- curate-workbench {manifest.get('versions', {}).get('curate-workbench', '?')}, "
             f"executor {manifest.get('executor', 'local')}", "",
             *stage_table(manifest, stages), "",
             "## Funnel", "",
             f"- source rows: {rows.get('source', 0)}",
             f"- rejected: {rows.get('rejected', 0)}; errored: {rows.get('errored', 0)} "
             f"(every one with its reason in the run folder's `rejected.jsonl.gz` and "
             f"`errored.jsonl`)",
             f"- exported: {rows.get('kept', 0)}"]
    preferences = manifest.get("preferences")
    if preferences:
        counts = ", ".join(f"{k} {n}" for k, n in preferences.get("pairs", {}).items())
        lines.append(f"- preference pairs (`preference.jsonl`, TRL's prompt/chosen/rejected): "
                     f"{sum(preferences.get('pairs', {}).values())} ({counts})")
    lines += ["", "## Tokens and cost", "",
              f"- prompt tokens {int(llm.get('prompt_tokens', 0)):,}, completion tokens "
              f"{int(llm.get('completion_tokens', 0)):,}, cost ${llm.get('cost_usd', 0) or 0:.4f} "
              f"(what computing every stage took, cached replies included)", "",
              "## Reproduce", "", "```", command, "```", "",
              "A rerun with unchanged inputs reuses every stage; a changed input reruns the "
              "stages from the first one it affects.", ""]
    return "\n".join(lines)


def dataset_card(manifest: dict, stages: list, export_files: list[str], out) -> str:
    """The card's text for a run whose manifest is ``manifest`` (see the module docstring)."""
    spec = manifest.get("spec")
    limit = (manifest.get("source") or {}).get("limit")
    command = (f"python -m curate.pipeline {spec} --out {out}" if spec else
               f"pipeline.run({str(out)!r})") + (f" --limit {limit}" if spec and limit else "")
    return header(manifest, export_files) + "\n" + body(manifest, stages, export_files, command)
