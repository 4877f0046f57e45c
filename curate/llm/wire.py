"""The wire: the body a request is sent as, the completion read back, and when to try again.

Shared by online and batch mode and the llama.cpp backend, so a request has one body, a
reply is judged one way, and every call to a provider is retried by one policy (:class:`Tries`).
"""
from __future__ import annotations

import email.utils
import json
import random
import time

import openai

from .credentials import one_line
from .dialects import body_fields
from .types import REFUSED, TRUNCATED, Completion, Failure, Request

RETRY_STATUS = {408, 409, 429}
INVALID_5XX_TRIES = 2  # a 5xx saying the request itself is invalid: one retry at most
_INVALID = ("invalid", "validation", "unprocessable", "not supported", "unsupported",
            "must be", "is required", "bad request")


def request_body(model: str, request: Request, dialect: str | None = None) -> dict:
    """The chat-completions body of a resolved request; with ``dialect``, its schema is
    asked for in that endpoint's structured-output form (:func:`.dialects.body_fields`)."""
    body = {"model": model, "messages": request.messages}
    for name in ("temperature", "top_p", "max_tokens", "seed", "response_format"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if dialect is not None:
        body.update(body_fields(dialect, request.schema))
    body.update(request.extra or {})
    return body


class MalformedReply(Exception):
    """A 200 response without a usable choice (no choices, no message)."""


def completion_of(response, model: str) -> Completion:
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


def usable(completion: Completion, usage) -> Completion | Failure:
    """The completion, or the failure it is when cut off or withheld (its text is kept);
    ``usage`` counts the truncated ones."""
    if completion.finish_reason == "length":
        usage.add(truncated=1)
        return Failure(TRUNCATED, f"the reply was cut off at {completion.completion_tokens} "
                       f"tokens (finish_reason 'length'); raise max_tokens or ask for a "
                       f"shorter answer", attempts=completion.attempts, text=completion.text)
    if completion.finish_reason == "content_filter":
        return Failure(REFUSED, "the endpoint withheld the reply (finish_reason "
                       "'content_filter')", attempts=completion.attempts, text=completion.text)
    return completion


def error_message(body, default: str = "error") -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return default


def classify(error: BaseException, key_source: str = "OPENAI_API_KEY"
             ) -> tuple[bool, float | None, str]:
    """Whether an error is worth retrying, the server's requested wait, and a one-line reason.

    The reason never quotes the server's message for authentication errors (some echo part
    of the key back), and names ``key_source``, where the key came from.
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
        wait = retry_after(getattr(error.response, "headers", None))
        message = error_message(error.body, str(getattr(error, "message", "")) or "error")
        return status in RETRY_STATUS or status >= 500, wait, f"HTTP {status}: {message}"
    if isinstance(error, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return True, None, "the endpoint sent a malformed response body"
    if isinstance(error, MalformedReply):
        return True, None, str(error)
    return False, None, f"{type(error).__name__}: {error}"


def retry_after(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        try:
            if value:
                return max(0.0, float(value) / scale)
        except ValueError:
            pass
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Tries:
    """The tries of one call under its client's policy: which failures are worth another
    try, how long to wait first (exponential backoff with jitter, or the server's
    ``Retry-After``), and the one-line reason, the key scrubbed. ``what`` prefixes reasons."""

    def __init__(self, llm, rng: random.Random, what: str = ""):
        self.llm, self.rng, self.what = llm, rng, what
        self.count = 0
        self.reason, self.status = "no try was made", None
        self._retry, self._wait, self._invalid, self._invalid_5xx = False, None, 0, False

    def failed(self, error: BaseException) -> None:
        """Record a failed try: its one-line reason and its HTTP status."""
        self._retry, self._wait, reason = classify(error, self.llm.key_source)
        self.status = getattr(error, "status_code", None)
        self._invalid_5xx = (self.status is not None and self.status >= 500 and
                             any(word in reason.lower() for word in _INVALID))
        self.reason = one_line(f"{self.what}: {reason}" if self.what else reason,
                               secret=self.llm.secret.reveal())

    def delay(self) -> float | None:
        """Seconds to wait before the next try, or None: give up (see :meth:`gave_up`)."""
        llm, wait = self.llm, self._wait
        if self._invalid_5xx:
            self._invalid += 1
            self._retry = self._retry and self._invalid < INVALID_5XX_TRIES
        if not self._retry or self.count >= llm.max_tries:
            return None
        if wait is not None and wait > llm.max_retry_after:
            self.reason = (f"{self.reason}; the endpoint asked to wait {wait:.0f}s, more than "
                           f"max_retry_after={llm.max_retry_after:g}s")
            return None
        if wait is not None:
            return wait * self.rng.uniform(1.0, 1.1)
        backoff = min(llm.max_backoff, llm.backoff * 2 ** (self.count - 1))
        return backoff * self.rng.uniform(0.5, 1.0)

    def gave_up(self) -> str:
        return f"{self.reason} (gave up after {self.count} tr{'y' if self.count == 1 else 'ies'})"
