"""The Honeycomb curation spec: seeds -> LLM augment -> rewording check -> assertions ->
complexity -> Rouge-L and embedding dedup of the question -> column swap -> decontamination
against the eval file -> key-pair dedup -> judge -> repair -> assertions -> sharegpt.

    python -m curate.pipeline examples/honeycomb/spec.py --out runs/honeycomb      (make demo)
    HONEYCOMB_SCALE=full python -m curate.pipeline examples/honeycomb/spec.py --out runs/full

With no endpoint configured the LLM stages run the embedded SmolLM2-135M-Instruct at a small
scale (a few minutes on two CPU cores): its judge only annotates, repair takes only what the
checker fails, and its rewordings are dropped. Point ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` /
``CURATE_LLM_MODEL`` at a real model and set ``HONEYCOMB_SCALE=full`` for every seed, more
variations and the full few-shot critique prompt. ``HONEYCOMB_DEMO_SEEDS`` (0: every seed),
``HONEYCOMB_VARIATIONS`` and ``HONEYCOMB_SWAPS`` change the scale.
"""
import json
import os
import re
from pathlib import Path

from assertions.honeycomb import atoms, check, complexity
from curate import (LLM, AssertionFilter, Augment, ComplexityFilter, Decontaminate, Derive,
                    EmbeddingDedup, ExactDedup, Filter, Judge, Pipeline, PreferencePairs, Repair,
                    ReportOptions, RougeDedup, Sample, ChatExport)
from examples.honeycomb import prompts
from examples.honeycomb.column_swap import swap_row

DATA = Path(__file__).parent / "data"
FULL = os.environ.get("HONEYCOMB_SCALE", "demo") == "full"
SCALE = dict(seeds=None, swaps=3, variations=3, few_shot=2, critique_examples=None) if FULL else \
    dict(seeds=int(os.environ.get("HONEYCOMB_DEMO_SEEDS", 50)), swaps=2, variations=2,
         few_shot=1, critique_examples=1)
SCALE.update({k: int(os.environ[f"HONEYCOMB_{k.upper()}"]) for k in ("swaps", "variations")
              if os.environ.get(f"HONEYCOMB_{k.upper()}")})
CRITIQUE_EXAMPLES = SCALE["critique_examples"]  # the judge's prompt reads this, not all of SCALE
SWAPS = SCALE["swaps"]  # and the column swap this

llm = LLM(temperature=0.8, max_tokens=300 if FULL else 80, seed=0)
judge_llm = LLM(temperature=0.0, max_tokens=200 if FULL else 120)
EMBEDDED = llm.backend is not None
"""No endpoint is configured: the LLM stages run the embedded 135M demo model, whose verdicts
and rewordings are no evidence a user would accept for changing a row (see the README)."""


def critique_prompt(row, examples):
    few_shot = prompts.critique_examples()[:CRITIQUE_EXAMPLES]
    return prompts.critique_messages(row, few_shot, brief=not FULL)


def _seed_key(row) -> tuple[str, str]:
    return row["nlq"], json.dumps(row["query"], sort_keys=True)


SEED_KEYS = frozenset(_seed_key(json.loads(line))
                      for line in (DATA / "seeds.jsonl").read_text().splitlines() if line.strip())


def is_generated(row) -> bool:
    """Whether a row was made here (a rewording, a swap, an augmentation) rather than being
    one of the seeds as written: the seeds are real, checked examples, which a judge (above
    all a small one) must not send to repair."""
    return _seed_key(row) not in SEED_KEYS


def needs_repair(row) -> bool:
    """Repair what the checker fails; with a real model also what its judge calls bad. The
    embedded demo model is no judge a user would let overrule the checker: it only annotates."""
    return bool(check(row["query"], row["columns"])) or not EMBEDDED and row.get("outcome") == "bad"


def not_an_embedded_rewording(row):
    """Keep a rewording only from a real model. Graded by hand on the demo run, the 135M
    model's rewordings that pass the rewording check either copy the seed (which the
    near-duplicate filters remove) or change its meaning; the seeds and their column swaps
    are the demo's training rows."""
    if not EMBEDDED or row.get("seed_nlq") is None:
        return True
    return False, "embedded_rewording", ("a rewording by the embedded demo model, which copies the seed "
                                         "or changes its meaning; configure an endpoint to keep rewordings")


PLACEHOLDER = re.compile(r"<[^<>]*>|\byour[_ -]?\w+|\bexample\b|\bplaceholder\b|^(value|x+|\.\.\.|todo|tbd)$",
                         re.IGNORECASE)


def says_no_less(row, query):
    """Accept a repaired query only if it sets at least as many atoms (calculations, filters,
    breakdowns, ...) as the one it replaces and filters on no placeholder value ("your_value",
    "<value>", "example") that neither the original nor the question holds."""
    try:
        before = atoms(row["query"])
    except ValueError:  # an original that is not a query at all sets nothing
        before = frozenset()
    after = atoms(query)
    known = {value for _, value in _filter_values(before)}
    for column, value in _filter_values(after):
        if isinstance(value, str) and value not in known and value.lower() not in row["nlq"].lower() \
                and PLACEHOLDER.search(value.strip()):
            return False, "repair_placeholder", f"the repaired query filters {column} on the placeholder {value!r}"
    if len(after) < len(before):
        lost = "; ".join(sorted(str(atom) for atom in before - after))
        return False, "repair_says_less", (f"the repaired query sets {len(after)} parts where the original "
                                           f"set {len(before)}; it drops {lost}")
    return True


def _filter_values(found):
    """``(column, value)`` of every filter atom, one per value of an in/not-in list."""
    for atom in found:
        if atom[0] == "filter":
            for value in atom[3] if isinstance(atom[3], tuple) else (atom[3],):
                yield atom[1], value


# A row goes when any two of question, columns and query repeat; a rewording (the demo's
# augmentation) repeats its seed's columns and query by construction, so there only the pairs
# that hold the question count.
KEY_PAIRS = [("nlq", "columns"), ("columns", "query"), ("nlq", "query")] if FULL else \
    [("nlq", "columns"), ("nlq", "query")]

# A real model writes whole new rows; the small embedded model cannot write queries worth
# keeping, so the demo only asks it to reword questions and leaves new queries to the column swap.
augment = Augment(llm, prompt=prompts.augment_messages, parse=prompts.augmented_row,
                  schema=prompts.augment_schema, k=SCALE["few_shot"], n=SCALE["variations"],
                  name="llm_augment") if FULL else \
    Augment(llm, prompt=prompts.reword_messages, parse=prompts.reworded_row,
            schema=prompts.REWORD_SCHEMA, k=SCALE["few_shot"], n=SCALE["variations"],
            name="llm_reword")

stages = [
    augment,
    # a small model asked to reword often writes something else (a number, a paragraph, a
    # few-shot example's question, which would then carry the seed's query): drop those
    Filter(prompts.is_a_rewording, name="is_a_rewording"),
    Filter(not_an_embedded_rewording, name="embedded_rewordings"),
    AssertionFilter(check),  # check(query, columns) reads the fields of those names
    ComplexityFilter(complexity, field="query", min_value=1, max_value=12),
    RougeDedup("nlq", threshold=0.7),
    EmbeddingDedup("nlq", threshold=0.95),
    # Swaps reuse their parent's wording, so they come after the question-level filters
    # (which would remove them all) and before the key-pair dedup.
    Derive(lambda row: swap_row(row, n=SWAPS, seed=0), name="column_swap"),
    # Nothing made here may repeat a held-out question: exact, 6-word runs, Rouge-L > 0.7.
    Decontaminate(DATA / "eval.jsonl", field="nlq"),
    ExactDedup(KEY_PAIRS, json_fields=("query",), unordered=("columns",), name="key_pair_dedup"),
    # The judge sees the rows made here, never the seeds. A real model's "bad" sends a row to
    # repair; the embedded model's verdict is advisory only (see needs_repair).
    Judge(judge_llm, fields=["nlq", "columns", "query"] if FULL else ["nlq", "query"],
          prompt=critique_prompt, schema=prompts.CRITIQUE_SCHEMA, keep="all",
          on_failure="keep" if EMBEDDED else "error", when=is_generated,
          trusted=not EMBEDDED),  # its "bad" makes preference pairs only from a real model
    Repair(llm, prompt=prompts.repair_messages, field="query", check=check,
           schema=prompts.repair_schema, parse=prompts.repaired_query, when=needs_repair,
           accept=says_no_less, max_attempts=2 if FULL else 1),
    AssertionFilter(check, name="assertions_after_repair"),
]
if SCALE["seeds"]:
    stages.insert(0, Sample(n=SCALE["seeds"], seed=0, name="demo_sample"))


pipeline = Pipeline(
    name="honeycomb",
    source=DATA / "seeds.jsonl",
    stages=stages,
    # export/preference.jsonl: repaired against original query
    export=ChatExport(system=prompts.SYSTEM_PROMPT, human=prompts.USER_TEMPLATE, gpt="query",
                      formats=("sharegpt", "messages"), preferences=PreferencePairs(check)),
    report=ReportOptions(measure=lambda row: complexity(row["query"]),
                         measure_label="query complexity (parts)", text_field="nlq",
                         clusters="nlq"),
)
