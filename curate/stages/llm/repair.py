"""Repair: fix rows a judge or an assertion rejected, from the critique or the failures:
the curation-time twin of self-healing at inference (generate, check, feed back the errors),
as in Hamel Husain's Honeycomb case study and Madaan et al., 2023 ("Self-Refine")."""
from __future__ import annotations

from ...core.stage import ROW_ERROR
from ...core.table import ID
from ...errors import StageError
from ...llm.structured import Parsed, extract_json
from ...llm.types import PARSE_FAILED, Failure
from ..filters import verdict_of
from .base import LLMStage, Made
from .prompts import FOLLOWUP, feedback_columns, feedbacks, repair_messages, strip_fence
from .support import check_callable, checker_failures


class Repair(LLMStage):
    """Ask the LLM to fix ``field`` given the feedback; check; follow up, ``max_attempts`` at most.

    A repaired row replaces the original by a new row (``_parent``) with the new value in
    ``field``, the old one in ``_<field>_before_repair``, the replies it took in
    ``_repair_attempts`` and the feedback in ``_repair_feedback`` (bookkeeping columns of the
    original are not copied). A row still failing is rejected (``repair_failed``, the last
    failures as the reason).

    Args (besides those of every LLM stage, :class:`~.base.LLMStage`):
        prompt: optional ``prompt(row, feedback) -> str | messages``, ``feedback`` as text.
        field: the field to repair (e.g. ``"query"``).
        check: a checker (:mod:`assertions.calling`: parameters named after row fields) run
            on the row with the new value; no failure means repaired; ``None``: the first
            reply that parses. check_fields: ``{parameter: field}`` for other names.
        parse: ``parse(row, reply) -> new value``; default: the reply without a code fence,
            or its JSON when the old value is not a string (with ``schema``: its JSON).
        max_attempts: replies per row at most (the first one included).
        feedback: the columns holding the feedback (default: ``critique`` if present, else
            ``_failures``, else ``_reason``), or a function ``feedback(row) -> str``.
        fields: the fields the default prompt shows (default: all but feedback and verdict).
        followup: the message sent after a failed check (``{field}``, ``{failures}``).
        clear: fields emptied on a repaired row (they described the old value).
        accept: ``accept(row, value) -> True | (False, code, reason)``, asked about a value
            that passed ``check`` (``row`` has the old one): a refusal rejects the row (code
            default ``repair_refused``), with no retry; one that raises errors the row.
    """

    context_names = ("feedback",)
    produces = "repaired rows"
    counts = {"repaired": 0, "repair_failed": 0, "repair_refused": 0, "attempts": {}}

    def __init__(self, llm, prompt=None, *, field: str, check=None, check_fields=None,
                 parse=None, max_attempts: int = 3, feedback=None, fields=None,
                 followup: str = FOLLOWUP, clear=("critique", "outcome"), accept=None,
                 **kwargs):
        super().__init__(llm, prompt, parse=parse, **kwargs)
        check_callable(self.name, "check", check)
        check_callable(self.name, "accept", accept)
        if max_attempts < 1:
            raise StageError(self.name, f"max_attempts must be >= 1, got {max_attempts}")
        self.field, self.check, self.check_fields, self.accept = field, check, check_fields, accept
        self.max_attempts = self.max_rounds = int(max_attempts)
        self.feedback, self.fields, self.followup, self.clear = feedback, fields, followup, tuple(clear)
        self.before = f"_{field}_before_repair"

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def added_columns(self) -> dict[str, str]:
        return dict.fromkeys([self.before, "_repair_attempts", "_repair_feedback"], "annotation")

    def contexts(self, df, rows) -> list[dict]:
        return [{"feedback": text} for text in feedbacks(df, rows, self.feedback)]

    def default_messages(self, row: dict, feedback: str = "") -> list[dict]:
        hidden = {"critique", "outcome", *feedback_columns(self.feedback, ())}
        shown = self.fields or [k for k in row if k not in hidden]
        return repair_messages(self.field, {k: row[k] for k in shown if k in row}, feedback)

    def value_from(self, row: dict, value):
        if self.parse is not None or self.schema is not None:
            return super().value_from(row, value)
        old = row.get(self.field)
        return strip_fence(value) if isinstance(old, str) or old is None else extract_json(value)

    def rounds(self, requests, owners, df, rows, contexts, meter) -> list:
        """Reply, check, follow up with the failures: per request the ``Parsed`` row it
        made (:meth:`_made`), or the :class:`Failure` of a request that failed."""
        ids, out, pending = df[ID].tolist(), [None] * len(requests), list(range(len(requests)))
        for attempt in range(1, self.max_attempts + 1):
            replies = self.complete([requests[i] for i in pending], meter, retry=False,
                                    rows=[rows[owners[i]] for i in pending])
            still = []
            for i, reply in zip(pending, replies):
                p = owners[i]
                if isinstance(reply, Failure) and reply.code != PARSE_FAILED:
                    out[i] = reply
                    continue
                made, problems = self._made(rows[p], ids[p], reply, attempt, **contexts[p])
                out[i] = Parsed(made, reply)
                if problems and attempt < self.max_attempts:
                    text = reply.text if isinstance(reply, Failure) else reply.completion.text
                    lines = "\n".join(f"- {x}" for x in problems)
                    requests[i] = requests[i].followed_by(
                        text, self.followup.format(field=self.field, failures=lines))
                    still.append(i)
            pending = still
            meter.grow(len(pending))
        return out

    def _made(self, row: dict, row_id, reply, attempt: int, feedback: str):
        """``(what the reply makes of the row, the failures to follow up on)``; the row
        is None when the checker or ``accept`` raised (the stage errored it)."""
        value = None if isinstance(reply, Failure) else reply.value
        found = [f"unusable reply: {reply.reason}"] if isinstance(reply, Failure) else \
            checker_failures(self, {**row, self.field: value}, row_id)
        verdict = ROW_ERROR if found is ROW_ERROR else found or self.accept is None or \
            self.call(lambda old: self.accept(old, value), row, row_id, "accept")
        if verdict is ROW_ERROR:
            return None, []
        if found:
            return Made("rejected", code="repair_failed", produced=0, stats={"repair_failed": 1},
                        reason=f"still failing after {attempt} attempt{'s' * (attempt > 1)}: "
                               + "; ".join(found)), found
        keep, code, reason = verdict_of(verdict, "repair_refused")
        if not keep:
            return Made("rejected", code=code, produced=0, stats={"repair_refused": 1},
                        reason=reason or f"accept refused the repaired {self.field}"), []
        new = {**dict.fromkeys(c for c in self.clear if c in row), self.field: value,
               self.before: row[self.field], "_repair_attempts": attempt,
               "_repair_feedback": feedback}
        return Made("replaced", new=[new], stats={"repaired": 1, "attempts": {str(attempt): 1}}), []

    def rows_from(self, row: dict, made: Made | None) -> Made | None:
        return made
