"""Rows, stages and a scripted model shared by the executor tests.

The scripted model's reply depends only on the request (the row's text in the first user
turn, and the sample seed), so every executor gets the same replies, in any order, from a
loopback server (``client``: what Ray's workers reach) or in this process
(``scripted_client``).
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd

from curate import (LLM, AssertionFilter, Augment, ComplexityFilter, Derive, ExactDedup,
                    Filter, Judge, Pipeline, Repair, RougeDedup, ChatExport, Vote)
from curate.core.table import ID, to_jsonable
from curate.testing import ScriptedModel

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]


def rows(n: int = 40) -> pd.DataFrame:
    """Texts with a few repeats (for dedup), a missing value and a wrong type."""
    texts = [f"{WORDS[i % 16]} {WORDS[(i * 7) % 16]} number {i % 29}" for i in range(n)]
    answers = [f"answer {i}" for i in range(n)]
    table = pd.DataFrame({"text": texts, "answer": answers}, dtype=object)
    table.loc[3, "text"] = None
    table.loc[5, "text"] = 17
    table.loc[n - 7, "text"] = None
    return table


def bucket(text: str, salt: str = "") -> int:
    return int(hashlib.sha256(f"{salt}{text}".encode()).hexdigest()[:8], 16) % 10


def first_user(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def reply(body: dict) -> str:
    """Judge verdicts, augmentations, repairs and votes, each a function of the request."""
    text = first_user(body)
    b = bucket(text)
    if text.startswith("vary:"):
        if b == 0:
            return "no json here"
        return json.dumps([{"text": f"{text[5:]} again"}] + ([{"text": f"{text[5:]} anew"}]
                                                             if b > 5 else []))
    if text.startswith("solve:"):
        return f"The answer is {bucket(text, str(body.get('seed'))) % 3}"
    if "Problems:" in text:
        return "still bad" if b < 3 else "fixed text"
    if b == 0:
        return "I cannot judge this"
    return json.dumps({"critique": f"critique {b}", "outcome": "bad" if b < 4 else "good"})


def client(server, **options) -> LLM:
    settings = dict(base_url=server.base_url, api_key="x", timeout=5.0, max_tries=2,
                    backoff=0.01, max_backoff=0.05, concurrency=4, seed=0, cache=False)
    settings.update(options)
    return LLM("scripted", **settings)


def scripted_client() -> LLM:
    """The same replies from an in-process model, for stage logic without a server."""
    model = ScriptedModel(reply=lambda r: reply({"messages": r.messages, "seed": r.seed}))
    return model.client(max_tries=2, seed=0)


def long_enough(row):
    text = row["text"]
    if "oscar" in text:
        raise ValueError("oscar is not allowed")
    return (False, "short", f"{len(text)} characters") if len(text) < 22 else True


def fixed(text):
    return [] if text.startswith("fixed") else ["text_not_fixed: still bad"]


def no_papa(text):
    return [("no_papa", "mentions papa")] if "papa" in text else []


def swap(row):
    if "kilo" in row["text"]:
        raise KeyError("kilo")
    return [{"text": row["text"].replace("number", "no.")}] if "echo" in row["text"] else []


def row_stages(llm) -> list:
    """Every row-wise stage, each with rows it keeps, rejects, errors and makes."""
    return [
        Filter(long_enough, requires=["text"]),
        ComplexityFilter(lambda t: len(t.split()) if "lima" not in t else "many",
                         field="text", min_value=4, max_value=4),
        AssertionFilter(no_papa),
        Derive(swap, name="swap"),
        Augment(llm, prompt=lambda row: f"vary:{row['text']} ({row['answer']})", keep="all"),
        Augment(llm, prompt=lambda row: f"vary:{row['text']} ({row['answer']})", keep="new", n=2,
                when=lambda row: "delta" not in row["text"], name="augment_new"),
        Judge(llm, fields=["text"], keep="all", on_failure="keep", name="judge_keep"),
        Judge(llm, fields=["text"], on_failure="reject", name="judge_reject",
              when=lambda row: "mike" not in row["text"]),
        Judge(llm, fields=["text"], on_failure="error", name="judge_error"),
        Repair(llm, field="text", check=fixed, feedback=lambda row: "too vague",
               when=lambda row: "bravo" in row["text"], on_failure="keep"),
        Vote(llm, prompt=lambda row: f"solve:{row['text']} ({row['answer']})", n=3, tie="first",
             outputs={"answer": "voted"}),
    ]


def spec(source: pd.DataFrame, llm, max_errored: float | None = None) -> Pipeline:
    """Row-wise, LLM and dedup stages in one pipeline, with an export."""
    options = {} if max_errored is None else {"max_errored": max_errored}
    stages = [
        Filter(long_enough, requires=["text"], **options),
        Derive(swap, name="swap"),
        Augment(llm, prompt=lambda row: f"vary:{row['text']} ({row['answer']})", keep="all"),
        ExactDedup(["text"]),
        Judge(llm, fields=["text"], keep="all", on_failure="keep"),
        RougeDedup("text", threshold=0.9),
        Repair(llm, field="text", check=fixed, feedback=lambda row: "too vague",
               when=lambda row: row.get("outcome") == "bad", on_failure="keep"),
        Augment(llm, prompt=lambda row, examples: f"vary:{row['text']} ({len(examples)})",
                k=1, keep="all", name="few_shot"),
        AssertionFilter(no_papa),
    ]
    return Pipeline(source=source, stages=stages, name="executors",
                    export=ChatExport(human="{text}", gpt="answer"))


def canonical(table: pd.DataFrame) -> list[str]:
    """Every row with every column, as sorted canonical JSON (a set, order left out)."""
    if not len(table):
        return []
    columns = sorted(map(str, table.columns))
    return sorted(json.dumps(to_jsonable(dict(zip(columns, r))), sort_keys=True)
                  for r in table[columns].itertuples(index=False))


def ids(table: pd.DataFrame) -> list:
    return table[ID].tolist() if len(table) else []
