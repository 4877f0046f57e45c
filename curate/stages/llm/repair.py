"""Repair: fix rows a judge or an assertion rejected, from the critique or the failures.

For each input row (typically the rejected rows of a Judge or an assertion filter, with
their ``critique`` / ``_failures`` / ``_reason`` columns), the LLM is asked for an improved
value of one field given the feedback; the checker runs on the result; while it still fails,
the failures go back into the conversation, up to ``max_attempts`` replies. This is the
curation-time twin of inference-time self-healing (generate, check, feed back the errors),
as in Hamel Husain's Honeycomb case study and Madaan et al., 2023 ("Self-Refine").

A repaired row is a new row (``_parent`` = the original ``_id``) holding the new value in
``field``, the old one in ``_<field>_before_repair``, the number of replies it took in
``_repair_attempts`` and the feedback in ``_repair_feedback``; the original counts as
replaced. A row still failing after ``max_attempts`` is rejected (``repair_failed``) with
the last failures as the reason; a row whose request failed follows ``on_failure``. With
``when``, only the chosen rows are repaired and the others pass through kept. With
``accept``, a value that passes the checker must also pass ``accept(row, value)`` (e.g. "says
no less than the value it replaces"); a refused one rejects the row with accept's reason.
"""
from __future__ import annotations

import re
from collections import Counter

import pandas as pd

from assertions.calling import CheckerCallError, as_failures, call_checker

from ...core.stage import ROW_ERROR, StageResult
from ...core.table import ID, REASON, derive_rows, row_dicts
from ...errors import StageError
from ...llm.structured import error_line, extract_json
from ...llm.types import Failure
from ..filters import verdict_of
from .base import LLMStage, metered
from .judge import render_fields

FAILED = "repair_failed"
REFUSED = "repair_refused"
FOLLOWUP = ("The {field} still fails these checks:\n{failures}\nReply with only the "
            "corrected {field}.")
CLEARED = ("critique", "outcome", "_failures", "_judge_failure")
_FENCED = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def describe_failure(item) -> str:
    """A failure from a checker as one line: ``rule: message`` (objects with ``rule`` and
    ``message``, dicts with those keys, pairs), a string as it is."""
    return item if isinstance(item, str) else str(as_failures([item])[0])


def strip_fence(text: str) -> str:
    """A reply without surrounding whitespace and a single enclosing ``` fence."""
    text = text.strip()
    match = _FENCED.match(text)
    return match.group(1).strip() if match else text


class Repair(LLMStage):
    """Ask the LLM to fix ``field`` given the feedback; re-check; retry up to ``max_attempts``.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: optional ``prompt(row, feedback) -> str | messages``; ``row`` holds the
            row's fields (with the bad ``field``), ``feedback`` the critique or failures as
            text. The default shows ``fields`` and asks for the corrected ``field`` only.
        field: the field to repair (e.g. ``"query"``).
        check: a checker, called by the one convention of :mod:`assertions.calling`
            (parameters named after row fields, e.g. ``assertions.honeycomb.check(query,
            columns)``) on the row with the new value; no failure means repaired. ``None``
            accepts the first reply that parses.
        check_fields: ``{parameter: field}`` for checker parameters named differently.
        parse: ``parse(row, reply) -> new value``; default: the reply without a code fence,
            or its JSON when the old value is not a string (with ``schema``: its JSON).
        max_attempts: replies per row at most (the first one included).
        feedback: the columns holding the feedback (default: ``critique`` if present, else
            ``_failures``, else ``_reason``), or a function ``feedback(row) -> str``.
        fields: the fields the default prompt shows (default: every field except the
            feedback and verdict columns).
        followup: the message sent after a failed check (``{field}``, ``{failures}``).
        when: optional ``when(row) -> bool`` choosing the rows to repair (e.g. outcome ==
            "bad" after a ``Judge(keep="all")``); the other rows pass through kept, untouched.
        clear: columns emptied on a repaired row because they described the old value (the
            judge's verdict, the failures); the feedback used is kept in ``_repair_feedback``.
        accept: optional ``accept(row, value) -> True | (False, code, reason)``, asked about
            a value that passed ``check`` (``row`` holds the old value): a refusal rejects
            the row with that code (default ``repair_refused``) and reason, and is not
            retried; a function that raises errors the row (``accept_raised``).
        on_failure: for a row whose request failed: ``"error"`` (default), ``"keep"``
            (kept unrepaired) or ``"reject"``.
    """

    context_names = ("feedback",)
    produces = "repaired rows"

    def __init__(self, llm, prompt=None, *, field: str, check=None, check_fields=None,
                 parse=None, max_attempts: int = 3, feedback=None, fields=None,
                 followup: str = FOLLOWUP, clear=CLEARED, accept=None, **kwargs):
        super().__init__(llm, prompt, parse=parse, **kwargs)
        if max_attempts < 1:
            raise StageError(self.name, f"max_attempts must be >= 1, got {max_attempts}")
        if check is not None and not callable(check):
            raise StageError(self.name, "check must be a checker function (see assertions.calling)")
        if accept is not None and not callable(accept):
            raise StageError(self.name, f"accept must be a function (row, value) -> True | "
                                        f"(False, code, reason), got {accept!r}")
        self.field, self.check, self.check_fields, self.accept = field, check, check_fields, accept
        self.max_attempts, self.feedback, self.fields = int(max_attempts), feedback, fields
        self.followup, self.clear = followup, tuple(clear)
        self.before = f"_{field}_before_repair"

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def added_columns(self) -> dict[str, str]:
        return {self.before: "annotation", "_repair_attempts": "annotation",
                "_repair_feedback": "annotation"}

    # -- feedback and prompt -------------------------------------------------------------
    def _feedback_columns(self, df: pd.DataFrame) -> list[str]:
        if self.feedback is not None and not callable(self.feedback):
            return [self.feedback] if isinstance(self.feedback, str) else list(self.feedback)
        for column in ("critique", "_failures", REASON):
            if column in df.columns:
                return [column]
        return []

    def feedback_text(self, row: dict, columns: list[str]) -> str:
        if callable(self.feedback):
            return str(self.feedback(row))
        parts = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, (list, tuple)):
                parts.extend(describe_failure(v) for v in value)
            elif value is not None and value == value and str(value).strip():
                parts.append(str(value).strip())
        return "\n".join(parts) or "(no feedback recorded)"

    def default_messages(self, row: dict, feedback: str = "") -> list[dict]:
        hidden = {"critique", "outcome", *self._hidden}
        shown = self.fields or [k for k in row if k not in hidden]
        return [{"role": "user", "content": (
            f"This example has a problem in its {self.field}.\n\n"
            f"{render_fields({k: row[k] for k in shown if k in row})}\n\n"
            f"Problems:\n{feedback}\n\nReply with only the corrected {self.field}.")}]

    # -- one reply -----------------------------------------------------------------------
    def _read(self, row: dict, text: str):
        if self.parse is not None or self.schema is not None:
            return self.parse_reply(row, text)
        if isinstance(row.get(self.field), str) or row.get(self.field) is None:
            return strip_fence(text)
        return extract_json(text)

    def _judge_reply(self, row: dict, row_id, text: str) -> tuple[object, list[str]]:
        """The new value and the checker's failures on it (a parse error is a failure)."""
        try:
            value = self._read(row, text)
        except Exception as error:  # an unusable reply is one more failed attempt
            return None, [f"unusable reply: {error_line(error)}"]
        if self.check is None:
            return value, []
        candidate = {**row, self.field: value}
        try:
            found = call_checker(self.check, candidate, self.check_fields)
        except CheckerCallError as error:
            raise StageError(self.name, str(error), field=error.field) from None
        except Exception as error:
            self.row_error(row_id, "check_raised", f"the checker raised "
                           f"{type(error).__name__}: {error}")
            return ROW_ERROR, []
        return value, [describe_failure(f) for f in found]

    def _refusal(self, row: dict, row_id, value) -> tuple[str, str] | None:
        """``(code, reason)`` when ``accept`` refuses a checked value; ROW_ERROR if it raised."""
        if self.accept is None:
            return None
        verdict = self.call(lambda old: self.accept(old, value), row, row_id, "accept")
        if verdict is ROW_ERROR:
            return ROW_ERROR
        keep, code, reason = verdict_of(verdict, REFUSED)
        return None if keep else (code, reason or f"accept refused the repaired {self.field}")

    # -- the stage -----------------------------------------------------------------------------
    def process_rows(self, df: pd.DataFrame, rows: list[dict]) -> StageResult:
        ids = df[ID].tolist()
        columns = self._feedback_columns(df)
        self._hidden = set(columns)
        extra = row_dicts(df, [c for c in columns if c not in rows[0]]) if columns and rows \
            else [{} for _ in rows]
        full = [{**r, **e} for r, e in zip(rows, extra)]
        chosen = list(range(len(rows)))
        feedback = {p: self.feedback_text(full[p], columns) for p in chosen}
        messages = {p: self.messages_for(rows[p], ids[p], feedback=feedback[p]) for p in chosen}
        chosen = [p for p in chosen if messages[p] is not None]
        requests = {p: self.request(messages[p], row=rows[p]) for p in chosen}
        done, last, failures, stopped = self._attempts(rows, ids, requests)
        done = {p: (*done[p], feedback[p]) for p in done}
        return self._result(df, rows, done, last, failures, stopped, len(requests))

    def _attempts(self, rows, ids, requests):
        """``(repaired, last failures, request failures, stopped)``; ``stopped`` holds the
        rows that take no more attempts: refused by accept ``(code, reason)``, or errored
        because a function raised (ROW_ERROR)."""
        repaired, last, failures, stopped = {}, {}, {}, {}
        pending = list(requests)
        with metered(self.name, len(pending), self._usage) as meter:
            for attempt in range(1, self.max_attempts + 1):
                replies = self.llm.complete_many([requests[p] for p in pending],
                                                 usage=self._usage,
                                                 on_result=lambda i, r: meter.advance())
                still = []
                for p, reply in zip(pending, replies):
                    if isinstance(reply, Failure):
                        failures[p] = reply
                        continue
                    value, problems = self._judge_reply(rows[p], ids[p], reply.text)
                    if value is ROW_ERROR:
                        stopped[p] = ROW_ERROR
                        continue
                    if not problems:
                        refusal = self._refusal(rows[p], ids[p], value)
                        if refusal is None:
                            repaired[p] = (value, attempt)
                        else:
                            stopped[p] = refusal
                        continue
                    last[p] = problems
                    message = self.followup.format(field=self.field, failures="\n".join(
                        f"- {x}" for x in problems))
                    requests[p] = requests[p].followed_by(reply.text, message)
                    still.append(p)
                pending = still if attempt < self.max_attempts else []
                meter.grow(len(pending))
        return repaired, last, failures, stopped

    def _new_rows(self, df, rows, done) -> pd.DataFrame:
        order = sorted(done)
        records = [{**{c: None for c in self.clear if c in df.columns and not c.startswith("_")},
                    self.field: done[p][0], self.before: rows[p][self.field],
                    "_repair_attempts": done[p][1], "_repair_feedback": done[p][2]}
                   for p in order]
        if not order:
            return df.iloc[0:0]
        new = derive_rows(df, [{k: v for k, v in r.items() if not k.startswith("_")}
                               for r in records], [df[ID].iloc[p] for p in order],
                          taken=set(df[ID]))
        for column in (self.before, "_repair_attempts", "_repair_feedback"):
            new[column] = pd.Series([r[column] for r in records], dtype=object)
        return new

    def _result(self, df, rows, done, last, failures, stopped, n_requests) -> StageResult:
        """Repaired rows replaced by new ones, the rest rejected (or as on_failure says)."""
        refused = {p: verdict for p, verdict in stopped.items() if verdict is not ROW_ERROR}
        base = [p for p in range(len(rows)) if p not in done and p not in failures
                and stopped.get(p) is not ROW_ERROR]  # errored rows are routed by the base class
        keep = [False] * len(base)
        still = (f"still failing after {self.max_attempts} attempt"
                 f"{'s' if self.max_attempts > 1 else ''}: ")
        codes = [refused[p][0] if p in refused else FAILED for p in base]
        reasons = [refused[p][1] if p in refused else still + "; ".join(last.get(p, [])) for p in base]
        kept_failed, rejected_failed, errored = self.failed_rows(df, failures)
        result = self.result(df.iloc[base], keep, pd.Series(codes, index=df.index[base], dtype=object),
                             pd.Series(reasons, index=df.index[base], dtype=object),
                             errored=errored)
        result.kept = pd.concat([result.kept, kept_failed, self._new_rows(df, rows, done)],
                                ignore_index=True)
        if len(rejected_failed):
            result.rejected = pd.concat([result.rejected, rejected_failed], ignore_index=True)
        failed = [(df[ID].iloc[p], f) for p, f in failures.items()]
        result.stats.update(self.health(n_requests, n_requests - len(failures), failed, len(done)))
        result.stats.update({
            "repaired": len(done), "repair_failed": len(base) - len(refused),
            "repair_refused": len(refused), "request_failed": len(failures),
            "attempts": {str(k): v for k, v in sorted(Counter(d[1] for d in done.values()).items())}})
        return result
