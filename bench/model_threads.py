"""Benchmark: the in-process models on a busy machine: torch's default threads vs the
threads chosen from the cores free (``curate.core.threads``), and peak memory.

The work: a stage of the Honeycomb spec (``--stage``: ``llm_reword``, Augment on the embedded
SmolLM2-135M-Instruct; or ``judge``, longer prompts) on the first ``--seeds`` seeds, each run in
a fresh process with an empty cache, while ``--busy`` processes spin a core each. Arms, in turns:
``default`` (``CURATE_THREADS`` pinned to torch's default) against ``chosen`` (the library's
choice); ``one_batch`` (a batch of 16 in one prompt pass) against ``budget`` (the backend's
``batch_tokens``) for peak memory; ``whole_prompts`` against ``shared_start`` (the start a
batch's prompts share computed once) for the prompt pass. Printed per run: seconds (model load
excluded), threads, peak RSS, load average; then each arm's best and the ratio.

    .venv/bin/python bench/model_threads.py [--seeds 12] [--busy 1] [--rounds 2]
    .venv/bin/python bench/model_threads.py --stage judge --seeds 16 --busy 0 --arms one_batch,budget
    .venv/bin/python bench/model_threads.py --stage judge --seeds 16 --busy 0 --arms whole_prompts,shared_start
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchkit import ROOT, child_json, in_turns, load, script_parser

CHILD = """
import json, os, resource, sys, time
import pandas as pd
import torch
from curate.pipeline.spec import load_spec
from curate.core.table import assign_ids
from curate.core.threads import model_threads

pipeline = load_spec("examples/honeycomb/spec.py")
reword = next(s for s in pipeline.stages if s.name == "{stage}")
reword.llm.backend.batch_tokens = int(os.environ.get("BENCH_BATCH_TOKENS", reword.llm.backend.batch_tokens))
import curate.llm.backends.decode as decode
decode.SHARED_MIN = int(os.environ.get("BENCH_SHARED_MIN", decode.SHARED_MIN))
rows = assign_ids(pd.read_json("examples/honeycomb/data/seeds.jsonl", lines=True).head({seeds}))
if "{stage}" == "judge":  # the spec's judge reads generated rows only: the seeds' questions, reworded
    rows["nlq"] = "please tell me " + rows["nlq"]
reword.llm.backend.load()
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
result = reword.run(rows)
print(json.dumps({{"seconds": time.perf_counter() - start, "threads": model_threads(),
                   "torch_default": torch.get_num_threads(), "rows": len(result.kept),
                   "loaded_mib": loaded,
                   "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(seeds: int, env: dict, stage: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "CURATE_CACHE_DIR": cache, **env}
        run = child_json([sys.executable, "-c", CHILD.format(seeds=seeds, stage=stage)], stage,
                         cwd=ROOT, env=env)
    return {**run, "load": os.getloadavg()[0]}


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--busy", type=int, default=1, help="processes spinning a core each")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--arms", default="default,chosen",
                        help="which arms to run, comma-separated: default, chosen, one_batch, "
                             "budget, whole_prompts, shared_start")
    parser.add_argument("--stage", default="llm_reword", help="the spec's stage to run (llm_reword, judge)")
    args = parser.parse_args()
    import torch

    default = str(torch.get_num_threads())
    arms = {"default": {"CURATE_THREADS": default}, "chosen": {},
            "one_batch": {"BENCH_BATCH_TOKENS": str(10 ** 9)}, "budget": {},
            "whole_prompts": {"BENCH_SHARED_MIN": str(10 ** 9)}, "shared_start": {}}
    arms = {name: arms[name] for name in args.arms.split(",")}
    print(f"cpus {os.cpu_count()}, torch's default threads {default}, {args.busy} busy "
          f"process(es); load average before: {load(1)}")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.busy)]
    runs = {name: [] for name in arms}
    try:
        time.sleep(5 if args.busy else 0)  # let the spinners show in the runnable count
        for turn in range(args.rounds):
            for name in in_turns(arms, turn):
                run = child(args.seeds, arms[name], args.stage)
                runs[name].append(run)
                print(f"  {name:<8} {run['seconds']:7.1f} s  threads {run['threads']}  "
                      f"rows {run['rows']}  peak {run['peak_mib']:.0f} MiB (after loading "
                      f"{run['loaded_mib']:.0f})  load {run['load']:.2f}", flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    best = {name: min(r["seconds"] for r in found) for name, found in runs.items()}
    first, second = (list(best) + [None])[:2]
    ratio = f"; {second}/{first} {best[second] / best[first]:.2f}" if second else ""
    peaks = {name: max(r["peak_mib"] for r in found) for name, found in runs.items()}
    print("peak memory: " + ", ".join(f"{n} {m:.0f} MiB" for n, m in peaks.items()) +
          (f"; {second}/{first} {peaks[second] / peaks[first]:.2f}" if second else ""))
    print(f"\nbest: {', '.join(f'{n} {s:.1f} s' for n, s in best.items())}{ratio}; load "
          f"average after {load(1)}")


if __name__ == "__main__":
    main()
