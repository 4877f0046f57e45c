"""Sending one request to an OpenAI-compatible endpoint, with bounded, polite retries.

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
import json
import logging
import random
import statistics
import threading
import time

import openai

from .accounting import Usage, cost_of
from .dialects import body_fields, dialect_from_models, looks_like_refusal
from .estimate import completion_bound, prompt_tokens
from .credentials import redact_url, scrub
from .limits import MalformedReply, RateLimiter, backoff_delay, classify, one_line
from .types import REQUEST_FAILED, Completion, Failure, Request

log = logging.getLogger("curate.llm")
QUEUE_SAMPLES = 6       # requests sent with QUEUE_IN_FLIGHT or more in flight before judging
QUEUE_IN_FLIGHT = 3
QUEUE_RATIO = 2.5       # their median latency over the fastest single request's
QUEUE_MIN_SECONDS = 0.5  # and at least this long: sub-second jitter is no queue
INVALID_5XX_TRIES = 2   # a 5xx saying the request itself is invalid: one retry at most
_INVALID = ("invalid", "validation", "unprocessable", "not supported", "unsupported",
            "must be", "is required", "bad request")


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

    def observe(self, in_flight: int, seconds: float, concurrency: int, where: str) -> None:
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

    def __init__(self, llm, limiter: RateLimiter, semaphore: asyncio.Semaphore, usage: Usage):
        self.llm, self.limiter, self.semaphore, self.usage = llm, limiter, semaphore, usage
        self.state: EndpointState = llm.endpoint
        self.rng = random.Random()
        self.in_flight = 0
        self.gate: asyncio.Semaphore | None = None
        self._resolving = asyncio.Lock()
        self.client = openai.AsyncOpenAI(base_url=llm.base_url, api_key=llm._secret.reveal(),
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

    def _body(self, request: Request, structured: bool = True) -> dict:
        body = {"model": self.llm.model, "messages": request.messages}
        for name in ("temperature", "top_p", "max_tokens", "seed", "response_format"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if structured and self._structured(request):
            body.update(body_fields(self.state.dialect, request.schema))
        body.update(request.extra or {})
        return body

    def _structured(self, request: Request) -> bool:
        return (request.schema is not None and request.response_format is None
                and self.state.dialect not in (None, "off") and self.state.refused is None)

    def _where(self) -> str:
        return redact_url(self.llm.base_url) or "?"

    async def _post(self, body: dict) -> tuple[Completion, float, int]:
        if self.state.parallel is not None and self.gate is None:
            self.gate = asyncio.Semaphore(self.state.parallel)
        gate = self.gate or _NO_GATE
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
        return _completion_of(json.loads(text), self.llm.model), \
            time.perf_counter() - start, in_flight

    async def send(self, request: Request) -> Completion | Failure:
        """Try up to ``max_tries`` times; return the completion or a one-line failure."""
        llm = self.llm
        if request.schema is not None and self.state.dialect is None:
            async with self._resolving:
                await self.resolve_dialect()
        estimate = prompt_tokens(request, schema_counted=self._structured(request))
        reason, invalid_tries, attempt = "no try was made", 0, 0
        while attempt < llm.max_tries:
            attempt += 1
            structured = self._structured(request)
            charged = self.limiter.prompt_charge(estimate)
            await self.limiter.acquire(charged + completion_bound(request))
            try:
                completion, seconds, in_flight = await self._post(self._body(request, structured))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is classified; none escapes a stage
                self.usage.add(requests=1)
                retry, wait, reason = classify(error, llm.key_source)
                reason = one_line(reason, secret=llm._secret.reveal())
                status = getattr(error, "status_code", None)
                if structured and looks_like_refusal(status, reason):
                    self.state.refuse(reason, self._where())
                    attempt -= 1  # the plain request is the same try
                    continue
                if status is not None and status >= 500 and _says_invalid(reason):
                    invalid_tries += 1
                    retry = retry and invalid_tries < INVALID_5XX_TRIES
                if not retry or attempt == llm.max_tries:
                    break
                if wait is not None and wait > llm.max_retry_after:
                    reason = (f"{reason}; the endpoint asked to wait {wait:.0f}s, more than "
                              f"max_retry_after={llm.max_retry_after:g}s")
                    break
                delay = (wait * self.rng.uniform(1.0, 1.1) if wait is not None
                         else backoff_delay(attempt, llm.backoff, llm.max_backoff, self.rng))
                if status == 429:
                    self.limiter.cooldown(delay)  # everyone waits, not only this request
                self.usage.add(retried=1)
                await asyncio.sleep(delay)
                continue
            self.state.observe(in_flight, seconds, llm.concurrency, self._where())
            self.limiter.settle(estimate, charged, completion.prompt_tokens)
            completion.text = scrub(completion.text, llm._secret.credential())  # echoed in a reply
            completion.attempts = attempt
            self.usage.add(requests=1, prompt_tokens=completion.prompt_tokens,
                           completion_tokens=completion.completion_tokens,
                           cost_usd=cost_of(llm.model, completion.prompt_tokens,
                                            completion.completion_tokens, llm.prices))
            return completion
        self.usage.add(failed=1)
        tries = f"{attempt} tr{'y' if attempt == 1 else 'ies'}"
        return Failure(REQUEST_FAILED, f"{reason} (gave up after {tries})", attempts=attempt)


def _says_invalid(reason: str) -> bool:
    low = reason.lower()
    return any(word in low for word in _INVALID)


class _NoGate:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


_NO_GATE = _NoGate()


def _completion_of(response, model: str) -> Completion:
    """The first choice of a chat-completion body (a dict parsed from JSON)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise MalformedReply("the endpoint answered without any choice")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MalformedReply("the endpoint answered a choice without a message")
    usage = response.get("usage") or {}
    return Completion(text=message.get("content") or "",
                      finish_reason=choice.get("finish_reason") or "stop",
                      prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0),
                      model=response.get("model") or model)
