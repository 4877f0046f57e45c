"""Benchmark: structured generation with the embedded model, constrained vs unconstrained.

The same Honeycomb prompts and seeds, plain and with the reply's JSON Schema enforced during
decoding, on each embedded backend installed: augmentation (``prompts.augment_messages``,
``reply_schemas.augment_schema(row)``), critique (``prompts.critique_messages`` with one
few-shot critique, ``CRITIQUE_SCHEMA``) and rewording (``prompts.reword_messages``,
``REWORD_SCHEMA``). Printed per backend and mode: the share of replies that match the schema,
the critiques that give an outcome, the augmentations whose query passes the checker, and
generated tokens per second (prompts included), beside the load average. Nothing is cached.

    .venv/bin/python bench/structured.py                      # 8 rows of each task
    .venv/bin/python bench/structured.py --rows 16 --tasks critique,reword
    CURATE_EMBEDDED_BACKEND=transformers .venv/bin/python bench/structured.py
"""
from __future__ import annotations

import json
import os

from benchkit import ROOT, best_of, load, script_parser

from assertions.honeycomb import check
from curate.llm import LLM, Request, TransformersBackend
from curate.llm.backends import SMOLLM2_FILE, llamacpp, smollm2_path
from curate.llm.structured import extract_json, validate
from examples.honeycomb import prompts, reply_schemas

SEEDS = ROOT / "examples/honeycomb/data/seeds.jsonl"


def tasks(rows: list[dict]) -> dict:
    """{task: [(messages, schema, max_tokens, temperature), ...]}"""
    shot = prompts.critique_examples()[:1]
    return {
        "augment": [(prompts.augment_messages(r, rows[(i + 1) % len(rows):][:1]),
                     reply_schemas.augment_schema(r), 300, 0.7) for i, r in enumerate(rows)],
        "critique": [(prompts.critique_messages(r, shot), prompts.CRITIQUE_SCHEMA, 200, 0.0)
                     for r in rows],
        "reword": [(prompts.reword_messages(r), prompts.REWORD_SCHEMA, 80, 0.7) for r in rows],
    }


def backends() -> dict:
    folder = smollm2_path()
    found = {"transformers": TransformersBackend(folder, SMOLLM2_FILE, name="smollm2")}
    if llamacpp.available():
        found["llama.cpp"] = llamacpp.LlamaCppBackend(folder / SMOLLM2_FILE, name="smollm2")
    return found


def score(task: str, rows: list[dict], schema_list, results) -> dict:
    valid = checker_ok = verdicts = 0
    for row, schema, result in zip(rows, schema_list, results):
        try:
            value = validate(extract_json(result.text), schema)
        except Exception:
            continue
        valid += 1
        if task == "critique" and value.get("outcome") in ("good", "bad"):
            verdicts += 1
        if task == "augment":
            try:
                new = prompts.augmented_row(row, value)
                checker_ok += not check(new["query"], new["columns"])
            except ValueError:
                pass
    n = len(rows)
    return {"valid": valid / n, "verdicts": verdicts / n if task == "critique" else None,
            "checker": checker_ok / n if task == "augment" else None}


def run_one(backend, task: str, items, constrained: bool) -> tuple[list, float, int]:
    """The replies, the wall seconds and every generated token (cut-off replies included)."""
    llm = LLM(backend=backend, cache=False)
    requests = [Request(m, schema=s if constrained else None, max_tokens=mt, temperature=t,
                        sample=i) for i, (m, s, mt, t) in enumerate(items)]
    seconds, results = best_of(lambda: llm.complete_many(requests))
    return results, seconds, llm.usage.completion_tokens


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=8, help="rows per task")
    parser.add_argument("--tasks", default="augment,critique,reword")
    parser.add_argument("--backends", default="", help="comma-separated (default: all found)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in SEEDS.read_text().splitlines()][: args.rows]
    prompts_by_task = tasks(rows)
    found = backends()
    chosen = [b for b in (args.backends.split(",") if args.backends else found) if b in found]
    print(f"load average before: {load(2)}; "
          f"rows per task: {len(rows)}; backends: {', '.join(chosen)}")
    table = []
    for name in chosen:
        backend = found[name]
        backend.load()  # loading is not timed
        for task in args.tasks.split(","):
            items = prompts_by_task[task]
            for constrained in (False, True):
                results, seconds, tokens = run_one(backend, task, items, constrained)
                figures = score(task, rows, [s for _, s, _, _ in items], results)
                table.append((name, task, "constrained" if constrained else "plain",
                              figures, tokens / seconds, seconds, os.getloadavg()[0]))
                print(f"  {name:<12} {task:<9} {table[-1][2]:<11} valid {figures['valid']:.0%} "
                      f"({seconds:.0f} s, load {table[-1][6]:.1f})", flush=True)
    print(f"\n{'backend':<12} {'task':<9} {'mode':<11} {'schema-valid':>12} {'verdicts':>9} "
          f"{'checker ok':>10} {'tokens/s':>9} {'seconds':>8} {'load':>5}")
    for name, task, mode, f, tps, seconds, after in table:
        pct = (lambda v: "-" if v is None else f"{v:.0%}")
        print(f"{name:<12} {task:<9} {mode:<11} {f['valid']:>12.0%} {pct(f['verdicts']):>9} "
              f"{pct(f['checker']):>10} {tps:>9.1f} {seconds:>8.1f} {after:>5.1f}")


if __name__ == "__main__":
    main()
