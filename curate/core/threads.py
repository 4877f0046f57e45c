"""How many CPU threads the in-process models (the embedded LLM, the sentence encoder) use.

torch spins one thread per core, and a step waits for any thread another job preempted, so
the models run on the cores free now: this process's cores (``os.sched_getaffinity``) less
the lower of the 1-minute load average and the tasks runnable now (less this one). At least
one; ``CURATE_THREADS=N`` sets the number instead.
"""
from __future__ import annotations

import contextlib
import os

from ..errors import CurateError

ENV = "CURATE_THREADS"


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_load() -> tuple[float, int | None]:
    """The 1-minute load average, and the tasks runnable now (``/proc/loadavg``; None
    where there is none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0, None
    try:
        with open("/proc/loadavg") as fh:
            return load, int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return load, None


def free_cores(cores: int, load: float, running: int | None) -> int:
    """The cores of ``cores`` that other work leaves free: it keeps busy the lower of the
    load average and the tasks runnable now besides the one asking. At least one."""
    busy = load if running is None else min(load, max(0, running - 1))
    return max(1, min(cores, int(cores - busy + 0.5)))


def model_threads() -> int:
    """Threads for an in-process model: ``CURATE_THREADS``, else the cores free now."""
    value = os.environ.get(ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise CurateError(f"{ENV} must be a whole number of threads, at least 1; got "
                              f"{value!r}")
        return int(value)
    return free_cores(usable_cores(), *machine_load())


@contextlib.contextmanager
def model_thread_limit():
    """Run torch inside on :func:`model_threads` threads; the previous number after."""
    import torch

    threads, before = model_threads(), torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if threads != before:
            torch.set_num_threads(before)
