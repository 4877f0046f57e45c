"""Benchmark: Decontaminate's recall on planted eval overlaps and its false positives on clean rows.

For each distinct question of ``examples/honeycomb/data/eval.jsonl`` one row of each kind is
planted (seeded): ``exact`` (case, spacing and punctuation changed), ``embedded`` (inside a
longer request), ``near`` (one or two words swapped for synonyms, or one dropped) and
``reworded`` (three or more edits, a clause moved to the front). Clean rows: the Honeycomb seeds
and two column swaps of each, whose false positives are also counted by the check that fired.
A planted row is found when it is rejected (a match may name a sibling column swap). Intervals:
95% bootstrap over eval questions (clean rows: over rows), beside rejecting everything and exact
match only.

    .venv/bin/python bench/decontaminate.py
"""
from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pandas as pd
from benchkit import ROOT, load, script_parser

from curate import Decontaminate, interval
from examples.honeycomb.column_swap import swap_row

DATA = ROOT / "examples" / "honeycomb" / "data"
SYNONYMS = {"count": "number", "per": "by", "show": "list", "most": "highest", "top": "leading",
            "errors": "failures", "requests": "calls", "latency": "response time",
            "average": "mean", "past": "last", "last": "previous", "which": "what",
            "slowest": "longest", "users": "customers", "how many": "the number of",
            "number": "count", "by": "per", "over": "across", "total": "overall",
            "each": "every", "failed": "unsuccessful", "largest": "biggest", "hour": "60 minutes",
            "day": "24 hours", "week": "7 days", "services": "apps", "service": "app",
            "where": "when", "show me": "give me", "with": "having", "for": "of"}
BEFORE = ["for the weekly review,", "quick one:", "I need to know", "on the ops dashboard,",
          "can you tell me"]
AFTER = ["and chart it", "as a table please", "for the incident report", "broken down daily",
         "for my manager"]
CONFIGS = [("exact only", None, None), ("13-gram (usual)", 13, None), ("10-gram", 10, None),
           ("8-gram", 8, None), ("6-gram", 6, None), ("5-gram", 5, None),
           ("rouge-l > 0.7", None, 0.7), ("rouge-l > 0.6", None, 0.6),
           ("8-gram + rouge-l > 0.7", 8, 0.7), ("6-gram + rouge-l > 0.7 (default)", 6, 0.7),
           ("6-gram + rouge-l > 0.6", 6, 0.6), ("5-gram + rouge-l > 0.6", 5, 0.6)]


def substitute(text: str, rng: random.Random, edits: int) -> tuple[str, int]:
    words = list(SYNONYMS)
    rng.shuffle(words)
    done = 0
    for word in words:
        if done == edits:
            break
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        if pattern.search(text):
            text, done = pattern.sub(SYNONYMS[word], text, count=1), done + 1
    return text, done


def drop_a_word(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) > 3:
        del words[rng.randrange(1, len(words))]
    return " ".join(words)


def plant(question: str, rng: random.Random) -> dict[str, str]:
    exact = "  " + re.sub(r"\s+", "  ", question.rstrip("?.! ")).upper() + " ?"
    embedded = f"{rng.choice(BEFORE)} {question} {rng.choice(AFTER)}"
    near, done = substitute(question, rng, rng.choice([1, 2]))
    if not done:
        near = drop_a_word(question, rng)
    reworded, done = substitute(question, rng, 3)
    reworded = drop_a_word(reworded, rng) if done < 3 else reworded
    if "," in reworded:  # move the last clause to the front
        head, tail = reworded.rsplit(",", 1)
        reworded = f"{tail.strip()}, {head}"
    return {"exact": exact, "embedded": embedded, "near": near, "reworded": reworded}


def planted_table() -> tuple[pd.DataFrame, Path]:
    questions = list(dict.fromkeys(json.loads(line)["nlq"]
                                   for line in (DATA / "eval.jsonl").read_text().splitlines()))
    rng = random.Random(0)
    rows = [{"nlq": text, "kind": kind, "target": i}
            for i, q in enumerate(questions) for kind, text in plant(q, rng).items()]
    seeds = [json.loads(line) for line in (DATA / "seeds.jsonl").read_text().splitlines()]
    swaps = [row["nlq"] for seed in seeds for row in swap_row(seed, n=2, seed=0)]
    clean = list(dict.fromkeys([seed["nlq"] for seed in seeds] + swaps))
    rows += [{"nlq": q, "kind": "clean", "target": -1 - i} for i, q in enumerate(clean)]
    reference = Path(os.environ.get("TMPDIR", "/tmp")) / "decontaminate_reference.jsonl"
    reference.write_text("".join(json.dumps({"nlq": q}) + "\n" for q in questions))
    return pd.DataFrame(rows), reference


def score(table: pd.DataFrame, reference: Path, ngram, threshold) -> dict[str, str]:
    res = Decontaminate(reference, "nlq", ngram=ngram, threshold=threshold).run(table)
    rows = pd.concat([res.kept.assign(found=False), res.rejected.assign(found=True)])
    out = {kind: str(interval(part["found"].astype(float).tolist(), groups=part["target"].tolist()))
           for kind, part in rows.groupby("kind", sort=False)}
    wrong = res.rejected[res.rejected["kind"] == "clean"]["_reason_code"].value_counts()
    out["by check"] = ", ".join(f"{code.split('_')[1]} {n}" for code, n in wrong.items()) or "-"
    return out


def main() -> None:
    script_parser(__doc__).parse_args()
    table, reference = planted_table()
    print(f"load average {load(1)}; {table['target'].max() + 1} eval questions, "
          f"{(table['kind'] == 'clean').sum()} clean questions (seeds and their column swaps)")
    kinds = ["exact", "embedded", "near", "reworded", "clean", "by check"]
    results = {"reject everything": {**{k: "1.000" for k in kinds}, "by check": "-"}}
    for label, ngram, threshold in CONFIGS:
        results[label] = score(table, reference, ngram, threshold)
    header = ["check", *kinds[:-2], "false positives (clean)", "false positives by check"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for label, row in results.items():
        print(f"| {label} | " + " | ".join(row[k] for k in kinds) + " |")


if __name__ == "__main__":
    main()
