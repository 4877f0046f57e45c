"""Seeded sampling of one table and weighted mixing of several sources."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import StageError
from ..io import read_table
from ..stage import Stage


class Sample(Stage):
    """Keep a seeded random sample of ``n`` rows (or a fraction ``frac``); the rest are
    rejected as ``not_sampled`` so the funnel shows where they went.

    Args:
        n: number of rows to keep (all when the table is smaller).
        frac: fraction of rows to keep, instead of ``n``.
        seed: random seed.
        keep_order: keep the sampled rows in table order (default) or in sampled order.
    """

    def __init__(self, n: int | None = None, frac: float | None = None, seed: int = 0,
                 keep_order: bool = True, name: str | None = None):
        super().__init__(name or "sample")
        if (n is None) == (frac is None):
            raise StageError(self.name, "give exactly one of n or frac")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise StageError(self.name, f"n must be a non-negative int, got {n!r}", field="n")
        if frac is not None and not 0 <= frac <= 1:
            raise StageError(self.name, f"frac must be in [0, 1], got {frac!r}", field="frac")
        self.n, self.frac, self.seed, self.keep_order = n, frac, seed, keep_order

    def process(self, df: pd.DataFrame):
        size = min(self.n, len(df)) if self.n is not None else round(self.frac * len(df))
        chosen = np.random.default_rng(self.seed).choice(len(df), size=size, replace=False)
        keep = np.zeros(len(df), dtype=bool)
        keep[chosen] = True
        res = self.result(df, keep, "not_sampled", f"not among the {size} sampled rows")
        if not self.keep_order:
            order = {i: pos for pos, i in enumerate(df["_id"].to_numpy()[chosen])}
            res.kept = res.kept.sort_values("_id", key=lambda s: s.map(order)).reset_index(drop=True)
        return res


class Mix:
    """A source that mixes several tables by weight, with a seed.

    Each source contributes ``round(n * weight / sum(weights))`` rows drawn without
    replacement (with replacement when ``replace=True``); a ``_source`` column names where
    each row came from. A source smaller than its share gives all its rows, and the
    shortfall is reported in ``counts`` rather than silently refilled from others.

    Args:
        sources: ``{name: table}`` where a table is anything ``read_table`` accepts.
        weights: ``{name: weight}``; missing names weigh 1.
        n: total rows wanted (default: the sum of the source sizes).
        seed: random seed.
    """

    def __init__(self, sources: Mapping[str, object], weights: Mapping[str, float] | None = None,
                 n: int | None = None, seed: int = 0, replace: bool = False):
        if not sources:
            raise StageError("mix", "no sources given")
        weights = dict(weights or {})
        unknown = set(weights) - set(sources)
        if unknown:
            raise StageError("mix", f"weights name unknown sources {sorted(unknown)}; "
                                    f"sources: {sorted(sources)}", field="weights")
        if any(w < 0 for w in weights.values()):
            raise StageError("mix", "weights must be non-negative", field="weights")
        self.sources, self.n, self.seed, self.replace = dict(sources), n, seed, replace
        self.weights = {name: float(weights.get(name, 1.0)) for name in sources}
        self.counts: dict[str, dict] = {}

    def load(self) -> pd.DataFrame:
        tables = {name: read_table(src) for name, src in self.sources.items()}
        n = self.n if self.n is not None else sum(len(t) for t in tables.values())
        total = sum(self.weights.values())
        rng = np.random.default_rng(self.seed)
        parts = []
        for name, table in tables.items():
            want = round(n * self.weights[name] / total) if total else 0
            take = want if self.replace else min(want, len(table))
            idx = rng.choice(len(table), size=take, replace=self.replace)
            parts.append(table.iloc[np.sort(idx)].assign(_source=name))
            self.counts[name] = {"wanted": want, "taken": take, "available": len(table)}
        return pd.concat(parts, ignore_index=True)

    def fingerprint(self) -> str:
        from ..fingerprint import fingerprint_of
        return fingerprint_of({"sources": self.sources, "weights": self.weights, "n": self.n,
                               "seed": self.seed, "replace": self.replace})
