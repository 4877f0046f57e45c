"""Sending one request to an OpenAI-compatible endpoint, with bounded, polite retries."""
from __future__ import annotations

import asyncio
import json
import random

import openai

from .accounting import Usage, cost_of
from .limits import MalformedReply, RateLimiter, backoff_delay, classify, estimate_tokens, one_line
from .types import REQUEST_FAILED, Completion, Failure, Request


class Sender:
    """Sends requests through one ``AsyncOpenAI`` client (SDK retries off: ours are bounded,
    jittered, honour ``Retry-After`` and share a cooldown across requests)."""

    def __init__(self, llm, limiter: RateLimiter, semaphore: asyncio.Semaphore, usage: Usage):
        self.llm, self.limiter, self.semaphore, self.usage = llm, limiter, semaphore, usage
        self.rng = random.Random()
        self.client = openai.AsyncOpenAI(base_url=llm.base_url, api_key=llm._secret.reveal(),
                                         max_retries=0, timeout=llm.timeout)

    async def close(self) -> None:
        await self.client.close()

    def _body(self, request: Request) -> dict:
        body = {"model": self.llm.model, "messages": request.messages}
        for name in ("temperature", "top_p", "max_tokens", "seed", "response_format"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.stop:
            body["stop"] = list(request.stop)
        body.update(request.extra or {})
        return body

    async def send(self, request: Request) -> Completion | Failure:
        """Try up to ``max_tries`` times; return the completion or a one-line failure."""
        llm, body = self.llm, self._body(request)
        budget = estimate_tokens(request.messages, request.max_tokens)
        reason = "no try was made"
        for attempt in range(1, llm.max_tries + 1):
            await self.limiter.acquire(budget)
            try:
                async with self.semaphore:
                    # The SDK's generic POST: same auth, headers, timeouts and error types
                    # as chat.completions.create, without its per-call parameter
                    # transformation and response models, which cost more CPU than the
                    # rest of a request at high concurrency.
                    text = await self.client.post("/chat/completions", cast_to=str, body=body)
                completion = _completion_of(json.loads(text), llm.model)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is classified; none escapes a stage
                self.usage.add(requests=1)
                retry, wait, reason = classify(error)
                reason = one_line(reason, secret=llm._secret.reveal())
                if not retry or attempt == llm.max_tries:
                    break
                if wait is not None and wait > llm.max_retry_after:
                    reason = (f"{reason}; the endpoint asked to wait {wait:.0f}s, more than "
                              f"max_retry_after={llm.max_retry_after:g}s")
                    break
                delay = (wait * self.rng.uniform(1.0, 1.1) if wait is not None
                         else backoff_delay(attempt, llm.backoff, llm.max_backoff, self.rng))
                if getattr(error, "status_code", None) == 429:
                    self.limiter.cooldown(delay)  # everyone waits, not only this request
                self.usage.add(retried=1)
                await asyncio.sleep(delay)
                continue
            completion.attempts = attempt
            self.usage.add(requests=1, prompt_tokens=completion.prompt_tokens,
                           completion_tokens=completion.completion_tokens,
                           cost_usd=cost_of(llm.model, completion.prompt_tokens,
                                            completion.completion_tokens, llm.prices))
            return completion
        self.usage.add(failed=1)
        tries = f"{attempt} tr{'y' if attempt == 1 else 'ies'}"
        return Failure(REQUEST_FAILED, f"{reason} (gave up after {tries})", attempts=attempt)


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
