"""The loop every LLM stage shares: rows -> requests -> replies -> values -> rows.

A stage supplies its messages (a prompt function, or its own default) and
:meth:`LLMStage.rows_from`: what a parsed reply makes of its row (a :class:`Made`). This
class owns the rest, the same way for every stage (curator's prompt + parse shape):

- **selection**: ``when(row)`` picks the rows the stage works on; the others pass through;
- **requests**: ``prompt(row, **context)`` names the context it wants among what the stage
  offers (an unknown name is an error when the stage is built, a prompt that raises errors
  its row); ``n`` samples per row; the reply schema is sent as a structured-output request;
- **replies**: JSON validated against the schema (else text), then ``parse``; a reply that
  fails gets one corrective retry (:func:`~curate.llm.structured.complete_parsed`);
- **failures**: a row that got no usable reply follows ``on_failure``;
- **health**: replies by outcome, a failure sample, tokens and a verdict in the stats;
- **planning** (``--estimate``): :meth:`~LLMStage.planned_requests`,
  :meth:`~LLMStage.planned_output` and :attr:`~LLMStage.max_rounds`, with no client at all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ...core.stage import ROW_ERROR, RowErrors, Stage, StageResult, _row_errors, one_line
from ...core.table import ID, derive_rows, empty_like, mark, row_dicts
from ...errors import StageError
from ...llm.accounting import Usage
from ...llm.dialects import drop_added_nulls
from ...llm.structured import Parsed, check_schema_valid, complete_parsed, extract_json, validate
from ...llm.types import PARSE_FAILED, REFUSED, REQUEST_FAILED, TRUNCATED, Failure, Request, as_messages
from .support import (PlannedRow, Unknown, UserFunction, add_counts, check_callable, column,
                      failure_sample, metered, structured_warnings)

ON_FAILURE = ("error", "keep", "reject")
FAILED_SHARE_WARNING = 0.1  # a stage whose requests fail more often than this is flagged


@dataclass
class Made:
    """What a stage makes of one row from its reply (:meth:`LLMStage.rows_from`).

    Args:
        to: where the row goes: ``"kept"``, ``"rejected"`` (with ``code`` and ``reason``),
            ``"errored"`` (likewise) or ``"replaced"`` (by its ``new`` rows).
        columns: written on the row (kept or rejected); a column other rows of the stage
            get and this one does not is left missing (NaN), as concatenated tables leave it.
        new: the fields of new rows derived from it (placed right after it; a field they
            leave out is copied from the row; ``_``-prefixed keys become bookkeeping columns).
        produced: what the row counts towards the stage's health (verdicts, new rows, ...).
        stats: counts added into the stage's stats (numbers add up, dicts of counts merge).
    """

    to: str = "kept"
    columns: dict = field(default_factory=dict)
    new: list = field(default_factory=list)
    code: str | None = None
    reason: str | None = None
    produced: int = 1
    stats: dict = field(default_factory=dict)


class LLMStage(Stage):
    """Base of the LLM stages (see the module docstring for what it owns).

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: ``prompt(row, **context) -> str | messages``; ``None`` for the stage's
            default prompt where it has one.
        parse: ``parse(row, reply) -> value``: ``reply`` is the reply's validated JSON when
            the stage has a schema, else its text. Raise to refuse a reply (it gets one
            corrective retry).
        schema: JSON Schema of the reply (sent to the endpoint to constrain decoding, and
            checked on every reply), or a function of the row giving one (e.g. a query
            schema whose column names are the row's own columns).
        temperature, max_tokens: sampling for these requests (default: the client's).
        on_failure: what happens to a row that got no usable reply: ``"error"``,
            ``"keep"`` or ``"reject"``.
        seed: seeds the stage's own random choices (few-shot picks, tie breaks); the
            model's sampling seed belongs to the client.
        when: optional ``when(row) -> bool`` choosing the rows the stage works on; the
            others pass through kept, untouched (``not_selected`` in the stats).

    A subclass sets ``context_names`` (what its prompts may ask for), ``n`` (requests per
    row), ``sampled`` (``rows_from`` gets the list of the ``n`` values, ``None`` for a
    failed one, instead of one value) and ``counts`` (its own stats, at zero), and
    implements :meth:`rows_from`; it may override :meth:`default_messages`,
    :meth:`contexts`, :meth:`shown`, :meth:`shape`, :meth:`value_from`, :meth:`unanswered`
    and, for a loop of its own over the same machinery, :meth:`rounds`.
    """

    context_names: tuple[str, ...] = ()
    default_on_failure = "error"
    produces = "rows processed"  # what the stage makes, for its health line
    n = 1
    sampled = False
    max_rounds = 2  # the requests one planned request may become: one corrective retry
    counts: dict = {}

    def __init__(self, llm, prompt=None, *, parse=None, schema: dict | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 on_failure: str | None = None, seed: int = 0, when=None,
                 name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        check_callable(self.name, "when", when, "a function of the row")
        self.when = when
        if llm is None or not hasattr(llm, "complete_many"):
            raise StageError(self.name, f"llm must be a curate.LLM client, got {llm!r}")
        on_failure = self.default_on_failure if on_failure is None else on_failure
        if on_failure not in ON_FAILURE:
            raise StageError(self.name, f"on_failure must be one of {', '.join(ON_FAILURE)}, "
                                        f"got {on_failure!r}")
        if schema is not None and not callable(schema):
            try:
                check_schema_valid(schema)
            except Exception as error:
                raise StageError(self.name, str(error)) from None
        self.llm, self.schema, self.on_failure, self.seed = llm, schema, on_failure, seed
        self.temperature, self.max_tokens = temperature, max_tokens
        self.prompt = UserFunction(self.name, "prompt", prompt, self.context_names) \
            if prompt is not None else None
        check_callable(self.name, "parse", parse, "a function (row, reply) -> value")
        self.parse = parse
        self._usage = Usage()

    # -- what a stage supplies -------------------------------------------------------------
    def rows_from(self, row: dict, value) -> Made | None:  # pragma: no cover - abstract
        """What the parsed ``value`` (with ``sampled``: the list of the row's values) makes
        of ``row``; None when the stage errored the row itself (:meth:`row_error`)."""
        raise NotImplementedError

    def default_messages(self, row: dict, **context) -> list[dict]:
        raise StageError(self.name, "this stage needs a prompt function")

    def contexts(self, df: pd.DataFrame, rows: list[dict]) -> list[dict]:
        """The context offered to the prompt of each row (``examples``, ``feedback``)."""
        return [{} for _ in rows]

    def shown(self, row: dict) -> dict:
        """The fields of a row its prompt sees."""
        return row

    def shape(self, value):
        """A reply's JSON as read, before it is validated against the schema."""
        return value

    def value_from(self, row: dict, value):
        """The stage's value of a reply: ``parse(row, value)``, or the value as it is."""
        return self.parse(row, value) if self.parse is not None else value

    def unanswered(self, row: dict, failure: Failure) -> Made:
        """A row kept without a usable reply (``on_failure="keep"``)."""
        return Made(produced=0)

    # -- requests ----------------------------------------------------------------------------
    def messages_for(self, row: dict, row_id=None, **context) -> list[dict] | None:
        """The conversation sent for one row (handy to inspect a prompt).

        Inside a run (``row_id`` given), a prompt function that raises, or returns no
        messages, errors that row (``prompt_raised``) and None is returned.
        """
        try:
            value = self.default_messages(row, **context) if self.prompt is None \
                else self.prompt(row, **context)
            return as_messages(value)
        except StageError:
            raise
        except Exception as error:
            what = ("must return a string or a list of {'role', 'content'} messages"
                    if isinstance(error, TypeError) and "prompt must be" in str(error)
                    else f"raised {type(error).__name__}")
            reason = f"the prompt function {what}: {one_line(error)}"
            if row_id is None:
                raise StageError(self.name, reason) from error
            self.row_error(row_id, "prompt_raised", reason)
            return None

    def schema_for(self, row: dict | None) -> dict | None:
        """The reply schema of one row: the stage's, or what its schema function gives."""
        if not callable(self.schema):
            return self.schema
        schema = self.schema(row)
        try:
            check_schema_valid(schema)
        except Exception as error:
            raise StageError(self.name, f"the schema function gave an invalid schema: "
                                        f"{error}") from None
        return schema

    def request(self, messages, sample: int = 0, row: dict | None = None) -> Request:
        """One request for ``messages``, with the reply schema of ``row``."""
        return Request(messages, temperature=self.temperature, max_tokens=self.max_tokens,
                       sample=sample, schema=self.schema_for(row))

    def requests(self, df: pd.DataFrame, rows: list[dict]):
        """The first round: ``(requests, the position of each one's row, contexts)``."""
        contexts = self.contexts(df, rows)
        requests, owners = [], []
        for p, (row, row_id) in enumerate(zip(rows, df[ID])):
            messages = self.messages_for(self.shown(row), row_id, **contexts[p])
            if messages is not None:
                requests += [self.request(messages, s, row) for s in range(self.n)]
                owners += [p] * self.n
        return requests, owners, contexts

    # -- replies -------------------------------------------------------------------------------
    def read_reply(self, row: dict, text: str):
        """A reply's value: with a schema its JSON, validated; then :meth:`value_from`."""
        schema = self.schema_for(row)
        value = text
        if schema is not None:
            value = validate(drop_added_nulls(self.shape(extract_json(text)), schema), schema)
        return self.value_from(row, value)

    def complete(self, requests: list[Request], meter, retry: bool, rows: list[dict]) -> list:
        """A :class:`Parsed` value or a :class:`Failure` per request (``rows``: each one's
        row, for :meth:`read_reply`), with a corrective retry if ``retry``."""
        parsers = [partial(self.read_reply, row) for row in rows]
        return complete_parsed(self.llm, requests, parsers, usage=self._usage, meter=meter,
                               retry=retry)

    def rounds(self, requests, owners, df, rows, contexts, meter) -> list:
        """A :class:`Parsed` value or a :class:`Failure` per request (``meter``: the stage's
        progress bar): one corrective retry when ``max_rounds`` allows it."""
        return self.complete(requests, meter, self.max_rounds > 1, [rows[o] for o in owners])

    # -- the loop ----------------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        self._usage = Usage()
        rows = row_dicts(df)
        if self.when is None:
            return self.process_rows(df, rows)
        picked = [p for p, (row, row_id) in enumerate(zip(rows, df[ID]))
                  if self._picked(row, row_id)]
        result = self.process_rows(df.iloc[picked].reset_index(drop=True),
                                   [rows[p] for p in picked])
        passed = df.drop(index=df.index[picked])
        result.kept = pd.concat([passed, result.kept], ignore_index=True)
        result.stats["not_selected"] = len(passed)
        return result

    def _picked(self, row: dict, row_id) -> bool:
        picked = self.call(self.when, row, row_id, "when")
        return picked is not ROW_ERROR and bool(picked)

    def process_rows(self, df: pd.DataFrame, rows: list[dict]) -> StageResult:
        requests, owners, contexts = self.requests(df, rows)
        with metered(self.name, len(requests), self._usage) as meter:
            outcomes = self.rounds(requests, owners, df, rows, contexts, meter)
        ids = df[ID].tolist()
        mine: dict[int, list] = {}
        for owner, outcome in zip(owners, outcomes):
            mine.setdefault(owner, []).append(outcome)
        made, stats = {}, add_counts({}, self.counts)
        for p, got in mine.items():
            values = [o.value if isinstance(o, Parsed) else None for o in got]
            if all(isinstance(o, Failure) for o in got):
                made[p] = self.failed(rows[p], got[0])
            else:
                made[p] = self.rows_from(rows[p], values if self.sampled else values[0])
            if made[p] is None:
                del made[p]
            else:
                add_counts(stats, made[p].stats)
        result = self.assemble(df, made)
        failures = [(ids[o], f) for o, f in zip(owners, outcomes) if isinstance(f, Failure)]
        parsed = sum(isinstance(o, Parsed) for o in outcomes)
        produced = sum(m.produced for m in made.values())
        result.stats.update({**self.health(len(requests), parsed, failures, produced), **stats})
        return result

    def failed(self, row: dict, failure: Failure) -> Made:
        """A row that got no usable reply, as ``on_failure`` says."""
        if self.on_failure == "keep":
            return self.unanswered(row, failure)
        return Made("errored" if self.on_failure == "error" else "rejected", code=failure.code,
                    reason=failure.reason, produced=0)

    def assemble(self, df: pd.DataFrame, made: dict[int, Made]) -> StageResult:
        """The stage's result from what each row made (rows in ``made``'s positions)."""
        names = list(dict.fromkeys(k for m in made.values() for k in m.columns))
        parts = {}
        for part in ("kept", "rejected", "errored"):
            at = [p for p in sorted(made) if made[p].to == part]
            table = df.iloc[at].reset_index(drop=True)
            for name in names if part != "errored" else ():  # unset: as a concat leaves it
                was = table[name].tolist() if name in table.columns else [np.nan] * len(at)
                table[name] = column([made[p].columns.get(name, old) for p, old in zip(at, was)])
            if part != "kept":
                table = mark(table, self.name, [made[p].code for p in at],
                             [made[p].reason for p in at]) if at else empty_like(table)
            parts[part] = table
        new = self.new_rows(df, made)
        if len(new):
            parts["kept"] = pd.concat([parts["kept"], new], ignore_index=True)
        return StageResult(parts["kept"], parts["rejected"], parts["errored"])

    def new_rows(self, df: pd.DataFrame, made: dict[int, Made]) -> pd.DataFrame:
        """The rows derived from the rows in ``made`` (``_parent``, a fresh ``_id``)."""
        records, parents = [], []
        for p in sorted(made):
            records += made[p].new
            parents += [df[ID].iloc[p]] * len(made[p].new)
        new = derive_rows(df, records, parents, taken=set(df[ID])) if records else df.iloc[0:0]
        for name in dict.fromkeys(k for r in records for k in r if str(k).startswith("_")):
            new[name] = column([r.get(name) for r in records])
        return new

    # -- planning (an estimate: nothing is sent) ---------------------------------------------
    def planned_requests(self, df: pd.DataFrame, unknown_columns=()) -> list[Request]:
        """The requests this stage's first round would send for ``df``, built by its own
        request building with no client (see :meth:`planned_rows`); a prompt that raises
        sends nothing for its row."""
        df = self.prepare_input(df)
        df = df[~self._row_checks(df)[0]].reset_index(drop=True)  # rows the run errors
        token = _row_errors.set(RowErrors(df[ID]))
        try:
            picked = self.planned_rows(df, unknown_columns)
            return self.requests(df.iloc[picked].reset_index(drop=True),
                                 row_dicts(df.iloc[picked]))[0]
        finally:
            _row_errors.reset(token)

    def planned_rows(self, df: pd.DataFrame, unknown_columns=()) -> list[int]:
        """The positions of the rows ``when`` would choose; a ``when`` that reads one of
        ``unknown_columns`` (written by an earlier LLM stage) chooses the row, one that
        raises does not (the run errors the row)."""
        if self.when is None:
            return list(range(len(df)))
        unknown = set(unknown_columns)
        return [p for p, row in enumerate(row_dicts(df)) if self._planned(row, unknown)]

    def _planned(self, row: dict, unknown: set) -> bool:
        try:
            return bool(self.when(PlannedRow(row, unknown)))
        except Unknown:
            return True
        except Exception:
            return False

    def planned_output(self, df: pd.DataFrame, unknown_columns=()) -> pd.DataFrame:
        """The rows this stage would pass on, as an estimate assumes them: every row kept,
        the data columns it writes empty (no reply is known)."""
        added = [c for c in self.added_columns() if not str(c).startswith("_")]
        return df.assign(**{c: None for c in added if c not in df.columns})

    # -- health ----------------------------------------------------------------------------------
    def health(self, requests: int, parsed: int, failures: list[tuple[str, Failure]],
               produced: int) -> dict:
        """The stage's LLM health: replies by outcome, a failure sample, tokens, a short
        verdict (``health``), how replies were held to the schema (``structured``) and a
        warning when it produced nothing, more than :data:`FAILED_SHARE_WARNING` of its
        requests failed, or it decoded unconstrained for want of a package."""
        codes = Counter(f.code for _, f in failures)
        stats = {
            "replies": {"requests": requests, "parsed": parsed,
                        "parse_failed": codes[PARSE_FAILED], "truncated": codes[TRUNCATED],
                        "request_failed": codes[REQUEST_FAILED], "refused": codes[REFUSED]},
            "produced": produced, "failure_sample": failure_sample(failures),
            "llm": self._usage.as_stats(), "health": "ok"}
        if self._usage.batches:
            stats["batches"] = list(self._usage.batches)
        warnings = structured_warnings(self.llm, self.schema, stats)
        summary = ", ".join(f"{c}: {n}" for c, n in codes.most_common()) or "no failures"
        if requests and not produced:
            stats["health"] = "produced nothing"
            warnings.insert(0, f"produced no {self.produces} from {requests} requests "
                               f"({summary})")
        elif requests and len(failures) > FAILED_SHARE_WARNING * requests:
            stats["health"] = f"{len(failures)} of {requests} failed"
            warnings.insert(0, f"{len(failures)} of {requests} requests gave no usable reply "
                               f"({summary}); the first: "
                               f"{one_line(failures[0][1].reason, 200)}")
        if warnings:
            stats["warnings"] = warnings
        return stats
