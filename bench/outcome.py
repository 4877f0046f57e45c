"""Benchmark: does curated data train a better model? Seeds only, uncurated and curated
training sets at the same budget, the same fine-tune on each, scored on the held-out set.

1. Three training sets of exactly ``--rows`` rows each, each built by the pipeline runner
   (so each has its run folder, report and manifest under ``OUT/data/``):
   - ``seeds``: the Honeycomb seeds only, repeated and shuffled to the budget;
   - ``uncurated``: the augmentation output, the LLM's variations and the column swaps, with
     no checker, no dedup and no judge;
   - ``curated``: the whole example spec (``examples/honeycomb/spec.py``, every seed):
     augmentation, level-1 assertions, complexity band, Rouge-L, embedding and key-pair
     dedup, judge and repair, then the assertions again.
   The augmentation is the same stage with the same model in both, and its replies are
   shared through one response cache, so the two differ by curation only. A set smaller
   than the budget is repeated to it; a larger one is sampled (seeded).
2. The same LoRA fine-tune of the same base on each (``train/``: same steps, seed, learning
   rate, sequence length, packing).
3. The untuned base and each adapter scored on ``examples/honeycomb/data/eval.jsonl`` with
   ``examples.honeycomb.evaluate``: validity, canonical exact match and the per-part F1,
   with and without self-healing.

The default is sized for a CPU-only 2-core machine, about two hours when nothing else runs
(the chosen settings and the token arithmetic are printed first); ``--quick`` builds a tiny
random model and a loopback LLM and runs in a minute or two (the test suite runs it). The
held-out rows are never trained on and no prompt is tuned on their answers.

    .venv/bin/python bench/outcome.py                         # the full comparison
    .venv/bin/python bench/outcome.py --rows 200 --steps 40 --eval-rows 30
    .venv/bin/python bench/outcome.py --quick --out runs/outcome-quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = ROOT / "examples/honeycomb/spec.py"
SEEDS = ROOT / "examples/honeycomb/data/seeds.jsonl"
EVAL = ROOT / "examples/honeycomb/data/eval.jsonl"
CONDITIONS = ("seeds", "uncurated", "curated")
FULL = dict(rows=320, steps=80, micro_batch=4, grad_accum=1, seq_len=1024, lr=1e-3,
            eval_rows=67, attempts=3, max_tokens=256, variations=2, swaps=2)
QUICK = dict(rows=24, steps=4, micro_batch=2, grad_accum=1, seq_len=768, lr=1e-2,
             eval_rows=4, attempts=2, max_tokens=24, variations=1, swaps=1)


# -- the three training sets ------------------------------------------------------------------
def _load_spec(settings: dict, cache: Path):
    """The example spec at every seed, its LLM clients pointed at one shared cache."""
    os.environ["HONEYCOMB_DEMO_SEEDS"] = "0"
    os.environ["HONEYCOMB_VARIATIONS"] = str(settings["variations"])
    os.environ["HONEYCOMB_SWAPS"] = str(settings["swaps"])
    from curate.pipeline.spec import load_spec

    pipeline = load_spec(SPEC)
    for stage in pipeline.stages:
        if getattr(stage, "llm", None) is not None:
            stage.llm.cache = cache
    return pipeline


def _to_budget(path: Path, rows: int, seed: int = 0) -> tuple[Path, int]:
    """The export at ``path`` made exactly ``rows`` lines (repeated or sampled, shuffled)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    chosen = (lines * (rows // len(lines) + 1))[:rows] if len(lines) < rows else \
        rng.sample(lines, rows)
    rng.shuffle(chosen)
    target = path.with_name("train.jsonl")
    target.write_text("\n".join(chosen) + "\n")
    return target, len(lines)


def build_sets(settings: dict, out: Path) -> dict:
    """``{condition: {"train": path, "made": rows the pipeline exported, "run": folder}}``."""
    from curate import Pipeline, read_table

    spec = _load_spec(settings, out / "llm.sqlite")
    augment, swap = spec.stages[0], next(s for s in spec.stages if s.name == "column_swap")
    seeds = read_table(SEEDS).drop(columns="_source")
    repeated = seeds.sample(n=settings["rows"], replace=True, random_state=0)
    pipelines = {
        "seeds": Pipeline(name="seeds only", source=repeated.reset_index(drop=True), stages=[],
                          export=spec.export),
        "uncurated": Pipeline(name="uncurated", source=SEEDS, stages=[augment, swap],
                              export=spec.export),
        "curated": spec,
    }
    sets = {}
    for condition, pipeline in pipelines.items():
        folder = out / "data" / condition
        print(f"[{time.strftime('%H:%M:%S')}] building the {condition} set", flush=True)
        pipeline.run(folder, progress=False)
        train, made = _to_budget(folder / "export" / "sharegpt.jsonl", settings["rows"])
        sets[condition] = {"train": train, "made": made, "run": folder}
    return sets


# -- training and scoring ------------------------------------------------------------------------
def train_config(settings: dict, data: Path, out: Path, model: dict):
    from train.config import load_config

    overrides = dict(data=str(data), val_fraction=0.0, max_steps=settings["steps"],
                     micro_batch_size=settings["micro_batch"], grad_accum=settings["grad_accum"],
                     max_seq_len=settings["seq_len"], lr=settings["lr"], warmup_ratio=0.05,
                     packing=True, seed=0, eval_every=0, save_every=0, log_every=10,
                     output_dir=str(out), resume=True, assertion_eval=None, **model)
    return load_config(ROOT / "train/configs/honeycomb.yaml", overrides)


def train_one(settings: dict, condition: str, data: Path, out: Path, model: dict) -> dict:
    from train.loop import train

    cfg = train_config(settings, data, out / "train" / condition, model)
    start = time.perf_counter()
    result = train(cfg)
    minutes = (time.perf_counter() - start) / 60
    return {"adapter": result["adapter_dir"], "minutes": round(minutes, 1), "cfg": cfg,
            "tokens": result.get("tokens") or _logged_tokens(Path(cfg.output_dir))}


def _logged_tokens(folder: Path) -> int | None:
    """The training tokens of a finished run, from its last logged step."""
    tokens = None
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        tokens = record.get("tokens", tokens)
    return tokens


def score_one(settings: dict, label: str, out: Path, cfg, adapter: str | None) -> dict:
    """Held-out validity, exact match and part F1, first answer and self-healed."""
    from examples.honeycomb import evaluate

    rows = evaluate.load_rows(EVAL, limit=settings["eval_rows"])
    generate_many = evaluate.model_generator(cfg, adapter, settings["max_tokens"])
    report = evaluate.evaluate(generate_many, rows, attempts=settings["attempts"])
    folder = out / "eval" / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(
        {k: v for k, v in report.items() if k != "predictions"}, indent=1, default=str))
    return report


def _quick_model(out: Path) -> dict:
    """A tiny random Llama with SmolLM2's tokenizer (chat template included)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from curate.llm.backends import SMOLLM2_FILE, smollm2_path

    folder = out / "tiny-model"
    if not (folder / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(smollm2_path(), gguf_file=SMOLLM2_FILE)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return {"model": str(folder), "gguf_file": None, "precision": "no"}


# -- the report -------------------------------------------------------------------------------------
def table_rows(results: dict) -> list[dict]:
    rows = []
    for label, r in results.items():
        first, healed = r["report"]["single_attempt"], r["report"][
            next(k for k in r["report"] if k.startswith("self_healing"))]
        top = next(iter(first.get("failures_per_rule", {})), "")
        rows.append({"condition": label, "rows": r.get("rows", "-"), "made": r.get("made", "-"),
                     "train_tokens": r.get("tokens") or "-", "train_minutes": r.get("minutes", "-"),
                     "validity": first["validity_rate"], "validity_healed": healed["validity_rate"],
                     "exact_match": first["exact_match_rate"],
                     "exact_match_healed": healed["exact_match_rate"],
                     "part_f1": first["part_f1"], "part_f1_healed": healed["part_f1"],
                     "top_failing_rule": top})
    return rows


def print_table(rows: list[dict]) -> None:
    head = (f"{'condition':<10} {'rows':>5} {'made':>5} {'tokens':>8} {'min':>5} {'valid':>6} "
            f"{'healed':>6} {'exact':>6} {'healed':>6} {'partF1':>6} {'healed':>6}  top failing rule")
    print(head)
    for r in rows:
        print(f"{r['condition']:<10} {r['rows']!s:>5} {r['made']!s:>5} {r['train_tokens']!s:>8} "
              f"{r['train_minutes']!s:>5} {r['validity']:>6.2f} {r['validity_healed']:>6.2f} "
              f"{r['exact_match']:>6.2f} {r['exact_match_healed']:>6.2f} {r['part_f1']:>6.2f} "
              f"{r['part_f1_healed']:>6.2f}  {r['top_failing_rule']}")


def plan(settings: dict) -> None:
    per_step = settings["micro_batch"] * settings["grad_accum"] * settings["seq_len"]
    print(f"budget: {settings['rows']} rows per condition; {settings['steps']} steps x "
          f"{settings['micro_batch']} x {settings['grad_accum']} sequences of up to "
          f"{settings['seq_len']} packed tokens = at most {per_step * settings['steps']:,} "
          f"training tokens per condition ({per_step * settings['steps'] / max(settings['rows'], 1):.0f}"
          f" per row); held out: {settings['eval_rows']} rows, {settings['attempts']} calls each "
          f"with self-healing, {settings['max_tokens']} new tokens at most")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/outcome")
    parser.add_argument("--quick", action="store_true", help="a tiny random model and a loopback LLM")
    parser.add_argument("--conditions", default="base," + ",".join(CONDITIONS),
                        help="which to train and score (default: the untuned base and all "
                             "three); the others are left as they are")
    for key in FULL:
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(FULL[key]), default=None)
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average: {os.getloadavg()[0]:.2f}; cpus: {os.cpu_count()}")
    plan(settings)
    server = None
    if args.quick:
        server = _quick_endpoint()
    try:
        model = _quick_model(out) if args.quick else {}
        sets = build_sets(settings, out)
        results = {}
        base_cfg = train_config(settings, sets["seeds"]["train"], out / "train" / "base", model)
        chosen = args.conditions.split(",")
        unknown = sorted(set(chosen) - {"base", *CONDITIONS})
        if unknown:
            parser.error(f"unknown conditions {unknown}; known: base, {', '.join(CONDITIONS)}")
        if "base" in chosen:
            print(f"[{time.strftime('%H:%M:%S')}] scoring the untuned base", flush=True)
            results["base"] = {"report": score_one(settings, "base", out, base_cfg, None)}
        for condition in (c for c in CONDITIONS if c in chosen):
            print(f"[{time.strftime('%H:%M:%S')}] training on {condition}", flush=True)
            trained = train_one(settings, condition, sets[condition]["train"], out, model)
            report = score_one(settings, condition, out, trained["cfg"], trained["adapter"])
            results[condition] = {"report": report, "rows": settings["rows"],
                                  "made": sets[condition]["made"], "tokens": trained["tokens"],
                                  "minutes": trained["minutes"]}
    finally:
        if server is not None:
            server.stop()
    rows = table_rows(results)
    (out / "outcome.json").write_text(json.dumps({"settings": settings, "rows": rows,
                                                  "load_average": os.getloadavg()}, indent=1))
    print_table(rows)
    print(f"load average: {os.getloadavg()[0]:.2f}; written: {out / 'outcome.json'}")
    return 0


def _quick_endpoint():
    """A loopback chat server standing in for the augmentation and judge models."""
    from curate.testing import ScriptedServer, last_user_message

    def reply(body):
        text = last_user_message(body)
        if "Reword" in text:
            nlq = text.split('NLQ: "', 1)[1].split('"', 1)[0]
            return json.dumps({"nlq": f"please tell me: {nlq}"})
        if "corrected query" in text:
            return json.dumps({"query": {"calculations": [{"op": "COUNT"}]}})
        return json.dumps({"critique": "looks right", "outcome": "good"})

    server = ScriptedServer(reply, dialect="openai").start()
    os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="local",
                      CURATE_LLM_MODEL="scripted")
    return server


if __name__ == "__main__":
    sys.exit(main())
