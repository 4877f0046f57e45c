"""Augment / Generate: new rows from existing ones with an LLM.

Two styles fit the same stage:

- perturbation (Hamel Husain's Honeycomb case study): for each row, ask for rewordings of
  the question and/or a substitution of one column in both the column list and the query,
  keeping the same complexity; the new rows inherit the fields they do not change;
- bootstrap (Wang et al., 2023, "Self-Instruct"): show ``k`` seed rows sampled from the
  table and ask for new instructions; the new rows inherit nothing.

Every new row gets a fresh ``_id`` and ``_parent`` = the row it came from. Input rows are
kept by default. A request that fails, or whose reply cannot be parsed even after one
corrective retry, makes no new rows: with ``keep_originals=True`` the original stays kept
and the failure is counted in the stats (``parse_failed``, ``request_failed``, with a
sample of the bad replies); with ``keep_originals=False`` an original that got no new row
is errored with the failure's code, so nothing disappears silently.
"""
from __future__ import annotations

import functools
import random

import pandas as pd

from ..errors import StageError
from ..llm.stage_support import (build_messages, domain_record, errored_frame, failure_sample,
                                 metered)
from ..llm.structured import (ParseError, check_schema_valid, complete_parsed, extract_json,
                              validate)
from ..llm.types import PARSE_FAILED, Failure, Request
from ..stage import Stage, StageResult
from ..table import ID, derive_rows

NO_ROWS = "augment_no_rows"


class Augment(Stage):
    """Make new rows with an LLM: ``prompt`` builds the request, ``parse`` reads the reply.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: ``prompt(row, examples) -> str | messages``; ``row`` is the row's fields as
            a dict, ``examples`` the ``k`` few-shot rows (may be omitted: ``prompt(row)``).
        parse: ``parse(row, reply) -> dict | list[dict]``: the new rows' fields. ``reply``
            is the text, or with ``schema`` the reply's validated JSON. Default: the JSON
            in the reply (an object or a list of objects). Raise to reject a reply.
        schema: optional JSON Schema the reply's JSON must match.
        k: few-shot rows per prompt, sampled (seeded) from the table, never the row itself.
        n: samples per row (requests differing only by sample index).
        keep_originals: keep the input rows (default) or replace each by its new rows.
        inherit: fields a new row does not set are copied from its parent (``True``), left
            empty (``False``), or copied only for the listed field names.
        temperature, max_tokens: sampling for these requests (default: the client's).
        seed: seeds the few-shot sampling.
    """

    def __init__(self, llm, prompt, parse=None, *, schema: dict | None = None, k: int = 0,
                 n: int = 1, keep_originals: bool = True, inherit=True,
                 temperature: float | None = None, max_tokens: int | None = None,
                 seed: int = 0, name: str | None = None):
        super().__init__(name)
        if not callable(prompt):
            raise StageError(self.name, "prompt must be a function of the row")
        if k < 0 or n < 1:
            raise StageError(self.name, f"k must be >= 0 and n >= 1, got k={k}, n={n}")
        if schema is not None:
            check_schema_valid(schema)
        self.llm, self.prompt, self.parse, self.schema = llm, prompt, parse, schema
        self.k, self.n, self.keep_originals, self.inherit = int(k), int(n), keep_originals, inherit
        self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed

    # -- building requests ---------------------------------------------------------------
    def examples_for(self, rows: list[dict], position: int) -> list[dict]:
        """``k`` other rows for the row at ``position``: seeded by the row id, order-free."""
        if self.k == 0:
            return []
        rng = random.Random(f"{self.seed}:{rows[position].get(ID)}")
        picks = rng.sample(range(len(rows)), min(self.k + 1, len(rows)))
        return [domain_record(rows[i]) for i in picks if i != position][: self.k]

    def _requests(self, rows: list[dict]) -> tuple[list[Request], list[int]]:
        requests, owners = [], []
        for pos, row in enumerate(rows):
            messages = build_messages(self.name, self.prompt, domain_record(row),
                                      self.examples_for(rows, pos))
            for sample in range(self.n):
                requests.append(Request(messages, temperature=self.temperature,
                                        max_tokens=self.max_tokens, sample=sample))
                owners.append(pos)
        return requests, owners

    # -- reading replies -------------------------------------------------------------------
    def _parse_reply(self, row: dict, text: str) -> list[dict]:
        value = text
        if self.schema is not None:
            value = validate(extract_json(text), self.schema)
        if self.parse is not None:
            value = self.parse(row, value)
        elif self.schema is None:
            value = extract_json(text)
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
    def process(self, df: pd.DataFrame) -> StageResult:
        rows = df.to_dict("records")
        requests, owners = self._requests(rows)
        parsers = [functools.partial(self._parse_reply, domain_record(rows[o])) for o in owners]
        with metered(self.name, len(requests)) as meter:
            outcomes = complete_parsed(self.llm, requests, parsers, usage=meter.usage,
                                       meter=meter)
        columns = [c for c in df.columns if not str(c).startswith("_")]
        records, parents, failures = [], [], []
        made = [0] * len(rows)
        for owner, outcome in zip(owners, outcomes):
            if isinstance(outcome, Failure):
                failures.append((owner, outcome))
                continue
            for record in outcome.value:
                records.append(self._fill(record, columns))
                parents.append(rows[owner][ID])
                made[owner] += 1
        new = derive_rows(df, records, parents, taken=set(df[ID])) if records else df.iloc[0:0]
        result = self._split(df, made, failures)
        result.kept = pd.concat([result.kept, new], ignore_index=True) if len(new) else result.kept
        n_parse = sum(f.code == PARSE_FAILED for _, f in failures)
        result.stats.update({
            "requests": len(requests), "rows_generated": len(new), "parse_failed": n_parse,
            "request_failed": len(failures) - n_parse,
            "failure_sample": failure_sample([(rows[o][ID], f) for o, f in failures]),
            "llm": meter.usage.as_stats()})
        return result

    def _split(self, df: pd.DataFrame, made: list[int], failures) -> StageResult:
        """Originals: kept, or (``keep_originals=False``) replaced by their new rows, errored
        with their first failure, or rejected when the model made no row without failing."""
        if self.keep_originals:
            return self.result(df, [True] * len(df))
        first: dict[int, Failure] = {}
        for owner, failure in failures:
            first.setdefault(owner, failure)
        no_rows = [p for p in range(len(df)) if made[p] == 0]
        err_pos = [p for p in no_rows if p in first]
        rej_pos = [p for p in no_rows if p not in first]
        errored = errored_frame(self.name, df, {p: first[p] for p in err_pos})
        rest = df.iloc[rej_pos]
        return self.result(rest, [False] * len(rest), NO_ROWS,
                           "the model returned no new rows for this row", errored=errored)


class Generate(Augment):
    """:class:`Augment` under the name self-instruct uses for bootstrapping new instructions
    from sampled seed rows (Wang et al., 2023); same arguments."""

