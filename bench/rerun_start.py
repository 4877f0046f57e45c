"""Benchmark: the command line's own cost, start-up included: an unchanged rerun and --help.

    .venv/bin/python bench/rerun_start.py [--rows 100000] [--rounds 5]
    .venv/bin/python bench/rerun_start.py --arm before=../main --arm now=.

The spec is bench/runner_scale.py's (read -> filter -> exact dedup -> sample -> sharegpt).
Each arm (a checkout; default: this one) runs it once into its own folder, then every round
times, arm after arm (the order reversed every other round, so contention from other work
hits every arm alike): ``python -c pass`` (the interpreter's own start, the floor), ``python
-m curate.pipeline --help`` and the unchanged rerun. It prints the best and the median of
each, the rerun as a ratio to the first arm's, the load average of every round, and whether
``--help`` and the rerun imported pandas (``-X importtime``). Goals: the rerun <= 0.3 s at
100k rows, and --help without pandas.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import ROOT, in_turns, script_parser
from runner_scale import BATCHED, SPEC, make_source, parse_arm, timed


def imports_pandas(cmd: list[str], arm) -> bool:
    where, env = arm
    env = {**os.environ, **env, "PYTHONPATH": str(where)}
    err = subprocess.run([sys.executable, "-X", "importtime", *cmd], cwd=where, env=env,
                         capture_output=True, text=True).stderr
    return any(line.split("|")[-1].strip().split(".")[0] == "pandas"
               for line in err.splitlines() if line.startswith("import time:"))


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arm", action="append", default=[],
                        help="NAME=DIR[,VAR=VALUE...]: a checkout to measure (repeatable)")
    args = parser.parse_args()
    arms = dict(map(parse_arm, args.arm)) or {"this": (ROOT, {})}
    work = Path(tempfile.mkdtemp(prefix="rerun_start_"))
    source, spec = work / "source.jsonl", work / "spec.py"
    make_source(source, args.rows)
    spec.write_text(SPEC.format(filter=BATCHED, source=str(source), sample=args.rows // 2))
    commands = {"python -c pass": lambda out: ["-c", "pass"],
                "--help": lambda out: ["-m", "curate.pipeline", "--help"],
                "unchanged rerun": lambda out: ["-m", "curate.pipeline", str(spec), "--out",
                                                str(out), "--no-progress"]}
    for name, arm in arms.items():
        timed([sys.executable, *commands["unchanged rerun"](work / name)], arm)  # the first run
    times = {(a, c): [] for a in arms for c in commands}
    loads = []
    for turn in range(args.rounds):
        for name in in_turns(arms, turn):
            for what, cmd in commands.items():
                times[name, what].append(timed([sys.executable, *cmd(work / name)],
                                               arms[name])[0])
        loads.append(os.getloadavg()[0])
    print(f"{args.rows:,} rows, {args.rounds} rounds; load average (1 min) each round: "
          f"{' '.join(f'{x:.2f}' for x in loads)}; cpus: {os.cpu_count()}\n")
    first = next(iter(arms))
    print(f"{'arm':<10} {'command':<16} {'best s':>7} {'median s':>9} {'vs ' + first:>10} "
          f"{'imports pandas':>15}")
    for name, arm in arms.items():
        for what, cmd in commands.items():
            best, base = min(times[name, what]), min(times[first, what])
            pandas = "-" if what == "python -c pass" else \
                ("yes" if imports_pandas(cmd(work / name), arm) else "no")
            print(f"{name:<10} {what:<16} {best:>7.3f} {statistics.median(times[name, what]):>9.3f}"
                  f" {best / base:>10.2f} {pandas:>15}")


if __name__ == "__main__":
    main()
