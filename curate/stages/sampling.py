"""Seeded sampling of one table and weighted mixing of several sources."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..core.fingerprint import fingerprint_of
from ..core.stage import Stage
from ..core.table import SOURCE_NAME
from ..errors import StageError
from ..io import read_table

ORDERS = ("table", "sampled")


class Sample(Stage):
    """Keep a seeded random sample of ``n`` rows (or a fraction ``frac``); the rest are
    rejected as ``not_sampled`` so the funnel shows where they went.

    Args:
        n: number of rows to keep (all when the table is smaller).
        frac: fraction of rows to keep, instead of ``n``.
        seed: seeds the draw.
        order: ``"table"`` (default) keeps the sampled rows in table order; ``"sampled"``
            in the order they were drawn.
        balance: draw evenly across groups instead of uniformly: a column of group labels
            (e.g. a topic), or a :class:`~curate.clustering.ClusterOptions` to cluster a text
            field first (``Sample(500, balance=ClusterOptions("nlq"))``). Each group gives
            an equal share; a group smaller than its share gives all its rows and the rest
            is shared among the others (stats ``by_group``: rows kept per group).
    """

    declares_columns = True

    kind = "global"

    def __init__(self, n: int | None = None, frac: float | None = None, seed: int = 0,
                 order: str = "table", name: str | None = None, balance=None, **kwargs):
        super().__init__(name or "sample", **kwargs)
        if (n is None) == (frac is None):
            raise StageError(self.name, "give exactly one of n or frac")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise StageError(self.name, f"n must be a non-negative int, got {n!r}", field="n")
        if frac is not None and not 0 <= frac <= 1:
            raise StageError(self.name, f"frac must be in [0, 1], got {frac!r}", field="frac")
        if order not in ORDERS:
            raise StageError(self.name, f"order must be one of {ORDERS}, got {order!r}")
        if balance is not None and not isinstance(balance, str) \
                and not hasattr(balance, "field"):
            raise StageError(self.name, f"balance must be a column name or ClusterOptions, "
                                        f"got {balance!r}", field="balance")
        self.n, self.frac, self.seed, self.order = n, frac, seed, order
        self.balance = balance

    def required_fields(self) -> tuple[str, ...]:
        if self.balance is None:
            return ()
        return (self.balance,) if isinstance(self.balance, str) else (self.balance.field,)

    @property
    def input_order(self) -> bool:  # "sampled" lists the kept rows as drawn
        return self.order == "table"

    def process(self, df: pd.DataFrame):
        size = min(self.n, len(df)) if self.n is not None else round(self.frac * len(df))
        rng = np.random.default_rng(self.seed)
        groups = self._groups(df) if self.balance is not None else None
        chosen = rng.choice(len(df), size=size, replace=False) if groups is None else \
            balanced_choice(groups, size, rng)
        keep = np.zeros(len(df), dtype=bool)
        keep[chosen] = True
        res = self.result(df, keep, "not_sampled", f"not among the {size} sampled rows")
        if groups is not None:
            kept = pd.Series(groups[keep]).value_counts()
            res.stats["by_group"] = {str(k): int(v) for k, v in kept.items()}
        if self.order == "sampled":
            res.kept = df.iloc[chosen].reset_index(drop=True)
        return res

    def _groups(self, df: pd.DataFrame) -> np.ndarray:
        if isinstance(self.balance, str):
            return df[self.balance].astype(str).to_numpy()
        from ..clustering import clusters

        return clusters(df, self.balance).names.astype(str).to_numpy()


def balanced_counts(sizes: np.ndarray, n: int) -> np.ndarray:
    """Rows to draw from each group: equal shares of ``n``, a group smaller than its share
    giving all it has and the rest shared among the others (water-filling); the rows left
    over by rounding go to the largest groups first."""
    take = np.zeros(len(sizes), dtype=np.int64)
    left, open_ = n, np.ones(len(sizes), dtype=bool)
    while left > 0 and open_.any():
        share = left // int(open_.sum())
        small = open_ & (sizes - take <= share)
        if small.any():  # these give everything they have; share the rest again
            left -= int((sizes[small] - take[small]).sum())
            take[small], open_[small] = sizes[small], False
            continue
        take[open_] += share
        left -= share * int(open_.sum())
        for g in np.argsort(-sizes, kind="stable"):
            if left == 0:
                break
            if open_[g] and take[g] < sizes[g]:
                take[g] += 1
                left -= 1
        break
    return take


def balanced_choice(groups: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``n`` rows drawn evenly across the values of ``groups``."""
    names, inverse = np.unique(groups, return_inverse=True)
    counts = balanced_counts(np.bincount(inverse, minlength=len(names)), n)
    picks = [rng.choice(np.flatnonzero(inverse == g), size=int(k), replace=False)
             for g, k in enumerate(counts) if k]
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


class Mix:
    """A source that mixes several tables by weight, with a seed.

    Each source contributes ``round(n * weight / sum(weights))`` rows drawn without
    replacement (with replacement when ``replace=True``). Rows keep their ``_source``
    (file and line; rows given in memory get ``<name>:N``), and ``_source_name`` names the
    source each came from. A source smaller than its share gives all its rows, and the
    shortfall is reported in ``counts`` rather than silently refilled from others.

    Args:
        sources: ``{name: table}`` where a table is anything ``read_table`` accepts.
        weights: ``{name: weight}``; missing names weigh 1.
        n: total rows wanted (default: the sum of the source sizes).
        seed: random seed.
        replace: draw with replacement (a source may then give more rows than it has).
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
        self.base: Path | None = None

    def _resolved(self, source):
        if isinstance(source, (str, Path)) and self.base is not None \
                and not Path(source).is_absolute():
            return self.base / source
        return Path(source) if isinstance(source, str) else source

    def load(self) -> pd.DataFrame:
        tables = {name: read_table(self._resolved(src), origin=name)
                  for name, src in self.sources.items()}
        n = self.n if self.n is not None else sum(len(t) for t in tables.values())
        total = sum(self.weights.values())
        rng = np.random.default_rng(self.seed)
        parts = []
        for name, table in tables.items():
            want = round(n * self.weights[name] / total) if total else 0
            take = want if self.replace else min(want, len(table))
            idx = rng.choice(len(table), size=take, replace=self.replace)
            parts.append(table.iloc[np.sort(idx)].assign(**{SOURCE_NAME: name}))
            self.counts[name] = {"wanted": want, "taken": take, "available": len(table)}
        return pd.concat(parts, ignore_index=True)

    def fingerprint(self):
        return fingerprint_of({"sources": {k: self._resolved(v) for k, v in self.sources.items()},
                               "weights": self.weights, "n": self.n, "seed": self.seed,
                               "replace": self.replace})
