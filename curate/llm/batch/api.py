"""Calls to the provider's Batch and Files APIs, retried like online requests
(:func:`call_api`), and the outcomes of following a batch as exceptions."""
from __future__ import annotations

import asyncio
import concurrent.futures
import random

from ...errors import CurateError
from ..credentials import redact_url
from ..online import Sender
from ..wire import Tries
from .state import BatchState, state_path_for


class BatchCallError(Exception):
    """A Batch or Files API call that failed for good (one line, the key scrubbed)."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


async def call_api(llm, what: str, make, usage=None, rng: random.Random | None = None,
                   before_retry=None):
    """``await make()``, retried on what is worth retrying; :class:`BatchCallError` else.
    ``before_retry()``, when given, is awaited before each retry: a result other than None
    is returned instead of calling again (a create that may have gone through)."""
    tries = Tries(llm, rng or random.Random(), what)
    while True:
        tries.count += 1
        try:
            if tries.count > 1 and before_retry is not None:
                found = await before_retry()
                if found is not None:
                    return found
            return await make()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every failure is classified; none escapes a stage
            tries.failed(error)
            delay = tries.delay()
            if delay is None:
                raise BatchCallError(tries.gave_up(), tries.status) from None
            if usage is not None:
                usage.add(retried=1)
            await asyncio.sleep(delay)


async def find_batch(llm, client, record_id: str, input_file_id: str | None, since: float,
                     usage=None, rng: random.Random | None = None):
    """The provider's batch made for the record entry ``record_id`` (its ``curate_batch``
    metadata; from ``input_file_id`` where the provider keeps no metadata), or None. The
    list is read page by page, newest first, down to the batches made before ``since``;
    a page that cannot be read raises :class:`BatchCallError`."""
    page = await call_api(llm, "list batches", lambda: client.batches.list(limit=100), usage,
                          rng)
    while True:
        for batch in page.data:
            tag = (getattr(batch, "metadata", None) or {}).get("curate_batch")
            if tag == record_id or (tag is None and batch.input_file_id == input_file_id):
                return batch
            if (getattr(batch, "created_at", None) or since) < since:
                return None
        if not page.has_next_page():
            return None
        page = await call_api(llm, "list batches", page.get_next_page, usage, rng)


class StillRunning(Exception):
    """The batch had not ended when ``max_wait`` ran out."""


class BatchesPending(CurateError):
    """Batches still in flight when this call stopped following them (``max_wait`` ran out,
    or the provider could not be reached); running the same call again collects them. Raised
    rather than erroring the rows, so no stage is checkpointed with paid work on its way."""


class BatchLost(Exception):
    """The provider does not know a recorded batch (404): its requests are submitted again."""


def counts_of(batch) -> dict:
    """A batch's ``request_counts`` as a plain dict."""
    counts = getattr(batch, "request_counts", None)
    return {name: int(getattr(counts, name, 0) or 0) for name in ("completed", "failed", "total")}


def batch_errors(batch) -> list:
    """A batch's own errors (why it failed validation), possibly empty."""
    return list(getattr(getattr(batch, "errors", None), "data", None) or [])


def cancel_batches(llm) -> list[str]:
    """Cancel the batches recorded in flight for this client's endpoint and model, and
    return their ids. A later run collects what they finished and submits the rest again."""
    cache = llm.open_cache() if llm.batch is not None else None
    if cache is None:
        return []
    state = BatchState(state_path_for(cache.path))
    ids = {e["id"]: e["batch_id"] for e in state.entries().values()
           if e.get("endpoint") == redact_url(llm.base_url) and e.get("model") == llm.model
           and e.get("batch_id")}

    async def cancel() -> list[str]:
        sender = Sender(llm, None)
        try:
            for local_id, batch_id in ids.items():
                batch = await call_api(llm, f"cancel batch {batch_id}",
                                       lambda b=batch_id: sender.client.batches.cancel(b))
                state.update(local_id, status=batch.status)
        finally:
            await sender.close()
        return list(ids.values())

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # safe inside a running loop
            return pool.submit(asyncio.run, cancel()).result()
    except BatchCallError as error:
        raise CurateError(f"cannot cancel the recorded batches: {error.reason}") from None
