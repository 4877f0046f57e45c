"""Sending requests to an OpenAI-compatible endpoint, one HTTP call each, with bounded retries,
and what the client learns about the endpoint on the way (:class:`EndpointState`)."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time

import openai

from .accounting import Usage, cost_of
from .credentials import redact_url, scrub
from .dialects import dialect_from_models, looks_like_refusal
from .limits import OVERLOAD_STATUS, Concurrency, Locked, completion_bound, prompt_tokens
from .types import REQUEST_FAILED, Completion, Failure, Request
from .wire import Tries, completion_of, request_body

log = logging.getLogger("curate.llm")


class EndpointState(Locked):
    """What one client has learned about its endpoint, shared across calls and threads: the
    structured-output dialect (from ``/models`` when ``auto``), whether the server refused
    structured requests, and how many requests to keep in flight."""

    def __init__(self, dialect: str | None, concurrency: Concurrency):
        self.dialect = dialect
        self.refused: str | None = None
        self.concurrency = concurrency
        self._lock = threading.Lock()

    def observe(self, ticket: int, seconds: float, in_flight: int, where: str) -> None:
        """Record one reply's latency; say once when requests queue on the server."""
        if not self.concurrency.replied(ticket, seconds, in_flight):
            return
        crowd, latency, baseline, parallel = self.concurrency.queued
        log.warning(
            "curate: the endpoint %s seems to run about %d request(s) at a time: latency "
            "grows with the number in flight (median %.2fs with %d in flight vs %.2fs with "
            "fewer), so queued requests can time out. Sending fewer at once (the client "
            "adjusts; concurrency=%d is its ceiling). Give the server more slots (llama.cpp: "
            "--parallel N; Ollama: OLLAMA_NUM_PARALLEL=N).", where, parallel, latency,
            round(crowd), baseline, self.concurrency.ceiling)

    def dialect_for(self, request: Request) -> str | None:
        """The dialect to ask for ``request``'s schema in, or None: it goes as a plain prompt."""
        if request.schema is None or request.response_format is not None or \
                self.refused is not None or self.dialect in (None, "off"):
            return None
        return self.dialect

    def refuse(self, reason: str, where: str) -> None:
        with self._lock:
            first = self.refused is None
            self.refused = reason
        if first:
            log.warning("curate: the endpoint %s refused a structured-output request (%s); "
                        "sending plain prompts from now on and validating the replies",
                        where, reason)


class Sender:
    """Sends requests through one ``AsyncOpenAI`` client (SDK retries off: ours are bounded,
    jittered, honour ``Retry-After`` and share a cooldown across requests)."""

    def __init__(self, llm, usage: Usage | None):
        self.llm, self.limiter, self.usage = llm, llm.limiter, usage
        self.state: EndpointState = llm.endpoint
        self.tuner: Concurrency = llm.endpoint.concurrency
        self.rng = random.Random()
        self.where = redact_url(llm.base_url) or "?"
        self.in_flight = 0
        self._free = asyncio.Condition()
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

    async def _post(self, body: dict) -> Completion:
        async with self._free:  # a slot under the current limit
            await self._free.wait_for(lambda: self.in_flight < self.tuner.allowed())
            self.in_flight += 1
        in_flight, ticket, start = self.in_flight, self.tuner.cuts, time.perf_counter()
        try:
            # The SDK's generic POST: chat.completions.create's parameter transformation and
            # response models cost more CPU than the rest of a request at high concurrency.
            # The timeout counts from here, not while queued above.
            text = await self.client.post("/chat/completions", cast_to=str, body=body)
        except Exception as error:
            if isinstance(error, openai.APITimeoutError) or \
                    getattr(error, "status_code", None) in OVERLOAD_STATUS:
                self.tuner.overloaded(ticket)
            raise
        finally:
            async with self._free:
                self.in_flight -= 1
                self._free.notify(max(1, self.tuner.allowed() - self.in_flight))
        self.state.observe(ticket, time.perf_counter() - start, in_flight, self.where)
        return completion_of(json.loads(text), self.llm.model)

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
                completion = await self._post(request_body(llm.model, request, dialect))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is classified; none escapes a stage
                self.usage.add(requests=1)
                tries.failed(error)
                if dialect is not None and looks_like_refusal(tries.status, tries.reason):
                    self.state.refuse(tries.reason, self.where)
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
