"""Benchmark: the pipeline runner against plain pandas doing the same work, at scale.

The job, both sides on the same JSONL file: keep rows whose text is longer than 40 characters,
drop rows whose ``key`` repeats, sample half (seeded), write JSON lines. pandas does it in one
process (``read_json`` -> filter -> ``drop_duplicates`` -> ``sample`` -> ``to_json``); the runner
as ``python -m curate.pipeline spec.py --out DIR`` (Filter -> ExactDedup -> Sample -> ChatExport
into a fresh run folder, everything it writes included), then again on the unchanged spec: the
rerun, as the whole command's wall time (start and imports included) and as the seconds its
manifest records. Also ``ExactDedup(key).run(df)`` against ``df.drop_duplicates(key)`` (a text
key and a three-field key, the fastest of five calls each), the run folder's size against the
source's and each side's peak memory. Figures are ratios against pandas in the same run, beside
the load average. ``--arm NAME=DIR[,VAR=VALUE...]`` (repeated) runs the runner from that
checkout with those variables; ``--rounds N`` measures pandas then each arm, in turns.

    .venv/bin/python bench/runner_scale.py                    # 100k and 1M rows
    .venv/bin/python bench/runner_scale.py --sizes 10000 --rowwise
    .venv/bin/python bench/runner_scale.py --arm now=. --arm other=../wt-other --rounds 3
"""
from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchkit import ROOT, best_of, in_turns, load, script_parser

WORDS = ("latency error rate checkout payments auth search frontend inventory shipping "
         "billing gateway users catalog orders p99 p50 count sum heatmap region host pod "
         "route status deploy since yesterday hour week slow fast cold cache queue retries "
         "timeouts bytes spans traces root service endpoint customer tenant version").split()

SPEC = """\
from curate import ExactDedup, Filter, Pipeline, Sample, ChatExport

{filter}
pipeline = Pipeline(
    source={source!r},
    stages=[long_enough, ExactDedup("key"), Sample(n={sample}, seed=0)],
    export=ChatExport(system="Answer with the label.", human="{{text}}", gpt="label"),
)
"""
BATCHED = 'long_enough = Filter(lambda df: df["text"].str.len() > 40, batched=True, name="long_enough")'
ROWWISE = 'long_enough = Filter(lambda row: len(row["text"]) > 40, name="long_enough")'


def make_source(path: Path, n: int, seed: int = 0) -> None:
    """``n`` rows ``{text, key, n, label}``; about 15% of keys repeat an earlier one."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        keys: list[str] = []
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 16)))
            if keys and rng.random() < 0.15:
                key = rng.choice(keys)
            else:
                key = f"k{i:07d}-{rng.choice(WORDS)}"
                keys.append(key)
            fh.write(json.dumps({"text": text, "key": key, "n": rng.randint(0, 999),
                                 "label": rng.choice(("a", "b", "c"))}) + "\n")


def pandas_side(source: Path, out: Path, sample: int) -> float:
    code = textwrap.dedent(f"""
        import pandas as pd
        df = pd.read_json({str(source)!r}, lines=True)
        df = df[df["text"].str.len() > 40]
        df = df.drop_duplicates("key")
        df = df.sample(n=min({sample}, len(df)), random_state=0)
        df.to_json({str(out)!r}, orient="records", lines=True, force_ascii=False)
    """)
    return timed([sys.executable, "-c", code])


def timed(cmd: list[str], arm: tuple[Path, dict] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one child process (``os.wait4`` reports its own),
    run in the arm's checkout with its environment."""
    where, env = arm or (ROOT, {})
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
        [str(where), *filter(None, [env.get("PYTHONPATH")])])}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=where, stdout=subprocess.DEVNULL, stderr=err,
                                text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd[:4])}...\n"
                             f"{err.read()[-2000:]}")
    return seconds, usage.ru_maxrss // 1024


def run_seconds(out: Path) -> float:
    """What the run itself spent, as its manifest records it."""
    return json.loads((out / "manifest.json").read_text())["seconds"]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def runner_side(spec: Path, out: Path, arm=None) -> tuple[float, int]:
    return timed([sys.executable, "-m", "curate.pipeline", str(spec), "--out", str(out),
                  "--no-progress"], arm)


def parse_arm(text: str) -> tuple[str, tuple[Path, dict]]:
    """``NAME=DIR[,VAR=VALUE...]`` as ``(name, (checkout, environment))``."""
    name, _, rest = text.partition("=")
    folder, *assignments = rest.split(",")
    return name, (Path(folder).resolve(), dict(a.split("=", 1) for a in assignments))


def dedup_side(source: Path) -> dict:
    """ExactDedup vs drop_duplicates in one process, on the same table and keys, each the
    fastest of five calls."""
    from curate import ExactDedup, read_table
    from curate.core.table import assign_ids

    df = assign_ids(read_table(source))
    out = {}
    for label, keys in (("text key", ["key"]), ("3-field key", ["key", "label", "n"])):
        stage = ExactDedup(tuple(keys) if len(keys) > 1 else keys[0])
        base, pd_kept = best_of(lambda: df.drop_duplicates(keys), 5)
        ours, result = best_of(lambda: stage.run(df), 5)
        assert len(result.kept) == len(pd_kept), (len(result.kept), len(pd_kept))
        out[label] = (ours, base)
    return out


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--rowwise", action="store_true",
                        help="also run the spec with a row-wise predicate (a Python function "
                             "per row) instead of the batched one")
    parser.add_argument("--keep", help="keep the generated files in this folder")
    parser.add_argument("--arm", action="append", default=[],
                        help="NAME=DIR[,VAR=VALUE...]: run the runner side from this checkout "
                             "(repeat to compare; default: this checkout)")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per arm and size")
    args = parser.parse_args()
    arms = dict(map(parse_arm, args.arm)) or {"this": (ROOT, {})}
    work = Path(args.keep or tempfile.mkdtemp(prefix="runner_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {load()}  cpus: {os.cpu_count()}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        source = work / f"source_{n}.jsonl"
        if not source.exists():
            make_source(source, n)
        sample = n // 2
        variants = [("batched", BATCHED)] + ([("row-wise", ROWWISE)] if args.rowwise else [])
        for turn in range(args.rounds):
            pd_s, pd_mem = pandas_side(source, work / f"pandas_{n}.jsonl", sample)
            for arm in in_turns(arms, turn):
                for label, filt in variants:
                    spec = work / f"spec_{label}.py"
                    spec.write_text(SPEC.format(filter=filt, source=str(source), sample=sample))
                    out = work / f"run_{n}_{label}"
                    shutil.rmtree(out, ignore_errors=True)
                    first, mem = runner_side(spec, out, arms[arm])
                    first_in_run = run_seconds(out)
                    again, _ = runner_side(spec, out, arms[arm])
                    again_in_run = run_seconds(out)
                    size = folder_bytes(out) - folder_bytes(out / "cache")
                    rows.append((n, arm, label, pd_s, first, again, again_in_run / first_in_run,
                                 size / source.stat().st_size, pd_mem, mem,
                                 os.getloadavg()[0]))
        for key, (ours, base) in dedup_side(source).items():
            print(f"{n:>9,} rows  ExactDedup ({key}): {ours:.2f} s vs drop_duplicates "
                  f"{base:.2f} s = {ours / base:.1f}x")
    print(f"\n{'rows':>9}  {'arm':<10} {'filter':<9} {'pandas s':>9} {'runner s':>9} {'ratio':>6} "
          f"{'rerun s':>8} {'rerun/first':>11} {'in-run':>7} {'folder/src':>10} "
          f"{'pandas MiB':>10} {'runner MiB':>10} {'load':>5}")
    for n, arm, label, pd_s, first, again, in_run, size, pd_mem, mem, after in rows:
        print(f"{n:>9,}  {arm:<10} {label:<9} {pd_s:>9.2f} {first:>9.2f} {first / pd_s:>5.2f}x "
              f"{again:>8.2f} {again / first:>10.1%} {in_run:>6.1%} {size:>9.2f}x "
              f"{pd_mem:>10,} {mem:>10,} {after:>5.2f}")
    print("rerun/first: wall time of the whole command, Python's start and imports included; "
          "in-run: the\nseconds each run's manifest records (what the run itself spent); load: "
          "the 1-minute load average after the row.")
    if args.rounds > 1:
        for key in dict.fromkeys((n, arm, label) for n, arm, label, *_ in rows):
            ratios = [r[4] / r[3] for r in rows if r[:3] == key]
            print(f"{key[0]:>9,}  {key[1]:<10} {key[2]:<9} median ratio over "
                  f"{len(ratios)} rounds: {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}x-{max(ratios):.2f}x)")
    print(f"\nload average after: {load()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
