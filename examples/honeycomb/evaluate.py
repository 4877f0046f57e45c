"""Evaluate a model on the held-out Honeycomb set, with and without self-healing.

    python -m examples.honeycomb.evaluate --backend embedded --out runs/eval
    python -m examples.honeycomb.evaluate --backend endpoint --model NAME [--base-url URL]
    python -m examples.honeycomb.evaluate --backend adapter --adapter runs/train/adapter \\
        [--train-config train/configs/honeycomb.yaml]

Each row's prompt is the fine-tuning prompt (system text, ``NLQ: "..."``, ``Columns: [...]``).
The first answer is scored as is; then failing answers are sent back with the checker's
failures, up to ``--attempts`` calls in all (self-healing). Reported for both: the validity
rate, the failures per rule, and exact match with the gold query (order-insensitive
canonical JSON). Writes ``evaluation.json`` and ``predictions.jsonl`` into ``--out``.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from assertions import heal_many
from assertions.honeycomb import canonical, check
from curate.errors import CurateError
from curate.io import read_table, write_json, write_jsonl
from curate.core.table import records
from examples.honeycomb.prompts import finetune_messages

EVAL_PATH = Path(__file__).parent / "data" / "eval.jsonl"


def same_query(output: str, gold) -> bool:
    """Exact match after canonicalisation (key order, list order where it does not matter)."""
    try:
        return canonical(output) == canonical(gold)
    except ValueError:
        return False


def score(outputs: list[tuple[str, tuple]], rows: list[dict]) -> dict:
    """Validity, exact match and failures per rule over one answer per row."""
    per_rule = Counter(rule for _, failures in outputs for rule in {f.rule for f in failures})
    valid = sum(not failures for _, failures in outputs)
    exact = sum(same_query(text, row["query"]) for (text, _), row in zip(outputs, rows))
    n = len(rows)
    return {"rows": n, "valid": valid, "validity_rate": round(valid / n, 4),
            "exact_match": exact, "exact_match_rate": round(exact / n, 4),
            "failures_per_rule": dict(per_rule.most_common())}


def evaluate(generate_many, rows: list[dict], attempts: int = 3) -> dict:
    """Run ``generate_many`` (a batch of conversations -> replies) over ``rows``."""
    checks = [lambda text, cols=row["columns"]: check(text, cols) for row in rows]
    prompts = [finetune_messages(row) for row in rows]
    results = heal_many(generate_many, checks, prompts, max_attempts=attempts)
    first = score([r.history[0] for r in results], rows)
    healed = score([r.history[-1] for r in results], rows)
    healed["mean_attempts"] = round(sum(r.attempts for r in results) / len(rows), 3)
    predictions = [{"nlq": row["nlq"], "gold": row["query"], "first": r.history[0][0],
                    "first_valid": not r.history[0][1], "final": r.output, "final_valid": r.valid,
                    "attempts": r.attempts, "final_failures": [f.message for f in r.failures]}
                   for row, r in zip(rows, results)]
    return {"single_attempt": first, f"self_healing_{attempts}": healed, "predictions": predictions}


# -- backends: each returns generate_many(conversations) -> list[str] ------------------------
def client_generator(llm, max_tokens: int):
    from curate.llm import Request

    def generate_many(conversations):
        results = llm.complete_many([Request(c, temperature=0.0, max_tokens=max_tokens)
                                     for c in conversations])
        return [getattr(r, "text", None) or "" for r in results]
    return generate_many


def adapter_generator(train_config: str, adapter: str, max_tokens: int, batch_size: int = 8):
    import torch

    from train.config import load_config
    from train.model import load_tokenizer, load_trained
    from train.templates import eot_id, render_prompt

    cfg = load_config(train_config)
    tokenizer = load_tokenizer(cfg)
    model = load_trained(cfg, adapter).eval()
    tokenizer.padding_side = "left"
    stop = eot_id(tokenizer, cfg.template, cfg.eot_token)

    def generate_many(conversations):
        texts = []
        for start in range(0, len(conversations), batch_size):
            batch = [render_prompt(c, tokenizer, cfg.template) for c in conversations[start:start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                     eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
            texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return [t.strip() for t in texts]
    return generate_many


def make_generator(args):
    if args.backend == "adapter":
        if not args.adapter:
            raise CurateError("--backend adapter needs --adapter DIR (a saved LoRA adapter)")
        return adapter_generator(args.train_config, args.adapter, args.max_tokens), f"adapter {args.adapter}"
    from curate.llm import LLM, default_backend

    if args.backend == "embedded":
        llm = LLM(backend=default_backend(), cache=args.cache)
    else:
        llm = LLM(args.model, base_url=args.base_url, concurrency=args.concurrency, cache=args.cache)
    return client_generator(llm, args.max_tokens), llm.model


def print_table(report: dict, label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"held-out evaluation: {label}")
    for col in ("mode", "rows", "valid", "exact match", "attempts", "top failing rules"):
        table.add_column(col)
    for mode, s in report.items():
        if not isinstance(s, dict) or "rows" not in s:
            continue
        rules = ", ".join(f"{k} {v}" for k, v in list(s["failures_per_rule"].items())[:3])
        table.add_row(mode, str(s["rows"]), f"{s['validity_rate']:.1%}", f"{s['exact_match_rate']:.1%}",
                      str(s.get("mean_attempts", 1)), rules)
    Console().print(table)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.honeycomb.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("embedded", "endpoint", "adapter"), default="embedded")
    p.add_argument("--model", help="model name at the endpoint (or env CURATE_LLM_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (or env OPENAI_BASE_URL)")
    p.add_argument("--adapter", help="saved LoRA adapter folder (--backend adapter)")
    p.add_argument("--train-config", default="train/configs/honeycomb.yaml",
                   help="the training config the adapter was trained with")
    p.add_argument("--data", default=str(EVAL_PATH), help="held-out rows (nlq, columns, query)")
    p.add_argument("--limit", type=int, help="evaluate the first N rows only")
    p.add_argument("--attempts", type=int, default=3, help="model calls per row with self-healing")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--no-cache", dest="cache", action="store_false", help="do not cache replies")
    p.add_argument("--out", default="runs/eval", help="folder for evaluation.json and predictions.jsonl")
    args = p.parse_args(argv)
    try:
        rows = records(read_table(args.data, json_columns=("columns", "query")
                                  if str(args.data).endswith(".csv") else ()))
        rows = rows[: args.limit] if args.limit else rows
        generate_many, label = make_generator(args)
        report = evaluate(generate_many, rows, attempts=args.attempts)
    except CurateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_jsonl(out / "predictions.jsonl", report.pop("predictions"))
    report = {"backend": args.backend, "model": label, "data": args.data, **report}
    write_json(out / "evaluation.json", report)
    print_table(report, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
