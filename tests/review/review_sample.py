"""A small judged run folder for the review app's tests and screenshots.

Every stage kind the app shows is there: a filter that rejects with reason codes, a row
that errors, a measure (``_complexity``), near-duplicates (``_dup_of`` / ``_rouge_l``),
derived rows (``_origin``), a Judge whose critique and outcome come from a scripted
loopback server, and a Repair that replaces the rows the judge called bad. Two rows carry
markup (``<script>``, an ``onerror=`` attribute) to check that the app escapes model output.
"""
from __future__ import annotations

import json
from pathlib import Path

from curate import ComplexityFilter, Derive, Filter, Judge, Pipeline, Repair, RougeDedup
from curate import ChatExport
from curate.llm import LLM
from curate.testing import ScriptedServer
from curate.testing.server import last_user_message

SCRIPT_NLQ = "<script>alert('xss')</script> errors by service"
IMG_NLQ = 'latency <img src=x onerror="alert(1)"> by region'
JUDGE_PROMPT = "You review training examples for correctness and usefulness."
TOPICS = ["errors", "latency", "requests", "traces", "spans", "db calls", "cache misses",
          "timeouts", "retries", "queue depth", "cpu", "memory"]
GROUPS = ["service", "region", "endpoint", "host", "status code", "user", "route"]


# Ids a user may give their rows: paths, URLs, percent signs, spaces, formulas.
ODD_IDS = ["docs/q.md#1", "/abs/path/q.jsonl:2", "a b?c=d&e#f", "100%/done", "ünï/cødé",
           "=cmd|' /C calc'!A0", "-1", "@SUM(A1)", "+x", "'quoted"]

TEMPLATES = ["show {topic} by {group} over the last {hours} hours",
             "which {group} had the most {topic} in the past {hours}h?",
             "{topic} per {group}, {hours} hour window",
             "break down {topic} for every {group} (last {hours} hours)"]


def _rows() -> list[dict]:
    rows = []
    for i, topic in enumerate(TOPICS):
        for j, group in enumerate(GROUPS[i % 4: i % 4 + 3]):
            calcs = [{"op": "COUNT"}] if i % 2 else [{"op": "P99", "column": "duration_ms"}]
            nlq = TEMPLATES[(i + j) % len(TEMPLATES)].format(topic=topic, group=group,
                                                             hours=j + 1)
            rows.append({"nlq": nlq,
                         "columns": ["service.name", "duration_ms", group.replace(" ", "_")],
                         "query": {"calculations": calcs, "breakdowns": [group],
                                   "time_range": 3600 * (j + 1)}})
    rows.append({**rows[0], "nlq": rows[0]["nlq"] + "!"})  # a near-duplicate
    rows.append({"nlq": "ok", "columns": ["a"], "query": {"calculations": [{"op": "COUNT"}]}})
    rows.append({"nlq": "hi", "columns": ["a"], "query": {"calculations": [{"op": "COUNT"}]}})
    rows.append({"nlq": 17, "columns": ["a"], "query": {"calculations": [{"op": "COUNT"}]}})
    rows.append({"nlq": SCRIPT_NLQ, "columns": ["service.name"],
                 "query": {"calculations": [{"op": "COUNT"}], "breakdowns": ["service.name"]}})
    rows.append({"nlq": IMG_NLQ, "columns": ["cloud.region"],
                 "query": {"calculations": [{"op": "P99", "column": "duration_ms"}],
                           "breakdowns": ["cloud.region"]}})
    return rows


def long_enough(row):
    words = len(row["nlq"].split())
    return True if words >= 2 else (False, "too_short", f"{words} word, fewer than 2")


def query_parts(query) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in query.values())


def reply(body: dict) -> str:
    """A judge verdict (bad when the question asks about cpu or memory) or a repaired query."""
    system = body["messages"][0]["content"]
    text = last_user_message(body)
    if JUDGE_PROMPT in system:
        bad = any(word in text for word in ("cpu", "memory", "<img", "retries", "db calls"))
        critique = ("The query breaks down by the wrong column for this question."
                    if bad else "Correct calculation, breakdown and time range.")
        if "<script>" in text:
            critique = "Looks fine <b onmouseover=alert(2)>bold</b> <script>alert(3)</script>"
        return json.dumps({"critique": critique, "outcome": "bad" if bad else "good"})
    return json.dumps({"calculations": [{"op": "AVG", "column": "duration_ms"}],
                       "breakdowns": ["service.name"]})


def swap_hours(row):
    if "last 1 hours" not in str(row["nlq"]):
        return []
    return [{"nlq": row["nlq"].replace("over the last 1 hours", "yesterday"),
             "query": {**row["query"], "time_range": 86400}}]


def pipeline(source: Path, llm: LLM, instructions: str = JUDGE_PROMPT) -> Pipeline:
    return Pipeline(
        name="review-sample", source=source,
        stages=[Filter(long_enough, name="length", max_errored=1.0),
                ComplexityFilter(query_parts, field="query", min_value=1, max_value=12),
                RougeDedup("nlq", threshold=0.85),
                Derive(swap_hours, name="day_variants"),
                Judge(llm, fields=["nlq", "query"], keep="all", instructions=instructions),
                Repair(llm, field="query", when=lambda row: row["outcome"] == "bad")],
        export=ChatExport(human="{nlq}\n\nColumns: {columns}", gpt="query",
                              system="Write a Honeycomb query."))


def build(folder: Path, *, instructions: str = JUDGE_PROMPT, server=None,
          ids: list[str] = ()) -> Path:
    """Run the sample pipeline into ``folder / "run"`` and return that run folder; ``ids``
    are given to the first rows of the source as their ``_id``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "seeds.jsonl"
    rows = [{"_id": i, **r} for i, r in zip(ids, _rows())] + _rows()[len(ids):]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    own = server is None
    server = server or ScriptedServer(reply).__enter__()
    try:
        llm = LLM("scripted", base_url=server.base_url, api_key="unused",
                  cache=folder / "llm.sqlite", timeout=5, max_tries=2, concurrency=4)
        pipeline(source, llm, instructions).run(folder / "run", progress=False)
    finally:
        if own:
            server.__exit__(None, None, None)
    return folder / "run"


LONG_CHARS = 20_000_000
LONG_ID = "docs/long.md#1"


def long_text() -> str:
    """20 MB of text with markup to escape (a page that showed it all would be ~60 MB)."""
    return ("a<b> & c " * (LONG_CHARS // 9 + 1))[:LONG_CHARS]


def build_long(folder: Path) -> Path:
    """A run whose source holds one 20 MB field, a row derived from it (so the long value is
    in a lineage too) and a short row; the export holds the long text."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "long.jsonl"
    rows = [{"_id": LONG_ID, "text": long_text(), "answer": "long"},
            {"_id": "/short/row:2", "text": "a short row", "answer": "short"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    Pipeline(name="long-rows", source=source,
             stages=[Derive(lambda row: [{"answer": row["answer"] + " again"}]
                            if row["answer"] == "long" else [], name="again")],
             export=ChatExport(human="{text}", gpt="answer")).run(folder / "run",
                                                                       progress=False)
    return folder / "run"
