"""One call's batches, from lines to replies: upload, create, poll, collect, resubmit.

Replies are cached and judged as online ones at batch prices; lines that failed for a
reason worth it go into a new batch, up to ``max_rounds``. A rerun adopts the recorded
batches that hold its requests. A create is recorded before it is sent and tags the batch
with its entry's id (``metadata.curate_batch``): a rerun that finds that intent, or a retry
of a create that got no answer, looks for the tagged batch in the provider's list first,
and creates none when the list cannot be read.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from ...progress import plain_line, task
from ..accounting import batch_price_of, cost_of
from ..credentials import one_line, redact_url, scrub
from ..dialects import looks_like_refusal
from ..online import Sender
from ..types import REQUEST_FAILED, Failure
from ..wire import request_body, usable
from .api import (BatchCallError, BatchesPending, BatchLost, StillRunning, batch_errors,
                  call_api, counts_of, find_batch)
from .lines import CHAT_URL, LineResult, input_line, missing_result, read_results, split_lines
from .state import BatchState, state_path_for

TERMINAL = ("completed", "failed", "expired", "cancelled")
CLOCK_SKEW = 600.0  # seconds a provider's batch times may differ from this machine's
UNANSWERED = (None, 502, 504)  # no answer from the provider itself: a create may have been made
FILE_TIMEOUT = 600.0  # seconds for uploading or downloading one batch file


@dataclass
class Job:
    """One batch of this call: its lines' keys, the ones it answers for, its ids."""

    keys: list[str]
    mine: set[str]
    round: int = 1
    payload: bytes | None = None
    id: str | None = None  # the local id of its entry in the batch record
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str = "new"
    create_until: float = 0.0  # a create sent before may still be made until then
    resumed: bool = False
    submitted: float = field(default_factory=time.time)
    counts: dict = field(default_factory=dict)
    cost: float = 0.0


class BatchRun:
    """The batches of one ``complete_many`` call: ``groups`` maps a cache key to the
    indices of its requests."""

    def __init__(self, llm, requests, groups, cache, usage, deliver):
        self.llm, self.options = llm, llm.batch
        self.requests, self.groups, self.cache = requests, groups, cache
        self.usage, self._deliver = usage, deliver
        self.state = BatchState(state_path_for(cache.path))
        self.endpoint = redact_url(llm.base_url)
        self.rng = random.Random()
        self.answered: set[str] = set()
        self.waiting: list[tuple[Job, str]] = []

    async def run(self) -> None:
        self.sender = Sender(self.llm, self.usage)
        self.client = self.sender.client
        try:
            jobs = self._adopt()
            covered = set().union(*(job.keys for job in jobs)) if jobs else set()
            jobs += await self._new_jobs([k for k in self.groups if k not in covered], 1)
            await asyncio.gather(*(self._drive(job) for job in jobs))
        finally:
            await self.sender.close()
        if self.waiting:
            raise BatchesPending(self._waiting_message())

    def _waiting_message(self) -> str:
        running = [(job, why) for job, why in self.waiting if job.batch_id]
        unsure = [(job, why) for job, why in self.waiting if not job.batch_id]
        parts = []
        if running:
            batches = ", ".join(f"{job.batch_id} ({job.status})" for job, _ in running)
            parts.append(f"{sum(len(job.mine) for job, _ in running)} request(s) are still "
                         f"in batch(es) {batches}: {running[0][1]}")
        if unsure:
            files = ", ".join(str(job.input_file_id) for job, _ in unsure)
            parts.append(f"{sum(len(job.mine) for job, _ in unsure)} request(s) are in batch "
                         f"input(s) {files}, which may already be batches, and the provider "
                         f"cannot say ({unsure[0][1]}); nothing was created again: run again "
                         f"when it answers")
        return (f"{'; '.join(parts)}; they are recorded in {self.state.path}, so running "
                f"again collects them without submitting anything twice")

    # -- building batches -----------------------------------------------------------------
    def _adopt(self) -> list[Job]:
        """Jobs for the recorded batches that hold requests of this call. Ended ones whose
        replies are all cached (a run killed after collecting, before forgetting) go."""
        jobs, claimed = [], set()
        for entry in self.state.of(self.endpoint, self.llm.model):
            keys = set(entry["keys"])
            if entry.get("status") in TERMINAL and \
                    len(self.cache.get_many(list(keys))) == len(keys):
                self.state.remove(entry["id"])
                continue
            if keys.isdisjoint(self.groups):
                continue
            mine = {k for k in entry["keys"] if k in self.groups and k not in claimed}
            claimed |= mine
            jobs.append(Job(list(entry["keys"]), mine, int(entry.get("round", 1)),
                            id=entry["id"], input_file_id=entry.get("input_file_id"),
                            batch_id=entry.get("batch_id"), status=entry.get("status", "?"),
                            create_until=entry.get("create_until", 0.0), resumed=True,
                            submitted=entry.get("created", time.time())))
        if jobs:
            plain_line(f"resuming {len(jobs)} recorded batch(es) from {self.state.path}",
                       always=True)
        return jobs

    async def _new_jobs(self, keys: list[str], round_: int) -> list[Job]:
        """The lines of ``keys`` split into batch files (not uploaded yet)."""
        if not keys:
            return []
        firsts = {k: self.requests[self.groups[k][0]] for k in keys}
        if any(r.schema is not None for r in firsts.values()):
            await self.sender.resolve_dialect()
        lines = [(k, input_line(k, request_body(self.llm.model, r,
                                                self.sender.state.dialect_for(r))))
                 for k, r in firsts.items()]
        chunks, too_large = split_lines(lines, self.options.max_requests, self.options.max_bytes)
        for key in too_large:
            self._fail(key, f"the request alone is larger than a batch input file may be "
                            f"(max_bytes={self.options.max_bytes})", round_)
        return [Job([k for k, _ in chunk], {k for k, _ in chunk}, round_,
                    payload=b"".join(line for _, line in chunk)) for chunk in chunks]

    # -- one batch, from upload to results ------------------------------------------------
    async def _drive(self, job: Job) -> None:
        try:
            if job.input_file_id is None:
                await self._upload(job)
            if job.batch_id is None:
                await self._create(job)
            batch = await self._poll(job)
            failed = await self._collect(job, batch)
        except BatchLost as lost:
            self.state.remove(job.id)
            return await self._retry(job, [(k, LineResult(reason=str(lost), retry=True))
                                           for k in job.mine])
        except BatchCallError as error:
            if job.batch_id is None and job.status != "creating":  # nothing can be running
                return self._give_up(job, error.reason)
            return self._wait_later(job, error.reason)
        except StillRunning:
            return self._wait_later(job, f"max_wait={self.options.max_wait:g}s ran out")
        self.state.remove(job.id)
        self._record(job)
        await self._retry(job, failed)

    async def _upload(self, job: Job) -> None:
        uploaded = await self._call("upload the batch input file",
                                    lambda: self.client.files.create(
                                        file=("curate-batch.jsonl", job.payload,
                                              "application/jsonl"), purpose="batch",
                                        timeout=max(self.llm.timeout, FILE_TIMEOUT)))
        job.input_file_id, job.status = uploaded.id, "uploaded"
        entry = self.state.add({"endpoint": self.endpoint, "model": self.llm.model,
                                "round": job.round, "bytes": len(job.payload),
                                "input_file_id": uploaded.id, "batch_id": None,
                                "status": "uploaded"}, job.keys)
        job.id, job.submitted, job.payload = entry["id"], entry["created"], None
        plain_line(f"batch input {uploaded.id}: {len(job.keys)} requests uploaded "
                   f"(round {job.round})")

    async def _create(self, job: Job) -> None:
        """Make the batch, unless a create sent before (by a killed run, or a try that
        timed out) made it already: the provider's list is read first, and when it cannot
        be read nothing is created (BatchCallError)."""
        batch = await self._made_before(job) if job.status == "creating" else None
        if batch is None:
            try:
                batch = await self._call("create the batch", lambda: self._send_create(job),
                                         before_retry=lambda: self._find(job))
            except BatchCallError as error:
                if error.status not in UNANSWERED:  # the provider said no: nothing was made
                    job.status = "uploaded"
                    self.state.update(job.id, status="uploaded")
                raise
        job.batch_id, job.status = batch.id, batch.status
        self.state.update(job.id, batch_id=batch.id, status=batch.status)

    async def _send_create(self, job: Job):
        """The create call, its intent recorded first: a run killed while it is in flight
        leaves a record that makes the next run look for the batch before making one."""
        job.status, job.create_until = "creating", time.time() + self.llm.timeout
        self.state.update(job.id, status="creating", create_until=job.create_until)
        return await self.client.batches.create(
            input_file_id=job.input_file_id, endpoint=CHAT_URL,
            completion_window=self.options.completion_window, metadata={"curate_batch": job.id})

    async def _made_before(self, job: Job):
        """The batch a create sent by an earlier run made, or None; looked for again until
        that call's time is up (the provider may make it after this run starts)."""
        if time.time() < job.create_until:
            plain_line(f"batch input {job.input_file_id}: the last run stopped while creating "
                       f"its batch; looking for it for up to "
                       f"{job.create_until - time.time():.0f} s", always=True)
        wait = self.options.poll_every
        while True:
            batch = await self._find(job)
            if batch is not None or time.time() >= job.create_until:
                return batch
            await asyncio.sleep(min(wait, max(0.0, job.create_until - time.time())))
            wait = min(wait * 1.5, self.options.max_poll_every)

    async def _find(self, job: Job):
        return await find_batch(self.llm, self.client, job.id, job.input_file_id,
                                job.submitted - CLOCK_SKEW, self.usage, self.rng)

    async def _poll(self, job: Job):
        interval, began, shown, first = self.options.poll_every, time.monotonic(), 0, True
        with task(f"batch {job.batch_id}", total=len(job.keys)) as bar:
            while True:
                batch = await self._retrieve(job)
                job.counts = counts_of(batch)
                done = job.counts["completed"] + job.counts["failed"]
                bar.advance(max(0, done - shown))
                shown = max(shown, done)
                bar.info(f"{batch.status} · {job.counts['completed']} done · "
                         f"{job.counts['failed']} failed")
                if batch.status != job.status or first:
                    job.status, first = batch.status, False
                    self.state.update(job.id, status=job.status, counts=job.counts)
                    plain_line(f"batch {job.batch_id}: {job.status}, {job.counts['completed']}/"
                               f"{len(job.keys)} completed, {job.counts['failed']} failed, "
                               f"{time.time() - job.submitted:.0f} s since submitted")
                if batch.status in TERMINAL:
                    return batch
                if self.options.max_wait is not None and \
                        time.monotonic() - began >= self.options.max_wait:
                    raise StillRunning()
                await asyncio.sleep(interval)
                interval = min(interval * 1.5, self.options.max_poll_every)

    async def _retrieve(self, job: Job):
        try:
            return await self._call(f"check batch {job.batch_id}",
                                    lambda: self.client.batches.retrieve(job.batch_id))
        except BatchCallError as error:
            if error.status == 404:
                raise BatchLost(f"the provider no longer knows batch {job.batch_id}") from None
            raise

    async def _collect(self, job: Job, batch) -> list[tuple[str, LineResult]]:
        """Cache and deliver the replies; return this call's lines that failed."""
        texts = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._call(f"download {file_id}", lambda f=file_id:
                                           self.client.files.content(
                                               f, timeout=max(self.llm.timeout, FILE_TIMEOUT)))
                texts.append(content.text)
        results, _ = read_results(texts, self.llm.model)
        known = self.cache.get_many([k for k, r in results.items() if r.completion])
        errors = [one_line(getattr(e, "message", "") or str(e)) for e in batch_errors(batch)]
        failed = []
        for key in job.keys:
            result = results.get(key)
            if result is not None and result.completion is not None:
                self._completed(job, key, result, first_time=key not in known)
            elif key in job.mine:
                if result is not None:
                    self.usage.add(requests=1)
                failed.append((key, result or missing_result(batch.id, batch.status, errors)))
        return failed

    def _completed(self, job: Job, key: str, result: LineResult, first_time: bool) -> None:
        completion = result.completion
        completion.text = scrub(completion.text, self.llm.secret.credential())  # echoed
        if first_time:  # a line collected before (a run killed while collecting) is paid
            self.cache.put(key, self.llm.model, completion.to_raw())
            price = batch_price_of(self.llm.model, self.llm.prices, self.options.prices,
                                   self.options.discount)
            cost = cost_of(self.llm.model, completion.prompt_tokens,
                           completion.completion_tokens, self.llm.prices, price=price)
            job.cost += cost
            self.usage.add(requests=1, batched=1, prompt_tokens=completion.prompt_tokens,
                           completion_tokens=completion.completion_tokens, cost_usd=cost)
        if key in self.groups and key not in self.answered:
            completion.attempts = job.round
            self._answer(key, usable(completion, self.usage))

    async def _retry(self, job: Job, failed: list[tuple[str, LineResult]]) -> None:
        """Failed lines worth it go into a new batch (within max_rounds); the rest fail."""
        again = []
        for key, result in failed:
            request = self.requests[self.groups[key][0]]
            if looks_like_refusal(result.status, result.reason) and \
                    self.sender.state.dialect_for(request) is not None:
                self.llm.endpoint.refuse(result.reason, self.sender.where)
                result.retry = True
            if result.retry and job.round < self.options.max_rounds:
                again.append(key)
                continue
            tries = f"{job.round} batch{'es' if job.round > 1 else ''}"
            self._fail(key, f"{result.reason} (in batch {job.batch_id}; gave up after {tries})"
                       if result.retry else f"{result.reason} (in batch {job.batch_id})",
                       job.round)
        if again:
            self.usage.add(retried=len(again))
            jobs = await self._new_jobs(again, job.round + 1)
            await asyncio.gather(*(self._drive(j) for j in jobs))

    # -- outcomes ---------------------------------------------------------------------------
    def _answer(self, key: str, result) -> None:
        if key in self.answered:
            return
        self.answered.add(key)
        for index in self.groups[key]:
            self._deliver(index, result)

    def _fail(self, key: str, reason: str, attempts: int) -> None:
        if key in self.answered:
            return
        self.usage.add(failed=1)
        self._answer(key, Failure(REQUEST_FAILED, one_line(reason, secret=self.llm.secret.reveal()),
                                  attempts=attempts))

    def _give_up(self, job: Job, reason: str) -> None:
        """Fail this call's requests of a batch that cannot be followed now; a recorded
        batch stays recorded, so a rerun takes it up again."""
        if job.id is not None:
            reason += f" (recorded in {self.state.path}; rerun to resume)"
        for key in sorted(job.mine):
            self._fail(key, reason, job.round)
        self._record(job)

    def _wait_later(self, job: Job, why: str) -> None:
        """A batch that is running but not followed further now (see BatchesPending)."""
        self.waiting.append((job, why))
        self._record(job)

    def _record(self, job: Job) -> None:
        """The batch in the stage's stats (``stats["batches"]``)."""
        self.usage.add_batch({
            "batch_id": job.batch_id, "input_file_id": job.input_file_id, "status": job.status,
            "round": job.round, "requests": len(job.keys),
            "completed": job.counts.get("completed", 0), "failed": job.counts.get("failed", 0),
            "cost_usd": round(job.cost, 6), "resumed": job.resumed,
            "seconds": round(time.time() - job.submitted, 3)})

    async def _call(self, what: str, make, before_retry=None):
        return await call_api(self.llm, what, make, self.usage, self.rng, before_retry)
