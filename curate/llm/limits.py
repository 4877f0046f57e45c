"""Rate limits: requests and tokens per minute, the tokens a request is charged, and how many
requests to keep in flight (:class:`Concurrency`)."""
from __future__ import annotations

import asyncio
import json
import math
import statistics
import threading
import time

from .types import Request

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
DEFAULT_COMPLETION = 256  # the bound assumed for a request without max_tokens


def prompt_tokens(request: Request, schema_counted: bool = False) -> int:
    """The estimated prompt tokens of a request (no tokenizer is available offline): 4
    characters a token, OpenAI's chat overhead, and the schema where the endpoint counts it
    (``schema_counted``); the limiter corrects it from what replies report."""
    chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    tokens = math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)
    if schema_counted and request.schema is not None:
        tokens += math.ceil(len(json.dumps(request.schema)) / CHARS_PER_TOKEN)
    return tokens + TOKENS_PER_REPLY


def completion_bound(request: Request) -> int:
    """The most completion tokens a request can take (``max_tokens``, else 256)."""
    return int(request.max_tokens) if request.max_tokens else DEFAULT_COMPLETION


class Locked:
    """Picklable though it holds a ``_lock``: a copy (another process) gets its own."""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class RateLimiter(Locked):
    """Requests-per-minute and tokens-per-minute limits as two token buckets, thread-safe.

    The buckets hold one second's worth; a request larger than the bucket waits for a full
    one and is charged in full (a debt later requests wait out), so the long-run rate holds
    for any request size. A 429 starts a cooldown that holds every new request. Prompts are
    charged as :meth:`prompt_charge` and :meth:`settle` say, so the limit holds for text of
    about one character a token (CJK, dense code) too.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.rpm, self.tpm = rpm, tpm
        self._request_cap = max(1.0, (rpm or 0) / 60)
        self._token_cap = max(1.0, (tpm or 0) / 60)
        self._requests, self._tokens = self._request_cap, self._token_cap
        self._stamp = time.monotonic()
        self._cooldown_until = 0.0
        self._estimated = self._reported = 0  # prompt tokens, for the running correction
        self._lock = threading.Lock()

    def cooldown(self, seconds: float) -> None:
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, time.monotonic() + seconds)

    def _refill(self, now: float) -> None:
        elapsed, self._stamp = now - self._stamp, now
        if self.rpm:
            self._requests = min(self._request_cap, self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self._token_cap, self._tokens + elapsed * self.tpm / 60)

    def _take(self, tokens: int) -> float:
        """Take the request if the limits allow it now (0.0), else the seconds to wait."""
        with self._lock:
            now = time.monotonic()
            if now < self._cooldown_until:
                return self._cooldown_until - now
            self._refill(now)
            wait = 0.0
            if self.rpm and self._requests < 1:
                wait = (1 - self._requests) * 60 / self.rpm
            need = min(tokens, self._token_cap)
            if self.tpm and self._tokens < need:
                wait = max(wait, (need - self._tokens) * 60 / self.tpm)
            if wait > 0:
                return wait
            if self.rpm:
                self._requests -= 1
            if self.tpm:
                self._tokens -= tokens  # in full: a request over the bucket leaves a debt
            return 0.0

    def prompt_charge(self, estimate: int) -> int:
        """The tokens to charge a prompt estimated at ``estimate``, corrected by the ratio
        of the prompt tokens replies reported to those estimated for them so far."""
        with self._lock:
            if not self._estimated or not self._reported:
                return estimate
            return math.ceil(estimate * self._reported / self._estimated)

    def settle(self, estimate: int, charged: int, reported: int) -> None:
        """Learn from a reply whose prompt was estimated at ``estimate``, charged
        ``charged`` and counted ``reported`` by the endpoint (0: not reported)."""
        if reported <= 0 or estimate <= 0:
            return
        with self._lock:
            self._estimated += estimate
            self._reported += reported
            if self.tpm:
                self._refill(time.monotonic())
                self._tokens = min(self._token_cap, self._tokens - (reported - charged))

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until the request may be sent (under the limits and past any cooldown)."""
        if not self.rpm and not self.tpm and time.monotonic() >= self._cooldown_until:
            return
        while (wait := self._take(tokens)) > 0:
            await asyncio.sleep(wait)


START = 4              # requests in flight before anything is known about the endpoint
HOLD_RATIO = 1.5       # a window's median latency over the baseline's that stops doubling
QUEUE_RATIO = 2.0      # ... and that means requests queue on the server
QUEUE_MIN_SECONDS = 0.05  # a rise smaller than this is the client's own jitter, not a queue
GROWTH = 1.2           # throughput this much over the best with fewer in flight: no queue
OVERLOAD_STATUS = {429, 503}


class Concurrency(Locked):
    """How many requests to keep in flight: AIMD within the user's ceiling, thread-safe.

    It starts at ``min(ceiling, 4)`` and, window by window (as many replies as the limit),
    doubles while latency holds (slow start), then adds one a window while latency holds or
    throughput still grows. It halves on a 429, a 503 or a timeout (once per cut), and on
    queueing (median latency over ``QUEUE_RATIO`` times the baseline while throughput no
    longer grows, how a self-hosted server answers instead of a 429) it drops to the
    parallelism that implies (Little's law). As in TCP congestion control (Jacobson 1988)
    and Netflix's concurrency-limits. ``adaptive=False`` holds it at the ceiling.
    """

    def __init__(self, ceiling: int, adaptive: bool = True):
        self.ceiling, self.adaptive = int(ceiling), adaptive
        self.limit = float(min(self.ceiling, START) if adaptive else self.ceiling)
        self.slow_start = True
        self.baseline: float | None = None  # the lowest window median latency seen
        self.cuts = 0  # a request sent before the latest cut says nothing about the new limit
        self.queued: tuple | None = None  # (in flight, seconds, baseline, limit) when first seen
        self._window: list[tuple[float, int]] = []
        self._since: float | None = None
        self._rates: dict[int, float] = {}  # the best window throughput at each limit
        self._lock = threading.Lock()

    def allowed(self) -> int:
        return max(1, int(self.limit))

    def overloaded(self, ticket: int) -> None:
        """A 429, a 503 or a timeout for a request sent at ``ticket``: halve, once per cut."""
        with self._lock:
            if self.adaptive and ticket == self.cuts:
                self._cut(self.limit / 2)

    def replied(self, ticket: int, seconds: float, in_flight: int) -> bool:
        """Record one reply's latency and the requests in flight when it was sent; at the
        end of a window, adjust. True the first time the endpoint is seen to queue."""
        with self._lock:
            if not self.adaptive or ticket != self.cuts:
                return False
            if self._since is None:
                self._since = time.monotonic() - seconds
            self._window.append((seconds, in_flight))
            if len(self._window) < max(3, self.allowed()):
                return False
            return self._judge()

    def _judge(self) -> bool:
        now = time.monotonic()
        latency = statistics.median(s for s, _ in self._window)
        crowd = statistics.median(n for _, n in self._window)
        rate = len(self._window) / max(now - self._since, 1e-6)
        self._window, self._since = [], now
        self.baseline = latency if self.baseline is None else min(self.baseline, latency)
        ratio = latency / max(self.baseline, 1e-6)
        level = self.allowed()
        below = [r for n, r in self._rates.items() if n < level]
        grew = bool(below) and rate >= max(below) * GROWTH  # than with fewer in flight
        self._rates[level] = max(rate, self._rates.get(level, 0.0))
        if ratio > QUEUE_RATIO and latency - self.baseline > QUEUE_MIN_SECONDS and not grew:
            first = self.queued is None
            if first:
                self.queued = (crowd, latency, self.baseline, max(1, round(crowd / ratio)))
            self._cut(crowd / ratio)
            return first
        if ratio > HOLD_RATIO:
            self.slow_start = False
            if not grew:
                return False
        step = self.limit if self.slow_start else 1
        self.limit = min(float(self.ceiling), self.limit + step)
        return False

    def _cut(self, limit: float) -> None:
        self.limit = max(1.0, min(self.limit, limit))
        self.slow_start = False
        self.cuts += 1
        self._window, self._since = [], time.monotonic()
