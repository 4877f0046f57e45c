"""Prompts of the Honeycomb example: fine-tuning, augmentation, critique and repair.

Every builder takes a row ``{"nlq", "columns", "query"}`` and returns chat messages; the
replies are JSON objects described by the ``*_SCHEMA`` JSON Schemas (``reply_schemas.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from assertions.calling import as_failures
from examples.honeycomb.reply_schemas import (AUGMENT_SCHEMA, CRITIQUE_SCHEMA, QUERY_SCHEMA,  # noqa: F401
                                              REPAIR_SCHEMA, REWORD_SCHEMA, augment_schema,
                                              query_schema, repair_schema)

CRITIQUE_EXAMPLES_PATH = Path(__file__).parent / "data" / "critique_examples.jsonl"

# (a) The fine-tuning prompt: what the model sees at training and at inference time.

SYSTEM_PROMPT = (
    "Honeycomb is an observability platform where you query the events and trace spans your "
    "services send. You are an assistant that turns a natural language query (NLQ) and the "
    "list of columns available in the dataset into a Honeycomb query, written as one JSON "
    "object."
)

USER_TEMPLATE = 'NLQ: "{nlq}"\n\nColumns: {columns}'


def format_columns(columns: Iterable[str] | str) -> str:
    """The column list as the prompt shows it: ``['duration_ms', 'http.route']``.

    A string is taken to be an already formatted list and returned unchanged.
    """
    if isinstance(columns, str):
        return columns
    return repr([str(c) for c in columns])


def user_prompt(nlq: str, columns: Iterable[str] | str) -> str:
    """The human turn of the fine-tuning prompt."""
    return USER_TEMPLATE.format(nlq=nlq, columns=format_columns(columns))


def dump_query(query: Mapping | str) -> str:
    """A query as compact JSON text (text is returned unchanged)."""
    return query if isinstance(query, str) else json.dumps(query, ensure_ascii=False)


def finetune_messages(row: Mapping, with_answer: bool = False) -> list[dict]:
    """System and user turns for ``row``; with the gold query as the assistant turn if asked."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(row["nlq"], row["columns"])}]
    if with_answer:
        messages.append({"role": "assistant", "content": dump_query(row["query"])})
    return messages


# A short reference of the query language, shared by the augmentation, critique and repair
# prompts.

QUERY_LANGUAGE = """\
A Honeycomb query is a JSON object with these optional keys:
- "calculations": [{"op": ..., "column": ...}]. COUNT and CONCURRENCY take no column; \
COUNT_DISTINCT, HEATMAP, SUM, AVG, MAX, MIN, P001, P01, P05, P10, P25, P50, P75, P90, P95, P99, \
P999, RATE_AVG, RATE_SUM and RATE_MAX need one.
- "filters": [{"column": ..., "op": ..., "value": ...}] with op one of =, !=, >, >=, <, <=, \
starts-with, does-not-start-with, exists, does-not-exist, contains, does-not-contain, in, \
not-in. exists and does-not-exist take no value; in and not-in take a list.
- "filter_combination": "AND" (the default) or "OR".
- "breakdowns": [column, ...] to group by.
- "orders": [{"op": ..., "column": ..., "order": "ascending" | "descending"}] naming one of \
the calculations, or [{"column": ..., "order": ...}] naming a breakdown. HEATMAP cannot be \
ordered.
- "havings": [{"calculate_op": ..., "column": ..., "op": ..., "value": ...}] filtering groups \
on one of the calculations (not HEATMAP).
- "time_range" in seconds ending now (7200 when no time is given), or "start_time" and \
"end_time" in UNIX seconds; "granularity" in seconds, between the window / 1000 and the \
window / 10; "limit" a positive number of result rows.
Every column named in a query must be one of the given columns."""

# (b) Augmentation: a new training row that varies an existing one.

AUGMENT_SYSTEM = f"""\
You write training data for a model that turns questions about telemetry into Honeycomb \
queries. You are given one example row: a question (NLQ), the list of columns of the dataset, \
and the query that answers the question. Write one new row that varies it.

{QUERY_LANGUAGE}

How to vary the row:
- Reword the question the way a different engineer would ask it: terser or more verbose, \
with different words or jargon, a typo now and then. It must still ask for exactly what the \
query computes.
- And/or substitute one column for another column of the same kind (a duration for a \
duration, an identifier for an identifier, a category for a category): in the question and \
everywhere in the query (calculations, filters, breakdowns, orders, havings), and say so with \
"swap": [old column, new column]; the column list is updated for you. A filter value must \
make sense for the new column.
- Keep the complexity: the same number of calculations, filters, breakdowns, orders and \
havings, and the same kind of time window.
- Every column the query uses must be in the column list (or be the new column of the swap).

Reply with one JSON object and nothing else: \
{{"nlq": "...", "query": {{...}}, "swap": null}} or \
{{"nlq": "...", "query": {{...}}, "swap": ["old.column", "new.column"]}}"""


def augmented_row(row: Mapping, reply: Mapping) -> dict:
    """The new row's fields from an augmentation reply: its question and query, and the
    parent's column list with the swapped column replaced in place."""
    columns = list(row["columns"])
    swap = reply.get("swap")
    if swap:
        old, new = swap
        if old not in columns:
            raise ValueError(f"swap names {old!r}, which is not in the column list")
        if new in columns:
            raise ValueError(f"swap brings in {new!r}, which is already in the column list")
        columns[columns.index(old)] = new
    return {"nlq": reply["nlq"], "columns": columns, "query": reply["query"]}


REWORD_SYSTEM = """\
You rewrite questions about telemetry data. You are given a question (NLQ) and the Honeycomb \
query that answers it. Write the same question the way a different engineer would ask it: \
other words or jargon, terser or more verbose. It must still ask for exactly what the query \
computes, with the same service names, values and time window. Reply with JSON: \
{"nlq": "..."}"""


def reword_messages(row: Mapping, examples: Sequence[Mapping] = ()) -> list[dict]:
    """Chat messages asking for a rewording of ``row``'s question (``REWORD_SCHEMA``).

    A short prompt (no column list): the reply changes the question only, the query and the
    columns stay the parent's, so the row stays as valid as it was.
    """
    shown = [f'NLQ: "{ex["nlq"]}"\nQuery: {dump_query(ex["query"])}' for ex in examples]
    intro = ("Examples of questions and their queries:\n\n" + "\n\n".join(shown) + "\n\n"
             if shown else "")
    return [{"role": "system", "content": REWORD_SYSTEM},
            {"role": "user", "content": f'{intro}Reword this question.\nNLQ: "{row["nlq"]}"\n'
                                        f"Query: {dump_query(row['query'])}"}]


def reworded_row(row: Mapping, reply: Mapping) -> dict:
    """The new row of a rewording reply: its question, and the question it rewords
    (``seed_nlq``, which `is_a_rewording` reads); the rest is inherited."""
    nlq = " ".join(str(reply["nlq"]).split())
    if nlq.casefold().strip(" ?.!") == str(row["nlq"]).casefold().strip(" ?.!"):
        raise ValueError("the rewording repeats the question")
    return {"nlq": nlq, "seed_nlq": row.get("seed_nlq") or row["nlq"]}


_STOPWORDS = frozenset("the a an of for by in on to and or with from at is are was be this "
                       "that what which how per vs".split())


def rewording_problem(seed: str, reworded: str) -> tuple[str, str] | None:
    """``(code, sentence)`` when ``reworded`` is not a rewording of ``seed``, else None.

    A small model asked to reword often writes something else: a number, a timestamp, a
    paragraph, or the question of a few-shot example, which would then be paired with the
    seed's query. A rewording keeps at least half of the seed's content words (three letters
    or more, not stopwords; found anywhere in the new text, so "ApplePay" keeps "pay") and
    is not much longer than the seed.
    """
    if len(reworded) > 2 * len(seed) + 30:
        return "rewording_too_long", (f"{len(reworded)} characters for a question of "
                                      f"{len(seed)}: not a rewording")
    words = [w for w in re.findall(r"[a-z0-9]+", seed.lower())
             if len(w) >= 3 and w not in _STOPWORDS]
    kept = sum(w in reworded.lower() for w in words)
    if words and kept < len(words) / 2:
        return "rewording_changes_topic", (f"keeps {kept} of the question's {len(words)} "
                                           f"content words: not a rewording of {seed!r:.80}")
    return None


def is_a_rewording(row: Mapping):
    """A filter predicate: True, or ``(False, code, sentence)`` for a row whose ``nlq`` is not
    a rewording of its ``seed_nlq`` (rows without one, seeds and swaps of seeds, pass)."""
    seed = row.get("seed_nlq")
    problem = rewording_problem(seed, row["nlq"]) if isinstance(seed, str) and seed else None
    return True if problem is None else (False, *problem)


def _row_block(row: Mapping, with_columns: bool = True) -> str:
    lines = [f'NLQ: "{row["nlq"]}"']
    if with_columns:
        lines.append(f"Columns: {format_columns(row['columns'])}")
    lines.append(f"Query: {dump_query(row['query'])}")
    return "\n".join(lines)


def augment_messages(row: Mapping, examples: Sequence[Mapping] = (),
                     spare_columns: Sequence[str] = ()) -> list[dict]:
    """Chat messages asking for a variation of ``row``; the reply follows ``AUGMENT_SCHEMA``.

    ``examples`` are other good rows, shown as examples of questions and queries.
    ``spare_columns`` are columns of the same dataset that are not in the row's list, offered
    as replacements when the model substitutes a column.
    """
    parts = []
    if examples:
        shown = "\n\n".join(_row_block(r, with_columns=False) for r in examples)
        parts.append(f"Examples of good questions and queries:\n\n{shown}")
    parts.append(f"The row to vary ({len(list(row['columns']))} columns):\n\n{_row_block(row)}")
    if spare_columns:
        parts.append("Columns of the same dataset you may substitute in: "
                     f"{format_columns(spare_columns)}")
    parts.append("Write the new row as JSON.")
    return [{"role": "system", "content": AUGMENT_SYSTEM},
            {"role": "user", "content": "\n\n".join(parts)}]


# (c) Critique: an expert judges whether the query answers the question.

CRITIQUE_SYSTEM = f"""\
You are an observability engineer who has written Honeycomb queries for years. You review \
pairs of a natural language question (NLQ) and the Honeycomb query written for it, given the \
columns of the dataset, and decide whether the query is what a careful expert would run.

{QUERY_LANGUAGE}

What you know from experience:
- "Requests" and "traces" mean root spans: filter trace.parent_id does-not-exist, or every \
span of the trace is counted.
- Latency and "slow" questions want HEATMAP(duration_ms) and/or a percentile such as \
P95 or P99 of duration_ms; a COUNT or AVG alone hides the tail.
- "Slowest traces" are grouped by trace.trace_id and ordered by the duration, descending.
- "Top N" needs an order and a limit; a stated time window needs time_range or \
start_time/end_time, since the default is only the last two hours.
- Prefer the column that means what the question says over one that merely looks close, \
and do not add filters or groupings the question did not ask for.

Write a short critique in your own voice: what the query gets right, what is wrong or \
missing, and how you would fix it. Then give the outcome: "good" if an expert would run this \
query as is, "bad" otherwise. Reply with one JSON object and nothing else: \
{{"critique": "...", "outcome": "good" | "bad"}}"""


def _judge_prompt(row: Mapping) -> str:
    columns = f"Columns: {format_columns(row['columns'])}\n\n" if "columns" in row else ""
    return f'NLQ: "{row["nlq"]}"\n\n{columns}Query: {dump_query(row["query"])}'


BRIEF_CRITIQUE_SYSTEM = """\
You review pairs of a question about telemetry (NLQ) and the Honeycomb query written for it. \
Say in one or two sentences whether the query computes what the question asks (the right \
calculation, filters, grouping and time window), then give the outcome: "good" if an \
expert would run it as is, "bad" otherwise. Reply with JSON: \
{"critique": "...", "outcome": "good" | "bad"}"""


def critique_examples() -> list[dict]:
    """The few-shot critiques ``{"nlq", "columns", "query", "critique", "outcome"}``."""
    with CRITIQUE_EXAMPLES_PATH.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def critique_messages(row: Mapping, examples: Sequence[Mapping] | None = None,
                      brief: bool = False) -> list[dict]:
    """Chat messages asking an expert judge about ``row``; the reply follows ``CRITIQUE_SCHEMA``.

    The judge sees the question, the columns (when the row has them) and the query only.
    ``examples`` are few-shot critiques (default: ``critique_examples()``), shown as earlier
    turns of the chat. ``brief``: a short system prompt, for small models and CPU runs.
    """
    messages = [{"role": "system", "content": BRIEF_CRITIQUE_SYSTEM if brief else CRITIQUE_SYSTEM}]
    for ex in critique_examples() if examples is None else examples:
        shown = ex if "columns" in row else {k: v for k, v in ex.items() if k != "columns"}
        messages.append({"role": "user", "content": _judge_prompt(shown)})
        messages.append({"role": "assistant", "content": json.dumps(
            {"critique": ex["critique"], "outcome": ex["outcome"]}, ensure_ascii=False)})
    messages.append({"role": "user", "content": _judge_prompt(row)})
    return messages


# (d) Repair: improve a query given a critique or a list of failures.

REPAIR_SYSTEM = f"""\
You fix Honeycomb queries. You are given a natural language question (NLQ), the columns of \
the dataset, a query written for the question, and what is wrong with it: a reviewer's \
critique or the failures of an automatic check. Write the corrected query: fix every problem \
named, keep what was right, use only the given columns, and answer exactly the question.

{QUERY_LANGUAGE}

Reply with one JSON object and nothing else: {{"query": {{...}}}}"""


def describe_problems(feedback: Any) -> str:
    """A critique (text) or failures (``Failure`` objects, dicts, pairs or strings) as
    prompt text, one ``- rule: message`` line per failure."""
    if isinstance(feedback, str):
        return feedback.strip()
    return "\n".join(f"- {item}" if isinstance(item, str) else f"- {as_failures([item])[0]}"
                     for item in feedback)


def repair_messages(row: Mapping, feedback: Any) -> list[dict]:
    """Chat messages asking for a better query for ``row``; the reply follows ``REPAIR_SCHEMA``."""
    user = (f"{_judge_prompt(row)}\n\nWhat is wrong with it:\n"
            f"{describe_problems(feedback)}\n\nWrite the corrected query as JSON.")
    return [{"role": "system", "content": REPAIR_SYSTEM}, {"role": "user", "content": user}]


def repaired_query(row: Mapping, reply: Mapping) -> dict:
    """The query of a repair reply (``{"query": {...}}``, already checked against the schema)."""
    return reply["query"]
