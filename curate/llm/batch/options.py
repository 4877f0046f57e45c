"""How a client uses the provider's Batch API (``LLM(batch=...)``)."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import CurateError


@dataclass(frozen=True)
class BatchOptions:
    """How a client uses the provider's Batch API (``LLM(batch=BatchOptions(...))``).

    Args:
        poll_every: seconds before the first status check; the interval then grows by half
            each time, up to ``max_poll_every``.
        max_requests, max_bytes: the provider's limits per batch (OpenAI: 50,000 requests,
            200 MB per input file); larger stages are split into several batches.
        max_rounds: batches one request may go through (the first included) when its line
            fails for a reason worth retrying.
        max_wait: stop polling after this many seconds (``None``: until the batch ends) and
            raise :class:`BatchesPending`; the same call run again collects the batch. ``0``
            submits and stops at once.
        completion_window: the provider's window (OpenAI accepts ``"24h"``).
        discount: batch price as a share of the online price (default 0.5,
            :data:`curate.llm.accounting.BATCH_DISCOUNT`).
        prices: ``{model: (usd_per_million_input, usd_per_million_output)}`` batch prices.
    """

    poll_every: float = 10.0
    max_poll_every: float = 300.0
    max_requests: int = 50_000
    max_bytes: int = 200_000_000
    max_rounds: int = 3
    max_wait: float | None = None
    completion_window: str = "24h"
    discount: float | None = None
    prices: dict | None = None

    def __post_init__(self):
        if self.poll_every <= 0 or self.max_poll_every < self.poll_every:
            raise CurateError(f"BatchOptions: need 0 < poll_every <= max_poll_every, got "
                              f"{self.poll_every} and {self.max_poll_every}")
        if self.max_requests < 1 or self.max_bytes < 1 or self.max_rounds < 1:
            raise CurateError("BatchOptions: max_requests, max_bytes and max_rounds must be >= 1")


def batch_options(value) -> BatchOptions | None:
    """What ``LLM(batch=...)`` accepts: ``True``, ``False``/``None`` or :class:`BatchOptions`."""
    if value is True:
        return BatchOptions()
    if value is None or value is False:
        return None
    if isinstance(value, BatchOptions):
        return value
    raise CurateError(f"LLM: batch must be True, False or a BatchOptions, got {value!r}")
