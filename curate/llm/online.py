"""Sending requests to an OpenAI-compatible endpoint, one HTTP call each, with bounded retries.

Besides retries, the sender keeps what it learns about the endpoint in an
:class:`EndpointState` shared by every call of one client: the structured-output dialect
(inferred once from ``/models`` when the client says ``auto``), whether the server refused
structured requests (then plain prompts are sent, and the client said so once), and whether
requests queue on the server (latency that grows with the number in flight: a single-slot
llama.cpp or Ollama server), in which case the client says so once and sends no more at
once than the server runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import statistics
import threading
import time

import openai

from .accounting import Usage, cost_of
from .credentials import redact_url, scrub
from .dialects import dialect_from_models, looks_like_refusal
from .limits import completion_bound, prompt_tokens
from .types import REQUEST_FAILED, Completion, Failure, Request
from .wire import Tries, completion_of, request_body

log = logging.getLogger("curate.llm")
QUEUE_SAMPLES = 6       # requests sent with QUEUE_IN_FLIGHT or more in flight before judging
QUEUE_IN_FLIGHT = 3
QUEUE_RATIO = 2.5       # their median latency over the fastest single request's
QUEUE_MIN_SECONDS = 0.5  # and at least this long: sub-second jitter is no queue


class EndpointState:
    """What one client has learned about its endpoint (shared across calls and threads)."""

    def __init__(self, dialect: str | None):
        self.dialect = dialect
        self.refused: str | None = None
        self.parallel: int | None = None
        self.samples: list[tuple[int, float]] = []
        self.lock = threading.Lock()

    def __getstate__(self) -> dict:  # picklable: a copy starts with a fresh lock
        return {**self.__dict__, "lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def observe(self, in_flight: int, seconds: float, where: str) -> None:
        """Record one request's latency; say once when requests queue on the server."""
        with self.lock:
            if self.parallel is not None:
                return
            self.samples.append((in_flight, seconds))
            busy = [s for n, s in self.samples if n >= QUEUE_IN_FLIGHT]
            if len(busy) < QUEUE_SAMPLES:
                return
            fastest = min(s for _, s in self.samples)
            ratio = statistics.median(busy) / max(fastest, 1e-6)
            if ratio < QUEUE_RATIO or statistics.median(busy) < QUEUE_MIN_SECONDS:
                self.samples.clear()  # judged parallel; keep watching with fresh samples
                return
            crowd = statistics.median(n for n, _ in self.samples if n >= QUEUE_IN_FLIGHT)
            self.parallel = max(1, round(crowd / ratio))
        log.warning(
            "curate: the endpoint %s seems to run about %d request(s) at a time: latency "
            "grows with the number in flight (median %.2fs with %d in flight vs %.2fs alone), "
            "so queued requests can time out. Sending at most %d at once from now on. Give "
            "the server more slots (llama.cpp: --parallel N; Ollama: OLLAMA_NUM_PARALLEL=N) "
            "or set LLM(concurrency=%d).", where, self.parallel, statistics.median(busy),
            round(crowd), fastest, self.parallel, self.parallel)

    def dialect_for(self, request: Request) -> str | None:
        """The dialect to ask for ``request``'s schema in, or None: it goes as a plain prompt."""
        if request.schema is None or request.response_format is not None or \
                self.refused is not None or self.dialect in (None, "off"):
            return None
        return self.dialect

    def refuse(self, reason: str, where: str) -> None:
        with self.lock:
            first = self.refused is None
            self.refused = reason
        if first:
            log.warning("curate: the endpoint %s refused a structured-output request (%s); "
                        "sending plain prompts from now on and validating the replies",
                        where, reason)


class Sender:
    """Sends requests through one ``AsyncOpenAI`` client (SDK retries off: ours are bounded,
    jittered, honour ``Retry-After`` and share a cooldown across requests)."""

    def __init__(self, llm, usage: Usage | None, concurrency: int = 1):
        self.llm, self.limiter, self.usage = llm, llm.limiter, usage
        self.semaphore = asyncio.Semaphore(concurrency)
        self.state: EndpointState = llm.endpoint
        self.rng = random.Random()
        self.in_flight = 0
        self.gate: asyncio.Semaphore | None = None
        self._resolving = asyncio.Lock()
        self.client = openai.AsyncOpenAI(base_url=llm.base_url, api_key=llm.secret.reveal(),
                                         max_retries=0, timeout=llm.timeout)

    async def close(self) -> None:
        await self.client.close()

    async def resolve_dialect(self) -> str:
        """The structured-output dialect, asking ``/models`` once when it is ``auto``."""
        if self.state.dialect is None:
            try:
                listing = json.loads(await self.client.get("/models", cast_to=str))
            except Exception:  # no listing: the default form, with a fallback on refusal
                listing = None
            self.state.dialect = dialect_from_models(listing, self.llm.base_url)
        return self.state.dialect

    def _where(self) -> str:
        return redact_url(self.llm.base_url) or "?"

    async def _post(self, body: dict) -> tuple[Completion, float, int]:
        if self.state.parallel is not None and self.gate is None:
            self.gate = asyncio.Semaphore(self.state.parallel)
        gate = self.gate or contextlib.nullcontext()
        async with self.semaphore, gate:
            self.in_flight += 1
            in_flight, start = self.in_flight, time.perf_counter()
            try:
                # The SDK's generic POST: same auth, headers, timeouts and error types as
                # chat.completions.create, without its per-call parameter transformation and
                # response models, which cost more CPU than the rest of a request at high
                # concurrency. The timeout counts from here, not while queued above.
                text = await self.client.post("/chat/completions", cast_to=str, body=body)
            finally:
                self.in_flight -= 1
        return completion_of(json.loads(text), self.llm.model), \
            time.perf_counter() - start, in_flight

    async def send(self, request: Request) -> Completion | Failure:
        """Try up to ``max_tries`` times; return the completion or a one-line failure."""
        llm = self.llm
        if request.schema is not None and self.state.dialect is None:
            async with self._resolving:
                await self.resolve_dialect()
        estimate = prompt_tokens(request, self.state.dialect_for(request) is not None)
        tries = Tries(llm, self.rng)
        while tries.count < llm.max_tries:
            tries.count += 1
            dialect = self.state.dialect_for(request)
            charged = self.limiter.prompt_charge(estimate)
            await self.limiter.acquire(charged + completion_bound(request))
            try:
                completion, seconds, in_flight = await self._post(
                    request_body(llm.model, request, dialect))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is classified; none escapes a stage
                self.usage.add(requests=1)
                tries.failed(error)
                if dialect is not None and looks_like_refusal(tries.status, tries.reason):
                    self.state.refuse(tries.reason, self._where())
                    tries.count -= 1  # the plain request is the same try
                    continue
                delay = tries.delay()
                if delay is None:
                    break
                if tries.status == 429:
                    self.limiter.cooldown(delay)  # everyone waits, not only this request
                self.usage.add(retried=1)
                await asyncio.sleep(delay)
                continue
            self.state.observe(in_flight, seconds, self._where())
            self.limiter.settle(estimate, charged, completion.prompt_tokens)
            completion.text = scrub(completion.text, llm.secret.credential())  # echoed in a reply
            completion.attempts = tries.count
            self.usage.add(requests=1, prompt_tokens=completion.prompt_tokens,
                           completion_tokens=completion.completion_tokens,
                           cost_usd=cost_of(llm.model, completion.prompt_tokens,
                                            completion.completion_tokens, llm.prices))
            return completion
        self.usage.add(failed=1)
        return Failure(REQUEST_FAILED, tries.gave_up(), attempts=tries.count)
