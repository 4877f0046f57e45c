"""Augment / Generate: new rows from existing ones with an LLM.

Two styles fit the same stage:

- perturbation (Hamel Husain's Honeycomb case study): for each row, ask for rewordings of
  the question and/or a substitution of one column in both the column list and the query,
  keeping the same complexity; the new rows inherit the fields they do not change;
- bootstrap (Wang et al., 2023, "Self-Instruct"): show ``k`` seed rows sampled from the
  table and ask for new instructions; the new rows inherit nothing.

Every new row gets a fresh ``_id``, ``_parent`` = the row it came from, and its parent's
``_source``. Input rows are kept by default. A request that fails, or whose reply cannot be
parsed even after one corrective retry, makes no new rows; what happens to its row follows
``on_failure`` (default ``"keep"``: with ``keep="all"`` the row stays and the failure is
counted in the stats).
"""
from __future__ import annotations

import random

import pandas as pd

from ...core.stage import StageResult
from ...core.table import ID, derive_rows, domain_record
from ...errors import StageError
from ...llm.structured import ParseError, extract_json
from ...llm.types import Failure
from ..filters import renamed
from .base import LLMStage, outcome_health

NO_ROWS = "augment_no_rows"
KEEPS = ("all", "new")


class Augment(LLMStage):
    """Make new rows with an LLM: ``prompt`` builds the request, ``parse`` reads the reply.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: ``prompt(row, examples) -> str | messages``; ``row`` is the row's fields,
            ``examples`` the ``k`` few-shot rows (a prompt may leave it out: ``prompt(row)``).
        parse: ``parse(row, reply) -> dict | list[dict]``: the new rows' fields. ``reply``
            is the text, or with ``schema`` the reply's validated JSON. Default: the JSON
            in the reply (an object or a list of objects). Raise to refuse a reply.
        schema: optional JSON Schema of the reply (sent to constrain decoding).
        k: few-shot rows per prompt, sampled (seeded) from the table, never the row itself.
        n: samples per row (requests differing only by sample index).
        keep: ``"all"`` (default) keeps the input rows and the new ones; ``"new"`` replaces
            each row by its new rows (a row that got none is rejected as ``augment_no_rows``,
            or handled by ``on_failure`` when its requests failed).
        inherit: fields a new row does not set are copied from its parent (``True``), left
            empty (``False``), or copied only for the listed field names.
        temperature, max_tokens: sampling for these requests (default: the client's).
        on_failure: for a row none of whose requests gave a usable reply: ``"keep"``,
            ``"error"`` or ``"reject"`` (default: ``"keep"`` with ``keep="all"``, where the
            row stays anyway, ``"error"`` with ``keep="new"``).
        seed: seeds the few-shot sampling.
    """

    context_names = ("examples",)
    default_on_failure = "keep"
    produces = "new rows"

    def __init__(self, llm, prompt, parse=None, *, schema: dict | None = None, k: int = 0,
                 n: int = 1, keep: str = "all", inherit=True, keep_originals: bool | None = None,
                 **kwargs):
        if keep_originals is not None:
            renamed(kwargs.get("name") or "augment", "keep_originals", "keep")
            keep = "all" if keep_originals else "new"
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

    def added_columns(self) -> dict[str, str]:
        return {}

    # -- building requests ---------------------------------------------------------------
    def examples_for(self, rows: list[dict], ids: list, position: int) -> list[dict]:
        """``k`` other rows for the row at ``position``: seeded by the row id, order-free."""
        if self.k == 0:
            return []
        rng = random.Random(f"{self.seed}:{ids[position]}")
        picks = rng.sample(range(len(rows)), min(self.k + 1, len(rows)))
        return [domain_record(rows[i]) for i in picks if i != position][: self.k]

    # -- reading replies -------------------------------------------------------------------
    def parse_reply(self, row: dict, text: str) -> list[dict]:
        if self.schema is None and self.parse is None:
            value = extract_json(text)
        else:
            value = super().parse_reply(row, text)
        records = [value] if isinstance(value, dict) else value
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ParseError(f"expected an object or a list of objects, got "
                             f"{type(value).__name__}")
        return [{k: v for k, v in r.items() if not str(k).startswith("_")} for r in records]

    def _fill(self, record: dict, columns: list[str]) -> dict:
        if self.inherit is True:
            return record
        copy = set(self.inherit) if isinstance(self.inherit, (list, tuple, set)) else set()
        return {**{c: None for c in columns if c not in copy}, **record}

    # -- the stage -----------------------------------------------------------------------------
    def process_rows(self, df: pd.DataFrame, rows: list[dict]) -> StageResult:
        ids = df[ID].tolist()
        requests, owners = [], []
        for pos, row in enumerate(rows):
            messages = self.messages_for(row, ids[pos], examples=self.examples_for(rows, ids, pos))
            if messages is None:
                continue
            for sample in range(self.n):
                requests.append(self.request(messages, sample, row))
                owners.append(pos)
        parsers = [lambda text, row=rows[o]: self.parse_reply(row, text) for o in owners]
        outcomes = self.run_requests(requests, parsers)
        columns = [c for c in df.columns if not str(c).startswith("_")]
        records, parents, made, first_failure = [], [], [0] * len(rows), {}
        for owner, outcome in zip(owners, outcomes):
            if isinstance(outcome, Failure):
                first_failure.setdefault(owner, outcome)
                continue
            for record in outcome.value:
                records.append(self._fill(record, columns))
                parents.append(ids[owner])
                made[owner] += 1
        new = derive_rows(df, records, parents, taken=set(ids)) if records else df.iloc[0:0]
        result = self._originals(df, made, first_failure)
        result.kept = pd.concat([result.kept, new], ignore_index=True) if len(new) else result.kept
        parsed, failed = outcome_health(outcomes, [ids[o] for o in owners])
        result.stats.update(self.health(len(requests), parsed, failed, len(new)))
        return result

    def _originals(self, df: pd.DataFrame, made: list[int], failed: dict[int, Failure]):
        """The input rows: kept (``keep="all"``), or replaced by their new rows; a row that
        got none is handled by ``on_failure`` when its requests failed, else rejected."""
        if self.keep == "all":
            return self.result(df, [True] * len(df))
        failures = {p: f for p, f in failed.items() if made[p] == 0}
        keep_failed, rejected_failed, errored = self.failed_rows(df, failures)
        empty = [p for p in range(len(df)) if made[p] == 0 and p not in failures]
        rest = df.iloc[empty]
        result = self.result(rest, [False] * len(rest), NO_ROWS,
                             "the model returned no new rows for this row", errored=errored)
        result.kept = keep_failed.reset_index(drop=True)
        result.rejected = pd.concat([result.rejected, rejected_failed], ignore_index=True) \
            if len(rejected_failed) else result.rejected
        return result


class Generate(Augment):
    """:class:`Augment` under the name self-instruct uses for bootstrapping new instructions
    from sampled seed rows (Wang et al., 2023); same arguments."""

