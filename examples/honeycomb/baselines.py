"""Degenerate answers that a metric must be read against: what no model is needed for.

- ``empty``: the query ``{}`` for every row;
- ``count_and_time``: COUNT, plus the time window a regular expression reads from the
  question ("last 24 hours", "this week", "past day");
- ``nearest_seed``: the query of the seed whose question is closest to the row's (rapidfuzz
  token ratio, as the held-out set's near-duplicate check measures it), with its columns
  as they are, whether or not the row has them.

A model's figures mean something only where they beat these in the same run.
"""
from __future__ import annotations

import re
from pathlib import Path

from assertions import honeycomb_spec as spec

SEEDS_PATH = Path(__file__).parent / "data" / "seeds.jsonl"
LABELS = {"empty": "{} (the empty query)", "count_and_time": "COUNT + time window by regex",
          "nearest_seed": "nearest seed's query"}

_UNIT_SECONDS = {"minute": 60, "min": 60, "hour": 3600, "day": 86400, "week": 604800,
                 "month": 2592000}
_SPELLED = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "six": 6, "twelve": 12}
_WINDOW = re.compile(r"\b(?:last|past|this|previous)\s+(?:(\d+|a|an|one|two|three|four|six|twelve)\s+)?"
                     r"(minute|min|hour|day|week|month)s?\b", re.IGNORECASE)


def window_from_question(question: str) -> int | None:
    """The relative window a question names ("last 6 hours" -> 21600), or None."""
    match = _WINDOW.search(question)
    if not match:
        return None
    count = match.group(1)
    count = 1 if count is None else int(count) if count.isdigit() else _SPELLED[count.lower()]
    return count * _UNIT_SECONDS[match.group(2).lower()]


def empty(row: dict) -> dict:
    return {}


def count_and_time(row: dict) -> dict:
    query = {"calculations": [{"op": "COUNT"}]}
    window = window_from_question(row["nlq"])
    if window and window != spec.DEFAULT_TIME_RANGE:
        query["time_range"] = window
    return query


def nearest_seed(seeds: list[dict]):
    """``answer(row)``: the query of the seed whose question is closest to the row's."""
    from rapidfuzz import fuzz, process, utils

    questions = [seed["nlq"] for seed in seeds]

    def answer(row: dict) -> dict:
        _, _, position = process.extractOne(row["nlq"], questions, scorer=fuzz.token_ratio,
                                            processor=utils.default_process)
        return seeds[position]["query"]
    return answer


def answers(rows: list[dict], seeds: list[dict]) -> dict[str, list[dict]]:
    """Each baseline's answers to ``rows``, by name (see `LABELS`)."""
    makers = {"empty": empty, "count_and_time": count_and_time, "nearest_seed": nearest_seed(seeds)}
    return {name: [make(row) for row in rows] for name, make in makers.items()}
