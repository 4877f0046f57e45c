"""Benchmark: does curation train a better model? The same fine-tune at the same budget on clean,
noisy and curated data, scored on all held-out rows with intervals and paired tests.

Conditions: ``clean`` (the seeds and their column swaps), ``noisy`` (faults injected at known
rates, ``--rates``), ``curated`` (the spec's deterministic stages, less ``--skip``), ``suspects``
(then `SuspectFilter`; ``--no-suspects``) and ``llm`` (``--llm``: then the spec's judge and
repair, at ``OPENAI_BASE_URL``). Each trains ``--train-seeds`` times on exactly ``--rows`` rows
for ``--steps`` steps; scored by the gold answer's loss and greedy answers' validity, atom F1 and
exact match beside the degenerate answers, then paired; the record goes to ``OUT/outcome.json``.
About 2.5 hours on two cores (``--threads 1`` on a shared machine); ``--quick`` trains a tiny
random model in minutes (the test suite runs it). bench/README.md has the method.

    .venv/bin/python bench/outcome.py --threads 1
    .venv/bin/python bench/outcome.py --no-suspects --threads 1 --out runs/outcome-abc
    OPENAI_BASE_URL=... .venv/bin/python bench/outcome.py --llm
    .venv/bin/python bench/outcome.py --quick --out runs/outcome-quick
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from benchkit import ROOT, best_of, load, script_parser
from stage_accuracy import parse_rates
from suspects import suspect_stage
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from curate import Judge, Repair
from curate.llm import use_default_cache_path
from curate.llm.backends import SMOLLM2_FILE, smollm2_path
from curate.pipeline.spec import load_spec
from curate.stats import interval, mcnemar_exact, paired_difference
from examples.honeycomb import backends, baselines, evaluate, metrics
from examples.honeycomb.faults import DEFAULT_RATES
from examples.honeycomb.stage_accuracy import (CLEAN, LABEL, faulted_table, format_accuracy, in_order,
                                               recall_at, spec_stages, stage_accuracy)
from train.answer_loss import answer_losses
from train.config import load_config
from train.loop import train
from train.model import load_tokenizer, load_trained

SPEC = ROOT / "examples/honeycomb/spec.py"
EVAL = ROOT / "examples/honeycomb/data/eval.jsonl"
BASE = ("clean", "noisy", "curated")
PAIRS = (("curated", "noisy"), ("suspects", "curated"), ("clean", "curated"), ("llm", "curated"))
FULL = dict(rows=200, steps=48, micro_batch=2, seq_len=1024, lr=1e-3, train_seeds=2, generate_seeds=1,
            max_tokens=160, folds=2, suspect_epochs=1.0, suspect_share=0.1, fault_seed=0, eval_rows=0)
QUICK = dict(FULL, rows=16, steps=2, seq_len=768, lr=1e-2, max_tokens=8, eval_rows=24)
HELP = {"generate_seeds": "how many of the --train-seeds models also give greedy answers (the loss uses all)",
        "eval_rows": "held-out rows scored: 0 = all 209 of eval.jsonl, else the first N (the three schemas mixed)"}


# -- the training sets ------------------------------------------------------------------------------
def build_conditions(settings: dict, args, model: dict, out: Path) -> tuple[dict, dict]:
    """``({condition: table}, {"stage_accuracy", "suspects"})``: the unique rows of each."""
    noisy = faulted_table(args.rates or DEFAULT_RATES, seed=settings["fault_seed"])
    sets = {"clean": faulted_table({}, seed=settings["fault_seed"]), "noisy": noisy}
    stages = spec_stages()
    records = stage_accuracy(noisy, stages)
    print(format_accuracy(records, noisy), flush=True)
    skipped = set(args.skip.split(",")) if args.skip else set()
    sets["curated"], _, _ = in_order(noisy, [s for s in stages if s.name not in skipped])
    extra = {"stage_accuracy": records, "skipped": sorted(skipped)}
    if args.suspects:
        _say("the suspect filter")
        sets["suspects"], extra["suspects"] = suspect_filtered(sets["curated"], settings, model, out)
    if args.llm:
        _say("the spec's judge and repair")
        with use_default_cache_path(out / "llm.sqlite"):  # replies reused by a rerun of this folder only
            sets["llm"], _, _ = in_order(sets["curated"], llm_stages())
    return sets, extra


def suspect_filtered(table: pd.DataFrame, settings: dict, model: dict, out: Path) -> tuple[pd.DataFrame, dict]:
    """The table less what `SuspectFilter` rejects, and its recall of each fault kind; read back
    from ``OUT/results/suspect-filter.json`` when the table, settings and model are unchanged."""
    table = table.reset_index(drop=True)
    names = ("folds", "suspect_epochs", "suspect_share")
    key = _digest({k: settings[k] for k in names}, model, table.to_json(orient="records", default_handler=str))
    saved = out / "results" / "suspect-filter.json"
    record = _read_back(saved, key, "suspect filter")
    if record is not None:
        return table.iloc[record["kept"]], record["found"]
    options = dict(folds=settings["folds"], epochs=settings["suspect_epochs"], lr=1e-3, lora_r=16, batch=4,
                   seed=0, clean_share=settings["suspect_share"], template="question")
    tiny = {"model": model["model"], "gguf_file": None, "max_steps": 2} if model else {}
    result = suspect_stage(argparse.Namespace(**options), **tiny).run(table)
    kept = sorted(result.kept.index)  # positions: the index was reset above
    scored = pd.concat([result.kept, result.rejected], ignore_index=True)
    found = recall_at(scored["_answer_loss"], scored[LABEL], settings["suspect_share"])
    print("suspect filter (mean answer NLL, out of fold) at "
          f"{settings['suspect_share']:.0%} of clean rows removed: AUC {found['auc']:.2f}; " +
          ", ".join(f"{k} {v[0]:.0%} [{v[1]:.0%},{v[2]:.0%}]" for k, v in found.items()
                    if k not in ("threshold", "auc")), flush=True)
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"key": key, "kept": kept, "found": found}, default=str))
    return table.iloc[kept], found


def llm_stages() -> list:
    """The spec's judge and repair (pointed at the configured endpoint) and the checker after."""
    spec = load_spec(SPEC).stages
    return [s for s in spec if isinstance(s, (Judge, Repair)) or s.name == "assertions_after_repair"]


def budget(table: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Exactly ``rows`` rows: every unique row as often as the others (within one), shuffled."""
    whole, rest = divmod(rows, len(table))
    extra = table.sample(n=rest, random_state=seed)
    return pd.concat([table] * whole + [extra]).sample(frac=1, random_state=seed).reset_index(drop=True)


def composition(table: pd.DataFrame, rows: int) -> dict:
    kinds = table[LABEL].fillna(CLEAN).value_counts()
    return {"unique": len(table), "repeats": round(rows / len(table), 2), **kinds.to_dict()}


def write_rows(table: pd.DataFrame, export, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"messages": export.messages(row)}, ensure_ascii=False)
             for row in table.to_dict("records")]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- training and scoring --------------------------------------------------------------------------
def train_config(settings: dict, data: Path, out: Path, model: dict, seed: int):
    overrides = dict(data=str(data), val_fraction=0.0, max_steps=settings["steps"],
                     micro_batch_size=settings["micro_batch"], grad_accum=1, max_seq_len=settings["seq_len"],
                     lr=settings["lr"], warmup_ratio=0.05, packing=True, seed=seed, eval_every=0,
                     save_every=0, log_every=10, output_dir=str(out), resume=True, assertion_eval=None,
                     **model)
    return load_config(ROOT / "train/configs/honeycomb.yaml", overrides)


def train_one(cfg) -> dict:
    seconds, result = best_of(lambda: train(cfg))
    return {"adapter": result["adapter_dir"], "minutes": round(seconds / 60, 1),
            "tokens": _logged_tokens(Path(cfg.output_dir))}


def _logged_tokens(folder: Path) -> int | None:
    """The training tokens of a finished run, from its last logged step."""
    tokens = None
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        tokens = json.loads(line).get("tokens", tokens)
    return tokens


def gold_losses(cfg, adapter: str, conversations: list) -> list[float]:
    model = load_trained(cfg, adapter).eval()
    return answer_losses(model, load_tokenizer(cfg), conversations, cfg.template, cfg.eot_token)


def answers(cfg, adapter: str, rows: list[dict], max_tokens: int) -> list[dict]:
    """Greedy first answers to the held-out rows, each assessed (`metrics.assess`)."""
    report = evaluate.evaluate(backends.model_generator(cfg, adapter, max_tokens), rows, attempts=1)
    return [metrics.assess(record["first"], row) for record, row in zip(report["predictions"], rows)]


def run_condition(name: str, table: pd.DataFrame, settings: dict, out: Path, model: dict, held: dict) -> dict:
    """Train every seed on the condition's budgeted rows; the gold loss of each, answers of the first.
    A condition whose training rows, settings and held-out rows are unchanged is read back from
    ``OUT/results/NAME.json`` instead of being trained again."""
    data = [write_rows(budget(table, settings["rows"], seed), held["export"],
                       out / "data" / name / f"train-seed{seed}.jsonl") for seed in range(settings["train_seeds"])]
    key = _digest(settings, model, [path.read_bytes() for path in data], held["conversations"])
    saved = out / "results" / f"{name}.json"
    record = _read_back(saved, key, name)
    if record is not None:
        return record
    runs, losses, assessed = [], [], None
    for seed, rows in enumerate(data):
        cfg = train_config(settings, rows, out / "train" / name / f"seed{seed}", model, seed)
        _say(f"training {name}, seed {seed}")
        runs.append(train_one(cfg))
        losses.append(gold_losses(cfg, runs[-1]["adapter"], held["conversations"]))
        if seed < settings["generate_seeds"]:
            _say(f"generating with {name}, seed {seed}")
            assessed = answers(cfg, runs[-1]["adapter"], held["rows"], settings["max_tokens"])
    per_row = [sum(values) / len(values) for values in zip(*losses)]
    result = {"key": key, "runs": runs, "loss_per_seed": [sum(v) / len(v) for v in losses], "loss_rows": per_row,
              "assessed": assessed}
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, default=str))
    return result


def _read_back(saved: Path, key: str, what: str) -> dict | None:
    """The record saved at ``saved`` when it was made from the same inputs (``key``), else None."""
    record = json.loads(saved.read_text()) if saved.exists() else None
    if record is None or record.get("key") != key:
        return None
    _say(f"{what}: reusing {saved}")
    return record


def _digest(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the report -------------------------------------------------------------------------------------
def summaries(results: dict, groups: list) -> dict:
    out = {}
    for name, r in results.items():
        out[name] = {"loss": interval(r["loss_rows"], groups).as_dict(),
                     "loss_per_seed": [round(v, 4) for v in r["loss_per_seed"]],
                     "tokens": [run["tokens"] for run in r["runs"]],
                     "minutes": [run["minutes"] for run in r["runs"]],
                     "generation": metrics.summarize(r["assessed"], groups)}
    return out


def paired(results: dict, groups: list) -> list[dict]:
    """Each pair's differences (first minus second) with intervals; McNemar on pass/fail."""
    out = []
    for first, second in PAIRS:
        if first not in results or second not in results:
            continue
        a, b = results[first], results[second]
        record = {"pair": f"{first} - {second}",
                  "loss": paired_difference(a["loss_rows"], b["loss_rows"], groups).as_dict()}
        measures = {"atom_f1": "atom_f1", "validity": "valid", "exact_match": "exact"}
        both = {name: [[x[key] for x in r["assessed"]] for r in (a, b)] for name, key in measures.items()}
        record.update({name: paired_difference(*pair, groups).as_dict() for name, pair in both.items()})
        record.update({f"mcnemar_{name}": mcnemar_exact(*both[name]) for name in ("validity", "exact_match")})
        out.append(record)
    return out


def print_report(figures: dict, pairs: list[dict], composed: dict, rows: list[dict]) -> dict:
    print(f"{'condition':<10} {'unique':>6} {'x':>5}  composition")
    for name, parts in composed.items():
        kinds = ", ".join(f"{k} {v}" for k, v in parts.items() if k not in ("unique", "repeats"))
        print(f"{name:<10} {parts['unique']:>6} {parts['repeats']:>5}  {kinds}")
    print(f"\n{'condition':<10} {'gold-answer loss [95% CI]':<28} per training seed       tokens per seed")
    for name, f in figures.items():
        print(f"{name:<10} {_shown(f['loss']):<28} {', '.join(f'{v:.3f}' for v in f['loss_per_seed']):<23} "
              f"{', '.join(str(t) for t in f['tokens'])}")
    degenerate = metrics.baseline_summaries(rows, evaluate.load_rows(baselines.SEEDS_PATH))
    metrics.print_table("held-out answers (greedy, first training seed) beside degenerate answers",
                        {**{name: f["generation"] for name, f in figures.items()}, **degenerate})
    print("paired differences, first minus second (loss: negative is better), cluster bootstrap 95%; "
          "McNemar exact p on validity and exact match")
    for p in pairs:
        print(f"{p['pair']:<20} loss {_shown(p['loss'])}  atom F1 {_shown(p['atom_f1'])}  "
              f"validity {_shown(p['validity'])} p={p['mcnemar_validity']['p_value']:.3f}  "
              f"exact {_shown(p['exact_match'])} p={p['mcnemar_exact_match']['p_value']:.3f}")
    return {label: metrics.headline(summary) for label, summary in degenerate.items()}


def _shown(f: dict) -> str:
    return f"{f['value']:+.3f} [{f['low']:+.3f}, {f['high']:+.3f}]"


def _say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what} (load average {load(1)})", flush=True)


def _quick_model(out: Path) -> dict:
    """A tiny random Llama with SmolLM2's tokenizer (chat template included)."""
    folder = out / "tiny-model"
    if not (folder / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(smollm2_path(), gguf_file=SMOLLM2_FILE)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return {"model": str(folder), "gguf_file": None, "precision": "no"}


def parse_args(argv=None):
    parser = script_parser(__doc__)
    parser.add_argument("--out", default="runs/outcome")
    parser.add_argument("--quick", action="store_true", help="a tiny random model, a few rows: seconds")
    parser.add_argument("--suspects", action=argparse.BooleanOptionalAction, default=True,
                        help="the suspect-filter condition (default: on)")
    parser.add_argument("--llm", action="store_true", help="also the spec's judge and repair (OPENAI_BASE_URL)")
    parser.add_argument("--rates", type=parse_rates, help="kind=share,... over faults.DEFAULT_RATES")
    parser.add_argument("--skip", default="rouge_dedup", help="deterministic stages the curated set leaves out")
    parser.add_argument("--threads", type=int, help="torch threads (1 is faster on a loaded machine)")
    parser.add_argument("--conditions", default=",".join(BASE),
                        help=f"which of {', '.join(BASE)} to train (--suspects and --llm add theirs)")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=HELP.get(key))
    args = parser.parse_args(argv)
    if args.llm and not os.environ.get("OPENAI_BASE_URL"):
        parser.error("--llm needs an endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY, CURATE_LLM_MODEL)")
    args.conditions = [c for c in args.conditions.split(",") if c]
    if not args.conditions or set(args.conditions) - set(BASE):
        parser.error(f"--conditions: a comma-separated list of {', '.join(BASE)}")
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    if settings["generate_seeds"] > settings["train_seeds"] or settings["train_seeds"] < 1:
        parser.error("need 1 <= --generate-seeds <= --train-seeds")
    return args, settings


def main(argv=None) -> int:
    args, settings = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, load_start = time.time(), os.getloadavg()
    print(f"load average: {load()}; cpus: {os.cpu_count()}")
    print(f"settings: {json.dumps(settings)}; rows x steps: {settings['rows']} rows, {settings['steps']} steps of "
          f"{settings['micro_batch']} packed sequences of up to {settings['seq_len']} tokens", flush=True)
    model = _quick_model(out) if args.quick else {}
    rows = evaluate.load_rows(EVAL, settings["eval_rows"] or None)  # 0: all
    export = load_spec(SPEC).export
    held = {"rows": rows, "export": export, "conversations": [export.messages(row) for row in rows]}
    sets, extra = build_conditions(settings, args, model, out)
    composed = {name: composition(table, settings["rows"]) for name, table in sets.items()}
    chosen = [name for name in sets if name in args.conditions or name in ("suspects", "llm")]
    results = {name: run_condition(name, sets[name], settings, out, model, held) for name in chosen}
    groups = [row.get("group") for row in rows]
    figures, pairs = summaries(results, groups), paired(results, groups)
    degenerate = print_report(figures, pairs, composed, rows)
    load_end = os.getloadavg()
    record = {"settings": settings, "eval_rows": len(rows), "load_average": {"start": load_start, "end": load_end},
              "minutes": round((time.time() - start) / 60, 1), "composition": composed,
              "conditions": {name: {**f, "generation": {k: f["generation"][k] for k in ("intervals", "rows",
                                                                                          "failures_per_rule")}}
                             for name, f in figures.items()},
              "pairs": pairs, "baselines": degenerate, **extra}
    (out / "outcome.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"{record['minutes']} min; load average now {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; "
          f"written: {out / 'outcome.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
