"""The Honeycomb example's schemas, seed and held-out rows, and prompts."""

import json
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from rapidfuzz import fuzz, process, utils

ROOT_DIR = Path(__file__).resolve().parents[2]
if str(ROOT_DIR) not in sys.path:  # `examples` is not an installed package
    sys.path.insert(0, str(ROOT_DIR))

from assertions.honeycomb import check, complexity  # noqa: E402
from examples.honeycomb import prompts  # noqa: E402
from examples.honeycomb.data import make_data  # noqa: E402
from examples.honeycomb.data.dsl import CALC_OPS, query_columns  # noqa: E402
from examples.honeycomb.schemas import KINDS, load_schemas  # noqa: E402

DATA = ROOT_DIR / "examples" / "honeycomb" / "data"
FILTER_OPS = {"=", "!=", ">", ">=", "<", "<=", "starts-with", "does-not-start-with", "exists",
              "does-not-exist", "contains", "does-not-contain", "in", "not-in"}
ROOT_SPANS = {"column": "trace.parent_id", "op": "does-not-exist"}


def _read(name):
    with (DATA / name).open() as f:
        return [json.loads(line) for line in f]


SEEDS, EVAL = _read("seeds.jsonl"), _read("eval.jsonl")
SCHEMAS = load_schemas()


def test_schemas_are_realistic_and_consistent():
    assert len(SCHEMAS) >= 3
    for schema in SCHEMAS.values():
        assert 20 <= len(schema.columns) <= 90, schema.name
        assert len(set(schema.names)) == len(schema.names)
        assert {c.kind for c in schema.columns} <= set(KINDS)
        spoken = Counter(a.lower() for c in schema.columns for a in c.aliases)
        assert [a for a, n in spoken.items() if n > 1] == [], schema.name
        assert all(c.values for c in schema.columns if c.kind == "enum"), schema.name


def test_row_counts_per_schema():
    assert len(SEEDS) >= 150 and len(EVAL) >= 60
    seeds = Counter(r["schema"] for r in SEEDS)
    held_out = Counter(r["schema"] for r in EVAL if r["swap"] is None)
    assert set(seeds) == set(held_out) == set(SCHEMAS)
    assert min(seeds.values()) >= 45 and min(held_out.values()) >= 20


@pytest.mark.parametrize("rows, fields", [
    (SEEDS, ["nlq", "columns", "query", "schema"]),
    (EVAL, ["nlq", "columns", "query", "schema", "swap", "group"]),
], ids=["seeds", "eval"])
def test_rows_have_the_fields_and_a_retrieved_column_list(rows, fields):
    for row in rows:
        assert list(row) == fields
        assert isinstance(row["nlq"], str) and row["nlq"].strip() == row["nlq"] != ""
        assert 15 <= len(row["columns"]) <= 60
        assert len(set(row["columns"])) == len(row["columns"])
        schema = SCHEMAS[row["schema"]]
        assert all(c in schema for c in row["columns"]), row["nlq"]
        assert set(query_columns(row["query"])) <= set(row["columns"]), row["nlq"]
    assert len({tuple(r["columns"]) for r in rows}) == len(rows)  # lists vary between rows


@pytest.mark.parametrize("rows", [SEEDS, EVAL], ids=["seeds", "eval"])
def test_every_query_passes_the_checker(rows):
    failing = {r["nlq"]: check(r["query"], r["columns"]) for r in rows}
    assert {nlq: f for nlq, f in failing.items() if f} == {}


def test_questions_are_unique_and_held_out_questions_are_not_near_seeds():
    assert len({r["nlq"] for r in SEEDS}) == len(SEEDS)
    assert len({r["nlq"] for r in EVAL}) == len(EVAL)
    seeds = [r["nlq"] for r in SEEDS]
    close = [(r["nlq"], hit[0]) for r in EVAL
             for hit in process.extract(r["nlq"], seeds, scorer=fuzz.token_ratio,
                                        processor=utils.default_process, score_cutoff=90.5)]
    assert close == []


def test_files_match_the_generator():
    assert make_data.build("seeds") == SEEDS
    assert make_data.build("eval") == EVAL


def _features(rows):
    seen = Counter()
    for row in rows:
        q = row["query"]
        seen.update(f"calc:{c['op']}" for c in q.get("calculations", []))
        for f in q.get("filters", []):
            seen[f"filter:{f['op']}"] += 1
            if "value" in f:
                seen[f"value:{type(f['value']).__name__}"] += 1
            seen["root_spans"] += {k: f[k] for k in ("column", "op")} == ROOT_SPANS
        seen["or"] += q.get("filter_combination") == "OR"
        seen["breakdowns"] += bool(q.get("breakdowns"))
        seen["order_by_calc"] += any("op" in o for o in q.get("orders", []))
        seen["order_by_column"] += any("op" not in o for o in q.get("orders", []))
        seen["havings"] += bool(q.get("havings"))
        if "time_range" in q:
            seen[f"time_range:{q['time_range']}"] += 1
        seen["start_end"] += "start_time" in q and "end_time" in q
        seen["granularity"] += "granularity" in q
        seen["limit"] += "limit" in q
    return seen


def test_seeds_cover_the_query_language():
    seen = _features(SEEDS)
    wanted = ({f"calc:{op}" for op in CALC_OPS} | {f"filter:{op}" for op in FILTER_OPS} |
              {"value:str", "value:int", "value:float", "value:bool", "value:list", "or",
               "breakdowns", "order_by_calc", "order_by_column", "havings", "time_range:3600",
               "time_range:86400", "time_range:604800", "start_end", "granularity", "limit",
               "root_spans"})
    assert sorted(f for f in wanted if seen[f] == 0) == []
    assert seen["root_spans"] >= 15 and seen["havings"] >= 6 and seen["start_end"] >= 3


def test_eval_covers_the_main_features():
    seen = _features(EVAL)
    for feature in ("root_spans", "or", "havings", "start_end", "granularity", "limit",
                    "order_by_calc", "order_by_column", "calc:HEATMAP", "calc:COUNT_DISTINCT", "filter:in"):
        assert seen[feature] > 0, feature


def test_complexity_ranges_from_one_part_to_eight_or_more():
    parts = [complexity(r["query"]) for r in SEEDS]
    assert min(parts) == 1 and max(parts) >= 8
    assert len(set(parts)) >= 6


# --- prompts ----------------------------------------------------------------------------------

ROW = {"nlq": "p99 latency by route", "columns": ["duration_ms", "http.route"],
       "query": {"calculations": [{"op": "P99", "column": "duration_ms"}],
                 "breakdowns": ["http.route"]}}


def test_finetune_prompt_has_the_case_study_shape():
    assert prompts.format_columns(["a.b", "c"]) == "['a.b', 'c']"
    expected = "NLQ: \"slow requests\"\n\nColumns: ['a', 'b']"
    assert prompts.user_prompt("slow requests", ["a", "b"]) == expected
    messages = prompts.finetune_messages(ROW, with_answer=True)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert "Honeycomb" in messages[0]["content"]
    assert json.loads(messages[2]["content"]) == ROW["query"]


def test_augment_prompt_states_the_row_and_the_rules():
    messages = prompts.augment_messages(ROW, SEEDS[:2], spare_columns=["http.method"])
    text = messages[1]["content"]
    assert SEEDS[0]["nlq"] in text and ROW["nlq"] in text and "['http.method']" in text
    assert "(2 columns)" in text and '"swap"' in messages[0]["content"]
    jsonschema.validate({k: ROW[k] for k in ("nlq", "query")}, prompts.AUGMENT_SCHEMA)
    jsonschema.validate({"nlq": "x", "query": {}, "swap": ["a", "b"]}, prompts.AUGMENT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"nlq": "x", "columns": [], "query": {}}, prompts.AUGMENT_SCHEMA)


def test_augmented_row_swaps_the_column_in_place():
    row = {"nlq": "p99 by route", "columns": ["duration_ms", "http.route", "name"], "query": {}}
    new = prompts.augmented_row(row, {"nlq": "p99 by method", "query": {"limit": 1},
                                      "swap": ["http.route", "http.method"]})
    assert new["columns"] == ["duration_ms", "http.method", "name"]
    assert prompts.augmented_row(row, {"nlq": "q", "query": {}})["columns"] == row["columns"]
    with pytest.raises(ValueError, match="not in the column list"):
        prompts.augmented_row(row, {"nlq": "q", "query": {}, "swap": ["nope", "x"]})


def test_critique_prompt_has_expert_few_shots_and_sees_only_question_columns_query():
    examples = prompts.critique_examples()
    assert 3 <= len(examples) <= 5
    assert {e["outcome"] for e in examples} == {"good", "bad"}
    for e in examples:
        assert check(e["query"], e["columns"]) == []
        jsonschema.validate({"critique": e["critique"], "outcome": e["outcome"]},
                            prompts.CRITIQUE_SCHEMA)
    messages = prompts.critique_messages({**ROW, "schema": "webshop", "_id": "x1"})
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * len(examples) + ["user"]
    assert "trace.parent_id does-not-exist" in messages[0]["content"]
    last = messages[-1]["content"]
    assert ROW["nlq"] in last and "http.route" in last and "webshop" not in last
    held_out = [r["nlq"] for r in EVAL]
    assert all(process.extractOne(e["nlq"], held_out, scorer=fuzz.token_ratio)[1] < 90
               for e in examples)


def test_repair_prompt_lists_the_failures_or_the_critique():
    failures = check({"calculations": [{"op": "MAX"}]}, ["duration_ms"])
    messages = prompts.repair_messages(ROW, failures)
    assert f"- {failures[0].rule}: {failures[0].message}" in messages[1]["content"]
    assert "use a percentile" in prompts.repair_messages(ROW, "use a percentile")[1]["content"]
    jsonschema.validate({"query": ROW["query"]}, prompts.REPAIR_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"query": {"calculation": []}}, prompts.REPAIR_SCHEMA)


def test_every_real_query_fits_the_typed_reply_schemas_of_its_row():
    """The schemas sent for constrained decoding must never forbid a query the checker
    accepts: every seed and held-out query fits its row's narrowed schema."""
    from examples.honeycomb import reply_schemas

    rows = [json.loads(line) for name in ("seeds.jsonl", "eval.jsonl")
            for line in (DATA / name).read_text().splitlines() if line.strip()]
    for number, row in enumerate(rows):
        for instance, schema in ((row["query"], reply_schemas.query_schema(row["columns"])),
                                 ({"query": row["query"]}, reply_schemas.repair_schema(row)),
                                 ({"nlq": row["nlq"], "query": row["query"], "swap": None},
                                  reply_schemas.augment_schema(row))):
            validator = jsonschema.validators.validator_for(schema)
            if number == 0:  # the schemas themselves once: checking them is the slow part
                validator.check_schema(schema)
            validator(schema).validate(instance)
    narrowed = reply_schemas.query_schema(["duration_ms"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"calculations": [{"op": "P99", "column": "latency"}]}, narrowed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"calculations": [{"op": "MAX"}]}, narrowed)  # MAX needs a column


def test_a_rewording_keeps_the_query_and_refuses_a_repeat():
    row = {"nlq": "Slow requests?", "query": {"calculations": [{"op": "COUNT"}]}}
    assert prompts.reworded_row(row, {"nlq": "  which requests   are slow "}) == \
        {"nlq": "which requests are slow", "seed_nlq": "Slow requests?"}
    with pytest.raises(ValueError, match="repeats the question"):
        prompts.reworded_row(row, {"nlq": "slow requests"})
    text = prompts.reword_messages(row)[1]["content"]
    assert '"Slow requests?"' in text and "Columns" not in text


@pytest.mark.parametrize("reworded, code", [
    ("How many pods running the latest tag, per namespace?", None),
    ("pods on the latest tag in each namespace, how many", None),
    ("2018-03-19T23:29:00.103Z", "rewording_changes_topic"),
    ("concurrent requests in the frontend service", "rewording_changes_topic"),
    ("A new low-latency pod service developed by a corporation. It runs the latest tag in "
     "every namespace and many other things besides, all of them described at length here",
     "rewording_too_long"),
])
def test_what_is_not_a_rewording_is_filtered_out(reworded, code):
    seed = "how many pods are running the latest tag, per namespace"
    problem = prompts.rewording_problem(seed, reworded)
    assert (problem and problem[0]) == code
    verdict = prompts.is_a_rewording({"nlq": reworded, "seed_nlq": seed})
    assert verdict is True if code is None else verdict[:2] == (False, code)
    assert prompts.is_a_rewording({"nlq": reworded, "seed_nlq": None}) is True  # a seed row


def test_the_judge_of_the_spec_leaves_the_seeds_alone():
    """A seed as written is never judged (nor, so, repaired); a swap or a rewording of it is."""
    import json

    from curate.pipeline.spec import load_spec
    from examples.honeycomb.column_swap import swap_row

    spec = load_spec(ROOT_DIR / "examples/honeycomb/spec.py")
    judge = next(stage for stage in spec.stages if stage.name == "judge")
    seeds = [json.loads(line) for line in
             (ROOT_DIR / "examples/honeycomb/data/seeds.jsonl").read_text().splitlines()]
    assert not any(judge.when(seed) for seed in seeds)
    swapped = next(row for seed in seeds for row in swap_row(seed, n=1))
    assert judge.when(swapped)
    assert judge.when({**seeds[0], "nlq": seeds[0]["nlq"] + " please"})


_SPEC_FINGERPRINTS = """
import json
from curate.pipeline.spec import load_spec
spec = load_spec("examples/honeycomb/spec.py")
print(json.dumps({s.name: [s.fingerprint().digest, s.fingerprint().stable] for s in spec.stages}))
"""


def _spec_fingerprints(**env):
    import os
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _SPEC_FINGERPRINTS], cwd=ROOT_DIR, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_spec_fingerprints_alike_in_every_process_and_a_changed_global_shows():
    """An unchanged Honeycomb spec gives every stage the same stable fingerprint in a new
    process (so a rerun reuses it); a changed SCALE value changes only the stage that uses it:
    the number of swaps only the column swap (its n), not the judge, whose prompt reads only
    the critique examples; the number of variations only the augment stage."""
    first, again = _spec_fingerprints(), _spec_fingerprints()
    assert first == again and all(stable for _, stable in first.values())
    changed = _spec_fingerprints(HONEYCOMB_SWAPS="3")
    assert {name for name in first if first[name] != changed[name]} == {"column_swap"}
    changed = _spec_fingerprints(HONEYCOMB_VARIATIONS="3")
    assert {name for name in first if first[name] != changed[name]} == {"llm_reword"}
