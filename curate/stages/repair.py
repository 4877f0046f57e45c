"""Repair: fix rows a judge or an assertion rejected, from the critique or the failures.

For each input row (typically the rejected rows of a Judge or an assertion filter, with
their ``critique`` / ``_reason`` columns), the LLM is asked for an improved value of one
field given the feedback; the checker runs on the result; while it still fails, the
failures go back into the conversation, up to ``max_attempts`` replies. This is the
curation-time twin of inference-time self-healing (generate, check, feed back the errors),
as in Hamel Husain's Honeycomb case study and Madaan et al., 2023 ("Self-Refine").

A repaired row is a new row (``_parent`` = the original ``_id``) holding the new value in
``field``, the old one in ``<field>_before_repair``, the number of replies it took in
``repair_attempts`` and the feedback in ``repair_feedback``; the original counts as
replaced. A row still failing after ``max_attempts`` is rejected (``repair_failed``) with
the last failures as the reason; a row whose request failed is errored. With ``when``, only
the chosen rows are repaired and the others pass through kept.
"""
from __future__ import annotations

import re
from collections import Counter

import pandas as pd

from ..errors import StageError
from ..llm.stage_support import (build_messages, call_user, domain_record, errored_frame,
                                 failure_sample, metered)
from ..llm.structured import extract_json, error_line
from ..llm.types import Failure, Request
from ..stage import Stage, StageResult
from ..table import ID, REASON, derive_rows
from .judge import render_fields

FAILED = "repair_failed"
FOLLOWUP = ("The {field} still fails these checks:\n{failures}\nReply with only the "
            "corrected {field}.")
_FENCED = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def describe_failure(item) -> str:
    """A failure from a checker as one line: ``rule: message`` for objects with ``rule`` and
    ``message`` (or dicts with those keys), ``str(item)`` otherwise."""
    rule = getattr(item, "rule", None) or (item.get("rule") if isinstance(item, dict) else None)
    message = getattr(item, "message", None) or (item.get("message")
                                                  if isinstance(item, dict) else None)
    if rule and message:
        return f"{rule}: {message}"
    return str(message or rule or item)


def strip_fence(text: str) -> str:
    """A reply without surrounding whitespace and a single enclosing ``` fence."""
    text = text.strip()
    match = _FENCED.match(text)
    return match.group(1).strip() if match else text


class Repair(Stage):
    """Ask the LLM to fix ``field`` given the feedback; re-check; retry up to ``max_attempts``.

    Args:
        llm: the :class:`curate.llm.LLM` client.
        prompt: optional ``prompt(row, feedback) -> str | messages``; ``row`` holds the
            row's fields (with the bad ``field``), ``feedback`` the critique or failures as
            text. The default shows ``fields`` and asks for the corrected ``field`` only.
        field: the field to repair (e.g. ``"query"``).
        check: ``check(row) -> list of failures`` run on the repaired row (failures may be
            strings, objects with ``rule``/``message``, or dicts); empty means repaired.
            ``None`` accepts the first reply that parses.
        parse: ``parse(row, text) -> new value``; default: the reply without a code fence,
            or its JSON when the old value is not a string.
        max_attempts: replies per row at most (the first one included).
        feedback: the columns holding the feedback (default: ``critique`` if present, else
            ``failures``, else ``_reason``), or a function ``feedback(row) -> str``.
        fields: the fields the default prompt shows (default: every field without a
            leading underscore except the feedback and verdict columns).
        followup: the message sent after a failed check (``{field}``, ``{failures}``).
        when: optional ``when(row) -> bool`` choosing the rows to repair (e.g. outcome ==
            "bad" after a ``Judge(keep="all")``); the other rows pass through kept, untouched.
        clear: columns emptied on a repaired row because they described the old value (the
            judge's verdict, the failures); the feedback used is kept in ``repair_feedback``.
    """

    def __init__(self, llm, prompt=None, *, field: str, check=None, parse=None,
                 max_attempts: int = 3, feedback=None, fields=None, followup: str = FOLLOWUP,
                 temperature: float | None = None, max_tokens: int | None = None,
                 when=None, clear=("critique", "outcome", "failures"), name: str | None = None):
        super().__init__(name)
        if max_attempts < 1:
            raise StageError(self.name, f"max_attempts must be >= 1, got {max_attempts}")
        if check is not None and not callable(check):
            raise StageError(self.name, "check must be a function row -> list of failures")
        self.llm, self.prompt, self.field, self.check, self.parse = llm, prompt, field, check, parse
        self.max_attempts, self.feedback, self.fields = int(max_attempts), feedback, fields
        self.followup, self.temperature, self.max_tokens = followup, temperature, max_tokens
        self.when, self.clear = when, tuple(clear)

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    # -- feedback and prompt -------------------------------------------------------------
    def _feedback_columns(self, df: pd.DataFrame) -> list[str]:
        if self.feedback is not None and not callable(self.feedback):
            return [self.feedback] if isinstance(self.feedback, str) else list(self.feedback)
        for column in ("critique", "failures", REASON):
            if column in df.columns:
                return [column]
        return []

    def feedback_text(self, row: dict, columns: list[str]) -> str:
        if callable(self.feedback):
            return str(call_user(self.name, "feedback", self.feedback, row))
        parts = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, (list, tuple)):
                parts.extend(describe_failure(v) for v in value)
            elif value is not None and value == value and str(value).strip():
                parts.append(str(value).strip())
        return "\n".join(parts) or "(no feedback recorded)"

    def _messages(self, row: dict, feedback: str, columns: list[str]) -> list[dict]:
        fields = domain_record(row)
        if self.prompt is not None:
            return build_messages(self.name, self.prompt, fields, feedback)
        hidden = {*columns, "critique", "outcome", "failures"}
        shown = self.fields or [k for k in fields if k not in hidden]
        return [{"role": "user", "content": (
            f"This example has a problem in its {self.field}.\n\n"
            f"{render_fields({k: fields[k] for k in shown if k in fields})}\n\n"
            f"Problems:\n{feedback}\n\nReply with only the corrected {self.field}.")}]

    # -- one reply -----------------------------------------------------------------------
    def _read(self, row: dict, text: str):
        if self.parse is not None:
            return self.parse(row, text)
        if isinstance(row.get(self.field), str) or row.get(self.field) is None:
            return strip_fence(text)
        return extract_json(text)

    def _judge_reply(self, row: dict, text: str) -> tuple[object, list[str]]:
        """The new value and the checker's failures on it (a parse error is a failure)."""
        try:
            value = self._read(domain_record(row), text)
        except Exception as error:  # an unusable reply is one more failed attempt
            return None, [f"unusable reply: {error_line(error)}"]
        if self.check is None:
            return value, []
        candidate = {**domain_record(row), self.field: value}
        found = call_user(self.name, "check", self.check, candidate)
        return value, [describe_failure(f) for f in (found or [])]

    # -- the stage -----------------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        rows = df.to_dict("records")
        columns = self._feedback_columns(df)
        chosen = [p for p, r in enumerate(rows)
                  if self.when is None or call_user(self.name, "when", self.when, r)]
        feedback = {p: self.feedback_text(rows[p], columns) for p in chosen}
        requests = {p: Request(self._messages(rows[p], feedback[p], columns),
                               temperature=self.temperature, max_tokens=self.max_tokens)
                    for p in chosen}
        repaired: dict[int, tuple[object, int]] = {}
        last: dict[int, list[str]] = {}
        failures: dict[int, Failure] = {}
        pending = list(requests)
        with metered(self.name, len(pending)) as meter:
            for attempt in range(1, self.max_attempts + 1):
                replies = self.llm.complete_many([requests[p] for p in pending],
                                                 usage=meter.usage,
                                                 on_result=lambda i, r: meter.advance())
                still = []
                for p, reply in zip(pending, replies):
                    if isinstance(reply, Failure):
                        failures[p] = reply
                        continue
                    value, problems = self._judge_reply(rows[p], reply.text)
                    if not problems:
                        repaired[p] = (value, attempt)
                        continue
                    last[p] = problems
                    message = self.followup.format(field=self.field, failures="\n".join(
                        f"- {x}" for x in problems))
                    requests[p] = requests[p].followed_by(reply.text, message)
                    still.append(p)
                pending = still if attempt < self.max_attempts else []
                meter.grow(len(pending))
        done = {p: (*repaired[p], feedback[p]) for p in repaired}
        return self._result(df, rows, chosen, done, last, failures, meter.usage)

    def _new_rows(self, df, rows, done) -> pd.DataFrame:
        order = sorted(done)
        records = [{**{c: None for c in self.clear if c in df.columns},
                    self.field: done[p][0], f"{self.field}_before_repair": rows[p][self.field],
                    "repair_attempts": done[p][1], "repair_feedback": done[p][2]} for p in order]
        if not order:
            return df.iloc[0:0]
        return derive_rows(df, records, [rows[p][ID] for p in order], taken=set(df[ID]))

    def _result(self, df, rows, chosen, done, last, failures, usage) -> StageResult:
        """Untouched rows kept, repaired rows replaced by new ones, the rest rejected."""
        picked = set(chosen)
        base = [p for p in range(len(rows)) if p not in done and p not in failures]
        keep = [p not in picked for p in base]
        reasons = [f"still failing after {self.max_attempts} attempt"
                   f"{'s' if self.max_attempts > 1 else ''}: {'; '.join(last.get(p, []))}"
                   for p in base]
        result = self.result(df.iloc[base], keep, FAILED,
                             pd.Series(reasons, index=df.index[base], dtype=object),
                             errored=errored_frame(self.name, df, failures))
        result.kept = pd.concat([result.kept, self._new_rows(df, rows, done)], ignore_index=True)
        result.stats.update({
            "repaired": len(done), "repair_failed": len(base) - sum(keep),
            "not_selected": sum(keep), "request_failed": len(failures),
            "attempts": {str(k): v for k, v in
                         sorted(Counter(d[1] for d in done.values()).items())},
            "failure_sample": failure_sample([(rows[p][ID], f) for p, f in failures.items()]),
            "llm": usage.as_stats()})
        return result
