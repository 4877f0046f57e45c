"""Augment: new rows from existing ones with an LLM.

Two styles fit the same stage: perturbation (Hamel Husain's Honeycomb case study: rewordings
of a row's question, or one column swapped in both the column list and the query; the new
rows inherit the fields they do not change) and bootstrap (Wang et al., 2023,
"Self-Instruct": ``k`` seed rows shown, new instructions asked for; they inherit nothing).
"""
from __future__ import annotations

import random

import pandas as pd

from ...core.table import ID, derive_rows, domain_record
from ...errors import StageError
from ...llm.structured import ParseError, extract_json
from .base import LLMStage, Made

NO_ROWS = "augment_no_rows"
KEEPS = ("all", "new")


class Augment(LLMStage):
    """Make new rows with an LLM: ``prompt`` builds the request, ``parse`` reads the reply.

    Every new row gets a fresh ``_id``, ``_parent`` (the row it came from) and its parent's
    ``_source``. A request that fails, or whose reply cannot be parsed even after one
    corrective retry, makes no new rows.

    Args (besides those of every LLM stage, :class:`~.base.LLMStage`):
        prompt: ``prompt(row, examples) -> str | messages``; ``row`` is the row's fields,
            ``examples`` the ``k`` few-shot rows (a prompt may leave it out: ``prompt(row)``).
        parse: ``parse(row, reply) -> dict | list[dict]``: the new rows' fields. ``reply``
            is the text, or with ``schema`` the reply's validated JSON. Default: the JSON
            in the reply (an object or a list of objects). Raise to refuse a reply.
        schema: optional JSON Schema of the reply (sent to constrain decoding).
        k: few-shot rows per prompt, sampled (seeded) from the table, never the row itself.
        n: samples per row (requests differing only by sample index).
        keep: ``"all"`` (default) keeps the input rows and the new ones; ``"new"`` replaces
            each row by its new rows (a row that got none is rejected as ``augment_no_rows``).
        inherit: fields a new row does not set are copied from its parent (``True``), left
            empty (``False``), or copied only for the listed field names.
        on_failure: default ``"keep"`` with ``keep="all"``, ``"error"`` with ``keep="new"``.
        seed: seeds the few-shot sampling.
    """

    context_names = ("examples",)
    produces = "new rows"
    sampled = True

    def __init__(self, llm, prompt, parse=None, *, schema: dict | None = None, k: int = 0,
                 n: int = 1, keep: str = "all", inherit=True, **kwargs):
        if kwargs.get("on_failure") is None:  # a failed row stays when originals stay
            kwargs["on_failure"] = "keep" if keep == "all" else "error"
        super().__init__(llm, prompt, parse=parse, schema=schema, **kwargs)
        if prompt is None:
            raise StageError(self.name, "prompt must be a function of the row")
        if keep not in KEEPS:
            raise StageError(self.name, f"keep must be one of {KEEPS}, got {keep!r}")
        if k < 0 or n < 1:
            raise StageError(self.name, f"k must be >= 0 and n >= 1, got k={k}, n={n}")
        self.k, self.n, self.keep, self.inherit = int(k), int(n), keep, inherit

    @property
    def kind(self) -> str:
        """``"row"`` without few-shot rows; with ``k`` > 0 each prompt shows rows sampled
        from the whole table, so the stage needs the whole table (``"global"``)."""
        return "row" if self.k == 0 else "global"

    def contexts(self, df, rows) -> list[dict]:
        """``k`` other rows for each row: seeded by the row id, whatever the table's order."""
        ids = df[ID].tolist()
        return [{"examples": self._examples(rows, ids, p)} for p in range(len(rows))]

    def _examples(self, rows: list[dict], ids: list, position: int) -> list[dict]:
        if self.k == 0:
            return []
        rng = random.Random(f"{self.seed}:{ids[position]}")
        picks = rng.sample(range(len(rows)), min(self.k + 1, len(rows)))
        return [domain_record(rows[i]) for i in picks if i != position][: self.k]

    def value_from(self, row: dict, value) -> list[dict]:
        """The new rows' fields: an object or a list of objects (``_`` keys dropped)."""
        if self.parse is None and self.schema is None:
            value = extract_json(value)
        value = super().value_from(row, value)
        records = [value] if isinstance(value, dict) else value
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ParseError(f"expected an object or a list of objects, got "
                             f"{type(value).__name__}")
        return [{k: v for k, v in r.items() if not str(k).startswith("_")} for r in records]

    def rows_from(self, row: dict, samples: list) -> Made:
        new = [self._filled(r, row) for records in samples if records for r in records]
        if self.keep == "all":
            return Made(new=new, produced=len(new))
        if new:
            return Made("replaced", new=new, produced=len(new))
        return Made("rejected", code=NO_ROWS, reason="the model returned no new rows for "
                                                     "this row", produced=0)

    def _filled(self, record: dict, parent: dict) -> dict:
        if self.inherit is True:
            return record
        copy = set(self.inherit) if isinstance(self.inherit, (list, tuple, set)) else set()
        return {**{c: None for c in parent if c not in copy}, **record}

    def planned_output(self, df: pd.DataFrame, unknown_columns=()) -> pd.DataFrame:
        """For an estimate: ``n`` new rows per chosen row, each a copy of its parent (what
        the model will write is not known), besides it or (``keep="new"``) instead of it."""
        chosen = df[ID].iloc[self.planned_rows(df, unknown_columns)]
        parents = [i for i in chosen for _ in range(self.n)]
        copies = derive_rows(df, [{} for _ in parents], parents, taken=set(df[ID]))
        kept = df if self.keep == "all" else df[~df[ID].isin(chosen)]
        return pd.concat([kept, copies], ignore_index=True)
