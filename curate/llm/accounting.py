"""Token, cost and request accounting (:class:`Usage`), and the per-model price tables
(online and batch)."""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, fields

log = logging.getLogger("curate.llm")

# USD per million tokens (input, output). List prices at the time of writing; set your own
# with :func:`set_price` or ``LLM(prices=...)``. Models not listed cost 0 in the figures.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
}
# Batch API prices: an explicit entry here, else the online price times BATCH_DISCOUNT.
BATCH_PRICES: dict[str, tuple[float, float]] = {}
BATCH_DISCOUNT = 0.5
_warned_unpriced: set[str] = set()


def set_price(model: str, input_per_million: float, output_per_million: float) -> None:
    """Set the price of a model (USD per million prompt / completion tokens)."""
    PRICES[model] = (float(input_per_million), float(output_per_million))


@contextlib.contextmanager
def prices_kept():
    """Prices set within the block (the CLI's ``--price``) are undone when it ends."""
    saved = dict(PRICES), dict(BATCH_PRICES)
    try:
        yield
    finally:
        for table, before in zip((PRICES, BATCH_PRICES), saved):
            table.clear()
            table.update(before)


def price_of(model: str, table: dict | None = None) -> tuple[float, float] | None:
    """The price of ``model``: an exact entry, else the longest listed prefix
    (``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``)."""
    return _lookup(model, {**PRICES, **(table or {})})


def _lookup(model: str, table: dict) -> tuple[float, float] | None:
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    return table[max(prefixes, key=len)] if prefixes else None


def set_batch_price(model: str, input_per_million: float, output_per_million: float) -> None:
    """Set the Batch API price of a model (instead of the discounted online price)."""
    BATCH_PRICES[model] = (float(input_per_million), float(output_per_million))


def batch_price_of(model: str, table: dict | None = None, batch_table: dict | None = None,
                   discount: float | None = None) -> tuple[float, float] | None:
    """The Batch API price of ``model``: a batch entry (``batch_table``, then
    :data:`BATCH_PRICES`), else its online price times ``discount`` (:data:`BATCH_DISCOUNT`)."""
    explicit = _lookup(model, {**BATCH_PRICES, **(batch_table or {})})
    if explicit is not None:
        return explicit
    online = price_of(model, table)
    share = BATCH_DISCOUNT if discount is None else float(discount)
    return None if online is None else (online[0] * share, online[1] * share)


def cost_of(model: str, prompt_tokens: int, completion_tokens: int,
            table: dict | None = None, price: tuple[float, float] | None = None) -> float:
    """USD for the tokens at ``price`` (default: the online price of ``model``)."""
    price = price if price is not None else price_of(model, table)
    if price is None:
        if model not in _warned_unpriced:
            _warned_unpriced.add(model)
            log.info("no price for model %r: its cost is counted as 0 (set one with "
                     "curate.llm.set_price)", model)
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


@dataclass
class Usage:
    """Counters of one stage or one client.

    - ``requests``: HTTP requests sent (every try counts) or generations run in-process;
    - ``cached``: requests answered from the cache (no request sent);
    - ``retried``: tries that failed and were tried again;
    - ``failed``: requests given up on (bounded tries spent, or an error not worth retrying);
    - ``truncated``: replies cut off by the token limit (``finish_reason == "length"``);
    - ``batched``: replies that came through a provider batch (priced at batch prices);
    - ``prompt_tokens``, ``completion_tokens``, ``cost_usd``: spent by this run, cache hits
      excluded.
    """

    requests: int = 0
    cached: int = 0
    retried: int = 0
    failed: int = 0
    truncated: int = 0
    batched: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __post_init__(self):
        self._lock = threading.Lock()
        self.batches: list[dict] = []  # one record per provider batch (id, status, cost)

    def __getstate__(self) -> dict:  # picklable (a stage shipped to another process)
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "batches": list(self.batches)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"batches": [], **state})
        self._lock = threading.Lock()

    def add_batch(self, record: dict) -> None:
        with self._lock:
            self.batches.append(dict(record))

    def add(self, **counts) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_stats(self) -> dict:
        """A flat dict of numbers (what a stage puts under ``stats["llm"]``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["cost_usd"] = round(out["cost_usd"], 6)
        return out

    def summary(self) -> str:
        """A short line for a progress bar: ``tok 1.2k · $0.0100 · cache 40 · retry 2``."""
        parts = [f"tok {_short(self.prompt_tokens + self.completion_tokens)}"]
        if self.cost_usd:
            parts.append(f"${self.cost_usd:.4f}")
        counts = (("cache", self.cached), ("batch", self.batched), ("retry", self.retried),
                  ("failed", self.failed))
        return " · ".join(parts + [f"{label} {n}" for label, n in counts if n])


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)
