"""The values that cross the client boundary: a request, and a completion or a failure."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Stable codes a stage writes to ``_reason_code`` when a request cannot give it data.
REQUEST_FAILED = "llm_request_failed"
TRUNCATED = "llm_truncated"
REFUSED = "llm_refused"
PARSE_FAILED = "llm_parse_failed"


def as_messages(prompt) -> list[dict]:
    """Accept a string (one user message), one message dict, or a list of message dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(
            type(m) is dict and len(m) == 2 and type(m.get("role")) is str
            and type(m.get("content")) is str for m in prompt):
        return prompt  # already in shape (the common case, e.g. a resolved request)
    if isinstance(prompt, dict):
        prompt = [prompt]
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise TypeError(f"a prompt must be a string or a non-empty list of messages, "
                        f"got {type(prompt).__name__}")
    messages = []
    for message in prompt:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise TypeError(f"each message needs 'role' and 'content', got {message!r:.80}")
        messages.append({"role": str(message["role"]), "content": str(message["content"])})
    return messages


@dataclass(frozen=True)
class Request:
    """One chat completion to make.

    Args:
        messages: the conversation, as ``[{"role": ..., "content": ...}]`` (a string is
            taken as one user message).
        temperature, top_p, max_tokens, stop, seed, response_format: sampling parameters;
            ``None`` means the client's default (if that is ``None`` too, the endpoint's).
        sample: the sample index: n samples of one prompt are distinct requests (and cache
            entries).
        extra: extra body fields for the endpoint (e.g. vLLM's ``guided_json``).
        schema: the JSON Schema the reply must match; the client asks the endpoint (or the
            in-process model's decoding) to follow it where it can.
    """

    messages: Any
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    response_format: dict | None = None
    sample: int = 0
    extra: dict | None = None
    schema: dict | None = None

    def __post_init__(self):
        object.__setattr__(self, "messages", as_messages(self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))

    def followed_by(self, assistant: str, user: str) -> "Request":
        """The same request with the model's reply and a new user turn appended."""
        messages = [*self.messages, {"role": "assistant", "content": assistant},
                    {"role": "user", "content": user}]
        return dataclasses.replace(self, messages=messages)


@dataclass
class Completion:
    """A reply: the text, why generation stopped, and its token counts."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    attempts: int = 1
    ok = True

    def to_raw(self) -> dict:
        """The form stored in the cache (no credentials, no endpoint)."""
        return {"text": self.text, "finish_reason": self.finish_reason, "model": self.model,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @classmethod
    def from_raw(cls, raw: dict, cached: bool = False, attempts: int = 1) -> "Completion":
        return cls(text=raw.get("text") or "", finish_reason=raw.get("finish_reason") or "stop",
                   prompt_tokens=int(raw.get("prompt_tokens") or 0),
                   completion_tokens=int(raw.get("completion_tokens") or 0),
                   model=raw.get("model") or "", cached=cached, attempts=attempts)


@dataclass
class Failure:
    """A request that gave no usable reply: a stable ``code``, a one-line ``reason``, and
    the raw reply in ``text`` when there was one (a truncated or unparseable answer)."""

    code: str
    reason: str
    attempts: int = 0
    text: str | None = None
    details: dict = field(default_factory=dict)
    ok = False
