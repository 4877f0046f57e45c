"""Benchmark: the in-process models on a busy machine: torch's default threads vs the
threads chosen from the cores free (``curate.core.threads``), and peak memory.

    .venv/bin/python bench/model_threads.py [--seeds 12] [--busy 1] [--rounds 2]
    .venv/bin/python bench/model_threads.py --stage judge --seeds 16 --busy 0 --arms one_batch,budget

The work is the Honeycomb spec's rewording stage (``llm_reword``: ``Augment`` on the
embedded SmolLM2-135M-Instruct, 2 rewordings per seed) on the first ``--seeds`` seeds,
each run in a fresh process with an empty response cache. ``--busy`` other processes spin
a core each for the whole benchmark (the other job of a shared machine). Arms, in turns:
``default`` pins ``CURATE_THREADS`` to torch's own default (one thread per core, as before
the choice existed), ``chosen`` leaves the choice to the library. Printed per run: seconds
(the model load excluded), the threads used, the peak RSS of the process and the 1-minute
load average; then each arm's best and the ratio. The arms ``one_batch`` (every request of
a batch of 16 in one prompt pass, as before the budget) and ``budget`` (the embedded
backend's ``batch_tokens``) compare the peak memory of generating; ``--stage judge`` runs
the spec's judge on the seeds instead (longer prompts). The arms ``whole_prompts`` (every
prompt computed in full, as before) and ``shared_start`` (the start a batch's prompts share
computed once, the default) compare the time of the prompt pass:

    .venv/bin/python bench/model_threads.py --stage judge --seeds 16 --busy 0 --arms whole_prompts,shared_start
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
        done = subprocess.run([sys.executable, "-c", CHILD.format(seeds=seeds, stage=stage)], cwd=ROOT,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                                   "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                   "CURATE_CACHE_DIR": cache, **env})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
          f"process(es); load average before: {os.getloadavg()[0]:.2f}")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.busy)]
    runs = {name: [] for name in arms}
    try:
        time.sleep(5 if args.busy else 0)  # let the spinners show in the runnable count
        for turn in range(args.rounds):
            for name in (list(arms) if turn % 2 == 0 else list(arms)[::-1]):
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
          f"average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
