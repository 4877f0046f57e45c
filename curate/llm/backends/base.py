"""What every in-process backend shares: its protocol, the default reply length, seeds."""
from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from ..types import Completion, Request

DEFAULT_MAX_TOKENS = 256


@runtime_checkable
class Backend(Protocol):
    """An in-process model: a ``name`` (part of every cache key) and ``generate``, optionally
    with ``on_done(index, completion)``, called as each reply is finished."""

    name: str

    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order (``finish_reason`` "stop" or "length")."""
        ...


def seed_of(request: Request, model: str) -> int:
    """A per-request seed from its content and sample index: reproducible, distinct samples."""
    text = repr((model, request.messages, request.temperature, request.top_p,
                 request.max_tokens, request.stop, request.seed, request.sample))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
