"""Work the runner does beside its stages: the source copy, checkpoints, the rejected rows.

Their time is mostly in Arrow, Parquet and zlib, which release the GIL, so on two cores they
cost little wall time. The runner waits for all of them before the manifest ("written last"
still marks a complete run), and a failed run lets those under way finish before it
removes what it wrote.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

WORKERS = 2


class BackgroundWork:
    def __init__(self, workers: int = WORKERS):
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="curate-write")
        self.futures: list[Future] = []

    def submit(self, fn, *args, **kwargs) -> Future:
        future = self.pool.submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def check(self) -> None:
        """Raise the first error of the work finished so far (a full disk stops the run at
        the next stage, not after all of them)."""
        for future in self.futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()

    def wait(self) -> None:
        """Wait for everything submitted; raise the first error, in submission order."""
        futures, self.futures = self.futures, []
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def close(self) -> None:
        """Let the work under way finish (its errors are dropped: the run failed already)."""
        for future in self.futures:
            future.cancel()
        self.pool.shutdown(wait=True)
        self.futures = []
