"""Judge the Honeycomb seeds and repair the bad queries through a provider's Batch API.

    python -m curate.pipeline examples/batch/spec.py --estimate            # sends nothing
    OPENAI_API_KEY=sk-... python -m curate.pipeline examples/batch/spec.py --out runs/batch

Every request goes into batch input files (OpenAI's Batch API: half the online price, results
within 24 hours); the run polls until its batches end. Stop it in any way and run the same
command again: it polls the batches recorded in runs/batch/cache/batches.json and pays for
nothing twice. ``BATCH_MAX_WAIT=0`` submits and stops at once; run again later to collect.
``BATCH_SEEDS=N`` judges the first N seeds. Run it from the repository root; with no key or
endpoint configured ``--estimate`` still works, and a run stops in one line saying what to set.
"""
import os
from pathlib import Path

from assertions.honeycomb import check
from curate import LLM, AssertionFilter, Judge, Pipeline, Repair, Sample
from curate.llm.batch import BatchOptions
from examples.honeycomb import prompts

DATA = Path(__file__).resolve().parents[1] / "honeycomb" / "data"
MAX_WAIT = os.environ.get("BATCH_MAX_WAIT")

batch = BatchOptions(poll_every=float(os.environ.get("BATCH_POLL_EVERY", 30)),
                     max_poll_every=600, max_wait=float(MAX_WAIT) if MAX_WAIT else None)
llm = LLM(os.environ.get("CURATE_LLM_MODEL", "gpt-4o-mini"), temperature=0.0,
          max_tokens=300, batch=batch)


def critique_prompt(row, examples):
    return prompts.critique_messages(row, prompts.critique_examples()[:2])


def needs_repair(row):
    return row.get("outcome") == "bad"


stages = [
    Judge(llm, fields=["nlq", "columns", "query"], prompt=critique_prompt,
          schema=prompts.CRITIQUE_SCHEMA, keep="all"),
    Repair(llm, prompt=prompts.repair_messages, field="query", check=check,
           schema=prompts.repair_schema, parse=prompts.repaired_query, when=needs_repair,
           max_attempts=2),
    AssertionFilter(check, name="assertions_after_repair"),
]
if os.environ.get("BATCH_SEEDS"):
    stages.insert(0, Sample(n=int(os.environ["BATCH_SEEDS"]), seed=0, name="seed_sample"))

pipeline = Pipeline(name="honeycomb-batch", source=DATA / "seeds.jsonl", stages=stages)
