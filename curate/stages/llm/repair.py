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
``accept``, a value that passes the checker must also pass ``accept(row, value)`` (e.g. "says
no less than the value it replaces"); a refused one rejects the row with accept's reason.
"""
from __future__ import annotations

import re
from functools import partial

from assertions.calling import CheckerCallError, as_failures, call_checker

from ...core.stage import ROW_ERROR
from ...core.table import ID, REASON, row_dicts
from ...errors import StageError
from ...llm.structured import Parsed, complete_parsed, extract_json
from ...llm.types import PARSE_FAILED, Failure
from ..filters import verdict_of
from .base import LLMStage, Made
from .prompts import repair_messages
from .support import metered

FAILED, REFUSED = "repair_failed", "repair_refused"
FOLLOWUP = ("The {field} still fails these checks:\n{failures}\nReply with only the "
            "corrected {field}.")
CLEARED = ("critique", "outcome", "_failures", "_judge_failure")
_FENCED = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def describe_failure(item) -> str:
    """A checker's failure as one line: ``rule: message``; a string as it is."""
    return item if isinstance(item, str) else str(as_failures([item])[0])


def strip_fence(text: str) -> str:
    """A reply without surrounding whitespace and a single enclosing ``` fence."""
    match = _FENCED.match(text.strip())
    return match.group(1).strip() if match else text.strip()


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
    counts = {"repaired": 0, "repair_failed": 0, "repair_refused": 0, "request_failed": 0,
              "attempts": {}}

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

    @property
    def max_rounds(self) -> int:
        return self.max_attempts

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def added_columns(self) -> dict[str, str]:
        return {self.before: "annotation", "_repair_attempts": "annotation",
                "_repair_feedback": "annotation"}

    # -- the request ---------------------------------------------------------------------
    def _feedback_columns(self, columns) -> list[str]:
        if self.feedback is not None and not callable(self.feedback):
            return [self.feedback] if isinstance(self.feedback, str) else list(self.feedback)
        return next(([c] for c in ("critique", "_failures", REASON) if c in columns), [])

    def contexts(self, df, rows) -> list[dict]:
        """Each row's feedback, from its feedback columns (bookkeeping ones included)."""
        names = self._feedback_columns(df.columns)
        extra = row_dicts(df, [c for c in names if c in df.columns])
        return [{"feedback": self.feedback_text({**r, **e}, names)} for r, e in zip(rows, extra)]

    def feedback_text(self, row: dict, columns: list[str]) -> str:
        if callable(self.feedback):
            return str(self.feedback(row))
        parts = []
        for value in (row.get(c) for c in columns):
            if isinstance(value, (list, tuple)):
                parts.extend(describe_failure(v) for v in value)
            elif value is not None and value == value and str(value).strip():
                parts.append(str(value).strip())
        return "\n".join(parts) or "(no feedback recorded)"

    def default_messages(self, row: dict, feedback: str = "") -> list[dict]:
        hidden = {"critique", "outcome", *self._feedback_columns(())}
        shown = self.fields or [k for k in row if k not in hidden]
        return repair_messages(self.field, {k: row[k] for k in shown if k in row}, feedback)

    def value_from(self, row: dict, value):
        if self.parse is not None or self.schema is not None:
            return super().value_from(row, value)
        old = row.get(self.field)
        return strip_fence(value) if isinstance(old, str) or old is None else extract_json(value)

    # -- the rounds: reply, check, follow up with the failures ------------------------------
    def rounds(self, requests, owners, df, rows, contexts) -> list:
        """Per row: ``Parsed`` of what became of it (repaired, still failing, refused; None
        when a function raised) or the :class:`Failure` of a request."""
        ids, out, last = df[ID].tolist(), [None] * len(requests), {}
        pending = list(range(len(requests)))
        with metered(self.name, len(requests), self._usage) as meter:
            for attempt in range(1, self.max_attempts + 1):
                replies = complete_parsed(self.llm, [requests[i] for i in pending],
                                          [partial(self.read_reply, rows[owners[i]]) for i in pending],
                                          usage=self._usage, meter=meter, retry=False)
                still = []
                for i, reply in zip(pending, replies):
                    p = owners[i]
                    if isinstance(reply, Failure) and reply.code != PARSE_FAILED:
                        out[i] = reply
                        continue
                    done = {"feedback": contexts[p]["feedback"], "attempts": attempt}
                    problems = [f"unusable reply: {reply.reason}"] if isinstance(reply, Failure) \
                        else self._problems(rows[p], ids[p], reply.value)
                    if problems is ROW_ERROR:
                        out[i] = Parsed(None, None)
                    elif not problems:
                        out[i] = Parsed({**done, **self._accepted(rows[p], ids[p], reply.value)}, None)
                    else:
                        last[i] = problems
                        text = reply.text if isinstance(reply, Failure) else reply.completion.text
                        requests[i] = requests[i].followed_by(text, self.followup.format(
                            field=self.field, failures="\n".join(f"- {x}" for x in problems)))
                        still.append(i)
                pending = still if attempt < self.max_attempts else []
                meter.grow(len(pending))
        return [o if o is not None else Parsed({"problems": last[i]}, None)
                for i, o in enumerate(out)]

    def _problems(self, row: dict, row_id, value):
        """The checker's failures on the new value (ROW_ERROR: it raised; the row errors)."""
        if self.check is None:
            return []
        try:
            found = call_checker(self.check, {**row, self.field: value}, self.check_fields)
        except CheckerCallError as error:
            raise StageError(self.name, str(error), field=error.field) from None
        except Exception as error:
            self.row_error(row_id, "check_raised", f"the checker raised "
                           f"{type(error).__name__}: {error}")
            return ROW_ERROR
        return [describe_failure(f) for f in found]

    def _accepted(self, row: dict, row_id, value) -> dict:
        """``{"value": value}``, or why ``accept`` refused it (``{}``: it raised)."""
        if self.accept is None:
            return {"value": value}
        verdict = self.call(lambda old: self.accept(old, value), row, row_id, "accept")
        if verdict is ROW_ERROR:
            return {"errored": True}
        keep, code, reason = verdict_of(verdict, REFUSED)
        return {"value": value} if keep else \
            {"refused": (code, reason or f"accept refused the repaired {self.field}")}

    # -- what became of a row ----------------------------------------------------------------
    def rows_from(self, row: dict, got: dict | None) -> Made | None:
        if got is None or got.get("errored"):
            return None  # a function raised: the row is errored
        if "value" in got:
            new = {**{c: None for c in self.clear if c in row}, self.field: got["value"],
                   self.before: row[self.field], "_repair_attempts": got["attempts"],
                   "_repair_feedback": got["feedback"]}
            return Made("replaced", new=[new], stats={
                "repaired": 1, "attempts": {str(got["attempts"]): 1}})
        if "refused" in got:
            return Made("rejected", code=got["refused"][0], reason=got["refused"][1],
                        produced=0, stats={"repair_refused": 1})
        plural = "s" if self.max_attempts > 1 else ""
        return Made("rejected", code=FAILED, produced=0, stats={"repair_failed": 1}, reason=(
            f"still failing after {self.max_attempts} attempt{plural}: " + "; ".join(got["problems"])))

    def failed(self, row: dict, failure: Failure) -> Made:
        made = super().failed(row, failure)
        made.stats = {"request_failed": 1}
        return made
