"""The loop every LLM stage shares: rows -> requests -> replies -> parsed values -> rows.

A stage built on :class:`LLMStage` supplies only its prompt and how a parsed reply becomes
columns or rows; this class owns the rest, the same way for every stage:

- **prompt functions** are called as ``prompt(row, **context)``: ``row`` is the row's fields
  (a dict), and the function names the context it wants among what the stage offers
  (``examples`` for few-shot rows, ``feedback`` for a repair, ...). An unknown parameter is
  an error when the stage is built, not on the thousandth row;
- **parsing**: with a JSON Schema the reply's JSON is extracted and validated (and the schema
  is sent to the endpoint as a structured-output request); an optional ``parse(row, reply)``
  turns it into the stage's value; a reply that fails gets one corrective retry;
- **failures** (no reply, a cut-off reply, an unparseable one) follow one policy,
  ``on_failure``: ``"error"`` errors the row with the failure's code, ``"keep"`` keeps it as
  it was (unjudged, unaugmented), ``"reject"`` rejects it with the code;
- **health**: requests, parsed replies, parse failures, truncations and request failures,
  a sample of failing replies and the tokens spent go into the stage's stats, and a stage
  that produced nothing says so in its warnings.
"""
from __future__ import annotations

import contextlib
import inspect
import time
from collections import Counter
from typing import Callable

import pandas as pd

from ...core.stage import ROW_ERROR, Stage, one_line
from ...core.table import ID, domain_record, empty_like, mark, row_dicts
from ...errors import StageError
from ...llm.accounting import Usage
from ...llm.dialects import drop_added_nulls
from ...llm.structured import Parsed, check_schema_valid, complete_parsed, extract_json, validate
from ...llm.types import PARSE_FAILED, REFUSED, REQUEST_FAILED, TRUNCATED, Failure, Request, as_messages
from ...progress import task

ON_FAILURE = ("error", "keep", "reject")
SAMPLE_SIZE = 5
FAILED_SHARE_WARNING = 0.1  # a stage whose requests fail more often than this is flagged
UNCONSTRAINED_FIX = "; install it as `make` does: pip install --no-deps xgrammar apache-tvm-ffi"


class Meter:
    """Advances a stage's progress bar and shows the live token/cost/cache line."""

    def __init__(self, bar, usage: Usage, total: int):
        self.bar, self.usage, self.total = bar, usage, total
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.bar.advance(n)
        now = time.monotonic()
        if now - self._shown > 0.1:
            self._shown = now
            self.bar.info(self.usage.summary())

    def grow(self, n: int) -> None:
        self.total += n
        self.bar.total(self.total)

    def close(self) -> None:
        self.bar.info(self.usage.summary())


@contextlib.contextmanager
def metered(description: str, total: int, usage: Usage):
    """``with metered(name, n, usage) as meter:`` a bar that shows ``usage`` as it grows."""
    with task(description, total) as bar:
        meter = Meter(bar, usage, total)
        try:
            yield meter
        finally:
            meter.close()


def _parameters(fn) -> tuple[list[str], list[str], bool] | None:
    """(names after the first, the required ones among them, takes **kwargs); None if
    the signature cannot be read."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [p.name for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names, required, any(p.kind is p.VAR_KEYWORD for p in params)


class UserFunction:
    """A user's ``fn(row, **context)``, called with the context names it asks for."""

    def __init__(self, stage: str, what: str, fn: Callable, offered: tuple[str, ...]):
        if not callable(fn):
            raise StageError(stage, f"{what} must be a function, got {fn!r}")
        self.stage, self.what, self.fn, self.offered = stage, what, fn, offered
        info = _parameters(fn)
        self._all = info is None or info[2]
        self._names = [] if info is None else [n for n in info[0] if n in offered]
        unknown = [] if info is None else [n for n in info[1] if n not in offered]
        if unknown:
            hint = f"{what}(row, {', '.join(offered)})" if offered else f"{what}(row)"
            raise StageError(stage, f"the {what} function asks for {unknown[0]!r}, which this "
                                    f"stage does not provide (it provides: "
                                    f"{', '.join(offered) or 'nothing beyond the row'}); "
                                    f"write it as {hint}")

    def __call__(self, row, **context):
        chosen = context if self._all else {k: context[k] for k in self._names if k in context}
        return self.fn(row, **chosen)

    def fingerprint(self):
        from ...core.fingerprint import fingerprint_of
        return fingerprint_of(self.fn)


def failure_sample(items: list[tuple[str, Failure]], limit: int = SAMPLE_SIZE) -> list[dict]:
    """The first few failures as plain dicts (row id, code, reason, start of the reply)."""
    out = []
    for row_id, failure in items[:limit]:
        entry = {"_id": row_id, "code": failure.code, "reason": failure.reason}
        if failure.text:
            entry["reply"] = failure.text[:300]
        out.append(entry)
    return out


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
    """

    context_names: tuple[str, ...] = ()
    default_on_failure = "error"
    produces = "rows processed"  # what the stage makes, for its health line

    def __init__(self, llm, prompt=None, *, parse=None, schema: dict | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 on_failure: str | None = None, seed: int = 0, when=None,
                 name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        if when is not None and not callable(when):
            raise StageError(self.name, f"when must be a function of the row, got {when!r}")
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
        if parse is not None and not callable(parse):
            raise StageError(self.name, f"parse must be a function (row, reply) -> value, "
                                        f"got {parse!r}")
        self.parse = parse
        self._usage = Usage()

    # -- what subclasses may override ------------------------------------------------------
    def default_messages(self, row: dict, **context) -> list[dict]:
        raise StageError(self.name, "this stage needs a prompt function")

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

    def parse_reply(self, row: dict, text: str):
        """A reply's value: its JSON validated against the schema, then ``parse``."""
        value = text
        schema = self.schema_for(row)
        if schema is not None:
            value = validate(drop_added_nulls(extract_json(text), schema), schema)
        if self.parse is not None:
            return self.parse(row, value)
        return value

    # -- the shared loop -------------------------------------------------------------------
    def request(self, messages, sample: int = 0, row: dict | None = None) -> Request:
        """One request for ``messages``, with the reply schema of ``row``."""
        return Request(messages, temperature=self.temperature, max_tokens=self.max_tokens,
                       sample=sample, schema=self.schema_for(row))

    def complete(self, requests: list[Request], parsers, meter=None, retry: bool = True):
        """Parsed values or failures, one per request (one corrective retry each)."""
        return complete_parsed(self.llm, requests, parsers, usage=self._usage, meter=meter,
                               retry=retry)

    def run_requests(self, requests: list[Request], parsers) -> list:
        with metered(self.name, len(requests), self._usage) as meter:
            return self.complete(requests, parsers, meter)

    def process(self, df: pd.DataFrame):
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

    def planned_requests(self, df: pd.DataFrame, unknown_columns=()) -> list[Request]:
        """The requests this stage's first round would send for ``df``, built without
        sending anything (see :mod:`curate.llm.estimate`). A ``when`` that reads one of
        ``unknown_columns`` (written by an earlier LLM stage) counts the row as chosen."""
        from ...llm.estimate import dry_run

        return dry_run(self, df, unknown_columns)

    def _picked(self, row: dict, row_id) -> bool:
        picked = self.call(self.when, row, row_id, "when")
        return picked is not ROW_ERROR and bool(picked)

    def process_rows(self, df: pd.DataFrame, rows: list[dict]):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- failures and health -----------------------------------------------------------------
    def failed_rows(self, df: pd.DataFrame, failures: dict[int, Failure]):
        """``(kept, rejected, errored)`` tables of the rows at ``failures``' positions."""
        if not failures:
            return df.iloc[0:0], empty_like(df), empty_like(df)
        positions = sorted(failures)
        rows = df.iloc[positions]
        codes = [failures[p].code for p in positions]
        reasons = [failures[p].reason for p in positions]
        if self.on_failure == "keep":
            return rows, empty_like(df), empty_like(df)
        marked = mark(rows, self.name, codes, reasons)
        if self.on_failure == "reject":
            return df.iloc[0:0], marked, empty_like(df)
        return df.iloc[0:0], empty_like(df), marked

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
        warnings = self._structured_stats(stats)
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

    def _structured_stats(self, stats: dict) -> list[str]:
        """``stats["structured"]`` for a stage with a schema; a warning when decoding was
        unconstrained though it need not be (a package missing, the endpoint refusing)."""
        status = getattr(self.llm, "structured_status", None)
        if self.schema is None or not callable(status):
            return []
        stats["structured"] = status()
        if "missing" not in stats["structured"] and "refused" not in stats["structured"]:
            return []
        fix = UNCONSTRAINED_FIX if "xgrammar" in stats["structured"] else ""
        return [f"replies were not held to the schema while decoding "
                f"({stats['structured']}), so more of them fail to parse{fix}"]


def outcome_health(outcomes: list, ids: list) -> tuple[int, list]:
    """``(parsed, [(row id, failure), ...])`` of one :func:`complete_parsed` batch."""
    parsed = sum(isinstance(o, Parsed) for o in outcomes)
    return parsed, [(i, o) for i, o in zip(ids, outcomes) if isinstance(o, Failure)]


def shown_fields(row: dict, fields: list[str] | None) -> dict:
    """The fields a prompt shows: the named ones, else every domain field."""
    fields_of = domain_record(row)
    return {f: fields_of[f] for f in fields if f in fields_of} if fields else fields_of


def row_ids(df: pd.DataFrame) -> list:
    return df[ID].tolist()
