"""What the benchmarks share: the repository on the path, a parser that shows the docstring,
the load average, the machine, memory, best-of-N timing, child processes that answer in JSON,
arms taken in turns."""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first paragraph as the description, the rest after
    the options as written."""
    first, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(description=first, epilog=rest,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def load(values: int = 3) -> str:
    """The load average: the first ``values`` of its 1-, 5- and 15-minute figures."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()[:values])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}"


def memory_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory in MB; without /proc, the
    peak from ru_maxrss. Linux's ru_maxrss would carry over the parent's peak into a child
    started by fork and exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
        return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def best_of(fn, repeats: int = 1):
    """The fastest of ``repeats`` calls of ``fn`` in seconds (as ``timeit`` reports) and the
    last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


class ChildFailed(SystemExit):
    """A child process failed; uncaught, the script exits with the end of its stderr."""


def child_json(cmd: list[str], what: str, **options) -> dict:
    """The JSON object a child process prints on its last line; raises `ChildFailed` with the
    end of its stderr when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, **options)
    if done.returncode:
        raise ChildFailed(f"{what} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def in_turns(names, turn: int) -> list:
    """``names`` in order on even turns, reversed on odd ones: contention hits each alike."""
    return list(names) if turn % 2 == 0 else list(names)[::-1]
