"""Rate limits, backoff and the classification of errors into retry-or-give-up."""
from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import threading
import time

import openai

from .credentials import scrub

RETRY_STATUS = {408, 409, 429}


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits as two token buckets.

    Each request takes one request and its estimated tokens before it is sent. The buckets
    hold one second's worth (so a run never bursts a minute's budget at once) and refill
    continuously at ``limit / 60`` per second. A request larger than the bucket waits for a
    full bucket and is then charged in full: the bucket goes into debt and later requests
    wait it out, so over time the tokens sent per minute stay at the limit for any request
    size. A 429 from the endpoint starts a cooldown that holds every new request until the
    time the server asked for. The state is guarded by a thread lock, so the limits hold
    for one client shared across threads (each with its own event loop).

    Token counts are estimated before sending (characters / 4: see
    :func:`curate.llm.estimate.prompt_tokens`), which is 3-4x too few for text of about one
    character a token (CJK, dense code). So each reply's reported prompt tokens correct the
    estimate: a prompt is charged its estimate times the ratio of reported to estimated
    prompt tokens so far (:meth:`prompt_charge`), and the difference between what a reply's
    prompt was charged and what it counted is charged or refunded (:meth:`settle`).
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

    def __getstate__(self) -> dict:  # a copy (another process) gets its own lock
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
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
        while True:
            wait = self._take(tokens)
            if wait <= 0:
                return
            await asyncio.sleep(wait)


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, capped, times U(0.5, 1)."""
    return min(cap, base * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


def classify(error: BaseException, key_source: str = "OPENAI_API_KEY"
             ) -> tuple[bool, float | None, str]:
    """Whether an error is worth retrying, the server's requested wait, and a one-line reason.

    The reason never quotes the server's message for authentication errors (some echo part
    of the key back), and names ``key_source``, where the key came from; callers also
    scrub the key from every reason they store (:func:`scrub`).
    """
    if isinstance(error, openai.APITimeoutError):
        return True, None, "request timed out"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error.__context__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return True, None, f"connection error{detail}"
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status in (401, 403):
            return False, None, (f"HTTP {status}: the endpoint refused the credentials; "
                                 f"check {key_source}")
        wait = parse_retry_after(getattr(error.response, "headers", None))
        retry = status in RETRY_STATUS or status >= 500
        return retry, wait, f"HTTP {status}: {_message_of(error)}"
    if isinstance(error, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return True, None, "the endpoint sent a malformed response body"
    if isinstance(error, MalformedReply):
        return True, None, str(error)
    return False, None, f"{type(error).__name__}: {error}"


class MalformedReply(Exception):
    """A 200 response without a usable choice (no choices, no message)."""


def _message_of(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else None
        if message:
            return str(message)
    return str(getattr(error, "message", "")) or "error"


def one_line(text: str, limit: int = 300, secret: str | None = None) -> str:
    """Collapse whitespace, remove ``secret`` (see :func:`scrub`), cut to ``limit`` characters."""
    text = scrub(str(text), secret)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
